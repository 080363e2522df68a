"""Issue 13 item 1: a stdio upstream (`toolgate serve --upstream-command`), the README's contract.

The upstream is the SDK's own stdio server (`MCPServer(...).run(transport="stdio")`, upstream_mcp_server.py --stdio),
started once by toolgate and shared by every HTTP client, in both eras. Faults: the server crashes mid-call, never
starts, floods stderr, writes a line that is not JSON; SIGTERM and SIGKILL of toolgate leave no process behind.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from mcp.shared.exceptions import MCPError

from conftest import E2E_DIR, toolgate_binary
from helpers import (
    SEED_POLICY,
    assert_rate_limited_denial,
    denial_of,
    final_response,
    handshake_session,
    http_client,
    modern_client,
    modern_headers,
    post,
    run_async,
    text_of,
    tool_call,
    wait_for,
)

SERVER = f"{sys.executable} {E2E_DIR / 'upstream_mcp_server.py'} --stdio"
ALL_TOOLS = {"version": "1", "default": "allow", "tools": {}}


def stdio_upstream(toolgate, policy=SEED_POLICY, extra: list[str] | None = None, command: str = SERVER):
    return toolgate(None, policy, args=["--upstream-command", command] + (extra or []))


def child_pids(log: str) -> list[int]:
    return [int(p) for p in re.findall(r"pid=(\d+) \[toolgate\] upstream command started", log)]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def group_alive(pgid: int) -> bool:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().split(") ")[1].split()
            except (FileNotFoundError, IndexError, ProcessLookupError):
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False


def test_seed_policy_in_both_eras(toolgate, store_args_any):
    tg = stdio_upstream(toolgate, extra=store_args_any)

    async def body() -> None:
        async with handshake_session(tg.url) as session:
            assert [t.name for t in (await session.list_tools()).tools] == ["imageBackgroundRemoval"]
            for i in range(5):
                result = await session.call_tool("imageBackgroundRemoval", {"image": f"h{i}.png"})
                assert text_of(result) == f"background removed from h{i}.png", result
        async with modern_client(tg.url) as client:
            assert [t.name for t in (await client.list_tools()).tools] == ["imageBackgroundRemoval"]
            for i in range(5):
                result = await client.call_tool("imageBackgroundRemoval", {"image": f"m{i}.png"})
                assert result.is_error is False and text_of(result) == f"background removed from m{i}.png", result
            refused = await client.call_tool("imageBackgroundRemoval", {"image": "11.png"})
            assert refused.is_error is True
            assert_rate_limited_denial(
                denial_of(refused), rule="imageBackgroundRemoval", counter="imagebackgroundremoval_rate",
                limit=10, scope="grant", window="minute", window_seconds=60)
            with pytest.raises(MCPError) as info:
                await client.call_tool("echo", {"text": "x"})
            assert info.value.message == "Unknown tool: echo"

    run_async(body)
    assert len(child_pids(tg.log())) == 1, "one server for every client"


@pytest.fixture(params=["memory", "redis"])
def store_args_any(request: pytest.FixtureRequest) -> list[str]:
    if request.param == "memory":
        return []
    port = request.getfixturevalue("redis_port")
    return ["--redis", f"redis://127.0.0.1:{port}", "--key-prefix", f"tg-e2e-stdio-up-{uuid.uuid4().hex[:12]}"]


def test_clients_at_once_never_see_each_others_answers_or_progress(toolgate):
    tg = stdio_upstream(toolgate, ALL_TOOLS)

    async def one_client(n: int) -> None:
        seen: list[float] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            seen.append(progress)

        async with handshake_session(tg.url) as session:
            steps = 3 + n
            result = await session.call_tool("slow_progress", {"steps": steps, "delay": 0.05}, progress_callback=on_progress)
            assert result.is_error is False
            assert seen == list(range(1, steps + 1)), (n, seen)
            for i in range(5):
                answer = await session.call_tool("echo", {"text": f"client {n} call {i}"})
                assert text_of(answer) == f"echo: client {n} call {i}"

    async def body() -> None:
        await asyncio.gather(*(one_client(n) for n in range(4)))

    run_async(body)


def test_a_crash_mid_call_is_an_error_and_the_server_comes_back(toolgate):
    tg = stdio_upstream(toolgate, ALL_TOOLS)

    async def body() -> None:
        async with modern_client(tg.url) as client:
            before = text_of(await client.call_tool("whoami", {}))
            with pytest.raises(MCPError) as info:
                await client.call_tool("crash", {})
            assert info.value.code == -32603 and "exited" in info.value.message, info.value.message
        for _ in range(100):
            try:
                async with modern_client(tg.url) as client:
                    after = text_of(await client.call_tool("whoami", {}))
                    break
            except Exception:  # noqa: BLE001 (restarting: refused as not ready)
                await asyncio.sleep(0.1)
        else:
            pytest.fail("the server did not come back:\n" + tg.log())
        assert after != before, "a new process"

    run_async(body)
    assert "upstream command exited with status 3; restarting" in tg.log(), tg.log()
    assert len(child_pids(tg.log())) == 2


def test_a_server_that_never_starts_is_a_clear_error(tmp_path):
    policy = tmp_path / "policy.json"
    policy.write_text('{"version":"1","default":"allow","tools":{}}')
    proc = subprocess.run(
        [toolgate_binary(), "serve", "--policy", str(policy), "--listen", "127.0.0.1:0", "--upstream-command",
         "/nonexistent/mcp-server --flag"], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if not k.startswith("TOOLGATE_")})
    assert proc.returncode == 1, proc
    assert "before answering initialize" in proc.stderr and "not found" in proc.stderr, proc.stderr


def test_stderr_floods_and_non_json_lines_do_not_disturb_the_server(toolgate):
    # The SDK's stdio server guards its stdout, so the line that is not JSON comes from the shell before it starts.
    tg = stdio_upstream(toolgate, ALL_TOOLS, command=f"echo 'hello, not JSON'; {SERVER}")

    async def body() -> None:
        async with handshake_session(tg.url) as session:
            flood = await session.call_tool("flood_stderr", {"lines": 20000, "tag": "f"})
            assert text_of(flood) == "wrote 20000 lines to stderr"
            assert text_of(await session.call_tool("echo", {"text": "still here"})) == "echo: still here"

    run_async(body)

    def full_log() -> str:
        return tg.proc.log_path.read_text(errors="replace")

    assert wait_for(lambda: "flood f line 19999 " in full_log(), timeout=30), "every stderr line is logged, tagged"
    assert "source=upstream-stderr" in full_log()
    assert "upstream command wrote a line that is not JSON; skipped" in full_log()
    assert "line=hello, not JSON" in full_log()


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_no_process_outlives_toolgate(toolgate, how):
    tg = stdio_upstream(toolgate, ALL_TOOLS)
    assert run_async(lambda: _whoami(tg.url))
    pids = child_pids(tg.log())
    assert len(pids) == 1
    child = pids[0]
    assert alive(child)
    if how == "SIGTERM":
        assert tg.stop() == 0, tg.log()
    else:
        tg.proc.popen.send_signal(signal.SIGKILL)
        tg.proc.popen.wait(timeout=10)
    assert wait_for(lambda: not group_alive(child), timeout=10), f"process group {child} outlived toolgate ({how})"


async def _whoami(url: str) -> str:
    async with modern_client(url) as client:
        return text_of(await client.call_tool("whoami", {}))


def test_readyz_names_the_stdio_upstream(toolgate):
    tg = stdio_upstream(toolgate, ALL_TOOLS)
    with http_client() as http:
        body = http.get(f"{tg.base}/readyz").json()
    assert body["status"] == "ready", body
    assert body["upstream"]["url"].startswith("stdio: "), body


def test_a_cancelled_call_is_cancelled_at_the_server_and_no_other(toolgate):
    """Handshake era: the SDK sends notifications/cancelled; per-request era: it closes the POST. Either way only the
    abandoned call stops at the server; another client's identical call runs on."""
    import anyio

    tg = stdio_upstream(toolgate, ALL_TOOLS)
    tags = {name: f"{name}-{uuid.uuid4().hex[:8]}" for name in ["handshake", "modern", "kept"]}

    async def abandon_handshake() -> None:
        async with handshake_session(tg.url) as session:
            with anyio.move_on_after(0.7):
                await session.call_tool("sleepy", {"seconds": 3, "tag": tags["handshake"]})
            await anyio.sleep(0.3)

    async def abandon_modern() -> None:
        async with modern_client(tg.url) as client:
            with anyio.move_on_after(0.7):
                await client.call_tool("sleepy", {"seconds": 3, "tag": tags["modern"]})
            await anyio.sleep(0.3)

    async def keep() -> str:
        async with handshake_session(tg.url) as session:
            return text_of(await session.call_tool("sleepy", {"seconds": 1.5, "tag": tags["kept"]}))

    async def body() -> None:
        results = await asyncio.gather(abandon_handshake(), abandon_modern(), keep())
        assert "1.5" in results[2] or results[2], results
        await anyio.sleep(3)  # past the abandoned calls' own end: had they not been cancelled, they would be finished
        async with handshake_session(tg.url) as session:
            counts = {name: json.loads(text_of(await session.call_tool("executions", {"tag": tag})))
                      for name, tag in tags.items()}
        assert counts["kept"] == {"started": 1, "finished": 1}, counts
        assert counts["handshake"] == {"started": 1, "finished": 0}, counts
        assert counts["modern"] == {"started": 1, "finished": 0}, counts

    run_async(body, timeout=60)


