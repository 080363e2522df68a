"""A raw JSON-RPC upstream of our own, for what the SDK server cannot do or show.

It answers POST /mcp with single messages and batches (JSON arrays) for `initialize`, `server/discover`,
`tools/list`, `tools/call` and `ping` as `application/json`; notifications get 202 (a batch of only
notifications too). A single `tools/call` of `sse_stream` is answered as an SSE stream whose events have
ids. GET /mcp answers 405 (no server stream) and DELETE /mcp 200.

Every request to /mcp (method, path, headers in arrival order, body) is recorded and shown on a side
port: GET /_seen returns the list as JSON, POST /_reset clears it (and any /_fail). POST /_fail with
{"code": C, "message": M} makes every request get that JSON-RPC error (the fixture tests use it to show
how the SDK surfaces toolgate's "upstream down" answer).

Run: python raw_upstream.py --port PORT --control-port PORT
"""

from __future__ import annotations

import argparse
import json
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
        self._send(405, extra={"Allow": "POST, DELETE"})

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
            self._json(200, {"ok": True})
        elif self.path == "/_fail":
            with _lock:
                _fail_with = json.loads(body)
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
