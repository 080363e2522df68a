"""Issue 7 item 3: refunds (DESIGN section 7, "Refunds (reserve, then refund)").

A call is refunded only when the upstream demonstrably did not run it: the request was never delivered, or the
upstream refused it up front with HTTP 4xx and a request-validation error (-32700, -32600, -32601, -32602,
-32020). Never on 5xx, timeouts or broken streams, and never when the agent ends its own session mid-call.

Every test allows one call (per day or hour) and checks whether a second one passes, on the embedded store and
on Redis (TOOLGATE_TEST_REDIS_PORT, or a redis-server of our own), each Redis run under its own key prefix.
"""

from __future__ import annotations

import threading
import time
import uuid

import httpx2
import pytest

from helpers import (
    HANDSHAKE_VERSION,
    final_response,
    free_port,
    http_client,
    modern_headers,
    post,
    request,
    tool_call,
)

RAW_POLICY = {
    "version": "1",
    "default": "deny",
    "tools": {"echo": {"limits": [{"counter": "echo_day", "window": "day", "max": 1}]}},
}
SLEEPY_POLICY = {
    "version": "1",
    "default": "deny",
    "tools": {"sleepy": {"limits": [{"counter": "sleepy_hour", "window": "hour", "max": 1}]}},
}


# --- stores ---------------------------------------------------------------------------------------------------


# --- helpers ----------------------------------------------------------------------------------------------------


def denial_reason(answer: dict) -> str | None:
    result = answer.get("result")
    if not isinstance(result, dict):
        return None
    denial = (result.get("_meta") or {}).get("toolgate/denial")
    return denial.get("reason") if isinstance(denial, dict) else None


def passed(answer: dict) -> bool:
    return isinstance(answer.get("result"), dict) and answer["result"].get("isError") is False


def call_echo(http, tg, mid) -> dict:
    response = post(http, tg.url, tool_call(mid, "echo", {"text": f"call {mid}"}))
    assert response.status_code == 200, f"HTTP {response.status_code}: {response.text!r}"
    return final_response(response)


def forwarded_calls(raw_upstream) -> int:
    return len([m for m in raw_upstream.seen_messages() if m.get("method") == "tools/call"])


def executions(upstream, tag: str) -> dict[str, int]:
    response = httpx2.get(f"http://127.0.0.1:{upstream.port}/_executions", timeout=5.0)
    response.raise_for_status()
    return response.json().get(tag, {"started": 0, "finished": 0})


def wait_for_executions(upstream, tag: str, started: int, timeout: float = 5.0) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    counts = executions(upstream, tag)
    while counts["started"] < started and time.monotonic() < deadline:
        time.sleep(0.1)
        counts = executions(upstream, tag)
    return counts


def sleepy_call(mid, seconds: float, tag: str) -> dict:
    return tool_call(mid, "sleepy", {"seconds": seconds, "tag": tag}, modern=True)


# --- never refunded: the upstream may have run the call -------------------------------------------------------


@pytest.mark.parametrize("connection", ["new", "reused"])
def test_headers_timeout_is_not_refunded(mcp_upstream_json, toolgate, store_args, connection):
    """--upstream-headers-timeout 1 and a tool that takes 2 s: the call times out at toolgate, but the upstream
    ran it, so it stays charged, whether it went out on a new upstream connection or on one kept alive from an
    earlier request (which has no connect time of its own)."""
    tag = uuid.uuid4().hex
    tg = toolgate(mcp_upstream_json.url, SLEEPY_POLICY, args=store_args + ["--upstream-headers-timeout", "1"])
    headers = modern_headers("tools/call", "sleepy")
    with http_client() as http:
        if connection == "reused":
            listed = post(http, tg.url, request(0, "tools/list", modern=True), modern_headers("tools/list"))
            assert listed.status_code == 200, listed.text
        first = post(http, tg.url, sleepy_call(1, 2, tag), headers)
        answer = final_response(first)
        assert "error" in answer or answer.get("result", {}).get("isError") is True, \
            f"the timed-out call should get an error: {answer!r}"
        assert wait_for_executions(mcp_upstream_json, tag, 1)["started"] == 1
        second = final_response(post(http, tg.url, sleepy_call(2, 0, tag), headers))
    assert denial_reason(second) == "rate_limited", \
        f"the timed-out call was refunded although the upstream ran it: {second!r}"
    time.sleep(0.5)
    assert executions(mcp_upstream_json, tag)["started"] == 1, "one execution under a limit of one"


@pytest.mark.parametrize("status,code", [(500, -32603), (500, -32602), (503, -32600), (400, -32603), (200, -32602)],
                         ids=["500-internal", "500-validation-code", "503", "400-not-validation", "200-error"])
def test_failure_after_delivery_is_not_refunded(raw_upstream, toolgate, store_args, status, code):
    """5xx (whatever its JSON-RPC code), a 4xx whose code is not a request-validation code, or an HTTP 200
    error: the upstream may have run the call, so it stays charged."""
    tg = toolgate(raw_upstream.url, RAW_POLICY, args=store_args)
    raw_upstream.set_mode("tools/call", "status", times=1, status=status,
                          error={"code": code, "message": "failed after running"})
    with http_client() as http:
        post(http, tg.url, tool_call(1, "echo", {"text": "one"}))
        assert forwarded_calls(raw_upstream) == 1
        second = call_echo(http, tg, 2)
    assert denial_reason(second) == "rate_limited", f"HTTP {status} / {code} was refunded: {second!r}"
    assert forwarded_calls(raw_upstream) == 1


