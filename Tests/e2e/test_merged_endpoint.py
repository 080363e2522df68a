"""Issue 26: `/mcp` with several servers is one MCP server holding all of them (DESIGN.md section 10).

Three real servers on the official SDK: alpha (Streamable HTTP, JSON answers), beta (Streamable HTTP, event
streams) and files (stdio), each started with a resource of its own (`tagged://NAME/about`). The SDK's own clients,
in both eras and on both stores, see one server: tools and prompts as NAME__tool, each server's section deciding its
part of every list; calls, prompts and resources reach their server; one counter spans two servers; an elicitation
raised by one server mid-call is answered by the client; progress and cancellation of one server's call while
another's runs; one server killed mid-session while the others keep answering.
"""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp
import pytest
from mcp.types import ElicitResult

from conftest import E2E_DIR, _start_mcp_upstream
from helpers import (
    ACCEPT_BOTH,
    HANDSHAKE_VERSION,
    assert_rate_limited_denial,
    denial_of,
    expect_mcp_error,
    handshake_session,
    modern_client,
    readyz,
    run_async,
    text_of,
    wait_for,
)

SHARED = {"counter": "image_jobs", "window": "minute", "max": 3, "scope": "global"}
POLICY: dict[str, Any] = {
    "version": "1",
    "default": "deny",
    "servers": {
        "alpha": {"default": "deny", "tools": {
            "echo": {}, "ask": {}, "slow_progress": {}, "sleepy": {}, "imageBackgroundRemoval": {"limits": [SHARED]}},
            "prompts": {"default": "allow", "deny": ["internal_*"]}},
        "beta": {"default": "allow", "hide": ["other_tool"], "tools": {
            "imageBackgroundRemoval": {"limits": [SHARED]},
            "wizard": {"limits": [{"counter": "wizard_calls", "window": "minute", "max": 1, "scope": "grant"}]}}},
        "files": {"default": "deny", "tools": {"echo": {}, "ask": {}, "sleepy": {}, "executions": {}, "notify_later": {},
                                                "transfer": {"action": "deny", "reason": "no transfers from files"}},
                  "resources": {"default": "allow", "hide": ["secret://*"]}},
    },
}
STDIO_SERVER = [sys.executable, str(E2E_DIR / "upstream_mcp_server.py"), "--stdio", "--tag", "files"]


def servers_file(tmp_path: Path, alpha: str, beta: str) -> Path:
    path = tmp_path / "servers.json"
    path.write_text(json.dumps({"mcpServers": {
        "alpha": {"url": alpha},
        "beta": {"url": beta},
        "files": {"command": STDIO_SERVER[0], "args": STDIO_SERVER[1:]},
    }}))
    return path


@pytest.fixture
def merged(toolgate, procs, tmp_path, store_args):
    alpha = _start_mcp_upstream(procs, "json", tag="alpha")
    # beta lists its tools 3 at a time: the merged list spans pages, each holding what the servers still have.
    beta = _start_mcp_upstream(procs, "sse", tag="beta", tools_page_size=3)
    tg = toolgate(None, POLICY, args=["--servers", str(servers_file(tmp_path, alpha.url, beta.url)), *store_args])
    tg.alpha, tg.beta = alpha, beta
    return tg


def expected_tools() -> set[str]:
    beta = {"echo", "transfer", "imageBackgroundRemoval", "slow_progress", "sleepy", "ask", "wizard"}
    return ({f"alpha__{t}" for t in ("echo", "ask", "slow_progress", "sleepy", "imageBackgroundRemoval")}
            | {f"files__{t}" for t in ("echo", "ask", "sleepy", "executions", "notify_later", "transfer")}
            | {f"beta__{t}" for t in beta})


async def all_tools(session: Any, pages: list[list[str]] | None = None) -> list[str]:
    """Every page, following nextCursor (the merged endpoint's own cursors); `pages` gets each page's names."""
    names: list[str] = []
    cursor = None
    for _ in range(30):
        if not cursor:
            page = await session.list_tools()
        elif isinstance(session, mcp.ClientSession):
            from mcp_types import PaginatedRequestParams

            page = await session.list_tools(params=PaginatedRequestParams(cursor=cursor))
        else:
            page = await session.list_tools(cursor=cursor)
        names += [t.name for t in page.tools]
        if pages is not None:
            pages.append([t.name for t in page.tools])
        cursor = page.next_cursor
        if not cursor:
            return names
    raise AssertionError("the merged list never ended")


# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("era", ["handshake", "modern"])
def test_one_endpoint_holds_every_server(merged, era):
    tg = merged

    async def body() -> None:
        opener = handshake_session if era == "handshake" else modern_client
        async with opener(tg.url) as client:
            pages: list[list[str]] = []
            tools = await all_tools(client, pages)
            assert len(tools) == len(set(tools)), tools
            # The first page has every server's first page; the later ones only beta's, 3 (less hidden ones) each.
            assert len(pages) >= 5, pages
            assert {n.split("__")[0] for n in pages[0]} == {"alpha", "beta", "files"}, pages[0]
            assert all(n.startswith("beta__") and len(p) <= 3 for p in pages[1:] for n in p), pages
            names = set(tools)
            # Each server's section decides its part: alpha's deny-by-default, beta's hide, files' own entries.
            assert {f"alpha__{t}" for t in ("echo", "ask", "imageBackgroundRemoval")} <= names, names
            assert "beta__other_tool" not in names and "alpha__other_tool" not in names and "files__run_command" not in names
            assert {"beta__echo", "beta__transfer", "files__echo", "files__transfer"} <= names, names
            # A call reaches its server, under the server's own name.
            assert text_of(await client.call_tool("alpha__echo", {"text": "a"})) == "echo: a"
            assert text_of(await client.call_tool("files__echo", {"text": "f"})) == "echo: f"
            assert text_of(await client.call_tool("beta__echo", {"text": "b"})) == "echo: b"
            denied = await client.call_tool("files__transfer", {"amount": 1})
            assert denied.is_error and denial_of(denied)["reason"] == "denied", denied
            assert denial_of(denied)["server"] == "files" and "no transfers from files" in text_of(denied)
            # A name no server has, and a hidden one, are unknown tools.
            for unknown in ("nobody__echo", "beta__other_tool", "echo"):
                with expect_mcp_error():
                    await client.call_tool(unknown, {})
            # One counter across two servers: 3 a minute for alpha's and beta's imageBackgroundRemoval together.
            for server in ("alpha", "beta", "alpha"):
                ok = await client.call_tool(f"{server}__imageBackgroundRemoval", {"image": f"{server}.png"})
                assert ok.is_error is False, ok
            refused = await client.call_tool("beta__imageBackgroundRemoval", {"image": "over.png"})
            denial = denial_of(refused)
            assert_rate_limited_denial(denial, rule="imageBackgroundRemoval", counter="image_jobs", limit=3,
                                       scope="global", window="minute", window_seconds=60)
            assert denial["server"] == "beta"

            # Prompts: prefixed, filtered per section (alpha denies internal_*), each reaching its server.
            prompts = {p.name for p in (await client.list_prompts()).prompts}
            assert {"alpha__summarize", "beta__summarize", "files__summarize"} <= prompts, prompts
            assert "alpha__internal_debug" not in prompts and "beta__internal_debug" in prompts, prompts
            got = await client.get_prompt("files__summarize", {"text": "x"})
            assert "Summarize: x" in json.dumps(got.model_dump(mode="json")), got

            # Resources keep their URIs; each server's own resource is read from it.
            uris = {str(r.uri) for r in (await client.list_resources()).resources}
            assert {"tagged://alpha/about", "tagged://beta/about", "tagged://files/about"} <= uris, uris
            for server in ("alpha", "beta", "files"):
                read = await client.read_resource(f"tagged://{server}/about")
                assert read.contents[0].text == f"about {server}", read
            # A template match routes too (every server has test://items/{id}: the first in file order answers).
            assert (await client.read_resource("test://items/7")).contents[0].text == "item 7"

    run_async(body)
    status, body_ = readyz(tg)
    assert status == 200 and body_["status"] == "ready", body_


