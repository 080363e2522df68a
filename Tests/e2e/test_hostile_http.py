"""Issue 15 item 3: hostile HTTP. Each hostile request gets a clear answer (or a prompt close), and a well-behaved
client on another connection still gets its normal answer during and after it.

Already covered elsewhere, and not repeated here:
- test_http_rules.py: bodies over `--max-body-bytes` (413, with and without Content-Length) and unparseable JSON
  (truncated object, plain text, truncated batch: 400 / -32700, id null).
- test_upstream_faults.py: `--client-idle-timeout` closes a connection that sends nothing (nothing at all, half a
  head, half a body) but spares one with a response streaming to it; a transfer paused because the client stopped
  reading counts toward `--upstream-idle-timeout`; `--upstream-max-connections` bounds the upstream side.
- test_proxy_holes.py: methods other than POST/GET/DELETE (405), HTTP/1.0, missing, repeated and malformed Host,
  absolute-form targets, repeated Mcp-Session-Id, tools/call notifications.
- test_exact_evaluation.py: a client that leaves while the upstream has not answered yet stops the exchange.
- test_argument_rules.py: deep nesting inside a JSON *string* argument (what the upstream parses leniently).

Here, against raw_upstream.py:
1. Valid JSON that is not JSON-RPC (`[]`, `42`, `{"hello": 1}`, `"jsonrpc": "1.0"`, a non-string method, ...):
   HTTP 400, -32600, id null, naming what is wrong; a tools/call whose params cannot be checked: -32602 for its id.
   Hostile spellings of invalid JSON (invalid UTF-8, lone surrogates, duplicate keys, a BOM, NUL, two documents):
   400 / -32700. None of them reaches the upstream; the same keep-alive connection then serves a normal call.
2. A POST whose Content-Type is not application/json (text/plain, none, a form, multipart): 415 with a JSON-RPC
   error, never forwarded. application/json with parameters is accepted.
3. Oversized heads (one 100 KB header, 2,000 small headers, a 100 KB request target): 400 (or 431) and the
   connection closed at once; a 16 KB header is still served.
4. A request line or header value that never ends (5 MB with no CRLF) is cut off on size without being buffered
   (toolgate's RSS grows by less than 20 MB); a request line or header block trickled a byte or a header every
   0.2 s is closed after `--client-idle-timeout` (bytes of an unfinished head are not activity), and so is a body
   trickled a byte every 0.2 s (a request must arrive in full within that time).
5. Clients that close their socket mid-stream (an endless upstream SSE stream), 20 times: each upstream transfer
   ends within seconds (its writes fail), and toolgate's file descriptors return to their baseline.
6. 2,000 idle connections: /healthz and a normal call still answer on new connections, and the descriptors are
   given back when they close. With the descriptor budget cut to 256 (`prlimit`), a flood of 300 idle connections:
   toolgate serves again once it ends. `--max-connections` (default 4096) caps client connections: past it new
   ones wait in the listen backlog until one closes; a descriptor limit too small for the caps lowers them at start
   (and says so), so a flood never takes every descriptor and /healthz on `--metrics-listen` still answers.
7. Deep nesting (100,000-deep arrays and objects, as the body and inside tools/call arguments): 400 / -32700
   naming the byte where depth 257 starts. Depth counts every array and object, the outermost included: 256 is
   accepted, 257 is not.
"""

from __future__ import annotations

import json
import os
import resource
import socket
import threading
import time
from typing import Any

import httpx2
import pytest

from helpers import (
    ACCEPT_BOTH,
    assert_http_refusal,
    final_response,
    free_port,
    header_values,
    http_client,
    post,
    raw_exchange,
    raw_header,
    raw_post,
    raw_status,
    split_raw_response,
    tool_call,
    wait_for,
)

TOOL = "imageBackgroundRemoval"
# No limits: these tests make many calls, and a rate limit must never be why one is refused.
OPEN_POLICY: dict[str, Any] = {"version": "1", "default": "deny", "tools": {TOOL: {}}}
MIB = 1 << 20


# --- helpers ---------------------------------------------------------------------------------------------------


def pid_of(tg) -> int:
    return tg.proc.popen.pid


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def accepted_connections(pid: int, port: int) -> int:
    """Client connections the process holds on `port`: its socket descriptors whose TCP socket is established on
    that local port. Unlike a descriptor count, other descriptors coming and going (a timer, curl's own) do not
    move it, and a connection still waiting in the listen backlog has no descriptor yet."""
    held = set()
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        if target.startswith("socket:["):
            held.add(target[len("socket:["):-1])
    # Distinct sockets, not rows: /proc/net/tcp is produced a page at a time, and a table that changes between pages
    # (other tests' connections) can show a row twice.
    established: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    local_port = int(fields[1].rsplit(":", 1)[1], 16)
                    if local_port == port and fields[3] == "01" and fields[9] in held:
                        established.add(fields[9])
        except FileNotFoundError:
            pass
    return len(established)


