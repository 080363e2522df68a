"""The fixtures themselves, checked with the SDK's clients and no toolgate in between.

If these fail, the toolgate tests prove nothing. They also pin down the SDK behaviour the other tests
rely on: how a -32602 error and an isError result surface, and what `mcp.Client(url)` sends on the wire.
"""

from __future__ import annotations

import json
import socket
import time

import httpx2
import pytest
from mcp.shared.exceptions import MCPError

from helpers import (
    HANDSHAKE_VERSION,
    MODERN_VERSION,
    assert_rate_limited_denial,
    denial_of,
    expect_mcp_error,
    handshake_session,
    header_values,
    http_client,
    modern_client,
    post,
    request,
    run_async,
    sse_events,
    text_of,
    tool_call,
)

UPSTREAM_TOOLS = {"imageBackgroundRemoval", "echo", "other_tool", "slow_progress", "sleepy", "transfer", "post_message",
                  "fetch_report", "run_command", "scale", "wizard", "crash", "flood_stderr", "ask", "executions", "getenv", "whoami",
                  "notify_later", "wait_sent"}


def test_mcp_upstream_handshake_era(mcp_upstream):
    async def body():
        async with handshake_session(mcp_upstream.url) as session:
            tools = await session.list_tools()
            assert {t.name for t in tools.tools} == UPSTREAM_TOOLS
            result = await session.call_tool("imageBackgroundRemoval", {"image": "cat.png"})
            assert result.is_error is False
            assert text_of(result) == "background removed from cat.png"
            result = await session.call_tool("echo", {"text": "hi"})
            assert text_of(result) == "echo: hi"

    run_async(body)


def test_mcp_upstream_per_request_era(mcp_upstream):
    async def body():
        async with modern_client(mcp_upstream.url) as client:
            assert client.protocol_version == MODERN_VERSION
            tools = await client.list_tools()
            assert {t.name for t in tools.tools} == UPSTREAM_TOOLS
            result = await client.call_tool("imageBackgroundRemoval", {"image": "cat.png"})
            assert result.is_error is False
            assert result.result_type == "complete"
            assert text_of(result) == "background removed from cat.png"

    run_async(body)


@pytest.mark.parametrize("era", ["handshake", "per-request"])
def test_mcp_upstream_progress_in_sse_mode(mcp_upstream_sse, era):
    """In SSE mode the upstream sends each progress notification as its own event, before the result."""

    async def body():
        progress: list[tuple[float, float | None, str | None, float]] = []

        async def on_progress(p, total, message):
            progress.append((p, total, message, time.monotonic()))

        cm = handshake_session(mcp_upstream_sse.url) if era == "handshake" else modern_client(mcp_upstream_sse.url)
        async with cm as c:
            result = await c.call_tool("slow_progress", {"steps": 4, "delay": 0.2}, progress_callback=on_progress)
            done = time.monotonic()
        assert text_of(result) == "done after 4 steps"
        assert [(p, t, m) for p, t, m, _ in progress] == [(i, 4, f"step {i} of 4") for i in range(1, 5)]
        assert done - progress[0][3] >= 0.5, "the first progress notification should arrive well before the result"

    run_async(body)


@pytest.mark.parametrize("era", ["handshake", "per-request"])
def test_mcp_upstream_json_mode_drops_progress_but_answers(mcp_upstream_json, era):
    """In JSON mode the SDK server has no stream for notifications: the result still arrives."""

    async def body():
        progress = []

        async def on_progress(p, total, message):
            progress.append(p)

        cm = handshake_session(mcp_upstream_json.url) if era == "handshake" else modern_client(mcp_upstream_json.url)
        async with cm as c:
            result = await c.call_tool("slow_progress", {"steps": 3}, progress_callback=on_progress)
        assert text_of(result) == "done after 3 steps"
        assert progress == []

    run_async(body)


def test_mcp_upstream_response_modes_on_the_wire(mcp_upstream):
    """A raw initialize: SSE mode answers text/event-stream, JSON mode application/json; both set a session."""
    init = request(1, "initialize", {"protocolVersion": HANDSHAKE_VERSION, "capabilities": {},
                                     "clientInfo": {"name": "raw", "version": "1"}})
    with http_client() as http:
        response = post(http, mcp_upstream.url, init)
    assert response.status_code == 200
    expected = "text/event-stream" if mcp_upstream.mode == "sse" else "application/json"
    assert response.headers["content-type"].startswith(expected)
    assert response.headers.get("mcp-session-id")