def test_an_elicitation_from_one_server_is_answered_while_another_server_calls(merged):
    tg = merged
    asked: list[str] = []

    async def answer(context: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="accept", content={"answer": "forty-two"})

    async def body() -> None:
        async with httpx2.AsyncClient(timeout=30) as http:
            from mcp.client.streamable_http import streamable_http_client

            async with streamable_http_client(tg.url, http_client=http) as (read, write):
                async with mcp.ClientSession(read, write, elicitation_callback=answer, read_timeout_seconds=30) as session:
                    await session.initialize()
                    results: dict[str, str] = {}

                    async def call(name: str, arguments: dict[str, Any]) -> None:
                        results[name] = text_of(await session.call_tool(name, arguments))

                    # Both servers number their requests from 0: the agent must still answer each its own.
                    async with anyio.create_task_group() as tasks:
                        tasks.start_soon(call, "files__ask", {"question": "from files?"})
                        tasks.start_soon(call, "beta__ask", {"question": "from beta?"})
                        tasks.start_soon(call, "alpha__echo", {"text": "meanwhile"})
                    assert results == {"files__ask": "accept: forty-two", "beta__ask": "accept: forty-two",
                                       "alpha__echo": "echo: meanwhile"}, results

    run_async(body)
    assert sorted(asked) == ["from beta?", "from files?"]


def test_a_multi_round_call_in_the_per_request_era_goes_back_to_its_server(merged):
    """Revision 2026-07-28's input_required rounds: each retry carries the state and is routed by name to the same
    server, which is charged once for the whole call (its proxy remembers the states it relayed): with a limit of one
    call a minute, all three rounds pass."""
    tg = merged
    asked: list[str] = []

    async def answer(context: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="accept", content={"answer": f"yes {len(asked)}"})

    async def body() -> None:
        async with mcp.Client(tg.url, elicitation_callback=answer, read_timeout_seconds=30) as client:
            result = await client.call_tool("beta__wizard", {"rounds": 3, "tag": "merged"})
            assert result.is_error is False and text_of(result).startswith("wizard done after 3 rounds"), result

    run_async(body)
    assert asked == ["answer 1 of 2?", "answer 2 of 2?"], asked
    metrics = httpx2.get(f"{tg.base}/metrics", timeout=5).text
    # Two states relayed, both recognised on the retries: the follow-ups rode on the first round's charge.
    rounds = [l for l in metrics.splitlines() if l.startswith("toolgate_tool_call_rounds_total{")]
    assert 'toolgate_tool_call_rounds_total{event="remembered"} 2' in rounds, rounds
    assert 'toolgate_tool_call_rounds_total{event="follow_up"} 2' in rounds, rounds


def test_progress_of_one_servers_call(merged):
    tg = merged

    async def body() -> None:
        async with handshake_session(tg.url) as session:
            progress: list[float] = []

            async def on_progress(value: float, total: float | None, message: str | None) -> None:
                progress.append(value)

            # beta answers in event streams (alpha's JSON answers cannot carry progress).
            result = await session.call_tool("beta__slow_progress", {"steps": 3}, progress_callback=on_progress)
            assert result.is_error is False and len(progress) == 3, (result, progress)

    run_async(body)


@pytest.mark.parametrize("era", ["handshake", "modern"])
def test_a_cancelled_call_stops_at_its_server_while_another_servers_call_runs(merged, era):
    """Handshake era: the SDK sends notifications/cancelled, which goes to the server with that request in flight;
    per-request era: it closes the POST. The abandoned call (files, a stdio server that counts its executions) stops
    there; a call to beta in the same session runs to its end."""
    tg = merged
    tag = f"cancel-{era}-{uuid.uuid4().hex[:8]}"
    opener = handshake_session if era == "handshake" else modern_client

    async def body() -> None:
        async with opener(tg.url) as client:
            results: dict[str, str] = {}

            async def abandoned() -> None:
                with anyio.move_on_after(0.7):
                    await client.call_tool("files__sleepy", {"seconds": 3, "tag": tag})

            async def kept() -> None:
                results["beta"] = text_of(await client.call_tool("beta__sleepy", {"seconds": 1.5, "tag": tag}))

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(abandoned)
                tasks.start_soon(kept)
            assert results["beta"] == "slept 1.5 s", results
            await anyio.sleep(3)  # past the abandoned call's own end: had it not been cancelled, it would be finished
            counts = json.loads(text_of(await client.call_tool("files__executions", {"tag": tag})))
            assert counts == {"started": 1, "finished": 0}, counts

    run_async(body)
    beta = httpx2.get(f"http://127.0.0.1:{tg.beta.port}/_executions", timeout=5).json()
    assert beta[tag] == {"started": 1, "finished": 1}, beta


