"""Issue 7, the request side: nothing gets past the policy by any route (DESIGN sections 2, 3, 5).

- Item 1: a `tools/call` without an id (a notification) is never forwarded: alone HTTP 400 / -32600, in a
  batch a -32600 element with `"id": null` in the merged answer.
- Item 2: `session` scope follows only session ids toolgate saw the upstream issue to that grant; a repeated
  `Mcp-Session-Id` is HTTP 400 / -32600; anything else falls back to the grant, and the denial says so.
- Item 9: the DNS-rebinding guard accepts loopback origins when bound to loopback (what the conformance suite's
  `dns-rebinding-protection` scenario sends), and still refuses a foreign Host and Origin.
- Item 11: PUT is 405 with a JSON-RPC body; an `--upstream-header` value with CR or LF refuses to start; HTTP/1.0
  gets a valid HTTP/1.0 answer or 505; the Host check reads the authority actually used and parses it strictly.

The upstream faults (items 7, 8, 10) are in test_upstream_faults.py, the refunds (item 3) in test_refunds.py.
"""

from __future__ import annotations

import json
import time
import uuid

import httpx2
import pytest

from helpers import (
    ACCEPT_BOTH,
    HANDSHAKE_VERSION,
    SEED_POLICY,
    assert_http_refusal,
    assert_rate_limited_denial,
    denial_of,
    final_response,
    handshake_session,
    http_client,
    modern_client,
    modern_headers,
    post,
    raw_exchange,
    raw_header,
    raw_post,
    raw_status,
    request,
    run_async,
    split_raw_response,
    sse_messages,
    tool_call,
)

HIDDEN_TOOL = "other_tool"  # kept out by the seed policy's `default: deny`


def notification_call(name: str, arguments: dict | None = None) -> dict:
    """A `tools/call` without an id: a JSON-RPC notification."""
    return {"jsonrpc": "2.0", "method": "tools/call", "params": {"name": name, "arguments": arguments or {}}}


def denial_or_none(answer: dict) -> dict | None:
    result = answer.get("result")
    if not isinstance(result, dict):
        return None
    return (result.get("_meta") or {}).get("toolgate/denial")


def forwarded_tool_calls(raw_upstream) -> list[dict]:
    return [m for m in raw_upstream.seen_messages() if m.get("method") == "tools/call"]


def raw_initialize(http, url: str, headers: dict[str, str] | None = None) -> dict[str, str]:
    """A handshake-era initialize and notifications/initialized by hand: the session's request headers."""
    params = {"protocolVersion": HANDSHAKE_VERSION, "capabilities": {},
              "clientInfo": {"name": "toolgate-e2e-raw", "version": "1"}}
    response = post(http, url, request(0, "initialize", params), headers)
    assert response.status_code == 200, response.text
    assert "result" in final_response(response), response.text
    session_id = response.headers.get("mcp-session-id")
    assert session_id, f"the upstream issued no session id: {response.headers}"
    session = {**(headers or {}), "Mcp-Session-Id": session_id, "MCP-Protocol-Version": HANDSHAKE_VERSION}
    done = post(http, url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, session)
    assert done.status_code in (200, 202), done.text
    return session


# --- item 1: tools/call notifications ------------------------------------------------------------------------


@pytest.mark.parametrize("tool", ["imageBackgroundRemoval", HIDDEN_TOOL], ids=["allowed-tool", "hidden-tool"])
@pytest.mark.parametrize("era", ["handshake", "per-request"])
def test_tools_call_notification_alone_is_refused(raw_upstream, toolgate, tool, era):
    tg = toolgate(raw_upstream.url, SEED_POLICY)
    message = notification_call(tool, {"image": "n.png"})
    headers = {}
    if era == "per-request":
        message["params"]["_meta"] = tool_call(0, tool, modern=True)["params"]["_meta"]
        headers = modern_headers("tools/call", tool)
    with http_client() as http:
        response = post(http, tg.url, message, headers)
    assert_http_refusal(response, 400, -32600)
    assert raw_upstream.seen() == [], "a tools/call notification must never reach the upstream"


