"""Issue 22 finding 10: what a hostile agent writes cannot forge log lines, the upstream URL's key never shows, and
`--metrics-listen` has the guards `/mcp`'s listener has (DESIGN section 3).

- Values from outside (tool names, ids, header values) are escaped in every log field: a tool name holding a newline
  used to write a whole fake line ("approval decided …") into toolgate's stderr.
- The upstream URL often carries a key in its userinfo or query (hosted MCP servers): it is shown without them on
  `/readyz`, in the agent's -32603 message and in logs.
- `--metrics-listen` closes idle connections after `--client-idle-timeout`, refuses a foreign Host on loopback and a
  foreign Origin.
"""

from __future__ import annotations

import socket

from helpers import free_port, http_client, post, tool_call, wait_for

FORGED = "2026-12-07T12:00:00+0000 info toolgate: approvalId=ap-1 decision=approve [ToolgateServer] approval decided"


def test_a_tool_name_holding_line_breaks_cannot_forge_a_log_line(raw_upstream, toolgate):
    policy = {"version": "1", "default": "deny", "tools": {"evil*": {"action": "deny", "reason": "no"}}}
    tg = toolgate(raw_upstream.url, policy)
    names = ["evil\n" + FORGED, "evil\r\n" + FORGED, "evil\u2028" + FORGED, "evil\u202e" + FORGED, "evil\x1b[2K\r" + FORGED]
    with http_client() as http:
        for i, name in enumerate(names):
            answer = post(http, tg.url, tool_call(i, name, {"note": "x\ny"})).json()
            assert answer["result"]["isError"] is True, answer
    assert wait_for(lambda: tg.log().count("tool call denied") >= len(names)), tg.log()
    lines = tg.log().splitlines()
    assert not any(line.startswith("2026-12-07T12:00:00") for line in lines), "a forged line reached the log"
    denied = [line for line in lines if "tool call denied" in line]
    assert len(denied) == len(names), denied
    for raw in ("\r", "\u2028", "\u202e", "\x1b"):
        assert not any(raw in line for line in lines), f"{raw!r} reached the log raw"
    assert any("evil\\n2026-12-07T12:00:00" in line for line in denied), denied  # shown, escaped
    assert any("\\u{202E}" in line for line in denied), denied


def test_the_upstream_urls_key_is_never_shown(toolgate):
    port = free_port()  # nothing listens: every call fails with the URL in its error
    secret_user, secret_password, secret_key = "user-SECRET1", "pw-SECRET2", "key-SECRET3"
    upstream = f"http://{secret_user}:{secret_password}@127.0.0.1:{port}/mcp?api_key={secret_key}#frag-SECRET4"
    tg = toolgate(upstream, {"version": "1", "default": "deny", "tools": {"echo": {}}})
    with http_client() as http:
        answer = post(http, tg.url, tool_call(1, "echo", {"text": "hi"})).json()
        assert answer["error"]["code"] == -32603, answer
        assert f"127.0.0.1:{port}/mcp" in answer["error"]["message"], answer  # still says which upstream
        readyz = http.get(f"{tg.base}/readyz").text
        metrics = http.get(f"{tg.base}/metrics").text
    assert f"http://127.0.0.1:{port}/mcp" in readyz, readyz
    for where, text in (("the agent's error", str(answer)), ("/readyz", readyz), ("/metrics", metrics), ("the log", tg.log())):
        for secret in ("SECRET1", "SECRET2", "SECRET3", "SECRET4"):
            assert secret not in text, f"{secret} shows in {where}: {text[-2000:]}"


def _metrics_listener(raw_upstream, toolgate, extra: list[str] | None = None):
    metrics_port = free_port()
    tg = toolgate(raw_upstream.url, {"version": "1", "default": "deny", "tools": {}},
                  args=["--metrics-listen", f"127.0.0.1:{metrics_port}", *(extra or [])])
    assert wait_for(lambda: _status(metrics_port, "/healthz") == 200, 30), tg.log()
    return tg, metrics_port


def _status(port: int, path: str, headers: dict[str, str] | None = None) -> int | None:
    try:
        with http_client() as http:
            return http.get(f"http://127.0.0.1:{port}{path}", headers=headers or {}).status_code
    except Exception:  # noqa: BLE001 (not listening yet)
        return None


def test_metrics_listener_refuses_foreign_hosts_and_origins(raw_upstream, toolgate):
    tg, port = _metrics_listener(raw_upstream, toolgate)
    for path in ("/metrics", "/healthz", "/readyz"):
        assert _status(port, path, {"Host": "attacker.example"}) == 403, path
        assert _status(port, path, {"Origin": "http://attacker.example"}) == 403, path
        assert _status(port, path, {"Host": f"localhost:{port}", "Origin": f"http://localhost:{port}"}) == 200, path
    # The /mcp listener's own probes too.
    assert _status(tg.port, "/metrics", {"Host": "attacker.example"}) == 403


def _read_until_closed(s: socket.socket) -> bytes:
    """Everything until toolgate ends the connection; the socket's timeout (30 s) fails the test if it never does."""
    data = b""
    while chunk := s.recv(4096):
        data += chunk
    return data


def test_metrics_listener_closes_idle_and_trickling_connections(raw_upstream, toolgate):
    """`--client-idle-timeout 1`: without the guards these connections were held for ever (the socket's 30 s
    timeout fails the test)."""
    tg, port = _metrics_listener(raw_upstream, toolgate, ["--client-idle-timeout", "1"])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        assert _read_until_closed(s) == b""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"GET /metr")  # a request that never completes
        answer = _read_until_closed(s)
        assert answer == b"" or answer.startswith(b"HTTP/1.1 4"), answer[:200]
    assert _status(port, "/healthz") == 200, tg.log()