def test_one_server_killed_mid_session_the_others_answer(merged):
    tg = merged

    async def body() -> None:
        async with handshake_session(tg.url) as session:
            assert text_of(await session.call_tool("beta__echo", {"text": "before"})) == "echo: before"
            tg.beta.proc.popen.kill()
            tg.beta.proc.popen.wait(10)
            # beta's calls fail; alpha's and files' keep answering in the same session.
            with expect_mcp_error() as caught:
                await session.call_tool("beta__echo", {"text": "gone"})
            assert "beta" in str(caught.value), caught.value
            assert text_of(await session.call_tool("alpha__echo", {"text": "alive"})) == "echo: alive"
            assert text_of(await session.call_tool("files__echo", {"text": "alive"})) == "echo: alive"
            # The lists leave beta out and keep the rest.
            names = set(await all_tools(session))
            assert "alpha__echo" in names and "files__echo" in names and not any(n.startswith("beta__") for n in names)

    run_async(body)
    assert wait_for(lambda: readyz(tg)[1]["status"] == "degraded", 10), readyz(tg)
    assert readyz(tg)[1]["servers"]["beta"]["status"] == "degraded"


def test_cursors_sessions_and_bad_input(merged):
    tg = merged
    base = {"Accept": ACCEPT_BOTH, "Content-Type": "application/json", "MCP-Protocol-Version": HANDSHAKE_VERSION}
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": HANDSHAKE_VERSION, "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}
    with httpx2.Client(timeout=30) as http:
        opened = http.post(tg.url, json=init, headers=base)
        assert opened.status_code == 200, opened.text
        session = opened.headers["mcp-session-id"]
        result = json.loads(next(l[6:] for l in opened.text.splitlines() if l.startswith("data: "))
                            if opened.headers["content-type"].startswith("text/event-stream") else opened.text)["result"]
        assert result["serverInfo"]["name"] == "toolgate" and "alpha, beta, files" in result["instructions"], result
        assert "tools" in result["capabilities"] and "resources" in result["capabilities"], result
        headers = {**base, "Mcp-Session-Id": session}

        def ask(body: dict[str, Any], extra: dict[str, str] | None = None) -> httpx2.Response:
            return http.post(tg.url, json=body, headers={**headers, **(extra or {})})

        def message(response: httpx2.Response) -> dict[str, Any]:
            if response.headers.get("content-type", "").startswith("text/event-stream"):
                return json.loads([l[6:] for l in response.text.splitlines() if l.startswith("data: ")][-1])
            return response.json()

        # A cursor toolgate did not make is the agent's error, -32602.
        for forged in ("not-a-cursor", "tg1.!!!", "tg1." + "A" * 10):
            bad = message(ask({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {"cursor": forged}}))
            assert bad["error"]["code"] == -32602, bad
        # Another grant's (here: a made-up) session is unknown: 404, as the spec says for an ended session.
        assert ask({"jsonrpc": "2.0", "id": 3, "method": "ping"}, {"Mcp-Session-Id": "f" * 32}).status_code == 404
        assert message(ask({"jsonrpc": "2.0", "id": 4, "method": "ping"}))["result"] == {}
        # A batch, and an answer to a request no server made, are refused with a reason.
        batch = http.post(tg.url, content=b"[" + json.dumps({"jsonrpc": "2.0", "id": 5, "method": "ping"}).encode() + b"]",
                          headers=headers)
        assert batch.status_code == 400 and "one JSON-RPC message" in batch.text, batch.text
        stray = ask({"jsonrpc": "2.0", "id": "toolgate-99", "result": {}})
        assert stray.status_code == 400, stray.text
        unknown = message(ask({"jsonrpc": "2.0", "id": 6, "method": "no/such"}))
        assert unknown["error"]["code"] == -32601, unknown
        # DELETE ends the session and every server's; it is then unknown.
        assert http.delete(tg.url, headers=headers).status_code == 200
        assert ask({"jsonrpc": "2.0", "id": 7, "method": "ping"}).status_code == 404