def fd_targets(pid: int) -> list[str]:
    out = []
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            out.append(os.readlink(f"/proc/{pid}/fd/{name}"))
        except OSError:
            pass
    return sorted(out)


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS in /proc/{pid}/status")


def assert_alive(tg) -> None:
    assert tg.proc.popen.poll() is None, f"toolgate {tg.proc.describe_exit()}"


def assert_healthz(port: int, timeout: float = 5.0) -> None:
    try:
        response = httpx2.get(f"http://127.0.0.1:{port}/healthz", timeout=timeout)
    except httpx2.TransportError as e:
        pytest.fail(f"GET /healthz on a new connection got no answer within {timeout:.0f} s: {e!r}")
    assert response.status_code == 200, f"/healthz: HTTP {response.status_code} {response.text!r}"


def normal_call(http: httpx2.Client, tg, mid: int) -> None:
    """A well-behaved client's allowed tools/call, answered by the upstream as always."""
    image = f"ok-{mid}"
    response = post(http, tg.url, tool_call(mid, TOOL, {"image": image}))
    assert response.status_code == 200, f"a normal call got HTTP {response.status_code}: {response.text!r}"
    answer = final_response(response)
    assert answer.get("id") == mid, answer
    text = ((answer.get("result") or {}).get("content") or [{}])[0].get("text")
    assert text == f'raw {TOOL}: {{"image": "{image}"}}', f"a normal call was not answered normally: {answer!r}"


def fresh_normal_call(tg, mid: int) -> None:
    with http_client() as http:
        normal_call(http, tg, mid)


def forwarded_ids(raw_upstream) -> list[Any]:
    return [m.get("id") for m in raw_upstream.seen_messages()]


