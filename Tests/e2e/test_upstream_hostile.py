"""Issue 15, item 4: upstream faults beyond test_upstream_faults.py, test_upstream_down.py and test_refunds.py
(refused connection, a hang before headers, a hang mid-body, an abrupt close mid-SSE, malformed SSE, 5xx are
covered there).

- A redirect is never followed, to another host or at all: the agent gets a JSON-RPC error for its id naming the
  status, and the redirect's target never sees a connection.
- A TLS upstream whose certificate does not verify is refused: the agent gets a JSON-RPC error for its id naming
  the certificate problem, the server never gets a request, and the call is refunded (it never reached the server).
- A JSON answer larger than toolgate reads whole (32 MiB) is cut off without toolgate's memory following it, and
  toolgate keeps serving.
"""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import json
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import httpx2

from helpers import SEED_POLICY, final_response, free_port, http_client, post, tool_call, wait_for

TOOL = "imageBackgroundRemoval"


class Listener:
    """A TCP port that records whether anything connects to it (the redirect's other host)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.stop = True
        self.thread.join(2)
        self.sock.close()


def error_for(response: httpx2.Response, mid: int) -> dict:
    answer = final_response(response)
    assert answer.get("id") == mid, answer
    assert "error" in answer, f"expected a JSON-RPC error for id {mid}: {answer!r}"
    return answer["error"]


def test_a_redirect_is_never_followed(raw_upstream, toolgate):
    other = Listener()
    try:
        tg = toolgate(raw_upstream.url, SEED_POLICY)
        for status in (301, 302, 307, 308):
            raw_upstream.set_mode("tools/call", "redirect", times=1, status=status,
                                  location=f"http://127.0.0.1:{other.port}/mcp")
            with http_client() as http:
                response = post(http, tg.url, tool_call(status, TOOL, {"image": "moved"}))
            error = error_for(response, status)
            assert error["code"] == -32603, error
            assert str(status) in error["message"], error
        assert other.connections == 0, f"toolgate followed a redirect: {other.connections} connections to its target"
        with http_client() as http:  # and the upstream is still used normally
            answer = final_response(post(http, tg.url, tool_call(1, TOOL, {"image": "after"})))
        assert answer.get("result", {}).get("isError") is False, answer
    finally:
        other.close()


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    return cert, key


def test_a_tls_upstream_with_a_bad_certificate_is_refused_and_refunded(toolgate, tmp_path):
    cert, key = self_signed(tmp_path)
    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            requests.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        tg = toolgate(f"https://127.0.0.1:{server.server_address[1]}/mcp", SEED_POLICY)
        with http_client() as http:
            # The seed policy allows 10 a minute: 12 refused calls only fit if each one was refunded.
            for mid in range(1, 13):
                error = error_for(post(http, tg.url, tool_call(mid, TOOL, {"image": "tls"})), mid)
                assert error["code"] == -32603, error
                assert "certificate" in error["message"].lower(), error
        assert requests == [], f"the server with the bad certificate got requests: {requests}"
    finally:
        server.shutdown()


def test_a_gigantic_json_answer_is_cut_off_and_memory_does_not_follow(raw_upstream, toolgate):
    tg = toolgate(raw_upstream.url, SEED_POLICY)
    pid = tg.proc.popen.pid
    with http_client() as http:
        final_response(post(http, tg.url, tool_call(1, TOOL, {"image": "warm"})))

    def rss() -> int:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    before = rss()
    raw_upstream.set_mode("tools/call", "huge_json", times=1, bytes=200 << 20)
    with http_client() as http:
        try:
            response = post(http, tg.url, tool_call(2, TOOL, {"image": "huge"}))
            body = response.text
        except httpx2.TransportError as e:  # the answer is aborted: the agent sees a broken response, not a whole one
            body = repr(e)
    assert '"result"' not in body, "part of an answer that was cut off was passed off as whole"
    growth = rss() - before
    assert growth < 100 << 20, f"toolgate's RSS grew by {growth >> 20} MiB for a 200 MiB answer"
    assert wait_for(lambda: any(e.get("kind") == "huge_json_ended" for e in raw_upstream.events()), 15)
    assert [e["reason"] for e in raw_upstream.events() if e.get("kind") == "huge_json_ended"] == ["reader_closed"]
    with http_client() as http:
        answer = final_response(post(http, tg.url, tool_call(3, TOOL, {"image": "after"})))
    assert answer.get("result", {}).get("isError") is False, answer
