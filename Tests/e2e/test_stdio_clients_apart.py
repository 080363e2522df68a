"""Issue 22 findings 2-4: a stdio upstream shared by several clients keeps them apart (DESIGN.md section 3).

A server request (elicitation) is answered only by the client it was routed to; a cancellation reaches the server
only from the client that sent the request, and a cancelled or dropped request still ends its exchange; a
notification no one client can be told for goes to none, `list_changed` to all; `--upstream-isolation session` runs
one server process per session (per grant without one), capped, stopped on DELETE.

The server is the SDK's own stdio server (upstream_mcp_server.py --stdio). Raw HTTP where a hostile client sends what
the SDK never would.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import uuid
from typing import Any

import httpx2
import pytest
from mcp.shared.exceptions import MCPError

import mcp
from helpers import (
    ACCEPT_BOTH,
    HANDSHAKE_VERSION,
    assert_http_refusal,
    handshake_session,
    jsonrpc_messages,
    modern_client,
    modern_headers,
    run_async,
    text_of,
    wait_for,
)
from test_stdio_upstream import SERVER, alive

ALL_TOOLS = {"version": "1", "default": "allow", "tools": {}}
VICTIM_TOKEN = "victim-" + uuid.uuid4().hex
ATTACKER_TOKEN = "attacker-" + uuid.uuid4().hex
GRANTS = {"grants": [{"name": "victim", "tokenEnv": "TG_E2E_VICTIM"}, {"name": "attacker", "tokenEnv": "TG_E2E_ATTACKER"}]}
GRANT_ENV = {"TG_E2E_VICTIM": VICTIM_TOKEN, "TG_E2E_ATTACKER": ATTACKER_TOKEN}
VICTIM = {"Authorization": f"Bearer {VICTIM_TOKEN}"}
ATTACKER = {"Authorization": f"Bearer {ATTACKER_TOKEN}"}


def start(toolgate, extra: list[str] | None = None):
    return toolgate(None, ALL_TOOLS, grants=GRANTS, env=GRANT_ENV, args=["--upstream-command", SERVER] + (extra or []))


def headers(auth: dict[str, str], session: str | None = None, **more: str) -> dict[str, str]:
    out = {"Accept": ACCEPT_BOTH, "Content-Type": "application/json", **auth, **more}
    if session is not None:
        out["Mcp-Session-Id"] = session
    return out


async def raw_session(http: httpx2.AsyncClient, url: str, auth: dict[str, str]) -> str:
    """A handshake-era session opened by hand: its id."""
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": HANDSHAKE_VERSION, "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}
    response = await http.post(url, content=json.dumps(init), headers=headers(auth))
    assert response.status_code == 200, response.text
    session = response.headers["mcp-session-id"]
    done = await http.post(url, content=json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}),
                           headers=headers(auth, session, **{"MCP-Protocol-Version": HANDSHAKE_VERSION}))
    assert done.status_code == 202, done.text
    return session


def call(mid: Any, name: str, arguments: dict[str, Any]) -> str:
    return json.dumps({"jsonrpc": "2.0", "id": mid, "method": "tools/call", "params": {"name": name, "arguments": arguments}})


def metric(tg, name: str, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx2.get(f"{tg.base}/metrics", timeout=10).text
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


# ---------------------------------------------------------------------------------------------------------
# Finding 2: only the client a server request was routed to may answer it


def test_only_the_client_an_elicitation_was_routed_to_may_answer_it(toolgate):
    from mcp.client.streamable_http import streamable_http_client
    from mcp_types import ElicitResult

    tg = start(toolgate)
    attempts: list[tuple[str, int, dict]] = []

    async def body() -> None:
        async with httpx2.AsyncClient(timeout=30) as raw:
            other_session_same_grant = await raw_session(raw, tg.url, VICTIM)
            attacker_session = await raw_session(raw, tg.url, ATTACKER)

            async def answer(context, params) -> ElicitResult:
                routed_id = context.request_id
                forged = json.dumps({"jsonrpc": "2.0", "id": routed_id,
                                     "result": {"action": "accept", "content": {"answer": "made up"}}})
                victim_session = sessions[0]
                tries = {
                    "another grant, no session": headers(ATTACKER),
                    "another grant, its own session": headers(ATTACKER, attacker_session),
                    "another grant, the victim's session": headers(ATTACKER, victim_session),
                    "the same grant, no session": headers(VICTIM),
                    "the same grant, another session": headers(VICTIM, other_session_same_grant),
                }
                for who, h in tries.items():
                    response = await raw.post(tg.url, content=forged, headers=h)
                    attempts.append((who, response.status_code, response.json() if response.content else {}))
                return ElicitResult(action="accept", content={"answer": "forty-two"})

            sessions: list[str] = []

            async def on_response(response: httpx2.Response) -> None:
                if "mcp-session-id" in response.headers:
                    sessions.append(response.headers["mcp-session-id"])

            async with httpx2.AsyncClient(timeout=30, headers=VICTIM, event_hooks={"response": [on_response]}) as victim_http:
                async with streamable_http_client(tg.url, http_client=victim_http) as (read, write):
                    async with mcp.ClientSession(read, write, elicitation_callback=answer, read_timeout_seconds=30) as s:
                        await s.initialize()
                        result = await s.call_tool("ask", {"question": "what is the answer?"})
                        assert text_of(result) == "accept: forty-two", (result, attempts)

    run_async(body)
    assert len(attempts) == 5, attempts
    for who, status, answer in attempts:
        assert status == 400, (who, status, answer)
        assert answer.get("id", "absent") is None and answer["error"]["code"] == -32600, (who, answer)
    assert metric(tg, "toolgate_stdio_refused_responses_total", reason="other_client") == 5


def test_an_answer_to_no_waiting_request_is_refused(toolgate):
    tg = start(toolgate)

    async def body() -> None:
        async with httpx2.AsyncClient(timeout=30) as raw:
            session = await raw_session(raw, tg.url, ATTACKER)
            for guess in ["tg-server-1", "tg-server-2", 7]:
                forged = json.dumps({"jsonrpc": "2.0", "id": guess, "result": {"action": "accept"}})
                response = await raw.post(tg.url, content=forged, headers=headers(ATTACKER, session))
                assert_http_refusal(response, 400, -32600)

    run_async(body)
    assert metric(tg, "toolgate_stdio_refused_responses_total", reason="unknown_request") == 3
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: run scripts/bootstrap.sh (Debian package prometheus)", pytrace=False)
    text = httpx2.get(f"{tg.base}/metrics", timeout=10).text
    checked = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0 and not (checked.stdout + checked.stderr).strip(), checked.stdout + checked.stderr


# ---------------------------------------------------------------------------------------------------------
# Finding 3: cancellations from the caller only; no exchange waits for ever


def test_a_per_request_era_client_cannot_cancel_anothers_call_by_guessing_its_id(toolgate):
    tg = start(toolgate)
    tag = "victim-" + uuid.uuid4().hex[:8]

    async def started() -> int:
        async with modern_client(tg.url, headers=VICTIM) as probe:
            return json.loads(text_of(await probe.call_tool("executions", {"tag": tag})))["started"]

    async def attack() -> None:
        for _ in range(200):
            if await started() == 1:
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the victim's call never started")
        async with httpx2.AsyncClient(timeout=30) as raw:
            for guess in [*range(0, 10), *(str(i) for i in range(0, 10))]:
                for auth in (ATTACKER, VICTIM):  # another grant, and the same grant without a session
                    cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled",
                              "params": {"requestId": guess, "reason": "hostile"}}
                    response = await raw.post(tg.url, content=json.dumps(cancel),
                                              headers=headers(auth, **modern_headers("notifications/cancelled")))
                    assert response.status_code in (200, 202), response.text

    async def victim() -> str:
        async with modern_client(tg.url, headers=VICTIM) as client:
            return text_of(await client.call_tool("sleepy", {"seconds": 2, "tag": tag}))

    async def body() -> None:
        result, _ = await asyncio.gather(victim(), attack())
        assert "2" in result, result
        async with modern_client(tg.url, headers=VICTIM) as probe:
            counts = json.loads(text_of(await probe.call_tool("executions", {"tag": tag})))
        assert counts == {"started": 1, "finished": 1}, counts

    run_async(body, timeout=60)


def test_a_cancelled_call_ends_its_exchange_with_an_error_for_its_id(toolgate):
    """The server drops a cancelled request without an answer; toolgate ends the caller's exchange itself."""
    tg = start(toolgate)
    tag = "cancelled-" + uuid.uuid4().hex[:8]

    async def body() -> None:
        async with httpx2.AsyncClient(timeout=httpx2.Timeout(10, read=20)) as raw:
            session = await raw_session(raw, tg.url, VICTIM)
            h = headers(VICTIM, session, **{"MCP-Protocol-Version": HANDSHAKE_VERSION})

            async def the_call() -> httpx2.Response:
                return await raw.post(tg.url, content=call(41, "sleepy", {"seconds": 3600, "tag": tag}), headers=h)

            async def cancel() -> None:
                for _ in range(200):
                    probe = await raw.post(tg.url, content=call(1, "executions", {"tag": tag}), headers=h)
                    if json.loads(jsonrpc_messages(probe)[-1]["result"]["content"][0]["text"])["started"] == 1:
                        break
                    await asyncio.sleep(0.05)
                note = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 41}}
                response = await raw.post(tg.url, content=json.dumps(note), headers=h)
                assert response.status_code == 202, response.text

            response, _ = await asyncio.gather(the_call(), cancel())
            answers = [m for m in jsonrpc_messages(response) if "id" in m]
            assert len(answers) == 1 and answers[0]["id"] == 41 and answers[0]["error"]["code"] == -32603, answers

    run_async(body, timeout=60)


