"""The seed policy through toolgate with the SDK's default `mcp.Client(url)`, which negotiates 2026-07-28.

Runs against the SDK upstream in both response modes, then checks on our own upstream that the
per-request era's headers reach the upstream unchanged.
"""

from __future__ import annotations

import json

import pytest
from mcp.shared.exceptions import MCPError

from helpers import (
    MODERN_VERSION,
    SEED_POLICY,
    assert_rate_limited_denial,
    denial_of,
    final_response,
    header_values,
    http_client,
    modern_client,
    modern_headers,
    post,
    run_async,
    text_of,
    tool_call,
)


def test_seed_policy_per_request_era(mcp_upstream, toolgate):
    tg = toolgate(mcp_upstream.url, SEED_POLICY)

    async def body():
        async with modern_client(tg.url) as client:
            assert client.protocol_version == MODERN_VERSION
            tools = await client.list_tools()
            assert [t.name for t in tools.tools] == ["imageBackgroundRemoval"]

            for i in range(10):
                result = await client.call_tool("imageBackgroundRemoval", {"image": f"img-{i}.png"})
                assert result.is_error is False, f"call {i + 1} of 10 was refused: {result!r}"
                assert text_of(result) == f"background removed from img-{i}.png"

            # The SDK validates the result against the 2026-07-28 schema: a denial without
            # "resultType": "complete" would raise here instead of returning.
            result = await client.call_tool("imageBackgroundRemoval", {"image": "img-10.png"})
            assert result.is_error is True, f"the 11th call should be rate limited: {result!r}"
            assert result.result_type == "complete"
            assert text_of(result).startswith("Denied by policy: "), text_of(result)
            assert_rate_limited_denial(
                denial_of(result), rule="imageBackgroundRemoval", counter="imagebackgroundremoval_rate",
                limit=10, scope="grant", window="minute", window_seconds=60,
            )

            for name in ["echo", "other_tool", "no_such_tool"]:
                with pytest.raises(MCPError) as info:
                    await client.call_tool(name, {"text": "x"})
                assert info.value.code == -32602, (name, info.value.code, info.value.message)
                assert info.value.message == f"Unknown tool: {name}"

    run_async(body)


def test_session_scope_falls_back_to_grant_without_session(mcp_upstream_sse, toolgate):
    """No session in the 2026-07-28 era: `scope: session` counts per grant, and the denial says so."""
    policy = {
        "version": "1",
        "default": "deny",
        "tools": {"imageBackgroundRemoval": {"limits": [
            {"counter": "ibr_session", "window": "minute", "max": 1, "scope": "session"}]}},
    }
    tg = toolgate(mcp_upstream_sse.url, policy)

    async def body():
        async with modern_client(tg.url) as client:
            assert (await client.call_tool("imageBackgroundRemoval", {"image": "1"})).is_error is False
        async with modern_client(tg.url) as client:
            denied = await client.call_tool("imageBackgroundRemoval", {"image": "2"})
            assert denied.is_error is True, "a second client of the same grant shares the fallback counter"
            assert_rate_limited_denial(denial_of(denied), rule="imageBackgroundRemoval", counter="ibr_session",
                                       limit=1, scope="grant", window="minute", window_seconds=60)

    run_async(body)


def test_per_request_headers_reach_upstream_unchanged(raw_upstream, toolgate):
    """`mcp.Client` through toolgate: server/discover first, then Mcp-* headers forwarded as sent."""
    tg = toolgate(raw_upstream.url, SEED_POLICY)

    async def body():
        async with modern_client(tg.url) as client:
            assert client.protocol_version == MODERN_VERSION
            tools = await client.list_tools()
            assert [t.name for t in tools.tools] == ["imageBackgroundRemoval"]
            result = await client.call_tool("imageBackgroundRemoval", {"image": "a.png"})
            assert result.is_error is False
            assert text_of(result) == 'raw imageBackgroundRemoval: {"image": "a.png"}'

    run_async(body)
    posts = raw_upstream.seen_posts()
    methods = [json.loads(r["body"])["method"] for r in posts]
    assert methods == ["server/discover", "tools/list", "tools/call"], methods
    for record, method in zip(posts, methods):
        assert header_values(record, "mcp-protocol-version") == [MODERN_VERSION], record["headers"]
        assert header_values(record, "mcp-method") == [method], record["headers"]
    assert header_values(posts[2], "mcp-name") == ["imageBackgroundRemoval"]


def test_mcp_param_headers_forwarded_unchanged(raw_upstream, toolgate):
    """Every Mcp-* header, Mcp-Param-* included, is forwarded as the client sent it."""
    tg = toolgate(raw_upstream.url, SEED_POLICY)
    headers = modern_headers("tools/call", "imageBackgroundRemoval")
    headers["Mcp-Param-Region"] = "eu-west"
    headers["Mcp-Param-Label"] = "=?base64?w6lsw6h2ZQ==?="
    with http_client() as http:
        response = post(http, tg.url, tool_call(5, "imageBackgroundRemoval", {"image": "p.png"}, modern=True), headers)
    assert response.status_code == 200, response.text
    answer = final_response(response)
    assert answer["id"] == 5 and "result" in answer, answer
    [record] = raw_upstream.seen_posts()
    assert header_values(record, "mcp-param-region") == ["eu-west"]
    assert header_values(record, "mcp-param-label") == ["=?base64?w6lsw6h2ZQ==?="]
    assert header_values(record, "mcp-name") == ["imageBackgroundRemoval"]
    assert header_values(record, "mcp-method") == ["tools/call"]
    assert header_values(record, "mcp-protocol-version") == [MODERN_VERSION]
