"""Issue 23 items 1 and 2: `toolgate stdio` exits as soon as nothing is in flight, and keeps the order of one stdin.

Exit: the official SDK's `stdio_client` closes toolgate's stdin when its context ends, waits 2 s for the process to
exit, then kills it. The property checked is that toolgate exited by itself, with status 0, by the time the client's
context has closed (the SDK never had to terminate it), with an HTTP upstream and with `--upstream-command`. SIGTERM
with nothing in flight exits 0 (well before a long --drain-timeout) and logs a true in-flight count of 0; a call in
flight at SIGTERM is still answered.

Order: `initialize`, `notifications/initialized` and `tools/list` written in one pipe write are all delivered and
answered; a notification written after requests reaches the upstream after them (raw_upstream.py records arrival).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx2
import mcp
import mcp.client.stdio as sdk_stdio
import pytest
from mcp.client.stdio import StdioServerParameters, stdio_client

from conftest import E2E_DIR, toolgate_binary
from helpers import SEED_POLICY, run_async, wait_for

STDIO_SERVER = f"{sys.executable} {E2E_DIR / 'upstream_mcp_server.py'} --stdio"
ALLOW_ALL = {"version": "1", "default": "allow", "tools": {}}

INITIALIZE = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
              "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                         "clientInfo": {"name": "raw", "version": "1"}}}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TOOLGATE_")}


def lines(*messages: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(m).encode() + b"\n" for m in messages)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0]
    except (FileNotFoundError, IndexError, ProcessLookupError):
        return False
    return state != "Z"


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(SEED_POLICY))
    return path


@pytest.fixture(params=["http", "command"])
def upstream_args(request: pytest.FixtureRequest) -> list[str]:
    """An SDK server over streamable HTTP, or the SDK's stdio server launched by toolgate (--upstream-command)."""
    if request.param == "http":
        return ["--upstream", request.getfixturevalue("mcp_upstream_sse").url]
    return ["--upstream-command", STDIO_SERVER]


def stdio_args(policy: Path, upstream_args: list[str], extra: list[str] | None = None) -> list[str]:
    return ["stdio", "--policy", str(policy), *upstream_args, "--log-level", "debug", "--drain-timeout", "60"] + (extra or [])