def test_a_request_the_server_never_answers_ends_at_the_upstream_timeout(toolgate):
    tg = start(toolgate, ["--upstream-headers-timeout", "2", "--upstream-idle-timeout", "2"])

    async def body() -> None:
        async with handshake_session(tg.url, headers=VICTIM) as session:
            with pytest.raises(MCPError) as info:
                await session.call_tool("sleepy", {"seconds": 3600, "tag": "dropped"})
            assert info.value.code == -32603 and "ended before the answer" in info.value.message, info.value.message
            assert text_of(await session.call_tool("echo", {"text": "after"})) == "echo: after"

    run_async(body, timeout=60)
    assert "the upstream command sent nothing for this request for 2.0 seconds" in tg.log(), tg.log()


# ---------------------------------------------------------------------------------------------------------
# Finding 4: notifications no one client can be told for go to none; list changes to all


async def stream_of(http: httpx2.AsyncClient, url: str, auth: dict[str, str], session: str, tag: str) -> list[dict]:
    h = headers(auth, session, **{"MCP-Protocol-Version": HANDSHAKE_VERSION})
    response = await http.post(url, content=call(9, "wait_sent", {"tag": tag}), headers=h)
    return jsonrpc_messages(response)


@pytest.mark.parametrize("kind", ["log", "resource_updated", "progress"])
def test_a_notification_of_no_one_clients_goes_to_no_client(toolgate, kind):
    tg = start(toolgate)
    tag = f"{kind}-{uuid.uuid4().hex[:8]}"

    async def body() -> None:
        async with httpx2.AsyncClient(timeout=30) as raw:
            a = await raw_session(raw, tg.url, VICTIM)
            b = await raw_session(raw, tg.url, ATTACKER)
            h = headers(VICTIM, a, **{"MCP-Protocol-Version": HANDSHAKE_VERSION})
            # A's call answers at once; the notification it causes comes while only B has a call in flight.
            started = await raw.post(tg.url, content=call(1, "notify_later", {"kind": kind, "tag": tag}), headers=h)
            assert "will send" in json.dumps(jsonrpc_messages(started)), started.text
            seen = await stream_of(raw, tg.url, ATTACKER, b, tag)
            assert [m.get("method") for m in seen] == [None], seen
            assert seen[0]["result"]["content"][0]["text"] == f"sent {tag}", seen

    run_async(body)


