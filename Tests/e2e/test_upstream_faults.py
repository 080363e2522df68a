"""Issue 7, the upstream side: a faulty upstream or a stalled client never opens a hole (DESIGN sections 2, 3).

- Item 7: `tools/list` filtering fails closed: an answer that does not parse becomes a -32603 error, an answer
  whose id comes back in another type is filtered all the same, a tools/list answer replayed on the GET stream
  is filtered, an SSE event whose data is not JSON is dropped.
- Item 8: an upstream stream that ends before the answer gives the client one -32603 error event for its id;
  a truncated JSON body is aborted (a transport error), never relayed as if complete.
- Item 10: `--client-idle-timeout` closes a connection that sends nothing (a slow loris) but never one with a
  response streaming to it; a transfer paused because the client stopped reading counts toward
  `--upstream-idle-timeout`, and the upstream connection is freed.

All against raw_upstream.py, switched into its misbehaviour modes with `raw_upstream.set_mode(...)`.
"""

from __future__ import annotations

import json
import socket
import time

import httpx2
import pytest

from helpers import (
    ACCEPT_BOTH,
    HANDSHAKE_VERSION,
    SEED_POLICY,
    final_response,
    http_client,
    jsonrpc_messages,
    post,
    raw_post,
    wait_for,
    request,
    sse_events,
    tool_call,
)

HIDDEN_NAMES = ("echo", "other_tool")  # raw_upstream's tools that the seed policy hides
VISIBLE = ["imageBackgroundRemoval"]


def assert_nothing_hidden(text: str) -> None:
    for name in HIDDEN_NAMES:
        assert name not in text, f"the hidden tool {name!r} reached the client: {text!r}"


def listed_tools(messages: list) -> list[list[str]]:
    """The tool names of every message carrying `result.tools`."""
    out = []
    for m in messages:
        for one in (m if isinstance(m, list) else [m]):
            if isinstance(one, dict) and isinstance(one.get("result"), dict) and "tools" in one["result"]:
                out.append([t.get("name") for t in one["result"]["tools"]])
    return out


# --- item 7: tools/list filtering fails closed ----------------------------------------------------------------


@pytest.mark.parametrize("variant", ["trailing-garbage", "truncated"])
def test_unparseable_tools_list_answer_becomes_internal_error(raw_upstream, toolgate, variant):
    tg = toolgate(raw_upstream.url, SEED_POLICY)
    raw_upstream.set_mode("tools/list", "invalid_json", times=1, variant=variant)
    with http_client() as http:
        response = post(http, tg.url, request(5, "tools/list"))
        assert_nothing_hidden(response.text)
        assert [m.get("method") for m in raw_upstream.seen_messages()] == ["tools/list"], "the upstream was asked"
        answer = final_response(response)
        assert answer.get("id") == 5, answer
        assert answer.get("error", {}).get("code") == -32603, f"expected a -32603 error for id 5: {answer!r}"
        # The upstream answers normally again: the same toolgate lists (filtered) as before.
        again = post(http, tg.url, request(6, "tools/list"))
    assert listed_tools(jsonrpc_messages(again)) == [VISIBLE], again.text


@pytest.mark.parametrize("sent,answered", [(5, "5"), ("5", 5), (5, 999), (5, None)],
                         ids=["number-as-string", "string-as-number", "other-id", "null-id"])
def test_tools_list_answer_with_other_id_is_filtered(raw_upstream, toolgate, sent, answered):
    tg = toolgate(raw_upstream.url, SEED_POLICY)
    raw_upstream.set_mode("tools/list", "id", times=1, id=answered)
    with http_client() as http:
        response = post(http, tg.url, request(sent, "tools/list"))
    assert [m.get("method") for m in raw_upstream.seen_messages()] == ["tools/list"], "the upstream was asked"
    assert_nothing_hidden(response.text)
    if response.status_code == 200 and response.content:
        for names in listed_tools(jsonrpc_messages(response)):
            assert names == VISIBLE, response.text