def test_a_desktop_client_launching_toolgate_stdio_sees_every_server(procs, tmp_path):
    """`toolgate stdio --servers FILE` with no --server: the SDK's stdio client sees all servers' tools as one, and
    --grant is the grant every server's calls count against."""
    import os

    from mcp.client.stdio import StdioServerParameters, stdio_client

    from conftest import toolgate_binary

    alpha = _start_mcp_upstream(procs, "json", tag="alpha")
    beta = _start_mcp_upstream(procs, "sse", tag="beta")
    policy = tmp_path / "policy.json"
    per_grant = {**POLICY, "servers": {**POLICY["servers"], "alpha": {**POLICY["servers"]["alpha"], "tools": {
        **POLICY["servers"]["alpha"]["tools"],
        "echo": {"limits": [{"counter": "desk_echo", "window": "minute", "max": 1, "scope": "grant"}]}}}}}
    policy.write_text(json.dumps(per_grant))
    args = ["stdio", "--policy", str(policy), "--servers", str(servers_file(tmp_path, alpha.url, beta.url)),
            "--grant", "desktop", "--name-separator", ".", "--audit-log", str(tmp_path / "audit.jsonl")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLGATE_")}

    async def body() -> None:
        with (tmp_path / "stdio.log").open("w") as errlog:
            async with stdio_client(StdioServerParameters(command=toolgate_binary(), args=args, env=env), errlog=errlog) as (r, w):
                async with mcp.ClientSession(r, w, read_timeout_seconds=30) as session:
                    await session.initialize()
                    names = set(await all_tools(session))
                    assert {"alpha.echo", "beta.echo", "files.echo"} <= names and "beta.other_tool" not in names, names
                    assert text_of(await session.call_tool("files.echo", {"text": "desk"})) == "echo: desk"
                    assert text_of(await session.call_tool("alpha.echo", {"text": "once"})) == "echo: once"
                    limited = await session.call_tool("alpha.echo", {"text": "twice"})
                    denial = denial_of(limited)
                    assert denial["reason"] == "rate_limited" and denial["server"] == "alpha", limited

    run_async(body)
    lines = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert {(l["server"], l["decision"]) for l in lines} >= {("files", "allowed"), ("alpha", "allowed"), ("alpha", "rate_limited")}
    assert {l["grant"] for l in lines} == {"desktop"}, lines


def test_a_servers_own_notification_reaches_the_agent_on_the_merged_stream(merged):
    """What a server sends outside any request (here files' `tools/list_changed` and a log message) arrives on the
    session's one GET stream, which fans in every server's."""
    tg = merged
    received: list[str] = []

    async def handler(message: Any) -> None:
        root = getattr(message, "root", message)
        method = getattr(root, "method", None)
        if method:
            received.append(method)

    async def body() -> None:
        from mcp.client.streamable_http import streamable_http_client

        async with httpx2.AsyncClient(timeout=30) as http:
            async with streamable_http_client(tg.url, http_client=http) as (read, write):
                async with mcp.ClientSession(read, write, message_handler=handler, read_timeout_seconds=30) as session:
                    await session.initialize()
                    for attempt in range(20):  # the client opens its GET stream after initialize: until it is there
                        await session.call_tool("files__notify_later", {"kind": "tools_list_changed",
                                                                        "tag": f"n{attempt}", "waiters": 0})
                        with anyio.move_on_after(0.5):
                            while "notifications/tools/list_changed" not in received:
                                await anyio.sleep(0.02)
                        if "notifications/tools/list_changed" in received:
                            break
                    assert "notifications/tools/list_changed" in received, received

    run_async(body)


def test_a_merged_session_belongs_to_the_grant_that_opened_it(toolgate, procs, tmp_path):
    """Another grant presenting a session id it learned gets 404, as for an unknown session, and no server sees the
    request; without a token the merged endpoint refuses as every route does (401)."""
    import hashlib

    alpha = _start_mcp_upstream(procs, "json", tag="alpha")
    beta = _start_mcp_upstream(procs, "sse", tag="beta")
    grants = {"grants": [{"name": "alice", "sha256": hashlib.sha256(b"alice-token").hexdigest()},
                         {"name": "mallory", "sha256": hashlib.sha256(b"mallory-token").hexdigest()}]}
    tg = toolgate(None, POLICY, grants=grants, args=["--servers", str(servers_file(tmp_path, alpha.url, beta.url))])
    base = {"Accept": ACCEPT_BOTH, "Content-Type": "application/json", "MCP-Protocol-Version": HANDSHAKE_VERSION}
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": HANDSHAKE_VERSION, "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "alpha__echo", "arguments": {"text": "x"}}}
    with httpx2.Client(timeout=30) as http:
        assert http.post(tg.url, json=init, headers=base).status_code == 401
        opened = http.post(tg.url, json=init, headers={**base, "Authorization": "Bearer alice-token"})
        assert opened.status_code == 200, opened.text
        session = opened.headers["mcp-session-id"]
        stolen = http.post(tg.url, json=call, headers={**base, "Authorization": "Bearer mallory-token", "Mcp-Session-Id": session})
        assert stolen.status_code == 404, stolen.text
        own = http.post(tg.url, json=call, headers={**base, "Authorization": "Bearer alice-token", "Mcp-Session-Id": session})
        assert own.status_code == 200 and "echo: x" in own.text, own.text
        assert http.delete(tg.url, headers={**base, "Authorization": "Bearer mallory-token", "Mcp-Session-Id": session}).status_code == 404


