"""The seed policy through toolgate with the SDK's handshake-era `ClientSession` (initialize, Mcp-Session-Id).

Runs against the SDK upstream in both response modes (SSE and JSON).
"""

from __future__ import annotations

import pytest
from mcp.shared.exceptions import MCPError

from helpers import (
    SEED_POLICY,
    assert_rate_limited_denial,
    denial_of,
    handshake_session,
    header_values,
    http_client,
    run_async,
    text_of,
)


def test_seed_policy_handshake_era(mcp_upstream, toolgate):
    tg = toolgate(mcp_upstream.url, SEED_POLICY)

    async def body():
        async with handshake_session(tg.url) as session:
            tools = await session.list_tools()
            assert [t.name for t in tools.tools] == ["imageBackgroundRemoval"]

            for i in range(10):
                result = await session.call_tool("imageBackgroundRemoval", {"image": f"img-{i}.png"})
                assert result.is_error is False, f"call {i + 1} of 10 was refused: {result!r}"
                assert text_of(result) == f"background removed from img-{i}.png"

            result = await session.call_tool("imageBackgroundRemoval", {"image": "img-10.png"})
            assert result.is_error is True, f"the 11th call should be rate limited: {result!r}"
            assert text_of(result).startswith("Denied by policy: "), text_of(result)
            assert_rate_limited_denial(
                denial_of(result), rule="imageBackgroundRemoval", counter="imagebackgroundremoval_rate",
                limit=10, scope="grant", window="minute", window_seconds=60,
            )

            for name in ["echo", "other_tool", "slow_progress", "no_such_tool"]:
                with pytest.raises(MCPError) as info:
                    await session.call_tool(name, {"text": "x"})
                assert info.value.code == -32602, (name, info.value.code, info.value.message)
                assert info.value.message == f"Unknown tool: {name}"

    run_async(body)


def test_session_passthrough_and_denials_do_not_reach_upstream(raw_upstream, toolgate):
    """Mcp-Session-Id and MCP-Protocol-Version pass through; a hidden tool's call never reaches the upstream."""
    tg = toolgate(raw_upstream.url, SEED_POLICY)

    async def body():
        async with handshake_session(tg.url) as session:
            result = await session.call_tool("imageBackgroundRemoval", {"image": "x.png"})
            assert text_of(result) == 'raw imageBackgroundRemoval: {"image": "x.png"}'
            with pytest.raises(MCPError) as info:
                await session.call_tool("other_tool", {})
            assert info.value.code == -32602

    run_async(body)
    messages = raw_upstream.seen_messages()
    methods = [m.get("method") for m in messages]
    assert methods[:2] == ["initialize", "notifications/initialized"], methods
    calls = [m for m in messages if m.get("method") == "tools/call"]
    assert [c["params"]["name"] for c in calls] == ["imageBackgroundRemoval"]
    call_record = next(r for r in raw_upstream.seen_posts() if '"tools/call"' in r["body"])
    headers = {k.lower(): v for k, v in call_record["headers"]}
    assert headers.get("mcp-session-id") == "raw-upstream-session-1"
    assert headers.get("mcp-protocol-version") == "2025-11-25"
    deletes = [r for r in raw_upstream.seen() if r["method"] == "DELETE"]
    assert deletes, "the client's DELETE (session end) passes through"
    assert header_values(deletes[-1], "mcp-session-id") == ["raw-upstream-session-1"]


def test_get_stream_request_passes_through(raw_upstream, toolgate):
    """GET /mcp reaches the upstream with Mcp-Session-Id, MCP-Protocol-Version, Last-Event-ID and Accept;
    the upstream's answer (405 here: no server stream) comes back."""
    tg = toolgate(raw_upstream.url, SEED_POLICY)
    headers = {
        "Accept": "text/event-stream",
        "Mcp-Session-Id": "raw-upstream-session-1",
        "MCP-Protocol-Version": "2025-11-25",
        "Last-Event-ID": "ev-2",
    }
    with http_client() as http:
        response = http.get(tg.url, headers=headers)
    assert response.status_code == 405, response.text
    [record] = [r for r in raw_upstream.seen() if r["method"] == "GET"]
    assert header_values(record, "accept") == ["text/event-stream"]
    assert header_values(record, "mcp-session-id") == ["raw-upstream-session-1"]
    assert header_values(record, "mcp-protocol-version") == ["2025-11-25"]
    assert header_values(record, "last-event-id") == ["ev-2"]


SESSION_SCOPE_POLICY = {
    "version": "1",
    "default": "deny",
    "tools": {"imageBackgroundRemoval": {"limits": [
        {"counter": "ibr_session", "window": "minute", "max": 1, "scope": "session"}]}},
}


def test_session_scope_counts_per_session(mcp_upstream_sse, toolgate):
    """`scope: session` counts per Mcp-Session-Id in the handshake era, and the denial names that scope."""
    tg = toolgate(mcp_upstream_sse.url, SESSION_SCOPE_POLICY)

    async def body():
        async with handshake_session(tg.url) as first:
            assert (await first.call_tool("imageBackgroundRemoval", {"image": "1"})).is_error is False
            denied = await first.call_tool("imageBackgroundRemoval", {"image": "2"})
            assert denied.is_error is True
            assert_rate_limited_denial(denial_of(denied), rule="imageBackgroundRemoval", counter="ibr_session",
                                       limit=1, scope="session", window="minute", window_seconds=60)
        async with handshake_session(tg.url) as second:
            result = await second.call_tool("imageBackgroundRemoval", {"image": "3"})
            assert result.is_error is False, "a new session has its own counter"

    run_async(body)
