"""Issue 11, item 2: the policy's `resources` and `prompts` sections (DESIGN section 4), through the official SDK client
against the official SDK server (which serves `test://static/readme`, `secret://keys`, the template
`test://items/{item_id}`, and the prompts `summarize` and `internal_debug`).

What the policy keeps out leaves `resources/list`, `resources/templates/list` and `prompts/list`, and reading or getting
it answers as the protocol answers an unknown one; without the sections everything passes as before.

Issue 22, finding 5: every request naming what the policy keeps out is refused (reads, subscriptions, gets and
completions), a hidden template hides every URI it produces, and the refusal is the upstream's own answer for a name
it does not have (toolgate asks it about a random stand-in and puts the name back), so an agent cannot tell hidden
from absent; the upstream never sees the hidden name. These run against resource_upstream.py (the SDK's MCPServer with
templates, completions and subscriptions), which records every request it gets.
"""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest
from mcp.shared.exceptions import MCPError
from mcp_types import PromptReference, ResourceTemplateReference

from conftest import E2E_DIR, PYTHON, ProcessGroup, _wait_or_fail, tcp_accepts
from helpers import (
    final_response,
    free_port,
    handshake_session,
    http_client,
    modern_headers,
    post,
    request,
    run_async,
    wait_for,
)

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
    # The upstream's own answers for something it does not have (the SDK's), with the agent's names in them.
    assert secret.error.code == -32602 and secret.error.message == "Unknown resource: secret://keys", secret.error
    assert item.error.code == -32602 and item.error.message == "Unknown resource: test://items/7", item.error
    assert internal.error.message == "Unknown prompt: internal_debug", internal.error
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
    """Refused elements go upstream about random stand-ins, never their names, and their answers are the upstream's
    own (this upstream has no resources: "Method not found"), exactly as for elements that name nothing hidden."""
    tg = toolgate(raw_upstream.url, POLICY)
    with http_client() as http:
        answer = post(http, tg.url, [
            {"jsonrpc": "2.0", "id": 1, "method": "resources/read", "params": {"uri": "secret://keys"}},
            {"jsonrpc": "2.0", "id": 2, "method": "prompts/get", "params": {"name": "internal_debug"}},
            {"jsonrpc": "2.0", "id": 3, "method": "resources/read", "params": {"uri": 42}},
            {"jsonrpc": "2.0", "id": 4, "method": "prompts/get", "params": {"name": "summarize"}},
        ])
    assert answer.status_code == 200, answer.text
    by_id = {m["id"]: m for m in answer.json()}
    assert by_id[1]["error"] == {"code": -32601, "message": "Method not found: resources/read"}, by_id[1]
    assert by_id[2]["error"] == by_id[4]["error"] == {"code": -32601, "message": "Method not found: prompts/get"}, by_id
    assert by_id[3]["error"]["code"] == -32602
    seen = json.dumps(raw_upstream.seen_posts())
    assert "secret://keys" not in seen and "internal_debug" not in seen, seen
    assert "summarize" in seen, "the allowed element did not reach the upstream"


# ---------------------------------------------------------------------------------------------------------
# Issue 22, finding 5: hidden is indistinguishable from absent, for every request that names it.

HIDING = {
    "version": "1", "default": "deny", "tools": {},
    "resources": {"default": "allow", "hide": ["secret://{name}/token"]},
    "prompts": {"default": "allow", "hide": ["internal_*"]},
}


class ResourceUpstream:
    def __init__(self, port: int) -> None:
        self.port = port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def seen(self) -> str:
        """Everything that reached the upstream's /mcp, as one string (headers and bodies)."""
        return httpx2.get(f"http://127.0.0.1:{self.port}/_seen", timeout=10).text


@pytest.fixture(params=["sse", "json"])
def resource_upstream(request: pytest.FixtureRequest, procs: ProcessGroup) -> ResourceUpstream:
    port = free_port()
    argv = [PYTHON, str(E2E_DIR / "resource_upstream.py"), "--port", str(port)]
    if request.param == "json":
        argv.append("--json-response")
    proc = procs.start(f"resource-upstream-{request.param}", argv)
    _wait_or_fail(proc, lambda: tcp_accepts(port), f"listening on 127.0.0.1:{port}")
    return ResourceUpstream(port)


def same_modulo_name(a: Any, a_name: str, b: Any, b_name: str) -> bool:
    """Whether two answers are the same JSON once each one's name is replaced by a placeholder."""
    def shape(value: Any, name: str) -> str:
        return json.dumps(value, sort_keys=True).replace(json.dumps(name)[1:-1], "<NAME>")
    return shape(a, a_name) == shape(b, b_name)


def modern_answer(http: httpx2.Client, url: str, method: str, params: dict[str, Any], name: str | None) -> dict[str, Any]:
    """One 2026-07-28 request (no session; `Mcp-Name` as the SDK client sends it), its JSON-RPC answer, with the
    HTTP status under "_status" (the SDK server answers some refusals with 400)."""
    response = post(http, url, request(9, method, params, modern=True), modern_headers(method, name))
    return {**final_response(response), "_status": response.status_code}