@pytest.mark.parametrize("tool", ["imageBackgroundRemoval", HIDDEN_TOOL], ids=["allowed-tool", "hidden-tool"])
def test_tools_call_notification_in_batch_is_answered_not_forwarded(raw_upstream, toolgate, tool):
    tg = toolgate(raw_upstream.url, SEED_POLICY)
    batch = [notification_call(tool, {"image": "n.png"}), request(1, "ping")]
    with http_client() as http:
        response = post(http, tg.url, batch)
    assert response.status_code == 200, response.text
    answers = response.json()
    assert isinstance(answers, list), f"a batch is answered with one array: {answers!r}"
    errors = [a for a in answers if "error" in a]
    assert len(errors) == 1 and errors[0].get("id", "missing") is None, \
        f"expected one error element with id null for the tools/call notification: {answers!r}"
    assert errors[0]["error"]["code"] == -32600, answers
    pings = [a for a in answers if a.get("id") == 1]
    assert len(pings) == 1 and pings[0].get("result") == {}, f"the ping is forwarded and answered: {answers!r}"
    assert len(answers) == 2, answers
    assert forwarded_tool_calls(raw_upstream) == [], "the tools/call notification must not be forwarded"
    assert all('"tools/call"' not in r["body"] for r in raw_upstream.seen_posts()), raw_upstream.seen_posts()
    assert any(m.get("method") == "ping" for m in raw_upstream.seen_messages()), "the ping was forwarded"


def test_batch_of_only_tools_call_notifications_never_reaches_upstream(raw_upstream, toolgate):
    tg = toolgate(raw_upstream.url, SEED_POLICY)
    batch = [notification_call("imageBackgroundRemoval", {"image": "a"}), notification_call(HIDDEN_TOOL)]
    with http_client() as http:
        response = post(http, tg.url, batch)
    assert raw_upstream.seen() == [], "nothing in this batch may be forwarded"
    assert response.status_code == 200, response.text
    answers = response.json()
    assert isinstance(answers, list) and len(answers) == 2, answers
    assert all(a.get("id", "missing") is None and a["error"]["code"] == -32600 for a in answers), answers


# --- item 2: session scope -------------------------------------------------------------------------------------


SESSION_POLICY = {
    "version": "1",
    "default": "deny",
    "tools": {"imageBackgroundRemoval": {"limits": [
        {"counter": "ibr_session", "window": "minute", "max": 2, "scope": "session"}]}},
}


def _assert_session_denial(answer: dict, scope: str) -> None:
    denial = denial_or_none(answer)
    assert denial is not None, f"expected a rate_limited denial, got {answer!r}"
    assert_rate_limited_denial(denial, rule="imageBackgroundRemoval", counter="ibr_session", limit=2, scope=scope,
                               window="minute", window_seconds=60)


def _passed(answer: dict) -> bool:
    return "result" in answer and answer["result"].get("isError") is False


@pytest.mark.parametrize(
    "values", [("raw-upstream-session-1", "made-up-session"), ("raw-upstream-session-1", "raw-upstream-session-1")],
    ids=["different-values", "same-value"])
@pytest.mark.parametrize("method", ["tools/call", "ping", "DELETE"])
def test_repeated_session_header_is_refused(raw_upstream, toolgate, values, method):
    tg = toolgate(raw_upstream.url, SESSION_POLICY)
    with http_client() as http:
        raw_initialize(http, tg.url)
        raw_upstream.reset()
        headers = [("Accept", ACCEPT_BOTH), ("Content-Type", "application/json"),
                   ("MCP-Protocol-Version", HANDSHAKE_VERSION)] + [("Mcp-Session-Id", v) for v in values]
        if method == "DELETE":
            response = http.delete(tg.url, headers=headers)
        else:
            message = tool_call(1, "imageBackgroundRemoval", {"image": "d"}) if method == "tools/call" \
                else request(1, "ping")
            response = http.post(tg.url, content=json.dumps(message).encode(), headers=headers)
    assert_http_refusal(response, 400, -32600)
    assert raw_upstream.seen() == [], "a request with two session ids must not be forwarded"


@pytest.mark.parametrize("era", ["handshake", "per-request"])
def test_made_up_session_ids_fall_back_to_grant(raw_upstream, toolgate, era):
    """10 calls, each with a fresh session id the upstream never issued: the grant's 2 and no more."""
    tg = toolgate(raw_upstream.url, SESSION_POLICY)
    modern = era == "per-request"
    answers = []
    with http_client() as http:
        for i in range(10):
            headers = {"Mcp-Session-Id": uuid.uuid4().hex}
            headers.update(modern_headers("tools/call", "imageBackgroundRemoval") if modern
                           else {"MCP-Protocol-Version": HANDSHAKE_VERSION})
            response = post(http, tg.url, tool_call(i, "imageBackgroundRemoval", {"image": f"{i}"}, modern=modern),
                            headers)
            assert response.status_code == 200, response.text
            answers.append(final_response(response))
    passed = [a for a in answers if _passed(a)]
    assert len(passed) == 2, f"{len(passed)} of 10 calls with made-up session ids ran under a limit of 2: {answers!r}"
    assert [_passed(a) for a in answers[:2]] == [True, True], answers
    for answer in answers[2:]:
        _assert_session_denial(answer, "grant")
    assert len(forwarded_tool_calls(raw_upstream)) == 2


