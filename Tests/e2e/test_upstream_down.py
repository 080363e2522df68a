"""An upstream that is down gives a clean error: HTTP 200 with JSON-RPC -32603 for the request's id,
naming the upstream, quickly, in both eras."""

from __future__ import annotations

import time

import pytest

from helpers import (
    SEED_POLICY,
    expect_mcp_error,
    final_response,
    free_port,
    handshake_session,
    http_client,
    modern_client,
    post,
    run_async,
    tool_call,
)

# The connect timeout only matters if the port drops packets; a closed loopback port refuses at once.
ARGS = ["--upstream-connect-timeout", "2"]


def _down_upstream() -> tuple[str, str]:
    port = free_port()  # nothing listens there
    return f"http://127.0.0.1:{port}/mcp", f"127.0.0.1:{port}"


def test_raw_call_gets_internal_error_naming_upstream(toolgate):
    url, hostport = _down_upstream()
    tg = toolgate(url, SEED_POLICY, args=ARGS)
    with http_client() as http:
        started = time.monotonic()
        response = post(http, tg.url, tool_call(7, "imageBackgroundRemoval", {"image": "x.png"}))
        elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text
    answer = final_response(response)
    assert answer.get("id") == 7, answer
    assert answer["error"]["code"] == -32603, answer
    assert hostport in answer["error"]["message"], f"the message should name the upstream {hostport}: {answer}"
    assert elapsed < 5, f"took {elapsed:.1f} s"


@pytest.mark.parametrize("era", ["handshake", "per-request"])
def test_sdk_client_gets_internal_error_naming_upstream(toolgate, era):
    url, hostport = _down_upstream()
    tg = toolgate(url, SEED_POLICY, args=ARGS)

    async def body():
        # handshake era: initialize fails; per-request era: server/discover fails, the SDK falls back to
        # initialize, which fails too, and the client raises from its context entry.
        with expect_mcp_error() as info:
            cm = handshake_session(tg.url) if era == "handshake" else modern_client(tg.url)
            async with cm:
                pass
        assert info.value.code == -32603, (info.value.code, info.value.message)
        assert hostport in info.value.message, f"the message should name the upstream {hostport}: {info.value.message}"

    run_async(body, timeout=30)
    # toolgate itself keeps serving.
    with http_client() as http:
        assert http.get(f"{tg.base}/healthz").status_code == 200
