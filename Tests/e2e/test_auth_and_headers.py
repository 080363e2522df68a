"""Bearer-token grants, and the headers toolgate sends upstream.

- With --grants, a missing or unknown token gets HTTP 401 with `WWW-Authenticate: Bearer` and a JSON-RPC
  error body (id null); a known token (by sha256 or from tokenEnv) passes, and limits count per grant.
- The agent's Authorization never reaches the upstream; --upstream-header values are added, with
  ${ENV} expanded; hop-by-hop headers and Accept-Encoding are not forwarded.
"""

from __future__ import annotations

import hashlib

import pytest

from helpers import (
    SEED_POLICY,
    assert_http_refusal,
    assert_rate_limited_denial,
    denial_of,
    expect_mcp_error,
    final_response,
    handshake_session,
    header_values,
    http_client,
    modern_client,
    post,
    request,
    run_async,
    text_of,
    tool_call,
)

CI_TOKEN = "ci-bot-token-5b1f0c"
ALICE_TOKEN = "alice-token-93e2aa"
GRANTS = {
    "grants": [
        {"name": "ci-bot", "sha256": hashlib.sha256(CI_TOKEN.encode()).hexdigest()},
        {"name": "alice", "tokenEnv": "ALICE_TOKEN"},
    ]
}
GRANTS_ENV = {"ALICE_TOKEN": ALICE_TOKEN}
UPSTREAM_KEY = "expanded-secret-42"
UPSTREAM_HEADER_ARGS = [
    "--upstream-header", "X-Upstream-Key: ${UPSTREAM_KEY}",
    "--upstream-header", "X-Combined: pre-${UPSTREAM_KEY}-post",
    "--upstream-header", "X-Static: plain value",
]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer not-a-known-token", f"Bearer {CI_TOKEN}x", f"Basic {CI_TOKEN}", "Bearer"],
    ids=["missing", "unknown", "near-miss", "not-bearer", "empty"],
)
def test_missing_or_unknown_token_gets_401(raw_upstream, toolgate, authorization):
    tg = toolgate(raw_upstream.url, SEED_POLICY, grants=GRANTS, env=GRANTS_ENV)
    headers = {"Authorization": authorization} if authorization is not None else {}
    with http_client() as http:
        response = post(http, tg.url, tool_call(1, "imageBackgroundRemoval", {"image": "a.png"}), headers)
    assert_http_refusal(response, 401, -32600)
    challenge = response.headers.get("www-authenticate", "")
    assert challenge.lower().startswith("bearer"), f"WWW-Authenticate: {challenge!r}"
    assert raw_upstream.seen() == [], "a refused request must not reach the upstream"


def test_sdk_client_without_token_is_refused(raw_upstream, toolgate):
    """The SDK surfaces the 401's JSON-RPC error body as an MCPError."""
    tg = toolgate(raw_upstream.url, SEED_POLICY, grants=GRANTS, env=GRANTS_ENV)

    async def body():
        with expect_mcp_error() as info:
            async with handshake_session(tg.url):
                pass
        assert info.value.code == -32600, (info.value.code, info.value.message)

    run_async(body)
    assert raw_upstream.seen() == []


def test_tokens_pass_and_are_never_forwarded(raw_upstream, toolgate):
    tg = toolgate(
        raw_upstream.url, SEED_POLICY, grants=GRANTS, args=UPSTREAM_HEADER_ARGS,
        env={**GRANTS_ENV, "UPSTREAM_KEY": UPSTREAM_KEY},
    )

    async def body():
        async with handshake_session(tg.url, headers=_bearer(CI_TOKEN)) as session:
            tools = await session.list_tools()
            assert [t.name for t in tools.tools] == ["imageBackgroundRemoval"]
            result = await session.call_tool("imageBackgroundRemoval", {"image": "ci.png"})
            assert result.is_error is False and text_of(result).startswith("raw imageBackgroundRemoval")
        async with modern_client(tg.url, headers=_bearer(ALICE_TOKEN)) as client:
            result = await client.call_tool("imageBackgroundRemoval", {"image": "alice.png"})
            assert result.is_error is False and text_of(result).startswith("raw imageBackgroundRemoval")

    run_async(body)
    records = raw_upstream.seen()
    posts = [r for r in records if r["method"] == "POST"]
    assert len(posts) >= 4, records
    for record in records:
        assert header_values(record, "authorization") == [], f"Authorization reached the upstream: {record}"
        flat = repr(record)
        assert CI_TOKEN not in flat and ALICE_TOKEN not in flat, f"a token reached the upstream: {record}"
    for record in posts:
        assert header_values(record, "x-upstream-key") == [UPSTREAM_KEY], record["headers"]
        assert header_values(record, "x-combined") == [f"pre-{UPSTREAM_KEY}-post"], record["headers"]
        assert header_values(record, "x-static") == ["plain value"], record["headers"]