@pytest.mark.parametrize("mode", ["sse", "json"])
def test_session_scope_counts_per_issued_session(request, toolgate, mode):
    """Handshake era through the SDK: each session toolgate saw initialized gets its own 2."""
    upstream = request.getfixturevalue(f"mcp_upstream_{mode}")
    tg = toolgate(upstream.url, SESSION_POLICY)

    async def body():
        for n in range(2):
            async with handshake_session(tg.url) as session:
                for i in range(2):
                    result = await session.call_tool("imageBackgroundRemoval", {"image": f"s{n}-{i}"})
                    assert result.is_error is False, f"session {n + 1}, call {i + 1}: {result!r}"
                denied = await session.call_tool("imageBackgroundRemoval", {"image": f"s{n}-3"})
                assert denied.is_error is True, f"session {n + 1}'s 3rd call should be rate limited"
                assert_rate_limited_denial(denial_of(denied), rule="imageBackgroundRemoval", counter="ibr_session",
                                           limit=2, scope="session", window="minute", window_seconds=60)

    run_async(body)


@pytest.mark.parametrize("made_up_id", [False, True], ids=["no-session-id", "made-up-session-id"])
def test_session_scope_in_per_request_era_falls_back_to_grant(mcp_upstream_sse, toolgate, made_up_id):
    """`mcp.Client` (2026-07-28) has no session: the grant's counter applies, whatever Mcp-Session-Id it sends."""
    tg = toolgate(mcp_upstream_sse.url, SESSION_POLICY)

    def client():
        return modern_client(tg.url, {"Mcp-Session-Id": uuid.uuid4().hex} if made_up_id else None)

    async def body():
        async with client() as c:
            for i in range(2):
                result = await c.call_tool("imageBackgroundRemoval", {"image": f"m{i}"})
                assert result.is_error is False, f"call {i + 1}: {result!r}"
            denied = await c.call_tool("imageBackgroundRemoval", {"image": "m3"})
            assert denied.is_error is True, "the 3rd call should be rate limited"
            assert_rate_limited_denial(denial_of(denied), rule="imageBackgroundRemoval", counter="ibr_session",
                                       limit=2, scope="grant", window="minute", window_seconds=60)
        # A second client (another made-up id, or none again) is the same grant: still limited.
        async with client() as c:
            denied = await c.call_tool("imageBackgroundRemoval", {"image": "m4"})
            assert denied.is_error is True, "a new client of the same grant gets no fresh counter"
            assert_rate_limited_denial(denial_of(denied), rule="imageBackgroundRemoval", counter="ibr_session",
                                       limit=2, scope="grant", window="minute", window_seconds=60)

    run_async(body)


def test_session_id_replayed_by_another_grant_is_not_that_session(raw_upstream, toolgate):
    """A session id issued to grant A and replayed by grant B: B's calls count against B's grant, never against
    A's session counter."""
    alice, bob = "alice-token-" + uuid.uuid4().hex[:8], "bob-token-" + uuid.uuid4().hex[:8]
    grants = {"grants": [{"name": "alice", "tokenEnv": "TG_E2E_ALICE"}, {"name": "bob", "tokenEnv": "TG_E2E_BOB"}]}
    tg = toolgate(raw_upstream.url, SESSION_POLICY, grants=grants, env={"TG_E2E_ALICE": alice, "TG_E2E_BOB": bob})
    with http_client() as http:
        alice_session = raw_initialize(http, tg.url, {"Authorization": f"Bearer {alice}"})
        bob_replay = {**alice_session, "Authorization": f"Bearer {bob}"}

        def call(headers, mid):
            response = post(http, tg.url, tool_call(mid, "imageBackgroundRemoval", {"image": f"{mid}"}), headers)
            assert response.status_code == 200, response.text
            return final_response(response)

        bob_answers = [call(bob_replay, i) for i in range(1, 4)]
        assert [_passed(a) for a in bob_answers] == [True, True, False], bob_answers
        _assert_session_denial(bob_answers[2], "grant")

        alice_answers = [call(alice_session, i) for i in range(11, 14)]
        assert [_passed(a) for a in alice_answers[:2]] == [True, True], \
            f"grant B's replay of A's session id used up A's session counter: {alice_answers!r}"
        _assert_session_denial(alice_answers[2], "session")


# --- item 9: DNS-rebinding protection as the conformance suite checks it ----------------------------------------


