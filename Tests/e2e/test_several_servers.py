"""Issue 24: one `toolgate serve --servers FILE` guards several MCP servers (DESIGN.md section 10).

Three real servers built on the official SDK: two over Streamable HTTP (upstream_mcp_server.py, one answering JSON,
one SSE) and one over stdio (the same server, `--stdio`), each at its own route `/mcp/NAME`, in both eras, on both
stores. The policy has a section per server and one counter shared by tools of two servers. Then one server is
killed while the other two keep serving and `/readyz` says which; the stdio front serves one server of the file; and
every way a servers file or its flags can be wrong is refused at start, naming what is wrong.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import httpx2
import mcp
import pytest
from mcp.client.stdio import StdioServerParameters, stdio_client

from conftest import E2E_DIR, _start_mcp_upstream, toolgate_binary
from helpers import (
    assert_rate_limited_denial,
    denial_of,
    expect_mcp_error,
    free_port,
    handshake_session,
    modern_client,
    readyz,
    run_async,
    text_of,
    wait_for,
)

STDIO_SERVER = [sys.executable, str(E2E_DIR / "upstream_mcp_server.py"), "--stdio"]
SHARED = {"counter": "image_jobs", "window": "minute", "max": 3, "scope": "global"}

# A section per server; `image_jobs` is one counter charged by tools of two servers.
POLICY: dict[str, Any] = {
    "version": "1",
    "default": "deny",
    "servers": {
        "alpha": {"default": "deny", "tools": {"echo": {}, "imageBackgroundRemoval": {"limits": [SHARED]}}},
        "beta": {"default": "allow", "hide": ["other_tool"], "tools": {"imageBackgroundRemoval": {"limits": [SHARED]}}},
        "files": {"default": "deny", "tools": {"echo": {}, "transfer": {"action": "deny", "reason": "no transfers from files"}}},
    },
}


def servers_file(tmp_path: Path, servers: dict[str, Any], name: str = "servers.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps({"mcpServers": servers}, indent=2))
    return path


def three_servers(tmp_path: Path, alpha: str, beta: str) -> Path:
    return servers_file(tmp_path, {
        "alpha": {"url": alpha},
        "beta": {"url": beta, "headers": {"X-E2E-Server": "beta"}, "toolgate": {"headersTimeout": "60s"}},
        "files": {"command": STDIO_SERVER[0], "args": STDIO_SERVER[1:], "env": {"E2E_STDIO": "1"}},
    })


async def tool_names_handshake(url: str) -> set[str]:
    async with handshake_session(url) as session:
        return {t.name for t in (await session.list_tools()).tools}


async def tool_names_modern(url: str) -> set[str]:
    async with modern_client(url) as client:
        return {t.name for t in (await client.list_tools()).tools}


def metric_lines(tg: Any, name: str) -> list[str]:
    text = httpx2.get(f"{tg.base}/metrics", timeout=5.0).text
    return [line for line in text.splitlines() if line.startswith(name + "{")]


# ---------------------------------------------------------------------------------------------------------
# 1. Three servers, each through its route, both eras, both stores; a counter spanning two servers


def test_three_servers_each_through_its_route(toolgate, mcp_upstream_json, mcp_upstream_sse, store_args, tmp_path):
    audit = tmp_path / "audit.jsonl"
    servers = three_servers(tmp_path, mcp_upstream_json.url, mcp_upstream_sse.url)
    tg = toolgate(None, POLICY, args=["--servers", str(servers), "--audit-log", str(audit)] + store_args)
    alpha, beta, files = (f"{tg.base}/mcp/{name}" for name in ("alpha", "beta", "files"))

    # Each server's section decides its lists, in both eras.
    assert run_async(lambda: tool_names_handshake(alpha)) == {"echo", "imageBackgroundRemoval"}
    assert run_async(lambda: tool_names_modern(alpha)) == {"echo", "imageBackgroundRemoval"}
    beta_tools = run_async(lambda: tool_names_modern(beta))
    assert "other_tool" not in beta_tools and {"echo", "transfer", "imageBackgroundRemoval"} <= beta_tools, beta_tools
    assert run_async(lambda: tool_names_handshake(files)) == {"echo", "transfer"}

    async def calls() -> None:
        async with handshake_session(alpha) as session:
            assert text_of(await session.call_tool("echo", {"text": "a"})) == "echo: a"
            for i in range(2):
                result = await session.call_tool("imageBackgroundRemoval", {"image": f"a{i}.png"})
                assert result.is_error is False, result
        async with modern_client(files) as client:
            assert text_of(await client.call_tool("echo", {"text": "f"})) == "echo: f"
            denied = await client.call_tool("transfer", {"amount": 1})
            assert denied.is_error and denial_of(denied)["reason"] == "denied", denied
            assert denial_of(denied)["server"] == "files"
            assert "no transfers from files" in text_of(denied)
        async with modern_client(beta) as client:
            # One more on the shared counter passes (3 of 3), the next is refused: alpha's calls counted here.
            assert (await client.call_tool("imageBackgroundRemoval", {"image": "b0.png"})).is_error is False
            refused = await client.call_tool("imageBackgroundRemoval", {"image": "b1.png"})
            denial = denial_of(refused)
            assert_rate_limited_denial(denial, rule="imageBackgroundRemoval", counter="image_jobs", limit=3,
                                       scope="global", window="minute", window_seconds=60)
            assert denial["server"] == "beta"
            # A tool no section of beta's names is allowed by its default; hidden ones are absent.
            assert text_of(await client.call_tool("echo", {"text": "b"})) == "echo: b"
            with expect_mcp_error():
                await client.call_tool("other_tool", {})

    run_async(calls)

    # Metrics carry the server; the audit lines name it.
    calls_lines = metric_lines(tg, "toolgate_tool_calls_total")
    assert any('server="alpha"' in l and 'tool="echo"' in l and 'decision="allowed"' in l for l in calls_lines), calls_lines
    assert any('server="beta"' in l and 'decision="rate_limited"' in l for l in calls_lines), calls_lines
    assert any('server="files"' in l and 'decision="denied"' in l for l in calls_lines), calls_lines
    upstream_lines = metric_lines(tg, "toolgate_upstream_requests_total")
    assert {s for s in ("alpha", "beta", "files") if any(f'server="{s}"' in l for l in upstream_lines)} == {"alpha", "beta", "files"}
    assert wait_for(lambda: audit.exists() and len(audit.read_text().splitlines()) >= 8)
    lines = [json.loads(l) for l in audit.read_text().splitlines()]
    assert {l["server"] for l in lines} == {"alpha", "beta", "files"}, lines
    assert [l["decision"] for l in lines if l["server"] == "beta" and l["tool"] == "imageBackgroundRemoval"] == ["allowed", "rate_limited"]

    # /readyz lists each server, all ready.
    status, body = readyz(tg)
    assert status == 200 and body["status"] == "ready", body
    assert {name: s["status"] for name, s in body["servers"].items()} == {"alpha": "ready", "beta": "ready", "files": "ready"}
    assert body["servers"]["files"]["url"].startswith("stdio: ")
    assert "upstream" not in body


def test_routes_that_are_not_a_server(toolgate, mcp_upstream_json, tmp_path):
    servers = servers_file(tmp_path, {"alpha": {"url": mcp_upstream_json.url}, "beta": {"url": mcp_upstream_json.url}})
    tg = toolgate(None, {"version": "1", "default": "allow"}, args=["--servers", str(servers)])
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    headers = {"Accept": "application/json, text/event-stream"}
    unknown = httpx2.post(f"{tg.base}/mcp/alpah", json=body, headers=headers, timeout=5.0)
    assert unknown.status_code == 404
    message = unknown.json()["error"]["message"]
    assert "no MCP server named \"alpah\"" in message and "did you mean /mcp/alpha?" in message, message
    # /mcp is the merged endpoint (test_merged_endpoint.py): it answers, for both servers.
    root = httpx2.post(f"{tg.base}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, headers=headers, timeout=5.0)
    assert root.status_code == 200 and root.json()["result"] == {}, root.text
    # A page of another origin learns nothing, not even the names.
    foreign = httpx2.post(f"{tg.base}/mcp/alpah", json=body, headers={**headers, "Origin": "http://evil.example"}, timeout=5.0)
    assert foreign.status_code == 403 and "alpha" not in foreign.text, foreign.text
    assert httpx2.put(f"{tg.base}/mcp/alpha", content=b"{}", timeout=5.0).status_code == 405


# ---------------------------------------------------------------------------------------------------------
# 2. One server killed: the other two keep serving, and /readyz says which


def test_one_server_down_the_others_serve(toolgate, procs, mcp_upstream_json, tmp_path):
    doomed = _start_mcp_upstream(procs, "json")
    servers = three_servers(tmp_path, mcp_upstream_json.url, doomed.url)
    tg = toolgate(None, POLICY, args=["--servers", str(servers)])
    assert run_async(lambda: tool_names_handshake(f"{tg.base}/mcp/beta"))  # it served once
    doomed.proc.popen.send_signal(signal.SIGKILL)
    doomed.proc.popen.wait(10)

    async def calls() -> None:
        async with handshake_session(f"{tg.base}/mcp/alpha") as session:
            assert text_of(await session.call_tool("echo", {"text": "still"})) == "echo: still"
        async with handshake_session(f"{tg.base}/mcp/files") as session:
            assert text_of(await session.call_tool("echo", {"text": "here"})) == "echo: here"
        with expect_mcp_error():
            async with handshake_session(f"{tg.base}/mcp/beta") as session:
                await session.list_tools()

    run_async(calls)
    status, body = readyz(tg)
    assert status == 200 and body["status"] == "degraded", body
    servers_state = body["servers"]
    assert servers_state["beta"]["status"] == "degraded" and "problem" in servers_state["beta"], servers_state
    assert servers_state["alpha"]["status"] == "ready" and servers_state["files"]["status"] == "ready", servers_state


def test_all_servers_down_is_not_ready(toolgate, tmp_path):
    servers = servers_file(tmp_path, {"a": {"url": f"http://127.0.0.1:{free_port()}/mcp"},
                                      "b": {"url": f"http://127.0.0.1:{free_port()}/mcp"}})
    tg = toolgate(None, {"version": "1", "default": "allow"}, args=["--servers", str(servers)])
    for name in ("a", "b"):
        with pytest.raises(Exception):
            run_async(lambda: tool_names_handshake(f"{tg.base}/mcp/{name}"), timeout=20)
    status, body = readyz(tg)
    assert status == 503 and body["status"] == "not_ready", body
    assert {n: s["status"] for n, s in body["servers"].items()} == {"a": "degraded", "b": "degraded"}


# ---------------------------------------------------------------------------------------------------------
# 3. `toolgate stdio --servers FILE --server NAME`: a desktop client reaches one server of the file, its section


@asynccontextmanager
async def stdio_session(args: list[str], errlog: Any) -> AsyncIterator[mcp.ClientSession]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLGATE_")}
    params = StdioServerParameters(command=toolgate_binary(), args=args, env=env)
    async with stdio_client(params, errlog=errlog) as (read, write):
        async with mcp.ClientSession(read, write, read_timeout_seconds=30) as session:
            await session.initialize()
            yield session


def test_stdio_front_serves_one_server_of_the_file(mcp_upstream_json, mcp_upstream_sse, tmp_path):
    servers = three_servers(tmp_path, mcp_upstream_json.url, mcp_upstream_sse.url)
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps(POLICY))
    errlog_path = tmp_path / "stdio.log"

    async def run(name: str) -> tuple[set[str], Any]:
        with errlog_path.open("a") as errlog:
            async with stdio_session(["stdio", "--policy", str(policy), "--servers", str(servers), "--server", name,
                                      "--log-level", "debug"], errlog) as session:
                tools = {t.name for t in (await session.list_tools()).tools}
                return tools, await session.call_tool("transfer", {"amount": 1})

    tools, result = run_async(lambda: run("files"))
    assert tools == {"echo", "transfer"}, tools
    assert result.is_error and denial_of(result)["server"] == "files", result
    tools, result = run_async(lambda: run("beta"))
    assert "other_tool" not in tools and "transfer" in tools
    assert result.is_error is False, result  # beta's section allows by default


# ---------------------------------------------------------------------------------------------------------
# 4. Refused at start, naming what is wrong


def start_refused(args: list[str], tmp_path: Path, policy: dict[str, Any] | None = None) -> tuple[int, str]:
    import subprocess

    path = tmp_path / "policy-refused.json"
    path.write_text(json.dumps(policy or {"version": "1", "default": "allow"}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLGATE_")}
    done = subprocess.run([toolgate_binary(), "serve", "--policy", str(path), "--listen", "127.0.0.1:0", *args],
                          capture_output=True, text=True, timeout=30, env=env)
    return done.returncode, done.stderr


def test_bad_servers_files_and_flags_are_refused_at_start(tmp_path):
    sse = servers_file(tmp_path, {"legacy": {"type": "sse", "url": "http://127.0.0.1:1/sse"}}, "sse.json")
    code, err = start_refused(["--servers", str(sse)], tmp_path)
    assert code == 1 and "mcpServers.legacy.type: server \"legacy\" uses the old HTTP+SSE transport" in err, err

    named = servers_file(tmp_path, {"My Server": {"url": "http://127.0.0.1:1/mcp"}}, "named.json")
    code, err = start_refused(["--servers", str(named)], tmp_path)
    assert code == 1 and "for example to \"my-server\"" in err, err

    ok = servers_file(tmp_path, {"alpha": {"url": "http://127.0.0.1:1/mcp"}}, "ok.json")
    code, err = start_refused(["--servers", str(ok), "--upstream", "http://127.0.0.1:1/mcp"], tmp_path)
    assert code == 64 and "--upstream does not go with --servers" in err, err
    code, err = start_refused(["--servers", str(ok), "--upstream-header", "X: y"], tmp_path)
    assert code == 64 and "--upstream-header does not go with --servers" in err, err

    code, err = start_refused(["--servers", str(ok)], tmp_path, {"version": "1", "servers": {"alpah": {}}})
    assert code == 1 and "servers.alpah: no server \"alpah\"" in err and "did you mean \"alpha\"" in err, err
    code, err = start_refused(["--upstream", "http://127.0.0.1:1/mcp"], tmp_path, {"version": "1", "servers": {"alpha": {}}})
    assert code == 1 and "which need --servers FILE" in err, err

    missing_env = servers_file(tmp_path, {"gh": {"url": "http://127.0.0.1:1/mcp", "headers": {"Authorization": "Bearer ${TG_E2E_NOPE}"}}}, "env.json")
    code, err = start_refused(["--servers", str(missing_env)], tmp_path)
    assert code == 1 and "mcpServers.gh.headers.Authorization: environment variable TG_E2E_NOPE is not set" in err, err

    never = servers_file(tmp_path, {"mute": {"command": "sleep", "args": ["60"], "toolgate": {"startTimeout": 1}}}, "mute.json")
    code, err = start_refused(["--servers", str(never)], tmp_path)
    assert code == 1 and "server \"mute\"" in err and "\"startTimeout\"" in err, err


# ---------------------------------------------------------------------------------------------------------
# 5. The servers file reloads like the policy: added, removed and changed servers without a restart


def served(tg: Any) -> dict[str, str]:
    status, body = readyz(tg)
    return {name: s["url"] for name, s in body.get("servers", {}).items()}


def test_servers_file_reload_adds_removes_and_changes_servers(toolgate, mcp_upstream_json, mcp_upstream_sse, tmp_path):
    servers = servers_file(tmp_path, {
        "alpha": {"url": mcp_upstream_json.url},
        "files": {"command": STDIO_SERVER[0], "args": STDIO_SERVER[1:]},
    })
    policy = {"version": "1", "default": "allow"}
    tg = toolgate(None, policy, args=["--servers", str(servers)])
    assert set(served(tg)) == {"alpha", "files"}

    # A call in flight on alpha when alpha is removed ends with an error, at once (not after the tool's 30 s).
    import threading
    import time as _time
    outcome: dict[str, Any] = {}
    tag = f"reload-{uuid.uuid4().hex[:8]}"

    def slow_call() -> None:
        async def call() -> Any:
            async with handshake_session(f"{tg.base}/mcp/alpha") as session:
                return await session.call_tool("sleepy", {"seconds": 30, "tag": tag})
        try:
            outcome["result"] = run_async(call, timeout=60)
        except BaseException as e:  # noqa: BLE001 - what the test inspects
            outcome["error"] = e
        outcome["at"] = _time.monotonic()

    caller = threading.Thread(target=slow_call, daemon=True)
    caller.start()

    def started() -> bool:
        runs = httpx2.get(f"http://127.0.0.1:{mcp_upstream_json.port}/_executions", timeout=5).json()
        return runs.get(tag, {}).get("started", 0) == 1

    assert wait_for(started, timeout=15), "the slow call never reached the upstream"

    servers.write_text(json.dumps({"mcpServers": {
        "beta": {"url": mcp_upstream_sse.url},
        "files": {"command": STDIO_SERVER[0], "args": STDIO_SERVER[1:], "env": {"E2E_CHANGED": "1"}},
    }}))
    removed_at = _time.monotonic()
    assert wait_for(lambda: set(served(tg)) == {"beta", "files"}, timeout=30), served(tg)
    caller.join(30)
    assert not caller.is_alive(), "the call on the removed server is still waiting"
    assert outcome["at"] - removed_at < 15, outcome
    result = outcome.get("result")
    assert "error" in outcome or (result is not None and result.is_error), outcome

    async def after() -> None:
        async with handshake_session(f"{tg.base}/mcp/beta") as session:
            assert text_of(await session.call_tool("echo", {"text": "new"})) == "echo: new"
        async with handshake_session(f"{tg.base}/mcp/files") as session:
            assert text_of(await session.call_tool("echo", {"text": "changed"})) == "echo: changed"

    run_async(after)
    gone = httpx2.post(f"{tg.base}/mcp/alpha", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                       headers={"Accept": "application/json, text/event-stream"}, timeout=5)
    assert gone.status_code == 404, gone.text
    log = tg.log()
    assert "server stopped" in log and "alpha" in log, log[-3000:]
    # The changed stdio server was started anew: two starts of "files" in the log.
    assert log.count("upstream command started") >= 2, log[-3000:]


def test_a_bad_servers_file_is_refused_and_the_old_one_keeps_serving(toolgate, mcp_upstream_json, tmp_path):
    servers = servers_file(tmp_path, {"alpha": {"url": mcp_upstream_json.url}})
    tg = toolgate(None, {"version": "1", "default": "allow"}, args=["--servers", str(servers)])
    good = servers.read_text()
    for bad, expect in [
        ('{"mcpServers": {"alpha": {"url": ', "line"),
        (json.dumps({"mcpServers": {"old": {"type": "sse", "url": "http://127.0.0.1:1/sse"}}}), "HTTP+SSE"),
        (json.dumps({"mcpServers": {"mute": {"command": "sleep", "args": ["60"], "toolgate": {"startTimeout": 1}}}}), "mute"),
    ]:
        servers.write_text(bad)
        assert wait_for(lambda: "lastReloadError" in readyz(tg)[1]["policy"], timeout=30), readyz(tg)
        refused = readyz(tg)[1]["policy"]["lastReloadError"]
        assert refused["path"] == str(servers) and expect in refused["error"], refused
        assert set(served(tg)) == {"alpha"}
        assert text_of(run_async(lambda: _echo(f"{tg.base}/mcp/alpha", "still"))) == "echo: still"
        servers.write_text(good)
        assert wait_for(lambda: "lastReloadError" not in readyz(tg)[1]["policy"], timeout=30), readyz(tg)


async def _echo(url: str, text: str) -> Any:
    async with handshake_session(url) as session:
        return await session.call_tool("echo", {"text": text})


def test_policy_and_servers_file_reload_together(toolgate, mcp_upstream_json, tmp_path):
    """A section for a server the servers file does not have yet is refused; once both files agree it applies."""
    servers = servers_file(tmp_path, {"alpha": {"url": mcp_upstream_json.url}})
    tg = toolgate(None, {"version": "1", "default": "allow"}, args=["--servers", str(servers)])
    tg.policy_path.write_text(json.dumps({"version": "1", "default": "allow",
                                          "servers": {"gamma": {"default": "deny", "tools": {"echo": {}}}}}))
    assert wait_for(lambda: "lastReloadError" in readyz(tg)[1]["policy"], timeout=30)
    assert "no server \"gamma\"" in readyz(tg)[1]["policy"]["lastReloadError"]["error"]
    servers.write_text(json.dumps({"mcpServers": {"alpha": {"url": mcp_upstream_json.url},
                                                  "gamma": {"url": mcp_upstream_json.url}}}))
    assert wait_for(lambda: set(served(tg)) == {"alpha", "gamma"} and "lastReloadError" not in readyz(tg)[1]["policy"],
                    timeout=30), readyz(tg)
    assert run_async(lambda: tool_names_handshake(f"{tg.base}/mcp/gamma")) == {"echo"}
    assert "transfer" in run_async(lambda: tool_names_handshake(f"{tg.base}/mcp/alpha"))


# ---------------------------------------------------------------------------------------------------------
# 6. Approvals are per server: approving alpha's `transfer` does not approve beta's


def test_an_approval_is_for_one_servers_tool(toolgate, mcp_upstream_json, tmp_path):
    admin = tmp_path / "admin.token"
    token = uuid.uuid4().hex
    admin.write_text(token + "\n")
    approve = {"tools": {"transfer": {"action": "approve", "approval": {"wait": "0s", "ttl": "1h"}}}}
    policy = {"version": "1", "default": "deny", "servers": {"alpha": approve, "beta": approve}}
    servers = servers_file(tmp_path, {"alpha": {"url": mcp_upstream_json.url}, "beta": {"url": mcp_upstream_json.url}})
    tg = toolgate(None, policy, args=["--servers", str(servers), "--admin-token-file", str(admin)])
    arguments = {"amount": 5, "tag": f"per-server-{uuid.uuid4().hex[:8]}"}

    async def call(name: str) -> Any:
        async with handshake_session(f"{tg.base}/mcp/{name}") as session:
            return await session.call_tool("transfer", arguments)

    first = denial_of(run_async(lambda: call("alpha")))
    assert first["reason"] == "approval_required" and first["server"] == "alpha", first
    auth = {"Authorization": f"Bearer {token}"}
    listed = httpx2.get(f"{tg.base}/admin/approvals", headers=auth, timeout=5).json()["approvals"]
    assert [(a["server"], a["tool"]) for a in listed] == [("alpha", "transfer")], listed
    decided = httpx2.post(f"{tg.base}/admin/approvals/{first['approvalId']}", json={"decision": "approve"}, headers=auth, timeout=5)
    assert decided.status_code == 200, decided.text
    # The identical call on beta is not approved by it: a request of its own.
    other = denial_of(run_async(lambda: call("beta")))
    assert other["reason"] == "approval_required" and other["approvalId"] != first["approvalId"], other
    # alpha's identical retry uses its approval.
    assert run_async(lambda: call("alpha")).is_error is False


# ---------------------------------------------------------------------------------------------------------
# 7. Per-server settings: one server's `toolgate` key applies to it alone


def test_a_servers_own_timeout_applies_to_it_alone(toolgate, mcp_upstream_json, tmp_path):
    servers = servers_file(tmp_path, {
        "quick": {"url": mcp_upstream_json.url, "toolgate": {"headersTimeout": 1}},
        "patient": {"url": mcp_upstream_json.url},
    })
    tg = toolgate(None, {"version": "1", "default": "allow"}, args=["--servers", str(servers)])

    async def sleepy(name: str) -> Any:
        async with handshake_session(f"{tg.base}/mcp/{name}") as session:
            return await session.call_tool("sleepy", {"seconds": 3, "tag": f"timeout-{name}"})

    with expect_mcp_error() as caught:
        run_async(lambda: sleepy("quick"))
    assert str(caught.value).startswith('server "quick": upstream ') and "no response headers within 1 s" in str(caught.value), caught.value
    assert text_of(run_async(lambda: sleepy("patient"))) == "slept 3.0 s"
    upstream_lines = metric_lines(tg, "toolgate_upstream_requests_total")
    assert any('server="quick"' in l and "headers_timeout" in l for l in upstream_lines), upstream_lines