def test_tools_list_replayed_on_get_stream_is_filtered(raw_upstream, toolgate):
    tg = toolgate(raw_upstream.url, SEED_POLICY)
    raw_upstream.set_mode("GET", "get_replay", times=1)
    headers = {"Accept": "text/event-stream", "Mcp-Session-Id": "raw-upstream-session-1",
               "MCP-Protocol-Version": HANDSHAKE_VERSION}
    with http_client() as http:
        response = http.get(tg.url, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream"), response.headers
    assert_nothing_hidden(response.text)
    payloads = [json.loads(e["data"]) for e in sse_events(response.text) if "data" in e]
    notes = [p["params"]["data"] for p in payloads if isinstance(p, dict) and p.get("method") == "notifications/message"]
    assert notes == ["get stream open", "get stream end"], f"the GET stream is relayed: {response.text!r}"
    for names in listed_tools(payloads):
        assert names == VISIBLE, response.text


@pytest.mark.parametrize("method", ["tools/list", "tools/call"])
def test_sse_event_that_is_not_json_is_dropped(raw_upstream, toolgate, method):
    tg = toolgate(raw_upstream.url, SEED_POLICY)
    raw_upstream.set_mode(method, "sse_bad_event", times=1)
    message = request(6, "tools/list") if method == "tools/list" else tool_call(6, "imageBackgroundRemoval", {"image": "b"})
    with http_client() as http:
        response = post(http, tg.url, message)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream"), response.headers
    assert_nothing_hidden(response.text)
    data = [e["data"] for e in sse_events(response.text) if "data" in e]
    payloads = []
    for d in data:
        try:
            payloads.append(json.loads(d))
        except ValueError:
            pytest.fail(f"an event whose data is not JSON reached the client: {d!r}")
    assert len(payloads) == 2, f"expected the progress event and the answer: {response.text!r}"
    assert payloads[0].get("method") == "notifications/progress", payloads
    assert payloads[1].get("id") == 6 and "result" in payloads[1], payloads
    if method == "tools/list":
        assert listed_tools(payloads) == [VISIBLE], payloads


# --- item 8: a broken upstream answer is visible --------------------------------------------------------------


@pytest.mark.parametrize("end", ["close", "chunked", "reset"])
def test_sse_stream_ending_before_the_answer_gets_error_event(raw_upstream, toolgate, end):
    tg = toolgate(raw_upstream.url, SEED_POLICY)
    raw_upstream.set_mode("tools/call", "sse_drop", times=1, end=end)
    with http_client() as http:
        try:
            response = post(http, tg.url, tool_call(31, "imageBackgroundRemoval", {"image": "drop"}))
        except httpx2.TransportError as e:
            pytest.fail(f"the client's event stream broke ({e!r}) instead of ending with an error event")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream"), response.headers
    payloads = [json.loads(e["data"]) for e in sse_events(response.text) if "data" in e]
    assert len(payloads) == 2, f"expected the progress event, then one error event: {response.text!r}"
    assert payloads[0].get("method") == "notifications/progress", payloads
    error = payloads[1]
    assert error.get("id") == 31 and error.get("error", {}).get("code") == -32603, error
    assert "upstream stream ended before the answer" in error["error"].get("message", ""), error


def test_truncated_json_body_is_aborted(raw_upstream, toolgate):
    tg = toolgate(raw_upstream.url, SEED_POLICY)
    raw_upstream.set_mode("tools/call", "json_truncated", times=1)
    with http_client() as http:
        try:
            response = post(http, tg.url, tool_call(32, "imageBackgroundRemoval", {"image": "cut"}),
                            accept="application/json, text/event-stream")
        except httpx2.TransportError:
            pass  # aborted: what DESIGN asks for
        else:
            pytest.fail(f"a truncated upstream body reached the client as a complete one: HTTP "
                        f"{response.status_code} {response.headers.get('content-type')} {response.text!r}")
        assert len([m for m in raw_upstream.seen_messages() if m.get("method") == "tools/call"]) == 1
        # toolgate keeps serving.
        again = post(http, tg.url, tool_call(33, "imageBackgroundRemoval", {"image": "ok"}))
    assert "result" in final_response(again), again.text


# --- item 10: pinned resources --------------------------------------------------------------------------------


@pytest.mark.parametrize("sent", [b"", b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n",
                                  b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{\"jsonrpc\""],
                         ids=["nothing", "half-head", "half-body"])
def test_client_idle_timeout_closes_silent_connection(raw_upstream, toolgate, sent):
    tg = toolgate(raw_upstream.url, SEED_POLICY, args=["--client-idle-timeout", "1"])
    with socket.create_connection(("127.0.0.1", tg.port), timeout=5) as s:
        if sent:
            s.sendall(sent)
        started = time.monotonic()
        s.settimeout(8)
        try:
            while s.recv(4096):  # a 408 answer first is fine; the close is what counts
                pass
        except TimeoutError:
            pytest.fail("the connection was still open 8 s after the client went silent (--client-idle-timeout 1)")
        except ConnectionResetError:
            pass
        elapsed = time.monotonic() - started
    assert elapsed <= 4.5, f"closed only after {elapsed:.1f} s"
    assert raw_upstream.seen() == []


def test_client_idle_timeout_spares_streaming_response(raw_upstream, toolgate):
    """Events 2 s apart for 4 s, with --client-idle-timeout 1: the client sends nothing meanwhile, but a
    response is streaming to it, so the whole answer arrives."""
    tg = toolgate(raw_upstream.url, SEED_POLICY, args=["--client-idle-timeout", "1"])
    raw_upstream.set_mode("tools/call", "sse_slow", times=1, events=2, interval=2)
    with http_client() as http:
        response = post(http, tg.url, tool_call(41, "imageBackgroundRemoval", {"image": "slow"}))
    assert response.status_code == 200, response.text
    payloads = [json.loads(e["data"]) for e in sse_events(response.text) if "data" in e]
    assert [p.get("method") for p in payloads[:2]] == ["notifications/progress"] * 2, response.text
    assert len(payloads) == 3 and payloads[2].get("id") == 41 and "result" in payloads[2], response.text


def test_paused_upstream_transfer_counts_toward_idle_timeout(raw_upstream, toolgate):
    """The client reads the response head and then stops reading: toolgate pauses the upstream transfer, and
    the pause counts toward --upstream-idle-timeout, so the upstream connection is closed (its writes fail)."""
    policy = {"version": "1", "default": "deny", "tools": {"imageBackgroundRemoval": {}}}
    tg = toolgate(raw_upstream.url, policy, args=["--upstream-idle-timeout", "2"])
    raw_upstream.set_mode("tools/call", "sse_endless", times=1, event_bytes=65536)
    body = json.dumps(tool_call(42, "imageBackgroundRemoval", {"image": "endless"})).encode()
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(10)
        s.connect(("127.0.0.1", tg.port))
        s.sendall(raw_post("/mcp", body, [("Host", f"127.0.0.1:{tg.port}"), ("Content-Type", "application/json"),
                                          ("Accept", ACCEPT_BOTH)]))
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(256)
            assert chunk, f"toolgate closed before the response head: {head!r}"
            head += chunk
        assert head.startswith(b"HTTP/1.1 200"), head[:300]
        # Now stop reading. The upstream's writes must start failing within the idle timeout plus slack.
        deadline = time.monotonic() + 20
        ended = []
        while time.monotonic() < deadline and not ended:
            ended = [e for e in raw_upstream.events() if e.get("kind") == "endless_stream_ended"]
            time.sleep(0.25)
        assert ended, ("20 s after the client stopped reading, toolgate still holds the upstream connection "
                       "(the paused transfer does not count toward --upstream-idle-timeout)")
        event = ended[0]
        assert event["reason"] == "write_failed", event
        assert event["seconds"] <= 15, event
    finally:
        s.close()


@pytest.mark.parametrize("limit, waits", [("1", True), (None, False)])
def test_upstream_max_connections_bounds_what_is_open_upstream(raw_upstream, toolgate, limit, waits):
    """With --upstream-max-connections 1, a second call waits while a first one's stream holds the only upstream
    connection, and goes through once it ends; by default (256) it goes at once."""
    import threading

    tg = toolgate(raw_upstream.url, SEED_POLICY, args=["--upstream-max-connections", limit] if limit else [])
    raw_upstream.set_mode("tools/call", "sse_slow", times=1, events=2, interval=1.5)
    results: dict[str, httpx2.Response] = {}

    def call(key: str, call_id: int) -> None:
        with http_client() as http:
            results[key] = post(http, tg.url, tool_call(call_id, "imageBackgroundRemoval", {"image": key}))

    slow = threading.Thread(target=call, args=("slow", 51))
    slow.start()
    assert wait_for(lambda: len(raw_upstream.seen_posts()) == 1, 5), raw_upstream.seen_posts()
    quick = threading.Thread(target=call, args=("quick", 52))
    quick.start()
    def reached() -> list:
        return [json.loads(p["body"]).get("id") for p in raw_upstream.seen_posts()]

    if waits:
        time.sleep(1.0)  # the slow stream has about 2 s left: the quick call must still be waiting inside toolgate
        assert 52 not in reached(), reached()
    else:
        assert wait_for(lambda: 52 in reached(), 1.5), reached()
    slow.join(15)
    quick.join(15)
    assert results["slow"].status_code == 200 and results["quick"].status_code == 200
    assert '"id":52' in results["quick"].text.replace(" ", ""), results["quick"].text