def test_a_listen_stream_in_the_per_request_era_is_every_servers_as_one(merged):
    """`subscriptions/listen` (2026-07-28): one acknowledgment with what the servers honor together, then the
    servers' events; leaving it ends every server's stream."""
    tg = merged

    async def body() -> None:
        async with mcp.Client(tg.url, read_timeout_seconds=30) as client:
            async with client.listen(tools_list_changed=True, prompts_list_changed=True) as subscription:
                honored = subscription.honored
                assert getattr(honored, "tools_list_changed", None) is True, honored
            # The session goes on: the same client still calls every server.
            assert text_of(await client.call_tool("files__echo", {"text": "after"})) == "echo: after"
            assert text_of(await client.call_tool("alpha__echo", {"text": "after"})) == "echo: after"

    run_async(body)


@pytest.mark.parametrize("era", ["handshake", "modern"])
def test_completions_go_to_the_server_of_their_ref(merged, era):
    """`completion/complete` by its ref: a prompt's by its prefix (the server gets its own name), a resource
    template's by who listed the template."""
    from mcp_types import PromptReference, ResourceTemplateReference

    tg = merged

    async def body() -> None:
        opener = handshake_session if era == "handshake" else modern_client
        async with opener(tg.url) as client:
            prompt = await client.complete(PromptReference(type="ref/prompt", name="beta__summarize"),
                                           {"name": "text", "value": "he"})
            assert prompt.completion.values == ["beta:summarize:he"], prompt
            await client.list_resource_templates()
            template = await client.complete(ResourceTemplateReference(type="ref/resource", uri="test://items/{item_id}"),
                                             {"name": "item_id", "value": "4"})
            # Every server lists that template: the first in file order answers.
            assert template.completion.values == ["alpha:test://items/{item_id}:4"], template
            with expect_mcp_error():
                await client.complete(PromptReference(type="ref/prompt", name="nobody__summarize"), {"name": "text", "value": ""})

    run_async(body)