@pytest.mark.parametrize("kind", ["tools", "resources", "prompts"])
def test_a_list_change_goes_to_every_client(toolgate, kind):
    tg = start(toolgate)
    tag = f"{kind}-{uuid.uuid4().hex[:8]}"

    async def body() -> None:
        async with httpx2.AsyncClient(timeout=30) as raw:
            a = await raw_session(raw, tg.url, VICTIM)
            b = await raw_session(raw, tg.url, ATTACKER)
            c = await raw_session(raw, tg.url, VICTIM)
            h = headers(VICTIM, c, **{"MCP-Protocol-Version": HANDSHAKE_VERSION})
            trigger = raw.post(tg.url, content=call(1, "notify_later", {"kind": f"{kind}_list_changed", "tag": tag,
                                                                         "waiters": 2}), headers=h)
            seen_a, seen_b, _ = await asyncio.gather(
                stream_of(raw, tg.url, VICTIM, a, tag), stream_of(raw, tg.url, ATTACKER, b, tag), trigger)
            for seen in (seen_a, seen_b):
                assert [m.get("method") for m in seen] == [f"notifications/{kind}/list_changed", None], seen

    run_async(body)


# ---------------------------------------------------------------------------------------------------------
# --upstream-isolation session


def started_pids(log: str) -> list[int]:
    return [int(p) for p in re.findall(r"pid=(\d+) \[toolgate\] upstream command started", log)]