@pytest.mark.parametrize("era", ["handshake", "per-request"])
def test_sdk_surfaces_unknown_tool_error_and_denial_result(raw_upstream, era):
    """How the SDK shows toolgate's two denial shapes: -32602 raises MCPError; isError keeps `_meta` as `.meta`."""

    async def body():
        cm = handshake_session(raw_upstream.url) if era == "handshake" else modern_client(raw_upstream.url)
        async with cm as c:
            with pytest.raises(MCPError) as info:
                await c.call_tool("raise_unknown_tool", {})
            assert info.value.code == -32602
            assert info.value.message == "Unknown tool: raise_unknown_tool"
            result = await c.call_tool("deny_like_toolgate", {})
            assert result.is_error is True
            assert text_of(result).startswith("Denied by policy: ")
            assert_rate_limited_denial(denial_of(result), rule="imageBackgroundRemoval",
                                       counter="imagebackgroundremoval_rate", limit=10, scope="grant",
                                       window="minute", window_seconds=60)

    run_async(body)


def test_raw_upstream_handshake_client_and_record(raw_upstream):
    async def body():
        async with handshake_session(raw_upstream.url, headers={"Authorization": "Bearer direct"}) as session:
            tools = await session.list_tools()
            assert [t.name for t in tools.tools] == ["imageBackgroundRemoval", "echo", "other_tool"]
            result = await session.call_tool("echo", {"text": "x"})
            assert text_of(result) == 'raw echo: {"text": "x"}'

    run_async(body)
    seen = raw_upstream.seen_messages()
    methods = [m.get("method") for m in seen]
    assert methods[:2] == ["initialize", "notifications/initialized"]
    assert "tools/call" in methods
    call = next(r for r in raw_upstream.seen_posts() if '"tools/call"' in r["body"])
    assert header_values(call, "authorization") == ["Bearer direct"]
    assert header_values(call, "mcp-session-id") == ["raw-upstream-session-1"]
    assert header_values(call, "mcp-protocol-version") == [HANDSHAKE_VERSION]


