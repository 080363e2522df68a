"""Shared helpers for the end-to-end tests: SDK client sessions, raw JSON-RPC over HTTP, result accessors.

Every network call here has a timeout, and every async test body runs under `anyio.fail_after`.
"""

from __future__ import annotations

import base64
import json
import socket
import struct
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar

import anyio
import httpx2
import mcp
import pytest
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

T = TypeVar("T")

MODERN_VERSION = "2026-07-28"
HANDSHAKE_VERSION = "2025-11-25"
ACCEPT_BOTH = "application/json, text/event-stream"

SEED_POLICY: dict[str, Any] = {
    "version": "1",
    "default": "deny",
    "tools": {
        "imageBackgroundRemoval": {
            "limits": [{"counter": "imagebackgroundremoval_rate", "window": "minute", "max": 10, "scope": "grant"}]
        }
    },
}

# Timeouts for every HTTP client the tests make: nothing may hang.
HTTP_TIMEOUT = httpx2.Timeout(10.0, read=30.0)
ASYNC_TEST_TIMEOUT = 60.0


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Polls `predicate` until it is truthy (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def free_port() -> int:
    """A loopback port that was free a moment ago (bind port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_async(fn: Callable[[], Awaitable[T]], timeout: float = ASYNC_TEST_TIMEOUT) -> T:
    """Run an async test body to completion on a fresh event loop, bounded by `timeout` seconds."""

    async def bounded() -> T:
        with anyio.fail_after(timeout):
            return await fn()

    return anyio.run(bounded)


# ---------------------------------------------------------------------------------------------------------
# SDK clients


@asynccontextmanager
async def handshake_session(url: str, headers: dict[str, str] | None = None) -> AsyncIterator[mcp.ClientSession]:
    """A handshake-era `ClientSession` over Streamable HTTP, already initialized."""
    async with httpx2.AsyncClient(headers=headers or {}, timeout=HTTP_TIMEOUT) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with mcp.ClientSession(read, write, read_timeout_seconds=30) as session:
                await session.initialize()
                yield session


@asynccontextmanager
async def modern_client(url: str, headers: dict[str, str] | None = None) -> AsyncIterator[mcp.Client]:
    """The SDK's default high-level client (`mode="auto"`: probes `server/discover`, adopts 2026-07-28).

    Without headers this is exactly `mcp.Client(url)`; with headers the same client runs over a
    `streamable_http_client` transport whose httpx2 client carries them.
    """
    if headers is None:
        async with mcp.Client(url, read_timeout_seconds=30) as client:
            yield client
        return
    async with httpx2.AsyncClient(headers=headers, timeout=HTTP_TIMEOUT) as http:
        async with mcp.Client(streamable_http_client(url, http_client=http), read_timeout_seconds=30) as client:
            yield client


class CaughtMCPError:
    value: MCPError


def _find_mcp_error(exc: BaseException) -> MCPError | None:
    if isinstance(exc, MCPError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            if (found := _find_mcp_error(inner)) is not None:
                return found
    return None


@contextmanager
def expect_mcp_error() -> Iterator[CaughtMCPError]:
    """Like `pytest.raises(MCPError)`, but also finds the MCPError inside the ExceptionGroup that the SDK's
    task groups wrap it in when it escapes a client's `async with` (a failed connect, say)."""
    caught = CaughtMCPError()
    try:
        yield caught
    except BaseException as exc:  # noqa: BLE001
        found = _find_mcp_error(exc)
        if found is None:
            raise
        caught.value = found
        return
    pytest.fail("expected an MCPError, but nothing was raised")


def text_of(result: Any) -> str:
    """The concatenated text content of a `CallToolResult`."""
    return "".join(getattr(block, "text", "") for block in result.content)


def denial_of(result: Any) -> dict[str, Any]:
    """The `_meta["toolgate/denial"]` object of a denial result (the SDK exposes `_meta` as `.meta`)."""
    assert result.meta is not None, f"result has no _meta: {result!r}"
    denial = result.meta.get("toolgate/denial")
    assert isinstance(denial, dict), f"result _meta has no toolgate/denial object: {result.meta!r}"
    return denial


def assert_rate_limited_denial(denial: dict[str, Any], *, rule: str, counter: str, limit: int,
                               scope: str, window: str, window_seconds: int) -> None:
    """Check a rate-limit denial object field by field (DESIGN section 5)."""
    assert denial.get("reason") == "rate_limited", denial
    assert denial.get("rule") == rule, denial
    assert denial.get("counter") == counter, denial
    assert denial.get("limit") == limit, denial
    assert denial.get("scope") == scope, denial
    assert denial.get("window") == window, denial
    assert denial.get("windowSeconds") == window_seconds, denial
    retry = denial.get("retryAfterSeconds")
    assert isinstance(retry, int) and not isinstance(retry, bool), denial
    assert 1 <= retry <= window_seconds, denial


# ---------------------------------------------------------------------------------------------------------
# Raw JSON-RPC over HTTP


def http_client(**kwargs: Any) -> httpx2.Client:
    return httpx2.Client(timeout=HTTP_TIMEOUT, **kwargs)


def modern_meta() -> dict[str, Any]:
    """The per-request envelope a 2026-07-28 client puts in `params._meta` (as the SDK's `mcp.Client` does)."""
    return {
        "io.modelcontextprotocol/protocolVersion": MODERN_VERSION,
        "io.modelcontextprotocol/clientInfo": {"name": "toolgate-e2e", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {},
    }


def tool_call(mid: Any, name: str, arguments: dict[str, Any] | None = None, *, modern: bool = False) -> dict[str, Any]:
    params: dict[str, Any] = {"name": name, "arguments": arguments or {}}
    if modern:
        params["_meta"] = modern_meta()
    return {"jsonrpc": "2.0", "id": mid, "method": "tools/call", "params": params}


def request(mid: Any, method: str, params: dict[str, Any] | None = None, *, modern: bool = False) -> dict[str, Any]:
    params = dict(params or {})
    if modern:
        params["_meta"] = modern_meta()
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": mid, "method": method}
    if params:
        message["params"] = params
    return message


def modern_headers(method: str | None, name: str | None = None) -> dict[str, str]:
    """The routing headers a 2026-07-28 client sends with one POST (None leaves one out)."""
    headers = {"MCP-Protocol-Version": MODERN_VERSION}
    if method is not None:
        headers["Mcp-Method"] = method
    if name is not None:
        headers["Mcp-Name"] = name
    return headers


def b64_header(value: str) -> str:
    """`Mcp-Name`'s encoded form for values that are not plain header text: `=?base64?...?=`."""
    return f"=?base64?{base64.b64encode(value.encode('utf-8')).decode('ascii')}?="


def post(client: httpx2.Client, url: str, body: Any, headers: dict[str, str] | None = None,
         *, accept: str = ACCEPT_BOTH, raw: bytes | None = None) -> httpx2.Response:
    """POST one JSON-RPC message or batch (or `raw` bytes) with MCP's content headers."""
    all_headers = {"Accept": accept, "Content-Type": "application/json"}
    all_headers.update(headers or {})
    content = raw if raw is not None else json.dumps(body).encode()
    return client.post(url, content=content, headers=all_headers)


def sse_messages(text: str) -> list[Any]:
    """The JSON payloads of the `data:` lines of an SSE body, one per event."""
    messages: list[Any] = []
    data: list[str] = []
    for line in text.splitlines() + [""]:
        if line == "":
            if data:
                messages.append(json.loads("\n".join(data)))
                data = []
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    return messages


def jsonrpc_messages(response: httpx2.Response) -> list[Any]:
    """All JSON-RPC messages in a response body, whether JSON (one message or a batch) or SSE."""
    content_type = response.headers.get("content-type", "").lower()
    if content_type.startswith("text/event-stream"):
        out: list[Any] = []
        for m in sse_messages(response.text):
            out.extend(m if isinstance(m, list) else [m])
        return out
    value = response.json()
    return value if isinstance(value, list) else [value]


def final_response(response: httpx2.Response) -> dict[str, Any]:
    """The single JSON-RPC response (result or error) in a body, skipping notifications on an SSE stream."""
    answers = [m for m in jsonrpc_messages(response) if isinstance(m, dict) and ("result" in m or "error" in m)]
    assert len(answers) == 1, f"expected one JSON-RPC response, got {answers!r} (HTTP {response.status_code})"
    return answers[0]


def assert_http_refusal(response: httpx2.Response, status: int, code: int) -> dict[str, Any]:
    """An HTTP-level refusal: the status, and a JSON-RPC error body with `"id": null` and `code`."""
    assert response.status_code == status, f"expected HTTP {status}, got {response.status_code}: {response.text!r}"
    assert response.headers.get("content-type", "").lower().startswith("application/json"), response.headers
    body = response.json()
    assert isinstance(body, dict), body
    assert body.get("jsonrpc") == "2.0", body
    assert "id" in body and body["id"] is None, f"the id must be null: {body!r}"
    error = body.get("error")
    assert isinstance(error, dict) and error.get("code") == code, f"expected error code {code}: {body!r}"
    assert isinstance(error.get("message"), str) and error["message"], body
    return body


def header_values(record: dict[str, Any], name: str) -> list[str]:
    """Values of one header (case-insensitive) in a raw upstream's request record."""
    return [v for k, v in record["headers"] if k.lower() == name.lower()]


def sse_events(text: str) -> list[dict[str, str]]:
    """The events of an SSE body as dicts of their fields (`id`, `event`, `data`), in order."""
    events: list[dict[str, str]] = []
    fields: dict[str, str] = {}
    for line in text.replace("\r\n", "\n").split("\n"):
        if line == "":
            if fields:
                events.append(fields)
                fields = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        fields[name] = fields[name] + "\n" + value if name == "data" and name in fields else value
    if fields:
        events.append(fields)
    return events


# ---------------------------------------------------------------------------------------------------------
# Raw HTTP/1.x over a socket, for what an HTTP client library will not send (absolute-form targets, missing or
# repeated Host headers, HTTP/1.0, half-sent heads).


def raw_exchange(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send `data` to 127.0.0.1:`port` and read until the server closes or a complete response arrived.

    "Complete": the head, then `Content-Length` bytes, or the last chunk of a chunked body. A close-delimited
    body is read until the close; `timeout` bounds the whole exchange (socket.timeout past it)."""
    deadline = _deadline(timeout)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        received = b""
        while True:
            s.settimeout(max(0.05, deadline()))
            chunk = s.recv(65536)
            if not chunk:
                return received
            received += chunk
            if raw_response_complete(received):
                return received


def _deadline(timeout: float) -> Callable[[], float]:
    """A function returning the seconds left until `timeout` from now (raises socket.timeout once past)."""
    end = time.monotonic() + timeout

    def left() -> float:
        remaining = end - time.monotonic()
        if remaining <= 0:
            raise socket.timeout(f"no complete response within {timeout} s")
        return remaining

    return left


def split_raw_response(data: bytes) -> tuple[str, list[tuple[str, str]], bytes]:
    """(status line, headers in order, body bytes as received: not de-chunked)."""
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep, f"no complete response head in {data[:500]!r}"
    lines = head.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return lines[0], headers, body


def raw_status(data: bytes) -> int:
    status_line = split_raw_response(data)[0]
    parts = status_line.split(" ")
    assert len(parts) >= 2 and parts[0].startswith("HTTP/") and parts[1].isdigit(), status_line
    return int(parts[1])


def raw_header(headers: list[tuple[str, str]], name: str) -> list[str]:
    return [v for k, v in headers if k.lower() == name.lower()]


def raw_response_complete(data: bytes) -> bool:
    if b"\r\n\r\n" not in data:
        return False
    _, headers, body = split_raw_response(data)
    if any("chunked" in v.lower() for v in raw_header(headers, "transfer-encoding")):
        return body.endswith(b"0\r\n\r\n")
    lengths = raw_header(headers, "content-length")
    if lengths and lengths[0].isdigit():
        return len(body) >= int(lengths[0])
    return False  # close-delimited: read until the close


def raw_post(target: str, body: bytes, headers: list[tuple[str, str]], version: str = "HTTP/1.1") -> bytes:
    """The bytes of a POST with exactly these headers (plus Content-Length), nothing added."""
    lines = [f"POST {target} {version}"] + [f"{k}: {v}" for k, v in headers] + [f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


# ---------------------------------------------------------------------------------------------------------
# A slow network in front of a TCP server (a slow Redis, for instance).


class DelayProxy:
    """A TCP proxy on a free loopback port in front of 127.0.0.1:`target_port`. What the client sends passes at once;
    what the server sends back is held until `delay` seconds after it arrived. `delay` may change at any time and
    applies to what is still held (setting it to 0 releases everything). Bytes are never reordered, and nothing is
    dropped except by `cut()`. `close()` (or leaving the `with` block) stops it and cuts every connection."""

    class _Link:
        def __init__(self, client: socket.socket, server: socket.socket) -> None:
            self.client = client
            self.server = server
            self.held: list[tuple[float, bytes | None]] = []  # (arrival, chunk); None: the server closed
            self.dead = False

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._delay = 0.0
        self._changed = threading.Condition()
        self._closed = False
        self._links: list[DelayProxy._Link] = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port: int = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, name=f"delay-proxy-{self.port}", daemon=True).start()

    @property
    def delay(self) -> float:
        return self._delay

    @delay.setter
    def delay(self, seconds: float) -> None:
        with self._changed:
            self._delay = seconds
            self._changed.notify_all()

    def __enter__(self) -> "DelayProxy":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def cut(self) -> int:
        """Abort every open connection at once, as a network failure would: the client gets a TCP reset, and what
        was held for it is dropped. Returns how many connections were cut."""
        with self._changed:
            links, self._links = self._links, []
            for link in links:
                link.dead = True
                link.held.clear()
            self._changed.notify_all()
        for link in links:
            try:
                link.client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
            for s, how in ((link.client, socket.SHUT_RD), (link.server, socket.SHUT_RDWR)):
                try:
                    s.shutdown(how)  # wakes the thread blocked reading it
                except OSError:
                    pass
            link.client.close()  # SO_LINGER 0: a reset, not a FIN
            link.server.close()
        return len(links)

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        self.cut()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port), timeout=5.0)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            link = DelayProxy._Link(client, server)
            with self._changed:
                if self._closed:
                    client.close()
                    server.close()
                    return
                self._links.append(link)
            threading.Thread(target=self._pass, args=(link,), daemon=True).start()
            threading.Thread(target=self._hold, args=(link,), daemon=True).start()
            threading.Thread(target=self._release, args=(link,), daemon=True).start()

    @staticmethod
    def _pass(link: "DelayProxy._Link") -> None:
        """Client to server, at once. When the client goes, the server connection goes too."""
        try:
            while chunk := link.client.recv(65536):
                link.server.sendall(chunk)
        except OSError:
            pass
        for s in (link.server, link.client):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _hold(self, link: "DelayProxy._Link") -> None:
        """Server to proxy: stamp each chunk with its arrival."""
        while True:
            try:
                chunk = link.server.recv(65536)
            except OSError:
                chunk = b""
            with self._changed:
                if link.dead:
                    return
                link.held.append((time.monotonic(), chunk or None))
                self._changed.notify_all()
            if not chunk:
                return

    def _release(self, link: "DelayProxy._Link") -> None:
        """Proxy to client: each chunk once `delay` has passed since it arrived, in order."""
        while True:
            with self._changed:
                while not link.dead and (not link.held or time.monotonic() < link.held[0][0] + self._delay):
                    self._changed.wait(link.held[0][0] + self._delay - time.monotonic() if link.held else None)
                if link.dead:
                    return
                _, chunk = link.held.pop(0)
            try:
                if chunk is None:
                    link.client.shutdown(socket.SHUT_RDWR)
                    return
                link.client.sendall(chunk)
            except OSError:
                link.server.close()
                return


def readyz(tg: Any) -> tuple[int, dict[str, Any]]:
    """`GET /readyz` of a running toolgate: its HTTP status and body."""
    with http_client() as http:
        response = http.get(f"{tg.base}/readyz")
        return response.status_code, response.json()