@pytest.mark.parametrize("mode,params", [("sse_drop", {"end": "close"}), ("sse_drop", {"end": "reset"}),
                                         ("json_truncated", {})],
                         ids=["sse-ends-early", "sse-reset", "json-truncated"])
def test_broken_stream_is_not_refunded(raw_upstream, toolgate, store_args, mode, params):
    tg = toolgate(raw_upstream.url, RAW_POLICY, args=store_args)
    raw_upstream.set_mode("tools/call", mode, times=1, **params)
    with http_client() as http:
        try:
            post(http, tg.url, tool_call(1, "echo", {"text": "one"}))
        except httpx2.TransportError:
            pass  # an aborted body is a fine answer to a broken upstream body
        assert forwarded_calls(raw_upstream) == 1
        second = call_echo(http, tg, 2)
    assert denial_reason(second) == "rate_limited", f"a broken upstream stream was refunded: {second!r}"


def _raw_session(http, url: str) -> dict[str, str]:
    params = {"protocolVersion": HANDSHAKE_VERSION, "capabilities": {},
              "clientInfo": {"name": "toolgate-e2e-raw", "version": "1"}}
    response = post(http, url, request(0, "initialize", params))
    assert response.status_code == 200 and "result" in final_response(response), response.text
    session = {"Mcp-Session-Id": response.headers["mcp-session-id"], "MCP-Protocol-Version": HANDSHAKE_VERSION}
    done = post(http, url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, session)
    assert done.status_code in (200, 202), done.text
    return session


@pytest.mark.parametrize("mode", ["json", "sse"])
def test_session_deleted_mid_call_is_not_refunded(request, toolgate, store_args, mode):
    """The agent DELETEs its own session while the tool runs; the SDK server answers the call with HTTP 500
    (JSON mode) or ends its stream. The call stays charged: a new session's call is rate limited."""
    upstream = request.getfixturevalue(f"mcp_upstream_{mode}")
    tag = uuid.uuid4().hex
    tg = toolgate(upstream.url, SLEEPY_POLICY, args=store_args)
    outcome: dict[str, object] = {}
    with http_client() as http:
        session = _raw_session(http, tg.url)

        def slow_call() -> None:
            try:
                with http_client() as other:
                    response = post(other, tg.url, tool_call(1, "sleepy", {"seconds": 2, "tag": tag}), session)
                    outcome["status"], outcome["text"] = response.status_code, response.text
            except httpx2.TransportError as e:
                outcome["error"] = repr(e)

        worker = threading.Thread(target=slow_call, daemon=True)
        worker.start()
        assert wait_for_executions(upstream, tag, 1)["started"] == 1, "the tool did not start"
        deleted = http.delete(tg.url, headers=session)
        assert deleted.status_code in (200, 202, 204), deleted.text
        worker.join(timeout=15)
        assert not worker.is_alive(), "the call did not finish after the session was deleted"

        fresh = _raw_session(http, tg.url)
        second = final_response(post(http, tg.url, tool_call(2, "sleepy", {"seconds": 0, "tag": tag}), fresh))
    assert denial_reason(second) == "rate_limited", \
        f"deleting the session mid-call got the call refunded (first call: {outcome}): {second!r}"
    assert executions(upstream, tag)["started"] == 1


# --- refunded: the upstream demonstrably did not run the call -------------------------------------------------


@pytest.mark.parametrize("code,null_id", [(-32602, False), (-32600, False), (-32601, False), (-32020, False),
                                          (-32700, True), (-32600, True)],
                         ids=["32602", "32600", "32601", "32020", "32700-null-id", "32600-null-id"])
def test_upfront_validation_refusal_is_refunded(raw_upstream, toolgate, store_args, code, null_id):
    """HTTP 400 with a request-validation error (for the request's id, or `"id": null` as a server answers a
    request it could not read): the upstream refused before running, so the retry passes."""
    tg = toolgate(raw_upstream.url, RAW_POLICY, args=store_args)
    raw_upstream.set_mode("tools/call", "status", times=1, status=400,
                          error={"code": code, "message": "refused up front"}, **({"answer_id": None} if null_id else {}))
    with http_client() as http:
        first = post(http, tg.url, tool_call(1, "echo", {"text": "one"}))
        assert "error" in final_response(first), f"the refusal reaches the agent: {first.text!r}"
        assert forwarded_calls(raw_upstream) == 1
        second = call_echo(http, tg, 2)
    assert passed(second), f"a call refused up front with HTTP 400 / {code} was charged: {second!r}"
    assert forwarded_calls(raw_upstream) == 2


def test_unreachable_upstream_is_refunded(toolgate, store_args):
    """Never delivered (connection refused): each call answers -32603 and costs nothing."""
    tg = toolgate(f"http://127.0.0.1:{free_port()}/mcp", RAW_POLICY,
                  args=store_args + ["--upstream-connect-timeout", "2"])
    with http_client() as http:
        answers = [call_echo(http, tg, i) for i in (1, 2, 3)]
    for answer in answers:
        assert answer.get("error", {}).get("code") == -32603, f"expected -32603 (upstream down), got {answer!r}"