def test_the_servers_own_request_reaches_the_client_whose_call_caused_it(toolgate):
    """Elicitation mid-call (handshake era: a request of the server's own): routed to the one client with a call in
    flight, its answer mapped back to the server's id."""
    import httpx2
    from mcp.client.streamable_http import streamable_http_client
    from mcp_types import ElicitResult

    import mcp

    tg = stdio_upstream(toolgate, ALL_TOOLS)
    asked: list[str] = []

    async def answer(context, params) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="accept", content={"answer": "forty-two"})

    async def body() -> None:
        async with httpx2.AsyncClient(timeout=30) as http:
            async with streamable_http_client(tg.url, http_client=http) as (read, write):
                async with mcp.ClientSession(read, write, elicitation_callback=answer, read_timeout_seconds=30) as session:
                    await session.initialize()
                    result = await session.call_tool("ask", {"question": "what is the answer?"})
                    assert text_of(result) == "accept: forty-two", result

    run_async(body)
    assert asked == ["what is the answer?"]


def test_readyz_is_degraded_while_the_server_restarts(toolgate):
    """DESIGN section 3: an upstream that cannot serve makes the sidecar `degraded` (200) with `upstream.problem`;
    taking the sidecar out of rotation would not bring its server back."""
    tg = stdio_upstream(toolgate, ALL_TOOLS)
    [child] = child_pids(tg.log())

    def readyz() -> tuple[int, dict]:
        with http_client() as http:
            response = http.get(f"{tg.base}/readyz")
            return response.status_code, response.json()

    assert readyz()[0] == 200
    os.kill(child, signal.SIGKILL)
    seen: list[dict] = []
    assert wait_for(lambda: (r := readyz())[1]["status"] != "ready" and not seen.append(r), timeout=10), tg.log()
    status, body = seen[0]
    assert status == 200 and body["status"] == "degraded" and "killed by signal 9" in body["upstream"]["problem"], body
    assert wait_for(lambda: readyz()[1]["status"] == "ready", timeout=20), tg.log()
    assert run_async(lambda: _whoami(tg.url)) != str(child)