INITIALIZE = request(1, "initialize", {"protocolVersion": HANDSHAKE_VERSION, "capabilities": {},
                                       "clientInfo": {"name": "conformance-like", "version": "1"}})


@pytest.mark.parametrize("host,origin", [
    ("127.0.0.1:{port}", "http://127.0.0.1:{port}"),
    ("127.0.0.1:{port}", "http://localhost:{port}"),
    ("localhost:{port}", "http://localhost:{port}"),
    ("[::1]:{port}", "http://[::1]:{port}"),
    ("127.0.0.1:{port}", "https://localhost:8443"),
], ids=["ipv4", "localhost-origin", "localhost", "ipv6", "https-other-port"])
def test_loopback_origin_accepted_when_bound_to_loopback(raw_upstream, toolgate, host, origin):
    tg = toolgate(raw_upstream.url, SEED_POLICY)
    with http_client() as http:
        response = post(http, tg.url, INITIALIZE,
                        {"Host": host.format(port=tg.port), "Origin": origin.format(port=tg.port)})
    assert 200 <= response.status_code < 300, f"HTTP {response.status_code}: {response.text!r}"
    assert "result" in final_response(response), response.text
    assert [m.get("method") for m in raw_upstream.seen_messages()] == ["initialize"]


@pytest.mark.parametrize("host,origin", [
    ("evil.example.com", "http://evil.example.com"),
    ("127.0.0.1:{port}", "http://evil.example.com"),
    ("127.0.0.1:{port}", "http://localhost.evil.example:{port}"),
    ("127.0.0.1:{port}", "http://127.0.0.1.evil.example:{port}"),
    ("127.0.0.1:{port}", "ftp://127.0.0.1:{port}"),
], ids=["evil-host-and-origin", "evil-origin", "localhost-prefixed-origin", "ip-prefixed-origin", "not-http-origin"])
def test_foreign_host_or_origin_refused(raw_upstream, toolgate, host, origin):
    tg = toolgate(raw_upstream.url, SEED_POLICY)
    with http_client() as http:
        response = post(http, tg.url, INITIALIZE,
                        {"Host": host.format(port=tg.port), "Origin": origin.format(port=tg.port)})
    assert_http_refusal(response, 403, -32600)
    assert raw_upstream.seen() == []


# --- item 11: smaller holes --------------------------------------------------------------------------------------


def test_put_is_405_with_jsonrpc_body(raw_upstream, toolgate):
    tg = toolgate(raw_upstream.url, SEED_POLICY)
    with http_client() as http:
        response = http.put(tg.url, content=json.dumps(request(1, "ping")).encode(),
                            headers={"Content-Type": "application/json", "Accept": ACCEPT_BOTH})
    assert response.status_code == 405, f"HTTP {response.status_code}: {response.text!r}"
    assert response.headers.get("content-type", "").startswith("application/json"), response.headers
    body = response.json()
    assert body.get("jsonrpc") == "2.0" and body.get("id", "missing") is None, body
    assert isinstance(body.get("error"), dict) and isinstance(body["error"].get("code"), int), body
    assert [r for r in raw_upstream.seen() if r["method"] == "PUT"] == []


@pytest.mark.parametrize("how,value", [
    ("env", "a\r\nInjected: 1"),
    ("env", "a\nInjected: 1"),
    ("literal", "a\r\nInjected: 1"),
], ids=["env-crlf", "env-lf", "literal-crlf"])
def test_upstream_header_with_line_break_refuses_to_start(raw_upstream, toolgate, how, value):
    if how == "env":
        args, env = ["--upstream-header", "X-Key: ${TG_E2E_BAD}"], {"TG_E2E_BAD": value}
    else:
        args, env = ["--upstream-header", f"X-Key: {value}"], {}
    tg = toolgate(raw_upstream.url, SEED_POLICY, args=args, env=env, wait=False)
    deadline = time.monotonic() + 10
    with http_client() as http:
        while (code := tg.proc.popen.poll()) is None and time.monotonic() < deadline:
            try:
                serving = http.get(f"{tg.base}/healthz", timeout=0.5).status_code == 200
            except httpx2.TransportError:
                serving = False
            if serving:
                ping = post(http, tg.url, request(1, "ping"))
                pytest.fail(f"toolgate started with a header value holding CR/LF (a ping got HTTP "
                            f"{ping.status_code}); it must refuse to start, naming --upstream-header")
            time.sleep(0.05)
    assert code is not None, "toolgate neither exited nor served within 10 s"
    assert code != 0, f"toolgate exited with {code}"
    assert "--upstream-header" in tg.log(), f"the error must name the flag:\n{tg.log()}"


