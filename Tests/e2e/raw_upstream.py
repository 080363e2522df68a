"""A raw JSON-RPC upstream of our own, for what the SDK server cannot do or show.

It answers POST /mcp with single messages and batches (JSON arrays) for `initialize`, `server/discover`,
`tools/list`, `tools/call` and `ping` as `application/json`; notifications get 202 (a batch of only
notifications too). A single `tools/call` of `sse_stream` is answered as an SSE stream whose events have
ids. GET /mcp answers 405 (no server stream) and DELETE /mcp 200.

Every request to /mcp (method, path, headers in arrival order, body) is recorded and shown on a side
port: GET /_seen returns the list as JSON, POST /_reset clears it (and any /_fail). POST /_fail with
{"code": C, "message": M} makes every request get that JSON-RPC error (the fixture tests use it to show
how the SDK surfaces toolgate's "upstream down" answer).

Misbehaviour modes (for the proxy-hole tests): POST /_mode with
{"on": WHAT, "mode": NAME, "times": N, ...parameters} makes the next N requests of kind WHAT (a JSON-RPC
method of a single POSTed message, such as "tools/call" or "tools/list", or "GET" for GET /mcp) misbehave;
without "times" until /_reset. One mode per WHAT; a later /_mode for the same WHAT replaces it. Batches and
requests of other kinds are answered normally. The modes:

- "status": answer HTTP `status` (default 500) with `{"jsonrpc": "2.0", "id": <id>, "error": error}`
  (`error` default {"code": -32603, "message": "raw upstream failure"}; `answer_id`, when given, replaces
  the request's id, null included); the request counts as seen.
- "id": answer normally, but with the JSON-RPC id replaced by `id` (for example "5" for 5).
- "invalid_json": answer HTTP 200 application/json with the normal answer made unparseable: `variant`
  "trailing-garbage" (default: the answer, then "}garbage") or "truncated" (the answer less its last byte).
- "sse_bad_event": answer as an SSE stream: a progress notification, an event whose data is not JSON (it
  names every tool), then the normal answer.
- "sse_drop": answer as an SSE stream with one progress notification, then end without an answer: `end`
  "close" (default: a close-delimited body simply ends), "chunked" (a chunked body cut before its last
  chunk) or "reset" (TCP RST).
- "json_truncated": answer HTTP 200 application/json with `Content-Length: 1000` but send only the normal
  answer padded with spaces to `send_bytes` (default 100) bytes, then close: what arrived parses as JSON.
- "sse_slow": answer as an SSE stream of `events` (default 2) progress notifications `interval` (default
  2) seconds apart, then the normal answer.
- "sse_endless": answer as an SSE stream of `event_bytes`-sized (default 65536) progress notifications,
  written as fast as the reader takes them, up to `max_bytes` (default 64 MiB), then a small comment
  every 0.2 s. When a write fails (the reader closed the connection) or blocks for 30 s, or after 60 s,
  an entry {"kind": "endless_stream_ended", "reason", "error", "bytes", "seconds"} is appended to the
  event log (GET /_events on the side port; /_reset clears it).
- "redirect": answer with `status` (default 307) and `Location: <location>`, no body.
- "huge_json": answer HTTP 200 application/json with a valid JSON-RPC result whose text is `bytes` (default 40 MiB)
  long; an entry {"kind": "huge_json_ended", "reason": "sent" or "reader_closed"} is appended to the event log.
- "hang": read the request, then send nothing. The wait ends when the peer closes the connection or after
  `seconds` (default 60); an entry {"kind": "hang_ended", "reason": "peer_closed" or "gave_up", "seconds"} is
  appended to the event log.
- "get_replay" (on "GET"): answer GET /mcp with an SSE stream that replays a notifications/message, a
  stored tools/list answer (every tool) and a batch holding another, then ends.

Run: python raw_upstream.py --port PORT --control-port PORT
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SESSION_ID = "raw-upstream-session-1"
MODERN_VERSION = "2026-07-28"
PROTOCOL_VERSION_META_KEY = "io.modelcontextprotocol/protocolVersion"

TOOLS: list[dict[str, Any]] = [
    {
        "name": "imageBackgroundRemoval",
        "description": "raw stand-in",
        "inputSchema": {"type": "object", "properties": {"image": {"type": "string"}}},
    },
    {
        "name": "echo",
        "description": "raw echo",
        "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}},
    },
    {"name": "other_tool", "description": "raw other", "inputSchema": {"type": "object", "properties": {}}},
]

DENIAL_EXAMPLE: dict[str, Any] = {
    "reason": "rate_limited",
    "rule": "imageBackgroundRemoval",
    "counter": "imagebackgroundremoval_rate",
    "limit": 10,
    "scope": "grant",
    "window": "minute",
    "windowSeconds": 60,
    "retryAfterSeconds": 42,
}

_lock = threading.Lock()
_seen: list[dict[str, Any]] = []
# Set by POST /_fail {"code": ..., "message": ...}: every request is then answered with this error
# (HTTP 200), as toolgate answers when its upstream is down. POST /_reset clears it.
_fail_with: dict[str, Any] | None = None
# Set by POST /_mode: what kind of request ("tools/call", "tools/list", "GET", ...) → its misbehaviour.
_modes: dict[str, dict[str, Any]] = {}
# What the misbehaving answers report (GET /_events).
_events: list[dict[str, Any]] = []


def _take_mode(on: str) -> dict[str, Any] | None:
    """The mode set for this kind of request, used up once (None: behave normally)."""
    with _lock:
        mode = _modes.get(on)
        if mode is None:
            return None
        times = mode.get("times")
        if times is not None:
            if times <= 1:
                del _modes[on]
            else:
                mode["times"] = times - 1
        return dict(mode)


def _note(event: dict[str, Any]) -> None:
    with _lock:
        _events.append(event)


def _is_modern(message: dict[str, Any]) -> bool:
    params = message.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    return isinstance(meta, dict) and meta.get(PROTOCOL_VERSION_META_KEY) == MODERN_VERSION


def _answer(message: Any) -> dict[str, Any] | None:
    """The response to one JSON-RPC message, or None for a notification (or a stray response)."""
    if not isinstance(message, dict) or "method" not in message:
        if isinstance(message, dict) and ("result" in message or "error" in message):
            return None
        return {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "Invalid Request"}}
    if "id" not in message:
        return None
    mid = message["id"]
    method = message["method"]
    with _lock:
        fail_with = _fail_with
    if fail_with is not None:
        return {"jsonrpc": "2.0", "id": mid, "error": dict(fail_with)}
    params = message.get("params") if isinstance(message.get("params"), dict) else {}
    modern = _is_modern(message)
    result: dict[str, Any]
    if method == "initialize":
        result = {
            "protocolVersion": params.get("protocolVersion", "2025-11-25"),
            "capabilities": {"tools": {"listChanged": False}},
            "serverInfo": {"name": "raw-upstream", "version": "1"},
        }
    elif method == "server/discover":
        result = {
            "supportedVersions": [MODERN_VERSION],
            "capabilities": {"tools": {"listChanged": False}},
            "resultType": "complete",
            "ttlMs": 0,
            "cacheScope": "private",
            "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "raw-upstream", "version": "1"}},
        }
    elif method == "tools/list":
        result = {"tools": TOOLS}
        if modern:
            # 2026-07-28 list results are cacheable: the SDK client requires both hints.
            result.update({"ttlMs": 0, "cacheScope": "private"})
    elif method == "tools/call" and params.get("name") == "raise_unknown_tool":
        # What toolgate answers for a tool the agent may not see: lets the fixture tests prove how the SDK
        # surfaces it.
        return {"jsonrpc": "2.0", "id": mid, "error": {"code": -32602, "message": "Unknown tool: raise_unknown_tool"}}
    elif method == "tools/call" and params.get("name") == "deny_like_toolgate":
        # The shape of toolgate's rate-limit denial (DESIGN section 5), for the same reason.
        result = {
            "content": [{"type": "text", "text": "Denied by policy: rate limit imagebackgroundremoval_rate"}],
            "isError": True,
            "_meta": {"toolgate/denial": DENIAL_EXAMPLE},
        }
    elif method == "tools/call":
        name = params.get("name")
        args = params.get("arguments") or {}
        result = {
            "content": [{"type": "text", "text": f"raw {name}: {json.dumps(args, sort_keys=True)}"}],
            "isError": False,
        }
    elif method == "ping":
        result = {}
    else:
        return {"jsonrpc": "2.0", "id": mid, "error": {"code": -32601, "message": f"Method not found: {method}"}}
    if modern:
        result.setdefault("resultType", "complete")
    return {"jsonrpc": "2.0", "id": mid, "result": result}


class McpHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "raw-upstream/1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def _record(self, body: bytes) -> None:
        with _lock:
            _seen.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "headers": [[k, v] for k, v in self.headers.items()],
                    "body": body.decode("utf-8", "replace"),
                }
            )

    def _send(self, status: int, body: bytes = b"", content_type: str | None = None, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_POST(self) -> None:  # noqa: N802
        body = self._read_body()
        self._record(body)
        if self.path.split("?")[0] != "/mcp":
            self._send(404)
            return
        try:
            message = json.loads(body)
        except ValueError:
            err = {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "Parse error"}}
            self._send(400, json.dumps(err).encode(), "application/json")
            return
        extra: dict[str, str] = {}
        if isinstance(message, list):
            answers = [a for a in (_answer(m) for m in message) if a is not None]
            if not message:
                answers = [{"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "empty batch"}}]
            if any(isinstance(m, dict) and m.get("method") == "initialize" for m in message):
                extra["Mcp-Session-Id"] = SESSION_ID
            if not answers:
                self._send(202)
                return
            self._send(200, json.dumps(answers).encode(), "application/json", extra)
            return
        if isinstance(message, dict) and isinstance(message.get("method"), str) and "id" in message:
            mode = _take_mode(message["method"])
            if mode is not None:
                self._misbehave(mode, message)
                return
        if (isinstance(message, dict) and message.get("method") == "tools/call"
                and (message.get("params") or {}).get("name") == "sse_stream"):
            self._send_sse_stream(message)
            return
        answer = _answer(message)
        if answer is None:
            self._send(202)
            return
        if isinstance(message, dict) and message.get("method") == "initialize":
            extra["Mcp-Session-Id"] = SESSION_ID
        self._send(200, json.dumps(answer).encode(), "application/json", extra)

    def _send_sse_stream(self, message: dict[str, Any]) -> None:
        """Answer a `sse_stream` call as an SSE stream whose events carry ids: two progress notifications, then
        the result. The events are written one by one, a little apart."""
        mid = message.get("id")
        events = [
            ("ev-1", {"jsonrpc": "2.0", "method": "notifications/progress",
                      "params": {"progressToken": "raw-token", "progress": 1, "total": 2}}),
            ("ev-2", {"jsonrpc": "2.0", "method": "notifications/progress",
                      "params": {"progressToken": "raw-token", "progress": 2, "total": 2}}),
            ("ev-3", {"jsonrpc": "2.0", "id": mid,
                      "result": {"content": [{"type": "text", "text": "raw sse_stream done"}], "isError": False}}),
        ]
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        for i, (event_id, payload) in enumerate(events):
            if i:
                time.sleep(0.1)
            self.wfile.write(f"id: {event_id}\nevent: message\ndata: {json.dumps(payload)}\n\n".encode())
            self.wfile.flush()

    def do_GET(self) -> None:  # noqa: N802
        self._record(b"")
        mode = _take_mode("GET")
        if mode is not None and mode.get("mode") == "get_replay":
            self._send_get_replay()
            return
        self._send(405, extra={"Allow": "POST, DELETE"})

    # --- misbehaviour modes (POST /_mode) ----------------------------------------------------------------

    def _sse_head(self, chunked: bool = False) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        self.wfile.flush()

    def _sse_event(self, payload: Any, *, raw_data: str | None = None, event_id: str | None = None,
                   chunked: bool = False) -> None:
        data = raw_data if raw_data is not None else json.dumps(payload)
        text = (f"id: {event_id}\n" if event_id else "") + f"event: message\ndata: {data}\n\n"
        block = text.encode()
        if chunked:
            block = f"{len(block):x}\r\n".encode() + block + b"\r\n"
        self.wfile.write(block)
        self.wfile.flush()

    @staticmethod
    def _progress(n: int, total: int | None = None, pad: str = "") -> dict[str, Any]:
        params: dict[str, Any] = {"progressToken": "raw-token", "progress": n}
        if total is not None:
            params["total"] = total
        if pad:
            params["message"] = pad
        return {"jsonrpc": "2.0", "method": "notifications/progress", "params": params}

    def _misbehave(self, mode: dict[str, Any], message: dict[str, Any]) -> None:
        name = mode.get("mode")
        mid = message.get("id")
        if name == "status":
            error = mode.get("error") or {"code": -32603, "message": "raw upstream failure"}
            answer_id = mode["answer_id"] if "answer_id" in mode else mid
            body = json.dumps({"jsonrpc": "2.0", "id": answer_id, "error": error}).encode()
            self._send(int(mode.get("status", 500)), body, "application/json")
        elif name == "id":
            answer = _answer(message) or {}
            answer["id"] = mode.get("id")
            self._send(200, json.dumps(answer).encode(), "application/json")
        elif name == "invalid_json":
            text = json.dumps(_answer(message))
            text = text[:-1] if mode.get("variant") == "truncated" else text + "}garbage"
            self._send(200, text.encode(), "application/json")
        elif name == "sse_bad_event":
            self._sse_head()
            self._sse_event(self._progress(1, 2))
            names = " ".join(json.dumps(t["name"]) for t in TOOLS)
            self._sse_event(None, raw_data=f"this is not JSON {{ tools: [{names}]")
            self._sse_event(_answer(message))
        elif name == "sse_drop":
            end = mode.get("end", "close")
            self._sse_head(chunked=end == "chunked")
            self._sse_event(self._progress(1, 2), chunked=end == "chunked")
            time.sleep(0.2)
            if end == "reset":
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
            # "close" and "chunked": returning closes the connection (close_connection is set).
        elif name == "json_truncated":
            text = json.dumps(_answer(message))
            send_bytes = max(int(mode.get("send_bytes", 100)), len(text))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(text.encode().ljust(send_bytes))
            self.wfile.flush()
            self.close_connection = True
        elif name == "sse_slow":
            events, interval = int(mode.get("events", 2)), float(mode.get("interval", 2))
            self._sse_head()
            for i in range(1, events + 1):
                self._sse_event(self._progress(i, events))
                time.sleep(interval)
            self._sse_event(_answer(message))
        elif name == "sse_endless":
            self._send_endless(int(mode.get("event_bytes", 65536)), int(mode.get("max_bytes", 64 << 20)))
        elif name == "hang":
            self._hang(float(mode.get("seconds", 60)))
        elif name == "redirect":
            self._send(int(mode.get("status", 307)), b"", None, {"Location": mode["location"]})
        elif name == "huge_json":
            # A JSON-RPC answer whose one string is `bytes` long: valid, but larger than toolgate reads whole.
            size = int(mode.get("bytes", 40 << 20))
            head = json.dumps({"jsonrpc": "2.0", "id": mid, "result": {"content": [{"type": "text", "text": ""}]}})
            prefix, suffix = head.split('""', 1)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(prefix) + size + 2 + len(suffix)))
            self.end_headers()
            try:
                self.wfile.write(prefix.encode() + b'"')
                chunk = b"x" * (1 << 20)
                for _ in range(size >> 20):
                    self.wfile.write(chunk)
                self.wfile.write(b"x" * (size & ((1 << 20) - 1)) + b'"' + suffix.encode())
                _note({"kind": "huge_json_ended", "reason": "sent"})
            except OSError as e:
                _note({"kind": "huge_json_ended", "reason": "reader_closed", "error": repr(e)})
            self.close_connection = True
        else:
            self._send(500, f"unknown mode {name!r}".encode(), "text/plain")

    def _hang(self, seconds: float) -> None:
        started = time.monotonic()
        reason = "gave_up"
        self.connection.settimeout(0.05)
        while time.monotonic() - started < seconds:
            try:
                if self.connection.recv(1, socket.MSG_PEEK) == b"":
                    reason = "peer_closed"
                    break
            except TimeoutError:
                continue
            except OSError:
                reason = "peer_closed"
                break
        _note({"kind": "hang_ended", "reason": reason, "seconds": round(time.monotonic() - started, 3)})
        self.close_connection = True

    def _send_endless(self, event_bytes: int, max_bytes: int) -> None:
        started = time.monotonic()
        sent = 0
        reason, error = "gave_up", ""
        self.connection.settimeout(30)
        try:
            self._sse_head()
            n = 0
            while sent < max_bytes:
                n += 1
                block = f"event: message\ndata: {json.dumps(self._progress(n, pad='x' * event_bytes))}\n\n".encode()
                self.wfile.write(block)
                sent += len(block)
            while time.monotonic() - started < 60:
                self.wfile.write(b": still here\n\n")
                self.wfile.flush()
                time.sleep(0.2)
        except TimeoutError as e:
            reason, error = "write_blocked", repr(e)
        except OSError as e:
            reason, error = "write_failed", repr(e)
        finally:
            _note({"kind": "endless_stream_ended", "reason": reason, "error": error, "bytes": sent,
                   "seconds": round(time.monotonic() - started, 3)})
            self.close_connection = True

    def _send_get_replay(self) -> None:
        """A GET stream that replays stored answers, as a resumable upstream may."""
        self._sse_head()
        self._sse_event({"jsonrpc": "2.0", "method": "notifications/message",
                         "params": {"level": "info", "data": "get stream open"}}, event_id="g-1")
        self._sse_event({"jsonrpc": "2.0", "id": 1, "result": {"tools": TOOLS}}, event_id="g-2")
        self._sse_event([{"jsonrpc": "2.0", "id": 2, "result": {"tools": TOOLS}}], event_id="g-3")
        self._sse_event({"jsonrpc": "2.0", "method": "notifications/message",
                         "params": {"level": "info", "data": "get stream end"}}, event_id="g-4")

    def do_DELETE(self) -> None:  # noqa: N802
        self._record(self._read_body())
        self._send(200)


class ControlHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def _json(self, status: int, value: Any) -> None:
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/_seen":
            with _lock:
                self._json(200, list(_seen))
        elif self.path == "/_events":
            with _lock:
                self._json(200, list(_events))
        else:
            self._json(404, {"error": "not found"})

    def do_POST(self) -> None:  # noqa: N802
        global _fail_with
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path == "/_reset":
            with _lock:
                _seen.clear()
                _fail_with = None
                _modes.clear()
                _events.clear()
            self._json(200, {"ok": True})
        elif self.path == "/_fail":
            with _lock:
                _fail_with = json.loads(body)
            self._json(200, {"ok": True})
        elif self.path == "/_mode":
            mode = json.loads(body)
            if not isinstance(mode, dict) or not isinstance(mode.get("on"), str) or "mode" not in mode:
                self._json(400, {"error": 'expected {"on": WHAT, "mode": NAME, ...}'})
                return
            with _lock:
                _modes[mode["on"]] = mode
            self._json(200, {"ok": True})
        else:
            self._json(404, {"error": "not found"})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--control-port", type=int, required=True)
    args = parser.parse_args()
    mcp_server = ThreadingHTTPServer(("127.0.0.1", args.port), McpHandler)
    control = ThreadingHTTPServer(("127.0.0.1", args.control_port), ControlHandler)
    mcp_server.daemon_threads = True
    control.daemon_threads = True
    threading.Thread(target=control.serve_forever, daemon=True).start()
    try:
        mcp_server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