def test_the_server_gets_no_secret_of_toolgates(toolgate):
    """Grant tokens read from the environment and TOOLGATE_* settings stay out; --upstream-env adds, expanded."""
    grants = {"grants": [{"name": "ci", "tokenEnv": "TG_E2E_GRANT_TOKEN"}]}
    env = {"TG_E2E_GRANT_TOKEN": "grant-secret-" + uuid.uuid4().hex, "TOOLGATE_E2E_SETTING": "redis://user:pw@x",
           "TG_E2E_PLAIN": "plain", "TG_E2E_SOURCE": "expanded-value"}
    tg = toolgate(None, ALL_TOOLS, grants=grants, env=env,
                  args=["--upstream-command", SERVER, "--upstream-env", "TG_E2E_GIVEN=${TG_E2E_SOURCE}!"])
    headers = {"Authorization": f"Bearer {env['TG_E2E_GRANT_TOKEN']}"}

    async def body() -> dict[str, str]:
        async with modern_client(tg.url, headers=headers) as client:
            return {name: text_of(await client.call_tool("getenv", {"name": name}))
                    for name in ["TG_E2E_GRANT_TOKEN", "TOOLGATE_E2E_SETTING", "TG_E2E_PLAIN", "TG_E2E_GIVEN"]}

    seen = run_async(body)
    assert seen == {"TG_E2E_GRANT_TOKEN": "<unset>", "TOOLGATE_E2E_SETTING": "<unset>", "TG_E2E_PLAIN": "plain",
                    "TG_E2E_GIVEN": "expanded-value!"}, seen


def test_a_call_that_finds_the_server_gone_is_refunded_one_it_had_is_not(toolgate, tmp_path):
    """DESIGN section 7's refund rule for a stdio upstream: a call the server received and lost in its crash stays
    charged (the tool may have run); a call refused while it restarts was never delivered, and is refunded."""
    started_once = tmp_path / "started-once"
    # Restarts take 3 s more than the first start: a window in which calls find no server.
    command = f"if [ -e {started_once} ]; then sleep 3; fi; touch {started_once}; exec {SERVER}"
    policy = {"version": "1", "default": "deny", "tools": {
        "crash": {"limits": [{"counter": "crash_day", "window": "day", "max": 1}]},
        "whoami": {"limits": [{"counter": "whoami_day", "window": "day", "max": 1}]}}}
    tg = stdio_upstream(toolgate, policy, command=command)

    def readyz_status() -> str:
        with http_client() as http:
            return http.get(f"{tg.base}/readyz").json()["status"]

    async def body() -> None:
        async with modern_client(tg.url) as client:
            with pytest.raises(MCPError) as crashed:
                await client.call_tool("crash", {})
            assert crashed.value.code == -32603
        assert wait_for(lambda: readyz_status() == "degraded", timeout=5)
        with http_client() as http:  # raw: a client's own discovery would be refused first
            refused = final_response(post(http, tg.url, tool_call(1, "whoami", {}, modern=True),
                                          modern_headers("tools/call", "whoami")))
        assert refused["error"]["code"] == -32603 and "not ready" in refused["error"]["message"], refused
        assert wait_for(lambda: readyz_status() == "ready", timeout=20), tg.log()
        async with modern_client(tg.url) as client:
            assert (await client.call_tool("whoami", {})).is_error is False, "the refused call was refunded"
            again = await client.call_tool("crash", {})
            assert again.is_error is True and denial_of(again)["reason"] == "rate_limited", "the lost call stays charged"

    run_async(body, timeout=60)