def test_isolation_session_gives_each_session_its_own_process_capped_and_stopped_on_delete(toolgate):
    tg = start(toolgate, ["--upstream-isolation", "session", "--upstream-max-processes", "2"])
    trial = started_pids(tg.log())
    assert len(trial) == 1 and wait_for(lambda: not alive(trial[0]), timeout=10), "the start-up trial run is stopped"

    async def whoami(http: httpx2.AsyncClient, auth: dict[str, str], session: str) -> str:
        h = headers(auth, session, **{"MCP-Protocol-Version": HANDSHAKE_VERSION})
        response = await http.post(tg.url, content=call(3, "whoami", {}), headers=h)
        return jsonrpc_messages(response)[-1]["result"]["content"][0]["text"]

    async def body() -> None:
        async with httpx2.AsyncClient(timeout=30) as raw:
            async with handshake_session(tg.url, headers=VICTIM) as sdk:
                sdk_pid = text_of(await sdk.call_tool("whoami", {}))
                assert text_of(await sdk.call_tool("whoami", {})) == sdk_pid, "a session keeps its process"
                b = await raw_session(raw, tg.url, VICTIM)
                b_pid = await whoami(raw, VICTIM, b)
                assert b_pid != sdk_pid, "two sessions, two processes"
                assert await whoami(raw, VICTIM, b) == b_pid

                # Past the cap: a new session is refused, 503 with Retry-After.
                init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                    "protocolVersion": HANDSHAKE_VERSION, "capabilities": {}, "clientInfo": {"name": "c", "version": "1"}}}
                full = await raw.post(tg.url, content=json.dumps(init), headers=headers(ATTACKER))
                assert full.status_code == 503 and full.headers.get("retry-after"), (full.status_code, full.text)
                assert full.json()["error"]["code"] == -32603, full.text

                # No client reaches another's process: another grant with b's session, or a made-up session.
                for auth, session in [(ATTACKER, b), (VICTIM, uuid.uuid4().hex)]:
                    h = headers(auth, session, **{"MCP-Protocol-Version": HANDSHAKE_VERSION})
                    refused = await raw.post(tg.url, content=call(4, "whoami", {}), headers=h)
                    assert refused.status_code == 404, refused.text
                gone = await raw.delete(tg.url, headers=headers(ATTACKER, b))
                assert gone.status_code == 404, "another grant cannot delete b's session"
                assert alive(int(b_pid))

                # DELETE stops the session's process and frees its place.
                deleted = await raw.delete(tg.url, headers=headers(VICTIM, b))
                assert deleted.status_code == 200, deleted.text
                assert wait_for(lambda: not alive(int(b_pid)), timeout=15), tg.log()
                c = await raw_session(raw, tg.url, ATTACKER)
                c_pid = await whoami(raw, ATTACKER, c)
                assert c_pid not in (sdk_pid, b_pid)
                assert alive(int(sdk_pid))

    run_async(body, timeout=90)


def test_isolation_session_gives_a_per_request_era_grant_its_own_process(toolgate):
    tg = start(toolgate, ["--upstream-isolation", "session"])

    async def pid(auth: dict[str, str]) -> str:
        async with modern_client(tg.url, headers=auth) as client:
            return text_of(await client.call_tool("whoami", {}))

    async def body() -> None:
        victim = await pid(VICTIM)
        assert await pid(VICTIM) == victim, "one process per grant"
        attacker = await pid(ATTACKER)
        assert attacker != victim

    run_async(body)


def test_isolation_flags_are_checked(tmp_path):
    from conftest import toolgate_binary

    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps(ALL_TOOLS))
    for bad, message in [(["--upstream-isolation", "process"], "--upstream-isolation must be shared or session"),
                         (["--upstream-max-processes", "0"], "--upstream-max-processes must be an integer")]:
        proc = subprocess.run([toolgate_binary(), "serve", "--policy", str(policy), "--upstream-command", SERVER, *bad],
                              capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        assert proc.returncode == 64 and message in proc.stderr, proc


def test_the_stdio_command_takes_the_isolation_flags(tmp_path):
    """`toolgate stdio --upstream-command ... --upstream-isolation session`: its one client's session gets a process
    of its own (the start-up trial run is another, stopped)."""
    from test_stdio import stdio_session

    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps(ALL_TOOLS))
    args = ["stdio", "--policy", str(policy), "--upstream-command", SERVER, "--upstream-isolation", "session",
            "--upstream-max-processes", "1", "--log-level", "debug"]
    errlog_path = tmp_path / "toolgate-stderr.log"

    async def body() -> None:
        with open(errlog_path, "w") as errlog:
            async with stdio_session(args, errlog) as session:
                pid = text_of(await session.call_tool("whoami", {}))
                assert text_of(await session.call_tool("whoami", {})) == pid

    run_async(body)
    assert len(started_pids(errlog_path.read_text())) == 2, errlog_path.read_text()
