"""JSON-RPC batches (JSON arrays, accepted in any era): each element is enforced on its own, denied
elements are answered by toolgate, the rest are forwarded, and the answers are merged into one array.

The SDK rejects batches, so these run against our own upstream.
"""

from __future__ import annotations

from helpers import final_response, http_client, post, request, tool_call

BATCH_POLICY = {
    "version": "1",
    "default": "deny",
    "tools": {
        "imageBackgroundRemoval": {"limits": [{"counter": "ibr", "window": "minute", "max": 2, "scope": "grant"}]},
        "echo": {},
    },
}


def _by_id(response) -> dict:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    answers = response.json()
    assert isinstance(answers, list), f"a batch is answered with one array: {answers!r}"
    ids = [a.get("id") for a in answers]
    assert len(ids) == len(set(ids)), f"duplicate ids in {answers!r}"
    return {a["id"]: a for a in answers}


def test_mixed_batch_enforced_per_element(raw_upstream, toolgate):
    tg = toolgate(raw_upstream.url, BATCH_POLICY)
    batch = [
        tool_call(1, "imageBackgroundRemoval", {"image": "one.png"}),
        tool_call(2, "other_tool", {}),
        tool_call(3, "echo", {"text": "hi"}),
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        request(4, "tools/list"),
        tool_call(5, "no_such_tool", {}),
    ]
    with http_client() as http:
        answers = _by_id(post(http, tg.url, batch))
    assert set(answers) == {1, 2, 3, 4, 5}, answers
    assert answers[1]["result"]["content"][0]["text"] == 'raw imageBackgroundRemoval: {"image": "one.png"}'
    assert answers[2]["error"] == {"code": -32602, "message": "Unknown tool: other_tool"} or (
        answers[2]["error"]["code"] == -32602 and answers[2]["error"]["message"] == "Unknown tool: other_tool")
    assert answers[3]["result"]["content"][0]["text"] == 'raw echo: {"text": "hi"}'
    assert sorted(t["name"] for t in answers[4]["result"]["tools"]) == ["echo", "imageBackgroundRemoval"], \
        "tools/list inside a batch is filtered too"
    assert answers[5]["error"]["code"] == -32602 and answers[5]["error"]["message"] == "Unknown tool: no_such_tool"

    forwarded = raw_upstream.seen_messages()
    forwarded_ids = sorted(m["id"] for m in forwarded if "id" in m)
    assert forwarded_ids == [1, 3, 4], f"only the allowed elements are forwarded: {forwarded!r}"
    assert any(m.get("method") == "notifications/initialized" for m in forwarded), "notifications pass through"
    names = [m["params"]["name"] for m in forwarded if m.get("method") == "tools/call"]
    assert "other_tool" not in names and "no_such_tool" not in names


def test_rate_limit_inside_one_batch(raw_upstream, toolgate):
    tg = toolgate(raw_upstream.url, BATCH_POLICY)
    batch = [tool_call(i, "imageBackgroundRemoval", {"image": f"{i}.png"}) for i in (1, 2, 3)]
    with http_client() as http:
        answers = _by_id(post(http, tg.url, batch))
    assert set(answers) == {1, 2, 3}
    allowed = [i for i, a in answers.items() if not a["result"].get("isError")]
    denied = [i for i, a in answers.items() if a["result"].get("isError")]
    assert len(allowed) == 2 and len(denied) == 1, answers
    result = answers[denied[0]]["result"]
    assert result["content"][0]["text"].startswith("Denied by policy: ")
    denial = result["_meta"]["toolgate/denial"]
    assert denial["reason"] == "rate_limited" and denial["counter"] == "ibr" and denial["limit"] == 2, denial
    assert denial["retryAfterSeconds"] >= 1
    forwarded_ids = sorted(m["id"] for m in raw_upstream.seen_messages() if "id" in m)
    assert forwarded_ids == sorted(allowed)


def test_fully_denied_batch_never_reaches_upstream(raw_upstream, toolgate):
    tg = toolgate(raw_upstream.url, BATCH_POLICY)
    batch = [tool_call("a", "other_tool", {}), tool_call("b", "delete_everything", {"really": True})]
    with http_client() as http:
        answers = _by_id(post(http, tg.url, batch))
    assert set(answers) == {"a", "b"}
    assert all(a["error"]["code"] == -32602 for a in answers.values()), answers
    assert raw_upstream.seen_posts() == []


def test_single_element_batch_is_answered_as_array(raw_upstream, toolgate):
    tg = toolgate(raw_upstream.url, BATCH_POLICY)
    with http_client() as http:
        answers = _by_id(post(http, tg.url, [tool_call(9, "echo", {"text": "solo"})]))
        single = post(http, tg.url, tool_call(10, "echo", {"text": "single"}))
    assert answers[9]["result"]["content"][0]["text"] == 'raw echo: {"text": "solo"}'
    assert isinstance(single.json(), dict), "a single message is answered with a single message"
    assert final_response(single)["id"] == 10