def head(tg, extra: list[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
    return [("Host", f"127.0.0.1:{tg.port}"), ("Content-Type", "application/json"), ("Accept", ACCEPT_BOTH),
            *(extra or [])]


class Reader(threading.Thread):
    """Reads a socket until toolgate ends the connection: what arrived, how (EOF or an error) and when."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(daemon=True)
        self.sock = sock
        self.data = b""
        self.how: str | None = None
        self.ended_at: float | None = None

    def run(self) -> None:
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    self.how = "eof"
                    break
                self.data += chunk
        except TimeoutError:
            self.how = "timeout"  # the socket's own timeout: toolgate did NOT end the connection
            return
        except OSError as e:
            self.how = f"error {e!r}"
        self.ended_at = time.monotonic()


# --- 1. valid JSON that is not JSON-RPC -------------------------------------------------------------------------

PING = '{"jsonrpc": "2.0", "id": 7, "method": "ping"}'

# body → the message of the -32600 answer (HTTP 400, id null: the id cannot be trusted in an invalid message).
NOT_JSONRPC: dict[str, str] = {
    "[]": "an empty batch is not a valid request",
    '{"hello": 1}': '"jsonrpc" must be "2.0"',
    "42": "a JSON-RPC message must be an object",
    "null": "a JSON-RPC message must be an object",
    '"tools/call"': "a JSON-RPC message must be an object",
    "true": "a JSON-RPC message must be an object",
    '{"jsonrpc": "1.0", "id": 1, "method": "x"}': '"jsonrpc" must be "2.0"',
    '{"jsonrpc": 2.0, "id": 1, "method": "ping"}': '"jsonrpc" must be "2.0"',
    '{"id": 1, "method": "ping"}': '"jsonrpc" must be "2.0"',
    '{"jsonrpc": "2.0", "id": 1, "method": 5}': '"method" must be a string',
    '{"jsonrpc": "2.0", "id": 1, "method": null}': '"method" must be a string',
    '{"jsonrpc": "2.0", "id": 1, "method": ["tools/call"]}': '"method" must be a string',
    '{"jsonrpc": "2.0", "id": {}, "method": "ping"}': '"id" must be a string, a number or null',
    '{"jsonrpc": "2.0", "id": [1], "method": "ping"}': '"id" must be a string, a number or null',
    '{"jsonrpc": "2.0", "id": true, "method": "ping"}': '"id" must be a string, a number or null',
    '{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": "x"}': '"params" must be an object or an array',
    '{"jsonrpc": "2.0", "id": 1}': 'a JSON-RPC message needs "method", or "id" with "result" or "error"',
    '{"jsonrpc": "2.0", "result": {}}': 'a JSON-RPC message needs "method", or "id" with "result" or "error"',
    "[1, 2]": "batch element 0: a JSON-RPC message must be an object",
    # One bad element refuses the whole batch: its valid ping is not forwarded either.
    f"[{PING}, 42]": "batch element 1: a JSON-RPC message must be an object",
    f'[{PING}, {{"jsonrpc": "2.0", "id": 8, "method": 8}}]': 'batch element 1: "method" must be a string',
}

# A tools/call that is valid JSON-RPC but whose tool and arguments cannot be read: -32602 for its id, HTTP 200.
UNCHECKABLE_CALLS: dict[str, str] = {
    '{"jsonrpc": "2.0", "id": 21, "method": "tools/call"}': 'tools/call needs a string "name"',
    '{"jsonrpc": "2.0", "id": 21, "method": "tools/call", "params": [1]}': "tools/call params must be an object",
    '{"jsonrpc": "2.0", "id": 21, "method": "tools/call", "params": {"name": 5}}': 'tools/call needs a string "name"',
    '{"jsonrpc": "2.0", "id": 21, "method": "tools/call", "params": {"name": "imageBackgroundRemoval", '
    '"arguments": [1]}}': 'tools/call "arguments" must be an object',
}

# Hostile spellings of invalid JSON (bytes) → what the -32700 message names.
INVALID_JSON: dict[str, tuple[bytes, str]] = {
    "invalid-utf8": (b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "image\xffBackground'
                     b'Removal"}}', "string is not valid UTF-8"),
    "overlong-utf8": (b'{"jsonrpc": "2.0", "id": 1, "method": "p\xc0\xafing"}', "string is not valid UTF-8"),
    "lone-surrogate": (b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"s": "\\ud800"}}',
                       "unpaired surrogate"),
    "duplicate-method": (b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "method": "ping"}',
                         'duplicate key "method"'),
    "nan-id": (b'{"jsonrpc": "2.0", "id": NaN, "method": "ping"}', "unexpected character 'N'"),
    "trailing-comma": (b'{"jsonrpc": "2.0", "id": 1, "method": "ping",}', "expected a string key"),
    "bom": (b'\xef\xbb\xbf{"jsonrpc": "2.0", "id": 1, "method": "ping"}',
            "invalid JSON at byte 0: unexpected character"),
    "empty-body": (b"", "unexpected end of input"),
    "only-whitespace": (b" \r\n\t ", "unexpected end of input"),
    "trailing-nul": (b'{"jsonrpc": "2.0", "id": 1, "method": "ping"}\x00', "unexpected data after the document"),
    "two-documents": (b'{"jsonrpc": "2.0", "id": 1, "method": "ping"}{"jsonrpc": "2.0", "id": 2, "method": "ping"}',
                      "unexpected data after the document"),
    "raw-newline-in-string": (b'{"jsonrpc": "2.0", "id": 1, "method": "pi\nng"}', "unescaped control character"),
}


def test_valid_json_that_is_not_jsonrpc_gets_400_invalid_request(raw_upstream, toolgate):
    tg = toolgate(raw_upstream.url, OPEN_POLICY)
    problems = []
    with http_client() as hostile, http_client() as other:
        normal_call(other, tg, 1)
        for n, (body, message) in enumerate(NOT_JSONRPC.items()):
            response = post(hostile, tg.url, None, raw=body.encode())
            try:
                answer = assert_http_refusal(response, 400, -32600)
                assert answer["error"]["message"] == message, f"message {answer['error']['message']!r}"
            except AssertionError as e:
                problems.append(f"{body}: {e}")
            # The hostile client's own keep-alive connection, and another client's, still serve normal calls.
            normal_call(hostile, tg, 100 + n)
        normal_call(other, tg, 2)
    assert not problems, "\n".join(problems)
    assert sorted(forwarded_ids(raw_upstream)) == sorted([1, 2] + [100 + n for n in range(len(NOT_JSONRPC))]), \
        f"something that is not JSON-RPC reached the upstream: {raw_upstream.seen_messages()!r}"


def test_tools_call_whose_params_cannot_be_read_gets_invalid_params(raw_upstream, toolgate):
    tg = toolgate(raw_upstream.url, OPEN_POLICY)
    problems = []
    with http_client() as http:
        for body, message in UNCHECKABLE_CALLS.items():
            response = post(http, tg.url, None, raw=body.encode())
            if response.status_code != 200:
                problems.append(f"{body}: HTTP {response.status_code} {response.text!r}")
                continue
            answer = response.json()
            if answer != {"jsonrpc": "2.0", "id": 21, "error": {"code": -32602, "message": message}}:
                problems.append(f"{body}: {answer!r}")
        normal_call(http, tg, 1)
    assert not problems, "\n".join(problems)
    assert forwarded_ids(raw_upstream) == [1], "a tools/call toolgate cannot check must never be forwarded"


def test_hostile_invalid_json_gets_400_parse_error(raw_upstream, toolgate):
    tg = toolgate(raw_upstream.url, OPEN_POLICY)
    problems = []
    with http_client() as http:
        for n, (name, (body, reason)) in enumerate(INVALID_JSON.items()):
            response = post(http, tg.url, None, raw=body)
            try:
                answer = assert_http_refusal(response, 400, -32700)
                message = answer["error"]["message"]
                assert message.startswith("parse error: invalid JSON at byte "), message
                assert reason in message, f"{message!r} does not name {reason!r}"
            except AssertionError as e:
                problems.append(f"{name}: {e}")
            normal_call(http, tg, 100 + n)
    assert not problems, "\n".join(problems)
    assert sorted(forwarded_ids(raw_upstream)) == [100 + n for n in range(len(INVALID_JSON))], \
        f"invalid JSON reached the upstream: {raw_upstream.seen_posts()!r}"


# --- 2. wrong content type -----------------------------------------------------------------------------------------

WRONG_CONTENT_TYPES = {
    "text-plain": "text/plain",
    "none": None,
    "form-urlencoded": "application/x-www-form-urlencoded",
    "multipart": "multipart/form-data; boundary=toolgate-e2e",
    "json-lookalike": "application/jsonx",
}


@pytest.mark.parametrize("kind", list(WRONG_CONTENT_TYPES))
def test_post_with_wrong_content_type_gets_415(raw_upstream, toolgate, kind):
    tg = toolgate(raw_upstream.url, OPEN_POLICY)
    content_type = WRONG_CONTENT_TYPES[kind]
    headers = {"Accept": ACCEPT_BOTH}
    if content_type is not None:
        headers["Content-Type"] = content_type
    body = json.dumps(tool_call(5, TOOL, {"image": "wrong-type"})).encode()
    with http_client() as http:
        response = http.post(tg.url, content=body, headers=headers)
        forwarded = raw_upstream.seen_posts()
        normal_call(http, tg, 6)
    assert forwarded == [], (f"a POST with Content-Type {content_type!r} was forwarded upstream (HTTP "
                             f"{response.status_code} {response.text!r}): {forwarded!r}")
    assert_http_refusal(response, 415, -32600)


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8",
                                          "application/json;charset=UTF-8"])
def test_post_with_json_content_type_is_served(raw_upstream, toolgate, content_type):
    """Control for the test above: the media type may carry parameters."""
    tg = toolgate(raw_upstream.url, OPEN_POLICY)
    body = json.dumps(tool_call(5, TOOL, {"image": "typed"})).encode()
    with http_client() as http:
        response = http.post(tg.url, content=body, headers={"Accept": ACCEPT_BOTH, "Content-Type": content_type})
    assert response.status_code == 200, response.text
    assert final_response(response).get("result", {}).get("isError") is False, response.text
    [record] = raw_upstream.seen_posts()
    assert header_values(record, "content-type") == [content_type]


# --- 3. oversized request heads ------------------------------------------------------------------------------------


def oversized_head(kind: str, port: int) -> bytes:
    body = json.dumps(tool_call(1, TOOL, {"image": "big-head"})).encode()
    if kind == "one-100KB-header":
        return raw_post("/mcp", body, [("Host", f"127.0.0.1:{port}"), ("X-Big", "a" * 100_000),
                                      ("Content-Type", "application/json"), ("Accept", ACCEPT_BOTH)])
    if kind == "2000-small-headers":
        many = [(f"X-H{i}", "v") for i in range(2000)]
        return raw_post("/mcp", body, [("Host", f"127.0.0.1:{port}"), *many, ("Content-Type", "application/json"),
                                      ("Accept", ACCEPT_BOTH)])
    if kind == "100KB-request-target":
        return raw_post("/mcp?" + "a" * 100_000, body, [("Host", f"127.0.0.1:{port}"),
                                                        ("Content-Type", "application/json"), ("Accept", ACCEPT_BOTH)])
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["one-100KB-header", "2000-small-headers", "100KB-request-target"])
def test_oversized_request_head_gets_400_and_is_closed(raw_upstream, toolgate, kind):
    """Hummingbird's HTTP/1 decoder allows 80 KB of head (request target and fields) and 1,000 fields; past either
    the request is answered 400 with `Connection: close` and toolgate closes its side at once."""
    tg = toolgate(raw_upstream.url, OPEN_POLICY)
    with http_client() as other:
        normal_call(other, tg, 1)
        with socket.create_connection(("127.0.0.1", tg.port), timeout=8) as s:
            reader = Reader(s)
            reader.start()
            started = time.monotonic()
            try:
                s.sendall(oversized_head(kind, tg.port))
            except OSError:
                pass  # toolgate may have refused and closed before it read everything: the answer is what counts
            reader.join(10)
        assert reader.ended_at is not None, \
            f"toolgate did not close the connection ({reader.how}): {reader.data[:300]!r}"
        assert reader.ended_at - started < 3, f"closed only after {reader.ended_at - started:.1f} s"
        assert reader.data, f"the connection was closed without an answer ({reader.how})"
        status_line, headers, _ = split_raw_response(reader.data)
        assert raw_status(reader.data) in (400, 431), status_line
        assert [v.lower() for v in raw_header(headers, "connection")] == ["close"], reader.data[:300]
        assert forwarded_ids(raw_upstream) == [1], f"an oversized head reached the upstream: {raw_upstream.seen()!r}"
        normal_call(other, tg, 2)
    assert_alive(tg)
    assert_healthz(tg.port)


def test_large_but_legal_head_is_served(raw_upstream, toolgate):
    """Control for the test above: a 16 KB header and 50 extra fields are well within the limits."""
    tg = toolgate(raw_upstream.url, OPEN_POLICY)
    body = json.dumps(tool_call(3, TOOL, {"image": "legal-head"})).encode()
    extra = [("X-Big", "b" * 16_384), *[(f"X-H{i}", "v") for i in range(50)], ("Connection", "close")]
    data = raw_exchange(tg.port, raw_post("/mcp", body, head(tg, extra)))
    assert raw_status(data) == 200, data[:600]
    [record] = raw_upstream.seen_posts()
    assert header_values(record, "x-big") == ["b" * 16_384]


# --- 4. request heads that never end -------------------------------------------------------------------------------

NEVER_ENDING = {
    "request-line": b"POST /mcp",
    "header-value": b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Never-Ends: ",
}


@pytest.mark.parametrize("where", list(NEVER_ENDING))
def test_never_ending_head_is_cut_off_without_buffering(raw_upstream, toolgate, where):
    """5 MB with no CRLF: refused on size (the 80 KB head limit) and closed by `--client-idle-timeout 1`; the bytes
    are not buffered (toolgate's resident memory grows by less than 20 MB)."""
    tg = toolgate(raw_upstream.url, OPEN_POLICY, args=["--client-idle-timeout", "1"])
    pid = pid_of(tg)
    fresh_normal_call(tg, 1)
    rss_before = rss_bytes(pid)
    sent, stopped_by = 0, "all 5 MB sent"
    with socket.create_connection(("127.0.0.1", tg.port), timeout=4) as s:
        reader = Reader(s)
        reader.start()
        started = time.monotonic()
        chunk = b"a" * 65536
        try:
            s.sendall(NEVER_ENDING[where])
            while sent < 5 * MIB:
                s.sendall(chunk)
                sent += len(chunk)
        except OSError as e:  # refused and closed, or no longer read (a send timeout)
            stopped_by = repr(e)
        reader.join(8)
        rss_after = rss_bytes(pid)
    assert reader.ended_at is not None, \
        f"toolgate did not close the connection ({reader.how}; sent {sent} bytes, {stopped_by})"
    assert reader.ended_at - started < 5, f"closed only after {reader.ended_at - started:.1f} s"
    assert reader.data, f"closed without an answer ({reader.how}; sent {sent} bytes, {stopped_by})"
    assert raw_status(reader.data) in (400, 431), reader.data[:300]
    growth = rss_after - rss_before
    assert growth < 20 * MIB, f"toolgate's RSS grew by {growth / MIB:.1f} MB while {sent} bytes of one head arrived"
    assert raw_upstream.seen_posts() and forwarded_ids(raw_upstream) == [1]
    fresh_normal_call(tg, 2)
    assert_healthz(tg.port)


def trickle_units(where: str):
    if where == "request-line":
        yield b"POST /mcp"
        while True:
            yield b"a"
    elif where == "body":
        yield (b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               b"Content-Length: 100000\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tools/call\"")
        while True:
            yield b" "
    else:
        yield b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        n = 0
        while True:
            n += 1
            yield b"X-Trickle-%d: v\r\n" % n


@pytest.mark.parametrize("where", ["request-line", "header-block", "body"])
def test_trickled_request_is_closed_after_client_idle_timeout(raw_upstream, toolgate, where):
    """A byte (or a header) every 0.2 s keeps bytes arriving, but the request never completes: the connection is
    closed after `--client-idle-timeout 1` all the same, whether the head or the body trickles (a 100 KB body at
    this pace would take 5 hours), and a normal client is served meanwhile. The trickled call is never forwarded."""
    tg = toolgate(raw_upstream.url, OPEN_POLICY, args=["--client-idle-timeout", "1"])
    closed_at = None
    sent_units = 0
    with socket.create_connection(("127.0.0.1", tg.port), timeout=10) as s:
        reader = Reader(s)
        reader.start()
        started = time.monotonic()
        for unit in trickle_units(where):
            if reader.ended_at is not None or time.monotonic() - started > 8:
                break
            try:
                s.sendall(unit)
            except OSError:
                closed_at = time.monotonic()
                break
            sent_units += 1
            if sent_units == 3:
                fresh_normal_call(tg, 1)  # another client, while this one trickles
            time.sleep(0.2)
        reader.join(2)
    ends = [t for t in (closed_at, reader.ended_at) if t is not None]
    assert ends, f"the trickling connection was still open after 8 s ({sent_units} pieces sent, one every 0.2 s)"
    elapsed = min(ends) - started
    assert elapsed <= 4.0, f"closed only after {elapsed:.1f} s with --client-idle-timeout 1"
    assert sent_units >= 4, f"closed after {sent_units} pieces: before the idle timeout could have passed"
    if reader.data:  # an answer before the close (408, say) is fine; it must be a refusal
        assert 400 <= raw_status(reader.data) < 500, reader.data[:300]
    assert forwarded_ids(raw_upstream) == [1]
    fresh_normal_call(tg, 2)


# --- 5. clients that disconnect mid-stream -------------------------------------------------------------------------


def endless_ended(raw_upstream) -> list[dict[str, Any]]:
    return [e for e in raw_upstream.events() if e.get("kind") == "endless_stream_ended"]


def test_client_leaving_mid_stream_cancels_upstream_transfer_and_leaks_no_fd(raw_upstream, toolgate):
    rounds = 20
    tg = toolgate(raw_upstream.url, OPEN_POLICY)
    pid = pid_of(tg)
    with http_client() as other:
        normal_call(other, tg, 1)  # the upstream connection pool and `other`'s connection: the steady state
        baseline, baseline_fds = fd_count(pid), fd_targets(pid)
        for i in range(rounds):
            raw_upstream.set_mode("tools/call", "sse_endless", times=1, event_bytes=4096)
            body = json.dumps(tool_call(100 + i, TOOL, {"image": f"endless-{i}"})).encode()
            with socket.create_connection(("127.0.0.1", tg.port), timeout=10) as s:
                s.sendall(raw_post("/mcp", body, head(tg)))
                got = b""
                while got.count(b"data:") < 3:
                    chunk = s.recv(65536)
                    assert chunk, f"round {i}: toolgate closed the stream early: {got[:300]!r}"
                    got += chunk
                assert got.startswith(b"HTTP/1.1 200"), got[:300]
                assert b"text/event-stream" in got.split(b"\r\n\r\n", 1)[0].lower(), got[:300]
                normal_call(other, tg, 1000 + i)  # another client, while the endless stream flows
            left_at = time.monotonic()  # the socket is closed: the client is gone
            assert wait_for(lambda: len(endless_ended(raw_upstream)) == i + 1, 5), (
                f"round {i}: the upstream was still streaming 5 s after the client left: {raw_upstream.events()!r}")
            assert time.monotonic() - left_at < 5
        events = endless_ended(raw_upstream)
        assert [e["reason"] for e in events] == ["write_failed"] * rounds, events
        normal_call(other, tg, 2)
        settled = wait_for(lambda: fd_count(pid) <= baseline + 2, 5)
        assert settled, (f"toolgate holds {fd_count(pid)} descriptors after {rounds} clients left mid-stream, "
                         f"{baseline} before:\nbefore: {baseline_fds}\nafter:  {fd_targets(pid)}")
    assert_healthz(tg.port)


# --- 6. thousands of connections -----------------------------------------------------------------------------------


def raise_nofile(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= need:
        return
    if hard != resource.RLIM_INFINITY and hard < need:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {need}: cannot open that many sockets")
    resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


def open_idle_connections(port: int, count: int, accepted: Any = None, batch: int = 100) -> list[socket.socket]:
    """`count` connections that send nothing. Opened `batch` at a time, each batch given up to 3 s to be accepted
    (`accepted()` returns how many toolgate holds), so the listen backlog never overflows into SYN retries."""
    socks: list[socket.socket] = []
    try:
        while len(socks) < count:
            for _ in range(min(batch, count - len(socks))):
                socks.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            if accepted is not None:
                wait_for(lambda: accepted() >= len(socks), 3, 0.01)
    except BaseException:
        for s in socks:
            s.close()
        raise
    return socks


def test_thousands_of_idle_connections_leave_healthz_and_calls_answering(raw_upstream, toolgate):
    count = 2000
    raise_nofile(count + 500)
    tg = toolgate(raw_upstream.url, OPEN_POLICY)  # --client-idle-timeout 60: the connections stay
    pid = pid_of(tg)
    fresh_normal_call(tg, 1)
    baseline, rss_before = fd_count(pid), rss_bytes(pid)
    socks = open_idle_connections(tg.port, count, accepted=lambda: fd_count(pid) - baseline)
    try:
        held = fd_count(pid) - baseline
        growth = rss_bytes(pid) - rss_before
        assert_healthz(tg.port)
        fresh_normal_call(tg, 2)
        # Bounded memory per idle connection (about 14 KB measured with a debug build).
        assert growth < count * 64 * 1024, f"{held} idle connections grew toolgate's RSS by {growth / MIB:.0f} MB"
    finally:
        for s in socks:
            s.close()
    assert wait_for(lambda: fd_count(pid) <= baseline + 2, 10), \
        f"toolgate holds {fd_count(pid)} descriptors 10 s after {count} idle connections closed ({baseline} before)"
    assert_healthz(tg.port)
    fresh_normal_call(tg, 3)


FD_BUDGET = 256  # toolgate's RLIMIT_NOFILE in the flood tests
BUDGET_CAP = 96  # what ConnectionBudget leaves for clients (and for the upstream) out of 256: (256 - 64) / 2
FLOOD = 300  # more than BUDGET_CAP, fewer than it plus the listen backlog (256), so every connect completes


def toolgate_with_fd_budget(toolgate, raw_upstream, args: list[str] | None = None):
    tg = toolgate(raw_upstream.url, OPEN_POLICY, args=args,
                  wrapper=["prlimit", f"--nofile={FD_BUDGET}:{FD_BUDGET}", "--"])
    with open(f"/proc/{pid_of(tg)}/limits") as f:
        limits = f.read()
    line = next(x for x in limits.splitlines() if x.startswith("Max open files"))
    assert line.split()[3] == str(FD_BUDGET), f"prlimit did not apply to toolgate itself: {line!r}"
    return tg


def test_max_connections_holds_new_connections_until_one_closes(raw_upstream, toolgate):
    """--max-connections 50: 50 idle connections are held; the 51st is not accepted (its request gets no answer)
    until one of the 50 closes, and then it is served."""
    tg = toolgate(raw_upstream.url, OPEN_POLICY, args=["--max-connections", "50"])
    pid = pid_of(tg)
    baseline = fd_count(pid)

    def held() -> int:
        return accepted_connections(pid, tg.port)

    socks = open_idle_connections(tg.port, 50, accepted=held)
    waiting = None
    try:
        # A busy machine may take a while to accept them all: wait for the state, bounded generously.
        assert wait_for(lambda: held() >= 50, 60), f"{held()} connections held"
        waiting = socket.create_connection(("127.0.0.1", tg.port), timeout=5)
        waiting.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{tg.port}\r\n\r\n".encode())
        waiting.settimeout(1.0)
        with pytest.raises(TimeoutError):
            waiting.recv(1)  # held in the backlog: nothing can answer it yet
        assert held() == 50, f"{held()} connections held past the cap of 50"
        socks.pop().close()
        waiting.settimeout(30)
        answer = waiting.recv(4096)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        assert "client connection limit reached" in tg.log()
    finally:
        for s in socks + ([waiting] if waiting else []):
            s.close()
    assert wait_for(lambda: fd_count(pid) <= baseline + 2, 10), f"{fd_count(pid)} descriptors, {baseline} before"
    fresh_normal_call(tg, 1)


def test_a_descriptor_budget_too_small_for_the_caps_lowers_them_and_never_runs_out(raw_upstream, toolgate):
    """Under `prlimit --nofile=256`, the default caps (4096 clients, 256 upstream) cannot fit: toolgate says so at
    start and uses 96 and 96. A flood of 300 idle connections then holds 96 of them, never every descriptor, and
    toolgate serves again once it ends."""
    raise_nofile(FLOOD + 500)
    tg = toolgate_with_fd_budget(toolgate, raw_upstream)
    pid = pid_of(tg)
    fresh_normal_call(tg, 1)
    log = tg.log()
    assert f"file descriptor limit ({FD_BUDGET})" in log and f"using {BUDGET_CAP} and {BUDGET_CAP}" in log, log[-3000:]
    baseline = fd_count(pid)

    def held() -> int:
        return accepted_connections(pid, tg.port)

    socks = open_idle_connections(tg.port, FLOOD)
    try:
        # Counted as established client sockets, not descriptors: curl's and timers' descriptors come and go.
        assert wait_for(lambda: held() >= BUDGET_CAP, 30), \
            f"premise: the flood was not accepted up to the cap ({held()} of {BUDGET_CAP})"
        time.sleep(0.5)  # anything past the cap would have been accepted by now
        assert held() <= BUDGET_CAP, f"{held()} connections held, past the cap of {BUDGET_CAP}"
        assert fd_count(pid) < FD_BUDGET - 32, f"{fd_count(pid)} descriptors of {FD_BUDGET}: the budget ran low"
        assert "client connection limit reached" in tg.log()
    finally:
        for s in socks:
            s.close()
    assert_alive(tg)
    assert wait_for(lambda: fd_count(pid) <= baseline + 2, 10), f"{fd_count(pid)} descriptors, {baseline} before"
    assert_healthz(tg.port)
    fresh_normal_call(tg, 2)


def test_connection_flood_leaves_probe_healthz_answering(raw_upstream, toolgate):
    """With the descriptor budget cut to 256 and a flood of 300 idle connections on /mcp's listener, /healthz on
    --metrics-listen still answers: the flood is capped, so descriptors are left for the probes."""
    raise_nofile(FLOOD + 500)
    metrics_port = free_port()
    tg = toolgate_with_fd_budget(toolgate, raw_upstream, ["--metrics-listen", f"127.0.0.1:{metrics_port}"])
    assert_healthz(metrics_port)
    socks = open_idle_connections(tg.port, FLOOD)
    try:
        assert_healthz(metrics_port, timeout=5)
    finally:
        for s in socks:
            s.close()


# --- 7. deeply nested JSON -----------------------------------------------------------------------------------------

MAX_DEPTH = 256  # JSONParser.maximumDepth: every array and object counts, the outermost included
CALL_PREFIX = ('{"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "%s", "arguments": '
               '{"image": "deep", "d": ' % TOOL)
CALL_SUFFIX = "}}}"
ARGUMENT_LEVELS = 3  # the message, params and arguments: the depth of "d"'s value starts at 4


def nested_call(levels: int) -> bytes:
    return (CALL_PREFIX + "[" * levels + "]" * levels + CALL_SUFFIX).encode()


def deep_bodies() -> dict[str, tuple[bytes, int]]:
    """name → (body, the byte offset where depth MAX_DEPTH + 1 starts)."""
    deep = 100_000
    batch_prefix = b'[{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"x": '  # the batch, message, params
    return {
        "arrays-100000": (b"[" * deep + b"]" * deep, MAX_DEPTH),
        "objects-100000": (b'{"a": ' * deep + b"1" + b"}" * deep, MAX_DEPTH * len(b'{"a": ')),
        "unclosed-arrays-1MB": (b"[" * MIB, MAX_DEPTH),
        "arrays-in-a-batch-element": (batch_prefix + b"[" * deep + b"]" * deep + b"}}]",
                                      len(batch_prefix) + MAX_DEPTH - 3),
        "arrays-in-tools-call-arguments": (nested_call(deep), len(CALL_PREFIX) + MAX_DEPTH - ARGUMENT_LEVELS),
    }


def test_deeply_nested_json_gets_400_parse_error(raw_upstream, toolgate):
    tg = toolgate(raw_upstream.url, OPEN_POLICY)
    problems = []
    with http_client() as hostile, http_client() as other:
        normal_call(other, tg, 1)
        for n, (name, (body, offset)) in enumerate(deep_bodies().items()):
            started = time.monotonic()
            response = post(hostile, tg.url, None, raw=body)
            took = time.monotonic() - started
            try:
                answer = assert_http_refusal(response, 400, -32700)
                expected = f"parse error: invalid JSON at byte {offset}: nesting deeper than {MAX_DEPTH}"
                assert answer["error"]["message"] == expected, f"{answer['error']['message']!r} != {expected!r}"
                assert took < 5, f"answered after {took:.1f} s"
            except AssertionError as e:
                problems.append(f"{name} ({len(body)} bytes): {e}")
            assert_alive(tg)
            normal_call(other, tg, 100 + n)
    assert not problems, "\n".join(problems)
    assert 9 not in forwarded_ids(raw_upstream) and len(forwarded_ids(raw_upstream)) == 1 + len(deep_bodies()), \
        raw_upstream.seen_messages()
    assert_healthz(tg.port)


def test_nesting_up_to_the_maximum_depth_is_accepted(raw_upstream, toolgate):
    """The boundary, exactly: depth 256 parses, 257 is a parse error (the outermost array or object counts)."""
    tg = toolgate(raw_upstream.url, OPEN_POLICY)
    with http_client() as http:
        # 256 arrays parse; the body is then judged as JSON-RPC (a batch whose element is not an object).
        at_max = post(http, tg.url, None, raw=b"[" * MAX_DEPTH + b"]" * MAX_DEPTH)
        answer = assert_http_refusal(at_max, 400, -32600)
        assert answer["error"]["message"] == "batch element 0: a JSON-RPC message must be an object", answer
        over = post(http, tg.url, None, raw=b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1))
        answer = assert_http_refusal(over, 400, -32700)
        assert answer["error"]["message"].endswith(f"at byte {MAX_DEPTH}: nesting deeper than {MAX_DEPTH}"), answer

        # tools/call arguments: the deepest value that still fits is forwarded as sent.
        fits = MAX_DEPTH - ARGUMENT_LEVELS
        response = post(http, tg.url, None, raw=nested_call(fits))
        assert response.status_code == 200, response.text
        answer = final_response(response)
        assert answer.get("id") == 9 and answer["result"]["isError"] is False, answer
        [record] = raw_upstream.seen_posts()
        assert json.loads(record["body"]) == json.loads(nested_call(fits)), "the deep call reached the upstream altered"
        too_deep = post(http, tg.url, None, raw=nested_call(fits + 1))
        answer = assert_http_refusal(too_deep, 400, -32700)
        assert answer["error"]["message"].endswith(
            f"at byte {len(CALL_PREFIX) + fits}: nesting deeper than {MAX_DEPTH}"), answer
    assert len(raw_upstream.seen_posts()) == 1, "one level too deep must not reach the upstream"