class WatchedLaunch:
    """What the SDK's stdio client did with the process it launched: the process, and whether it had to kill it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.processes: list[Any] = []
        self.terminated: list[int] = []
        create = sdk_stdio._create_platform_compatible_process
        terminate = sdk_stdio._terminate_process_tree

        async def create_and_keep(*args: Any, **kwargs: Any) -> Any:
            process = await create(*args, **kwargs)
            self.processes.append(process)
            return process

        async def terminate_and_note(process: Any, *args: Any, **kwargs: Any) -> None:
            self.terminated.append(process.pid)
            await terminate(process, *args, **kwargs)

        monkeypatch.setattr(sdk_stdio, "_create_platform_compatible_process", create_and_keep)
        monkeypatch.setattr(sdk_stdio, "_terminate_process_tree", terminate_and_note)

    def assert_exited_by_itself(self, log: str) -> None:
        assert len(self.processes) == 1
        process = self.processes[0]
        assert self.terminated == [], f"the SDK client had to kill toolgate (it did not exit when stdin closed):\n{log}"
        assert process.returncode == 0, (process.returncode, log)
        assert not alive(process.pid), log
        assert "drain timeout reached" not in log, log


@pytest.mark.parametrize("calls", [0, 2], ids=["after-initialize", "after-calls"])
def test_toolgate_has_exited_when_the_sdk_stdio_client_closes(policy_file, upstream_args, calls, monkeypatch, tmp_path):
    watched = WatchedLaunch(monkeypatch)
    params = StdioServerParameters(command=toolgate_binary(), args=stdio_args(policy_file, upstream_args), env=clean_env())
    errlog_path = tmp_path / "toolgate-stderr.log"
    errlog = open(errlog_path, "w")

    async def body() -> None:
        async with stdio_client(params, errlog=errlog) as (read, write):
            async with mcp.ClientSession(read, write, read_timeout_seconds=30) as session:
                await session.initialize()
                for i in range(calls):
                    assert (await session.call_tool("imageBackgroundRemoval", {"image": f"{i}.png"})).is_error is False
        # The client's context has closed: toolgate must be gone already, by itself.
        watched.assert_exited_by_itself(errlog_path.read_text())

    try:
        run_async(body)
    finally:
        errlog.close()
    log = errlog_path.read_text()
    for pid in re.findall(r"pid=(\d+) \[toolgate\] upstream command started", log):
        assert not alive(int(pid)), f"the upstream command {pid} outlived toolgate\n{log}"


def raw_stdio(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([toolgate_binary()] + args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=clean_env())


def initialized(proc: subprocess.Popen[bytes]) -> None:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(lines(INITIALIZE))
    proc.stdin.flush()
    first = json.loads(proc.stdout.readline())
    assert first["id"] == 0 and "result" in first, first
    proc.stdin.write(lines(INITIALIZED))
    proc.stdin.flush()


def inflight_gauge(port: int) -> float | None:
    text = httpx2.get(f"http://127.0.0.1:{port}/metrics", timeout=5.0).text
    found = re.search(r"^toolgate_inflight_requests (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else None


def test_sigterm_with_nothing_in_flight_exits_0_at_once(policy_file, upstream_args):
    """stdin stays open (a client may never close it): SIGTERM alone ends the process, without waiting out the
    60 s --drain-timeout, and the in-flight count is true: while idle it counts only the upstream's GET stream (an
    HTTP upstream has one; a stdio upstream has none), and the drain logs nothing in flight."""
    from helpers import free_port

    port = free_port()
    proc = raw_stdio(stdio_args(policy_file, upstream_args, ["--metrics-listen", f"127.0.0.1:{port}"]))
    listening = 1 if upstream_args[0] == "--upstream" else 0
    try:
        initialized(proc)
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(lines({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
        proc.stdin.flush()
        assert json.loads(proc.stdout.readline()) == {"jsonrpc": "2.0", "id": 1, "result": {}}
        assert wait_for(lambda: inflight_gauge(port) == listening, timeout=20), inflight_gauge(port)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)  # generous, and half the drain timeout: the old drain waited all of it
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = proc.stderr.read().decode() if proc.stderr else ""
    assert proc.returncode == 0, err
    assert re.search(r"inFlight=0 .*draining|draining.*inFlight=0", err), err
    assert "drain timeout reached" not in err, err


def test_a_call_in_flight_at_sigterm_is_still_answered(mcp_upstream_sse, tmp_path):
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"version": "1", "default": "deny", "tools": {"sleepy": {}}}))
    proc = raw_stdio(stdio_args(policy, ["--upstream", mcp_upstream_sse.url]))
    tag = "stdio-sigterm-" + uuid.uuid4().hex
    executions = f"http://127.0.0.1:{mcp_upstream_sse.port}/_executions"

    def started() -> bool:
        return httpx2.get(executions, timeout=5.0).json().get(tag, {}).get("started", 0) == 1

    try:
        initialized(proc)
        assert proc.stdin is not None
        proc.stdin.write(lines({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                "params": {"name": "sleepy", "arguments": {"seconds": 2, "tag": tag}}}))
        proc.stdin.flush()
        assert wait_for(started, timeout=30), "the call never reached the upstream"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=50)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.decode()
    answers = {m.get("id"): m for m in map(json.loads, out.decode().splitlines())}
    assert answers[1]["result"]["isError"] is False, answers
    assert httpx2.get(executions, timeout=5.0).json()[tag] == {"started": 1, "finished": 1}


def test_initialize_initialized_and_a_request_in_one_write_are_all_delivered(policy_file, upstream_args):
    """What a client that does not wait writes: nothing overtakes initialize, and the initialized notification
    reaches the upstream (the SDK's HTTP server refuses one that arrives without the session initialize opens)."""
    proc = raw_stdio(stdio_args(policy_file, upstream_args))
    out, err = proc.communicate(
        input=lines(INITIALIZE, INITIALIZED, {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}), timeout=60)
    assert proc.returncode == 0, err.decode()
    answers = {m.get("id"): m for m in map(json.loads, out.decode().splitlines())}
    assert "result" in answers[0], answers
    assert [t["name"] for t in answers[1]["result"]["tools"]] == ["imageBackgroundRemoval"], answers
    assert "not delivered" not in err.decode(), err.decode()


def test_a_notification_reaches_the_upstream_after_the_requests_written_before_it(raw_upstream, tmp_path):
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps(ALLOW_ALL))
    mark = uuid.uuid4().hex
    written: list[dict[str, Any]] = [INITIALIZE, INITIALIZED]
    for round_ in range(12):
        for k in range(3):
            written.append({"jsonrpc": "2.0", "id": f"{mark}-{round_}-{k}", "method": "tools/call",
                            "params": {"name": "echo", "arguments": {"text": f"{mark}-{round_}-{k}"}}})
        written.append({"jsonrpc": "2.0", "method": "notifications/roots/list_changed",
                        "params": {"mark": f"{mark}-{round_}"}})
    proc = raw_stdio(stdio_args(policy, ["--upstream", raw_upstream.url]))
    out, err = proc.communicate(input=lines(*written), timeout=60)
    assert proc.returncode == 0, err.decode()
    answered = {m.get("id") for m in map(json.loads, out.decode().splitlines())}
    assert {m["id"] for m in written if "id" in m} <= answered, out.decode()
    assert "not delivered" not in err.decode(), err.decode()

    arrived = [m for m in raw_upstream.seen_messages()
               if m.get("method") in ("initialize", "notifications/initialized")
               or mark in json.dumps(m.get("params", {}))]
    order = [m["id"] if "id" in m else m.get("params", {}).get("mark", m["method"]) for m in arrived]
    assert order[:2] == [0, "notifications/initialized"], order
    for round_ in range(12):
        notification = order.index(f"{mark}-{round_}")
        for k in range(3):
            assert order.index(f"{mark}-{round_}-{k}") < notification, order
        if round_ > 0:  # and the requests after the previous notification did not overtake it
            previous = order.index(f"{mark}-{round_ - 1}")
            assert all(order.index(f"{mark}-{round_}-{k}") > previous for k in range(3)), order