def _message_body(data: bytes) -> list:
    """The JSON-RPC messages of a raw response (JSON or SSE), after de-chunking if needed."""
    _, headers, body = split_raw_response(data)
    content_type = (raw_header(headers, "content-type") or [""])[0].lower()
    text = body.decode("utf-8", "replace")
    if content_type.startswith("text/event-stream"):
        return sse_messages(text)
    return [json.loads(text)]


@pytest.mark.parametrize("tool", ["imageBackgroundRemoval", "sse_stream", HIDDEN_TOOL],
                         ids=["upstream-json", "upstream-sse", "toolgate-answer"])
def test_http10_request_gets_http10_answer_or_505(raw_upstream, toolgate, tool):
    policy = {"version": "1", "default": "deny", "tools": {"imageBackgroundRemoval": {}, "sse_stream": {}}}
    tg = toolgate(raw_upstream.url, policy)
    body = json.dumps(tool_call(7, tool, {"image": "h10"})).encode()
    data = raw_exchange(tg.port, raw_post("/mcp", body, [
        ("Host", f"127.0.0.1:{tg.port}"), ("Content-Type", "application/json"), ("Accept", ACCEPT_BOTH)],
        version="HTTP/1.0"), timeout=10)
    status = raw_status(data)
    if status == 505:
        return
    _, headers, _ = split_raw_response(data)
    assert not any("chunked" in v.lower() for v in raw_header(headers, "transfer-encoding")), \
        f"HTTP/1.0 cannot read a chunked body: {data[:600]!r}"
    assert status == 200, data[:600]
    answers = [m for m in _message_body(data) if isinstance(m, dict) and m.get("id") == 7]
    assert len(answers) == 1, f"no complete answer for id 7 in {data!r}"


@pytest.mark.parametrize("target", ["http://evil.example/mcp", "http://evil.example:{port}/mcp"])
def test_absolute_form_target_with_foreign_authority_refused(raw_upstream, toolgate, target):
    tg = toolgate(raw_upstream.url, SEED_POLICY)
    body = json.dumps(request(1, "tools/list")).encode()
    data = raw_exchange(tg.port, raw_post(target.format(port=tg.port), body, [
        ("Host", f"127.0.0.1:{tg.port}"), ("Content-Type", "application/json"), ("Accept", ACCEPT_BOTH),
        ("Connection", "close")]))
    assert raw_status(data) == 403, data[:600]
    assert raw_upstream.seen() == [], "the request named a foreign authority: it must not be forwarded"


@pytest.mark.parametrize("host", ["[::1]anything", "[::1]evil.example:{port}", "localhost:{port}@evil.example",
                                  "127.0.0.1:{port} evil.example"])
def test_malformed_host_refused(raw_upstream, toolgate, host):
    tg = toolgate(raw_upstream.url, SEED_POLICY)
    body = json.dumps(request(1, "tools/list")).encode()
    data = raw_exchange(tg.port, raw_post("/mcp", body, [
        ("Host", host.format(port=tg.port)), ("Content-Type", "application/json"), ("Accept", ACCEPT_BOTH),
        ("Connection", "close")]))
    assert raw_status(data) in (400, 403), data[:600]
    assert raw_upstream.seen() == []


@pytest.mark.parametrize("hosts", [[], ["127.0.0.1:{port}", "evil.example.com"], ["127.0.0.1:{port}", "localhost:{port}"]],
                         ids=["no-host", "two-hosts-one-foreign", "two-loopback-hosts"])
def test_missing_or_repeated_host_is_400(raw_upstream, toolgate, hosts):
    tg = toolgate(raw_upstream.url, SEED_POLICY)
    body = json.dumps(request(1, "tools/list")).encode()
    headers = [("Host", h.format(port=tg.port)) for h in hosts]
    data = raw_exchange(tg.port, raw_post("/mcp", body, headers + [
        ("Content-Type", "application/json"), ("Accept", ACCEPT_BOTH), ("Connection", "close")]))
    assert raw_status(data) == 400, data[:600]
    assert raw_upstream.seen() == []


def test_plain_raw_request_is_served(raw_upstream, toolgate):
    """Control for the raw-socket tests above: a well-formed request over the same path is answered."""
    tg = toolgate(raw_upstream.url, SEED_POLICY)
    body = json.dumps(request(1, "tools/list")).encode()
    data = raw_exchange(tg.port, raw_post("/mcp", body, [
        ("Host", f"127.0.0.1:{tg.port}"), ("Content-Type", "application/json"), ("Accept", ACCEPT_BOTH),
        ("Connection", "close")]))
    assert raw_status(data) == 200, data[:600]
    assert len(raw_upstream.seen_posts()) == 1