def test_a_hidden_template_hides_the_uris_it_produces_and_answers_as_absent(resource_upstream, toolgate, tmp_path):
    """`resources/read secret://alice/token` under a hidden `secret://{name}/token`: the upstream's "unknown
    resource" answer, identical (modulo the URI) to its answer for a URI it really does not have. The decision is
    audited and counted."""
    audit = tmp_path / "audit.log"
    tg = toolgate(resource_upstream.url, HIDING, args=["--audit-log", str(audit)])
    hidden, absent = "secret://alice/token", "secret://nobody/missing"
    with http_client() as http:
        via_toolgate = modern_answer(http, tg.url, "resources/read", {"uri": hidden}, hidden)
        absent_via_toolgate = modern_answer(http, tg.url, "resources/read", {"uri": absent}, absent)
        absent_direct = modern_answer(http, resource_upstream.url, "resources/read", {"uri": absent}, absent)
        readme = modern_answer(http, tg.url, "resources/read", {"uri": "test://static/readme"}, "test://static/readme")
    assert "sk-live" not in json.dumps(via_toolgate), via_toolgate
    assert via_toolgate["error"]["code"] == -32602, via_toolgate
    assert via_toolgate["error"]["message"] == f"Unknown resource: {hidden}", via_toolgate
    assert same_modulo_name(via_toolgate, hidden, absent_direct, absent), (via_toolgate, absent_direct)
    assert same_modulo_name(via_toolgate, hidden, absent_via_toolgate, absent), (via_toolgate, absent_via_toolgate)
    assert readme["result"]["contents"][0]["text"] == "the public readme", readme
    assert via_toolgate["_status"] == absent_direct["_status"] == 400, (via_toolgate, absent_direct)
    seen = resource_upstream.seen()
    assert "alice" not in seen, "the hidden URI reached the upstream"

    def lines() -> list[dict[str, Any]]:
        return [json.loads(line) for line in audit.read_text().splitlines()] if audit.exists() else []

    assert wait_for(lambda: len([line for line in lines() if line.get("kind") == "resource"]) >= 3), lines()
    decisions = {(line["name"], line["decision"]) for line in lines() if line.get("kind") == "resource"}
    assert (hidden, "denied") in decisions and ("test://static/readme", "allowed") in decisions, decisions
    with http_client() as http:
        metrics = http.get(f"{tg.base}/metrics").text
    assert 'toolgate_access_decisions_total{kind="resource",decision="denied"} 1' in metrics, metrics