def test_what_mcp_client_sends_on_the_wire(raw_upstream):
    """`mcp.Client(url)` probes `server/discover` first, then sends self-contained POSTs with routing headers."""

    async def body():
        async with modern_client(raw_upstream.url) as client:
            assert client.protocol_version == MODERN_VERSION
            await client.list_tools()
            await client.call_tool("imageBackgroundRemoval", {"image": "a.png"})

    run_async(body)
    posts = raw_upstream.seen_posts()
    bodies = [json.loads(r["body"]) for r in posts]
    assert [b["method"] for b in bodies] == ["server/discover", "tools/list", "tools/call"]
    for record, message in zip(posts, bodies):
        assert header_values(record, "mcp-protocol-version") == [MODERN_VERSION]
        assert header_values(record, "mcp-method") == [message["method"]]
        assert header_values(record, "mcp-session-id") == []
        assert message["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] == MODERN_VERSION
    assert header_values(posts[2], "mcp-name") == ["imageBackgroundRemoval"]
    assert header_values(posts[1], "mcp-name") == []
    # The SDK asks for compressed bodies; toolgate must not pass that on (DESIGN section 3).
    assert header_values(posts[2], "accept-encoding") == ["gzip, deflate"]
    assert header_values(posts[2], "accept") == ["application/json, text/event-stream"]


def test_raw_upstream_batches(raw_upstream):
    batch = [
        tool_call(1, "echo", {"text": "a"}),
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        request(2, "tools/list"),
    ]
    with http_client() as http:
        response = post(http, raw_upstream.url, batch)
        assert response.status_code == 200
        answers = {m["id"]: m for m in response.json()}
        assert set(answers) == {1, 2}
        assert answers[1]["result"]["content"][0]["text"] == 'raw echo: {"text": "a"}'
        only_notifications = post(http, raw_upstream.url, [{"jsonrpc": "2.0", "method": "notifications/x"}])
        assert only_notifications.status_code == 202
    assert len(raw_upstream.seen_posts()) == 2


@pytest.mark.parametrize("era", ["handshake", "per-request"])
def test_sdk_surfaces_internal_error_at_connect(raw_upstream, era):
    """What toolgate answers when its upstream is down (-32603 for every request) makes the SDK clients raise
    a plain MCPError when connecting: `initialize` fails, or for `mcp.Client` `server/discover` and then the
    `initialize` fallback both fail."""
    raw_upstream.fail_all(-32603, "upstream http://127.0.0.1:9/mcp is unreachable")

    async def body():
        with expect_mcp_error() as info:
            cm = handshake_session(raw_upstream.url) if era == "handshake" else modern_client(raw_upstream.url)
            async with cm:
                pass
        assert info.value.code == -32603
        assert "127.0.0.1:9" in info.value.message

    run_async(body)
    methods = [m.get("method") for m in raw_upstream.seen_messages()]
    assert methods == (["initialize"] if era == "handshake" else ["server/discover", "initialize"])


def test_raw_upstream_sse_stream_with_event_ids(raw_upstream):
    with http_client() as http:
        response = post(http, raw_upstream.url, tool_call(3, "sse_stream", {}))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    assert [e["id"] for e in events] == ["ev-1", "ev-2", "ev-3"]
    assert json.loads(events[2]["data"])["id"] == 3


# --- raw_upstream's misbehaviour modes and the SDK upstream's sleepy tool (used by the issue-7 tests) ----------


def test_raw_upstream_modes_are_used_up_and_reset(raw_upstream):
    raw_upstream.set_mode("tools/call", "status", times=1, status=400, answer_id=None,
                          error={"code": -32602, "message": "bad"})
    raw_upstream.set_mode("tools/list", "id", id="5")
    with http_client() as http:
        refused = post(http, raw_upstream.url, tool_call(1, "echo", {"text": "a"}))
        normal = post(http, raw_upstream.url, tool_call(2, "echo", {"text": "b"}))
        listed = post(http, raw_upstream.url, request(5, "tools/list"))
        batch = post(http, raw_upstream.url, [request(5, "tools/list")])
        raw_upstream.reset()
        after_reset = post(http, raw_upstream.url, request(5, "tools/list"))
    assert refused.status_code == 400
    assert refused.json() == {"jsonrpc": "2.0", "id": None, "error": {"code": -32602, "message": "bad"}}
    assert normal.status_code == 200 and normal.json()["result"]["isError"] is False, "times=1 is used up"
    assert listed.json()["id"] == "5" and len(listed.json()["result"]["tools"]) == 3
    assert batch.json()[0]["id"] == 5, "batches are answered normally"
    assert after_reset.json()["id"] == 5, "reset clears the modes"


@pytest.mark.parametrize("variant", ["trailing-garbage", "truncated"])
def test_raw_upstream_invalid_json_mode(raw_upstream, variant):
    raw_upstream.set_mode("tools/list", "invalid_json", times=1, variant=variant)
    with http_client() as http:
        response = post(http, raw_upstream.url, request(5, "tools/list"))
    assert response.status_code == 200 and '"other_tool"' in response.text
    with pytest.raises(ValueError):
        json.loads(response.text)


def test_raw_upstream_sse_modes(raw_upstream):
    raw_upstream.set_mode("tools/list", "sse_bad_event", times=1)
    raw_upstream.set_mode("tools/call", "sse_drop", times=1, end="chunked")
    with http_client() as http:
        bad = post(http, raw_upstream.url, request(6, "tools/list"))
        with pytest.raises(httpx2.TransportError):
            post(http, raw_upstream.url, tool_call(7, "echo", {}))
    data = [e["data"] for e in sse_events(bad.text)]
    assert len(data) == 3 and data[1].startswith("this is not JSON")
    assert json.loads(data[2])["id"] == 6 and len(json.loads(data[2])["result"]["tools"]) == 3
    raw_upstream.set_mode("tools/call", "sse_drop", times=1, end="close")
    with http_client() as http:
        dropped = post(http, raw_upstream.url, tool_call(8, "echo", {}))
    assert [json.loads(e["data"]).get("method") for e in sse_events(dropped.text)] == ["notifications/progress"]


def test_raw_upstream_truncated_json_and_get_replay(raw_upstream):
    raw_upstream.set_mode("tools/call", "json_truncated", times=1)
    raw_upstream.set_mode("GET", "get_replay", times=1)
    with http_client() as http:
        with pytest.raises(httpx2.TransportError):
            post(http, raw_upstream.url, tool_call(9, "echo", {}))
        replay = http.get(raw_upstream.url, headers={"Accept": "text/event-stream"})
        plain = http.get(raw_upstream.url, headers={"Accept": "text/event-stream"})
    assert replay.status_code == 200 and [e["id"] for e in sse_events(replay.text)] == ["g-1", "g-2", "g-3", "g-4"]
    assert '"other_tool"' in replay.text
    assert plain.status_code == 405, "the GET mode is used up"


def test_raw_upstream_endless_stream_reports_when_the_reader_leaves(raw_upstream):
    raw_upstream.set_mode("tools/call", "sse_endless", times=1, event_bytes=65536)
    body = json.dumps(tool_call(10, "echo", {})).encode()
    with socket.create_connection(("127.0.0.1", raw_upstream.port), timeout=10) as s:
        s.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: "
                  + str(len(body)).encode() + b"\r\n\r\n" + body)
        head = s.recv(64)
        assert head.startswith(b"HTTP/1.1 200"), head
        time.sleep(0.5)  # then leave without reading
    deadline = time.monotonic() + 10
    while not raw_upstream.events() and time.monotonic() < deadline:
        time.sleep(0.1)
    [event] = raw_upstream.events()
    assert event["kind"] == "endless_stream_ended" and event["reason"] == "write_failed", event
    assert event["seconds"] < 5, event


def test_sdk_upstream_sleepy_counts_executions(mcp_upstream):
    tag = f"direct-{time.monotonic_ns()}"

    async def body():
        async with handshake_session(mcp_upstream.url) as session:
            result = await session.call_tool("sleepy", {"seconds": 0.1, "tag": tag})
            assert text_of(result) == "slept 0.1 s"

    run_async(body)
    counts = httpx2.get(f"http://127.0.0.1:{mcp_upstream.port}/_executions", timeout=5).json()
    assert counts[tag] == {"started": 1, "finished": 1}
