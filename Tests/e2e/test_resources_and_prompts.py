"""Issue 11, item 2: the policy's `resources` and `prompts` sections (DESIGN section 4), through the official SDK client
against the official SDK server (which serves `test://static/readme`, `secret://keys`, the template
`test://items/{item_id}`, and the prompts `summarize` and `internal_debug`).

What the policy keeps out leaves `resources/list`, `resources/templates/list` and `prompts/list`, and reading or getting
it answers as the protocol answers an unknown one; without the sections everything passes as before.
"""

from __future__ import annotations

import pytest
from mcp.shared.exceptions import MCPError

from helpers import handshake_session, http_client, post, run_async

POLICY = {
    "version": "1", "default": "deny", "tools": {"echo": {}},
    "resources": {"default": "deny", "allow": ["test://static/*"], "hide": ["secret://*"]},
    "prompts": {"default": "allow", "deny": ["internal_*"]},
}


def test_lists_leave_out_and_reads_refuse_what_the_policy_keeps_out(mcp_upstream, toolgate):
    tg = toolgate(mcp_upstream.url, POLICY)

    async def body():
        async with handshake_session(tg.url) as session:
            resources = [str(r.uri) for r in (await session.list_resources()).resources]
            templates = [t.uri_template for t in (await session.list_resource_templates()).resource_templates]
            prompts = [p.name for p in (await session.list_prompts()).prompts]
            readme = await session.read_resource("test://static/readme")
            summary = await session.get_prompt("summarize", {"text": "x"})
            with pytest.raises(MCPError) as secret:
                await session.read_resource("secret://keys")
            with pytest.raises(MCPError) as item:
                await session.read_resource("test://items/7")
            with pytest.raises(MCPError) as internal:
                await session.get_prompt("internal_debug")
            return resources, templates, prompts, readme, summary, secret.value, item.value, internal.value

    resources, templates, prompts, readme, summary, secret, item, internal = run_async(body)
    assert resources == ["test://static/readme"], resources
    assert templates == [], templates
    assert prompts == ["summarize"], prompts
    assert readme.contents[0].text == "the public readme"
    assert "Summarize: x" in str(summary.messages[0].content)
    assert secret.error.code == -32002 and "not found" in secret.error.message.lower(), secret.error
    assert item.error.code == -32002, item.error
    assert internal.error.code == -32602 and "Unknown prompt" in internal.error.message, internal.error
    assert "sk-live" not in str(secret.error)


def test_without_the_sections_resources_and_prompts_pass_as_before(mcp_upstream_json, toolgate):
    tg = toolgate(mcp_upstream_json.url, {"version": "1", "default": "deny", "tools": {}})

    async def body():
        async with handshake_session(tg.url) as session:
            resources = sorted(str(r.uri) for r in (await session.list_resources()).resources)
            secret = await session.read_resource("secret://keys")
            prompts = sorted(p.name for p in (await session.list_prompts()).prompts)
            return resources, secret, prompts

    resources, secret, prompts = run_async(body)
    assert resources == ["secret://keys", "test://static/readme"], resources
    assert secret.contents[0].text == "sk-live-do-not-leak"
    assert prompts == ["internal_debug", "summarize"], prompts


def test_a_batch_is_judged_element_by_element(raw_upstream, toolgate):
    """Refused elements are answered by toolgate; a batch of only refused ones never reaches the upstream."""
    tg = toolgate(raw_upstream.url, POLICY)
    with http_client() as http:
        answer = post(http, tg.url, [
            {"jsonrpc": "2.0", "id": 1, "method": "resources/read", "params": {"uri": "secret://keys"}},
            {"jsonrpc": "2.0", "id": 2, "method": "prompts/get", "params": {"name": "internal_debug"}},
            {"jsonrpc": "2.0", "id": 3, "method": "resources/read", "params": {"uri": 42}},
        ])
    assert answer.status_code == 200, answer.text
    by_id = {m["id"]: m for m in answer.json()}
    assert by_id[1]["error"] == {"code": -32002, "message": "Resource not found", "data": {"uri": "secret://keys"}}
    assert by_id[2]["error"]["code"] == -32602 and "Unknown prompt" in by_id[2]["error"]["message"]
    assert by_id[3]["error"]["code"] == -32602
    assert raw_upstream.seen_posts() == [], "a refused element reached the upstream"