def test_a_hidden_prompt_answers_prompts_get_as_an_absent_one(resource_upstream, toolgate):
    """In both protocol eras (the SDK server answers an unknown prompt differently in each)."""
    tg = toolgate(resource_upstream.url, HIDING)
    with http_client() as http:
        modern_hidden = modern_answer(http, tg.url, "prompts/get", {"name": "internal_debug", "arguments": {"topic": "x"}},
                                      "internal_debug")
        modern_absent = modern_answer(http, resource_upstream.url, "prompts/get",
                                      {"name": "no_such", "arguments": {"topic": "x"}}, "no_such")
    assert "error" in modern_hidden, modern_hidden
    assert same_modulo_name(modern_hidden, "internal_debug", modern_absent, "no_such"), (modern_hidden, modern_absent)

    async def errors(url: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with handshake_session(url) as session:
            for name in ("internal_debug", "no_such"):
                try:
                    await session.get_prompt(name, {"topic": "x"})
                    out[name] = None
                except MCPError as e:
                    out[name] = {"code": e.error.code, "message": e.error.message, "data": e.error.data}
        return out

    via = run_async(lambda: errors(tg.url))
    seen = resource_upstream.seen()
    direct = run_async(lambda: errors(resource_upstream.url))
    assert via["internal_debug"] is not None and via["internal_debug"]["message"] == "Unknown prompt: internal_debug", via
    assert same_modulo_name(via["internal_debug"], "internal_debug", direct["no_such"], "no_such"), (via, direct)
    assert direct["internal_debug"] is None, "the upstream itself has internal_debug: the test shows nothing"
    assert "internal_debug" not in seen, "the hidden name reached the upstream"


def test_completion_of_a_hidden_prompt_or_template_answers_as_for_an_absent_one(resource_upstream, toolgate):
    """`completion/complete` with `ref/prompt` naming a hidden prompt, or `ref/resource` naming a hidden template, is
    refused with the upstream's own "unknown" answer; allowed ones complete."""
    tg = toolgate(resource_upstream.url, HIDING)

    async def errors(url: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with handshake_session(url) as session:
            for key, ref in [
                ("hidden_prompt", PromptReference(name="internal_debug")),
                ("absent_prompt", PromptReference(name="no_such_prompt")),
                ("hidden_template", ResourceTemplateReference(uri="secret://{name}/token")),
                ("absent_template", ResourceTemplateReference(uri="secret://{name}/missing")),
            ]:
                try:
                    await session.complete(ref, {"name": "topic", "value": "a"})
                    out[key] = None
                except MCPError as e:
                    out[key] = {"code": e.error.code, "message": e.error.message, "data": e.error.data}
            out["allowed"] = (await session.complete(PromptReference(name="summarize"), {"name": "text", "value": "a"})
                              ).completion.values
            out["allowed_template"] = (await session.complete(ResourceTemplateReference(uri="test://items/{item_id}"),
                                                              {"name": "item_id", "value": "a"})).completion.values
        return out

    via = run_async(lambda: errors(tg.url))
    seen = resource_upstream.seen()
    direct = run_async(lambda: errors(resource_upstream.url))
    assert via["hidden_prompt"] == {"code": -32602, "message": "Unknown prompt: internal_debug", "data": None}, via
    assert same_modulo_name(via["hidden_prompt"], "internal_debug", direct["absent_prompt"], "no_such_prompt"), via
    assert same_modulo_name(via["hidden_template"], "secret://{name}/token",
                            direct["absent_template"], "secret://{name}/missing"), (via, direct)
    assert via["hidden_template"]["code"] == -32602, via
    assert via["allowed"] == ["a-summarize-1", "a-summarize-2"], via
    assert via["allowed_template"] == ["aalice", "abob"], via
    assert "internal_debug" not in seen and "/token" not in seen, "a hidden name reached the upstream"


def test_subscribing_to_a_hidden_uri_never_reaches_the_upstream_and_answers_as_absent(resource_upstream, toolgate):
    tg = toolgate(resource_upstream.url, HIDING)

    async def answers(url: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with handshake_session(url) as session:
            for key, call, uri in [
                ("hidden_subscribe", session.subscribe_resource, "secret://alice/token"),
                ("absent_subscribe", session.subscribe_resource, "secret://nobody/missing"),
                ("hidden_unsubscribe", session.unsubscribe_resource, "secret://alice/token"),
                ("absent_unsubscribe", session.unsubscribe_resource, "secret://nobody/missing"),
            ]:
                try:
                    await call(uri)
                    out[key] = "ok"
                except MCPError as e:
                    out[key] = {"code": e.error.code, "message": e.error.message, "data": e.error.data}
            await session.subscribe_resource("test://items/7")
            await session.unsubscribe_resource("test://items/7")
        return out

    via = run_async(lambda: answers(tg.url))
    seen = resource_upstream.seen()
    direct = run_async(lambda: answers(resource_upstream.url))
    hidden, absent = "secret://alice/token", "secret://nobody/missing"
    assert via["hidden_subscribe"] == {"code": -32602, "message": f"Unknown resource: {hidden}", "data": {"uri": hidden}}, via
    for verb in ("subscribe", "unsubscribe"):
        assert same_modulo_name(via[f"hidden_{verb}"], hidden, direct[f"absent_{verb}"], absent), (verb, via, direct)
        assert same_modulo_name(via[f"hidden_{verb}"], hidden, via[f"absent_{verb}"], absent), (verb, via)
    assert "alice" not in seen, "the hidden URI reached the upstream"
    assert "test://items/7" in seen


def test_under_shadow_nothing_is_refused(resource_upstream, toolgate):
    tg = toolgate(resource_upstream.url, HIDING, args=["--shadow"])
    with http_client() as http:
        read = modern_answer(http, tg.url, "resources/read", {"uri": "secret://alice/token"}, "secret://alice/token")
    assert read["result"]["contents"][0]["text"] == "sk-live-token-of-alice", read
    assert "shadow" in tg.log(), "the would-be refusal was not logged"


def test_an_mcp_name_header_naming_a_hidden_uri_never_reaches_the_upstream(resource_upstream, toolgate):
    """The per-request era repeats the name in `Mcp-Name`: a header naming a hidden URI (the body naming another) is
    replaced too, and the upstream refuses the mismatch exactly as for a header naming an absent URI."""
    tg = toolgate(resource_upstream.url, HIDING)
    with http_client() as http:
        hidden = post(http, tg.url, request(9, "resources/read", {"uri": "test://static/readme"}, modern=True),
                      modern_headers("resources/read", "secret://alice/token"))
        absent = post(http, tg.url, request(9, "resources/read", {"uri": "test://static/readme"}, modern=True),
                      modern_headers("resources/read", "secret://nobody/missing"))
    assert (hidden.status_code, final_response(hidden)) == (absent.status_code, final_response(absent)), (
        hidden.text, absent.text)
    assert "error" in final_response(hidden), hidden.text
    assert "alice" not in resource_upstream.seen(), "the hidden URI reached the upstream in a header"