def test_authorization_not_forwarded_without_grants(raw_upstream, toolgate):
    """Without --grants no token is needed, and one that is sent still stays with toolgate."""
    tg = toolgate(raw_upstream.url, SEED_POLICY)
    with http_client() as http:
        response = post(http, tg.url, tool_call(1, "imageBackgroundRemoval", {"image": "a.png"}),
                        {"Authorization": "Bearer agent-secret"})
    assert response.status_code == 200, response.text
    assert "result" in final_response(response)
    [record] = raw_upstream.seen_posts()
    assert header_values(record, "authorization") == []
    assert "agent-secret" not in repr(record)


def test_hop_by_hop_and_accept_encoding_not_forwarded(raw_upstream, toolgate):
    tg = toolgate(raw_upstream.url, SEED_POLICY)
    headers = {
        "Proxy-Authorization": "Basic cHJveHk6c2VjcmV0",
        "Keep-Alive": "timeout=5",
        "Accept-Encoding": "gzip, deflate, br",
    }
    with http_client() as http:
        response = post(http, tg.url, request(1, "tools/list"), headers)
    assert response.status_code == 200, response.text
    [record] = raw_upstream.seen_posts()
    assert header_values(record, "proxy-authorization") == [], record["headers"]
    assert header_values(record, "keep-alive") == [], record["headers"]
    encodings = header_values(record, "accept-encoding")
    assert encodings in ([], ["identity"]), f"the upstream was asked for a compressed body: {encodings}"
    # The answer is still filterable: only the allowed tool is listed.
    assert [t["name"] for t in final_response(response)["result"]["tools"]] == ["imageBackgroundRemoval"]


def test_limits_count_per_grant(raw_upstream, toolgate):
    policy = {
        "version": "1",
        "default": "deny",
        "tools": {"imageBackgroundRemoval": {"limits": [
            {"counter": "ibr_per_grant", "window": "minute", "max": 2, "scope": "grant"}]}},
    }
    tg = toolgate(raw_upstream.url, policy, grants=GRANTS, env=GRANTS_ENV)

    async def body():
        async with handshake_session(tg.url, headers=_bearer(CI_TOKEN)) as session:
            for _ in range(2):
                assert (await session.call_tool("imageBackgroundRemoval", {"image": "c.png"})).is_error is False
            denied = await session.call_tool("imageBackgroundRemoval", {"image": "c.png"})
            assert denied.is_error is True
            assert_rate_limited_denial(denial_of(denied), rule="imageBackgroundRemoval", counter="ibr_per_grant",
                                       limit=2, scope="grant", window="minute", window_seconds=60)
        async with handshake_session(tg.url, headers=_bearer(ALICE_TOKEN)) as session:
            result = await session.call_tool("imageBackgroundRemoval", {"image": "a.png"})
            assert result.is_error is False, "alice's grant has its own counter"

    run_async(body)


def test_repeatable_flag_from_environment(raw_upstream, toolgate):
    """TOOLGATE_UPSTREAM_HEADER holds one value per line."""
    tg = toolgate(raw_upstream.url, SEED_POLICY,
                  env={"TOOLGATE_UPSTREAM_HEADER": "X-From-Env-A: one\nX-From-Env-B: two"})
    with http_client() as http:
        assert post(http, tg.url, request(1, "tools/list")).status_code == 200
    [record] = raw_upstream.seen_posts()
    assert header_values(record, "x-from-env-a") == ["one"], record["headers"]
    assert header_values(record, "x-from-env-b") == ["two"], record["headers"]


def test_command_line_flag_wins_over_environment(raw_upstream, toolgate):
    tg = toolgate(raw_upstream.url, SEED_POLICY, args=["--upstream-header", "X-From-Cli: cli"],
                  env={"TOOLGATE_UPSTREAM_HEADER": "X-From-Env: env"})
    with http_client() as http:
        assert post(http, tg.url, request(1, "tools/list")).status_code == 200
    [record] = raw_upstream.seen_posts()
    assert header_values(record, "x-from-cli") == ["cli"], record["headers"]
    assert header_values(record, "x-from-env") == [], record["headers"]