def test_an_approval_through_the_merged_endpoint_names_its_server(toolgate, procs, tmp_path):
    """`action: approve` in one server's section: the merged call waits, is refused `approval_required` naming the
    server, shows as SERVER/TOOL in the approvals API, and once approved the identical retry runs on that server."""
    alpha = _start_mcp_upstream(procs, "json", tag="alpha")
    beta = _start_mcp_upstream(procs, "sse", tag="beta")
    policy = json.loads(json.dumps(POLICY))
    policy["servers"]["beta"]["tools"]["transfer"] = {"action": "approve", "approval": {"wait": "1s", "ttl": "1h"}}
    token = uuid.uuid4().hex
    (tmp_path / "admin.token").write_text(token + "\n")
    tg = toolgate(None, policy, args=["--servers", str(servers_file(tmp_path, alpha.url, beta.url)),
                                      "--admin-token-file", str(tmp_path / "admin.token")])
    arguments = {"amount": 5, "tag": uuid.uuid4().hex[:8]}

    async def call() -> Any:
        async with handshake_session(tg.url) as session:
            return await session.call_tool("beta__transfer", arguments)

    waiting = run_async(call)
    denial = denial_of(waiting)
    assert denial["reason"] == "approval_required" and denial["server"] == "beta", denial
    auth = {"Authorization": f"Bearer {token}"}
    with httpx2.Client(timeout=10) as http:
        listed = http.get(f"{tg.base}/admin/approvals", headers=auth).json()["approvals"]
        mine = next(a for a in listed if a["id"] == denial["approvalId"])
        assert mine["server"] == "beta" and mine["tool"] == "transfer", mine
        decided = http.post(f"{tg.base}/admin/approvals/{denial['approvalId']}", json={"decision": "approve"}, headers=auth)
        assert decided.status_code == 200, decided.text
    approved = run_async(call)
    assert approved.is_error is False and text_of(approved).startswith("transferred 5"), approved
    # It ran on beta, once, and nowhere else.
    ran = httpx2.get(f"http://127.0.0.1:{beta.port}/_transfers", timeout=5).json()
    assert len(ran.get(arguments["tag"], [])) == 1, ran


def test_a_server_down_when_the_session_began_joins_it_when_a_call_needs_it(toolgate, procs, tmp_path):
    """beta is not listening at initialize: the session opens without it (the others serve). Once beta is up, the
    first call to it opens beta's own session inside the agent's, and its tools join the lists."""
    from helpers import free_port

    alpha = _start_mcp_upstream(procs, "json", tag="alpha")
    late_port = free_port()
    tg = toolgate(None, POLICY, args=["--servers", str(servers_file(tmp_path, alpha.url, f"http://127.0.0.1:{late_port}/mcp"))])

    async def body() -> None:
        async with handshake_session(tg.url) as session:
            names = set(await all_tools(session))
            assert "alpha__echo" in names and not any(n.startswith("beta__") for n in names), names
            _start_mcp_upstream(procs, "sse", tag="beta", port=late_port)
            assert text_of(await session.call_tool("beta__echo", {"text": "late"})) == "echo: late"
            assert "beta__echo" in set(await all_tools(session))

    run_async(body)
    assert "joined it" in tg.log(), tg.log()[-2000:]


def test_logging_subscriptions_and_rebinding_answer_as_each_server_does(merged):
    """`logging/setLevel` reaches every server, `resources/subscribe` and `unsubscribe` the one that lists the URI,
    each answering as the server does on its own route; a foreign Host or Origin is refused before anything is
    routed (DNS rebinding)."""
    from mcp.shared.exceptions import MCPError

    tg = merged

    async def outcomes(url: str, uri: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with handshake_session(url) as session:
            for key, call in (("level", lambda: session.set_logging_level("warning")),
                              ("subscribe", lambda: session.subscribe_resource(uri)),
                              ("unsubscribe", lambda: session.unsubscribe_resource(uri))):
                try:
                    await call()
                    out[key] = "ok"
                except MCPError as e:
                    out[key] = e.error.code
        return out

    for server in ("alpha", "beta", "files"):
        uri = f"tagged://{server}/about"
        merged_outcome = run_async(lambda: outcomes(tg.url, uri))
        direct = run_async(lambda: outcomes(f"{tg.base}/mcp/{server}", uri))
        assert merged_outcome == direct, (server, merged_outcome, direct)
    with httpx2.Client(timeout=10) as http:
        ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        headers = {"Accept": ACCEPT_BOTH, "Content-Type": "application/json"}
        assert http.post(tg.url, json=ping, headers={**headers, "Host": "evil.example"}).status_code in (400, 403)
        foreign = http.post(tg.url, json=ping, headers={**headers, "Origin": "http://evil.example"})
        assert foreign.status_code == 403 and "alpha" not in foreign.text, foreign.text
