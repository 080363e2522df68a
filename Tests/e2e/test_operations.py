"""Issue 12: running toolgate day after day (DESIGN sections 2, 3 and 8).

Hot reload when the policy file changes (in place, replaced by rename, a ConfigMap-style symlink swap, under
load), `--shadow`, `--audit-log` (reopened on SIGHUP), the drain on SIGTERM, and `/metrics` as `promtool check
metrics` reads it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from helpers import (
    readyz,
    SEED_POLICY,
    final_response,
    http_client,
    modern_client,
    modern_headers,
    post,
    run_async,
    text_of,
    tool_call,
    wait_for,
)

ECHO_ONLY = {"version": "1", "default": "deny", "tools": {"echo": {}}}
ECHO_AND_OTHER = {"version": "1", "default": "deny", "tools": {"echo": {}, "other_tool": {}}}


def policy_sha(tg: Any) -> str:
    return readyz(tg)[1]["policy"]["sha256"]


def metric(tg: Any, name: str, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    with http_client() as http:
        text = http.get(f"{tg.base}/metrics").text
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def call(tg: Any, name: str, mid: int = 1, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
    with http_client() as http:
        return post(http, tg.url, tool_call(mid, name, arguments or {})).json()


def allowed(answer: dict[str, Any]) -> bool:
    return "result" in answer and not (answer["result"].get("_meta") or {}).get("toolgate/denial")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- hot reload ---------------------------------------------------------------------------------------------------


def test_editing_the_file_reloads_it_and_a_bad_edit_keeps_the_old_policy(raw_upstream, toolgate):
    tg = toolgate(raw_upstream.url, ECHO_ONLY)
    assert "error" in call(tg, "other_tool")

    text = json.dumps(ECHO_AND_OTHER)
    tg.policy_path.write_text(text)  # in place, no signal
    assert wait_for(lambda: policy_sha(tg) == sha(text.encode())), tg.log()
    assert allowed(call(tg, "other_tool"))

    tg.policy_path.write_text('{"version":"1","tools":{"echo":{"limits":[{"counter":"c","window":"minit","max":1}]}}}')
    assert wait_for(lambda: metric(tg, "toolgate_policy_reloads_total", result="failure") == 1), tg.log()
    assert policy_sha(tg) == sha(text.encode())
    assert allowed(call(tg, "other_tool")), "the old policy keeps serving"
    assert f'{tg.policy_path}: tools.echo.limits[0].window: unknown window "minit"' in tg.log()

    # Touching the file without changing it reloads nothing.
    tg.policy_path.write_text(text)
    assert wait_for(lambda: policy_sha(tg) == sha(text.encode()))
    successes = metric(tg, "toolgate_policy_reloads_total", result="success")
    os.utime(tg.policy_path)
    time.sleep(1.5)
    assert metric(tg, "toolgate_policy_reloads_total", result="success") == successes


def test_a_file_replaced_by_rename_is_reloaded(raw_upstream, toolgate):
    tg = toolgate(raw_upstream.url, ECHO_ONLY)
    text = json.dumps(ECHO_AND_OTHER)
    fresh = tg.policy_path.with_suffix(".tmp")
    fresh.write_text(text)
    os.replace(fresh, tg.policy_path)  # what vim, sed -i and most editors do
    assert wait_for(lambda: policy_sha(tg) == sha(text.encode())), tg.log()
    assert allowed(call(tg, "other_tool"))
    assert metric(tg, "toolgate_policy_info", sha256=sha(text.encode())) == 1


def test_a_configmap_symlink_swap_is_reloaded(raw_upstream, toolgate, tmp_path):
    """Kubernetes mounts a ConfigMap as policy.json -> ..data/policy.json, ..data -> ..<timestamp>, and updates it
    by pointing ..data at a new timestamped folder in one rename."""
    mount = tmp_path / "configmap"
    first = mount / "..2026_12_01_a"
    first.mkdir(parents=True)
    (first / "policy.json").write_text(json.dumps(ECHO_ONLY))
    os.symlink(first.name, mount / "..data")
    os.symlink("..data/policy.json", mount / "policy.json")
    tg = toolgate(raw_upstream.url, ECHO_ONLY, args=["--policy", str(mount / "policy.json")])
    assert "error" in call(tg, "other_tool")

    second = mount / "..2026_12_01_b"
    second.mkdir()
    text = json.dumps(ECHO_AND_OTHER)
    (second / "policy.json").write_text(text)
    os.symlink(second.name, mount / "..data_tmp")
    os.replace(mount / "..data_tmp", mount / "..data")
    shutil.rmtree(first)
    assert wait_for(lambda: policy_sha(tg) == sha(text.encode())), tg.log()
    assert allowed(call(tg, "other_tool"))


def test_reloads_under_load_fail_no_request(raw_upstream, toolgate):
    tg = toolgate(raw_upstream.url, ECHO_ONLY)
    stop = threading.Event()
    failures: list[str] = []
    answered = [0]

    def hammer(worker: int) -> None:
        with http_client() as http:
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    answer = post(http, tg.url, tool_call(n, "echo", {"text": f"{worker}-{n}"})).json()
                    if not allowed(answer):
                        failures.append(json.dumps(answer))
                    answered[0] += 1
                except Exception as e:  # noqa: BLE001 (any failure is the finding)
                    failures.append(repr(e))

    with ThreadPoolExecutor(4) as pool:
        for w in range(4):
            pool.submit(hammer, w)
        shas = []
        for i in range(6):
            text = json.dumps({**ECHO_ONLY, "description": f"revision {i}"})
            fresh = tg.policy_path.with_suffix(f".{i}")
            fresh.write_text(text)
            os.replace(fresh, tg.policy_path)
            shas.append(sha(text.encode()))
            assert wait_for(lambda: policy_sha(tg) == shas[-1]), tg.log()
        stop.set()
    assert not failures, failures[:5]
    assert answered[0] > 20
    assert metric(tg, "toolgate_policy_reloads_total", result="success") == 6


# --- shadow -------------------------------------------------------------------------------------------------------


def test_shadow_mode_denies_nothing_and_counts_everything(mcp_upstream_sse, toolgate, store_args, tmp_path):
    audit = tmp_path / "audit.log"
    tg = toolgate(mcp_upstream_sse.url, SEED_POLICY, args=store_args + ["--shadow", "--audit-log", str(audit)])

    async def body() -> None:
        async with modern_client(tg.url) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert {"imageBackgroundRemoval", "echo", "other_tool"} <= names, "shadow hides nothing"
            for i in range(12):
                result = await client.call_tool("imageBackgroundRemoval", {"image": f"{i}.png"})
                assert result.is_error is False, f"call {i + 1} was refused in shadow mode: {result!r}"
            result = await client.call_tool("echo", {"text": "not in the policy"})
            assert text_of(result) == "echo: not in the policy"

    run_async(body)
    assert metric(tg, "toolgate_tool_calls_total", tool="imageBackgroundRemoval", decision="allowed") == 10
    assert metric(tg, "toolgate_tool_calls_total", tool="imageBackgroundRemoval", decision="shadow_denied") == 2
    assert metric(tg, "toolgate_tool_calls_total", tool="_other", decision="shadow_denied") == 1
    assert tg.stop() == 0
    lines = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [line["decision"] for line in lines] == ["allowed"] * 10 + ["shadow_denied"] * 3
    assert [line["reason"] for line in lines[10:]] == ["rate_limited", "rate_limited", "unknown_tool"]
    assert all(line["upstreamStatus"] == 200 for line in lines)


# --- audit log ----------------------------------------------------------------------------------------------------

AUDIT_FIELDS = {"time", "grant", "session", "agent", "tool", "rule", "decision", "reason", "counter", "remaining",
                "argumentsSha256", "upstreamStatus", "latencyMs", "policySha256"}


def test_audit_log_has_one_line_per_call_and_reopens_on_sighup(mcp_upstream_json, toolgate, tmp_path):
    audit = tmp_path / "audit.log"
    tg = toolgate(mcp_upstream_json.url, SEED_POLICY, args=["--audit-log", str(audit)])
    secret = "secret-" + uuid.uuid4().hex

    async def calls(n: int, start: int) -> None:
        async with modern_client(tg.url) as client:
            for i in range(start, start + n):
                await client.call_tool("imageBackgroundRemoval", {"image": f"{secret}-{i}.png"})

    run_async(lambda: calls(11, 0))
    assert wait_for(lambda: audit.exists() and len(audit.read_text().splitlines()) == 11), tg.log()
    lines = [json.loads(line) for line in audit.read_text().splitlines()]
    assert secret not in audit.read_text(), "never the arguments"
    for i, line in enumerate(lines):
        assert AUDIT_FIELDS <= set(line), line
        assert line["agent"] == "e2e-agent" and line["grant"] == "default" and line["tool"] == "imageBackgroundRemoval"
        assert line["rule"] == "imageBackgroundRemoval" and line["counter"] == "imagebackgroundremoval_rate"
        assert line["policySha256"] == sha(tg.policy_path.read_bytes())
        canonical = json.dumps({"image": f"{secret}-{i}.png"}, separators=(",", ":"), sort_keys=True)
        assert line["argumentsSha256"] == sha(canonical.encode()), line
        assert isinstance(line["latencyMs"], (int, float)) and line["latencyMs"] >= 0
    assert [line["remaining"] for line in lines] == list(range(9, -1, -1)) + [0]
    assert [line["decision"] for line in lines] == ["allowed"] * 10 + ["rate_limited"]
    assert [line["upstreamStatus"] for line in lines] == [200] * 10 + [None]

    rotated = audit.with_suffix(".log.1")
    os.rename(audit, rotated)
    tg.proc.popen.send_signal(signal.SIGHUP)
    assert wait_for(lambda: "audit log reopened" in tg.log()), tg.log()
    run_async(lambda: calls(1, 100))
    assert wait_for(lambda: audit.exists() and len(audit.read_text().splitlines()) == 1), tg.log()
    assert len(rotated.read_text().splitlines()) == 11


def test_an_audit_log_that_cannot_be_opened_refuses_to_start(raw_upstream, toolgate, tmp_path):
    tg = toolgate(raw_upstream.url, ECHO_ONLY, args=["--audit-log", str(tmp_path / "no" / "such" / "dir" / "a.log")],
                  wait=False)
    assert tg.proc.popen.wait(timeout=30) == 64
    assert "--audit-log" in tg.log() and "No such file or directory" in tg.log(), tg.log()


# --- drain --------------------------------------------------------------------------------------------------------


def test_sigterm_lets_the_call_in_flight_finish_and_refuses_new_sessions(mcp_upstream_sse, toolgate):
    policy = {"version": "1", "default": "deny", "tools": {"sleepy": {}, "echo": {}}}
    tg = toolgate(mcp_upstream_sse.url, policy, args=["--drain-timeout", "20"])
    outcome: dict[str, Any] = {}

    def slow_call() -> None:
        with http_client() as http:
            response = post(http, tg.url, tool_call(1, "sleepy", {"seconds": 3, "tag": "drain-" + uuid.uuid4().hex}, modern=True),
                            modern_headers("tools/call", "sleepy"))
            outcome["status"] = response.status_code
            outcome["answer"] = final_response(response)

    caller = threading.Thread(target=slow_call)
    caller.start()
    time.sleep(1.0)  # the call is with the upstream now
    tg.proc.popen.send_signal(signal.SIGTERM)
    assert wait_for(lambda: readyz(tg)[0] == 503, timeout=5), "readyz turns 503 while the call is still in flight"
    assert readyz(tg)[1]["status"] == "not_ready"
    with http_client() as http:
        refused = post(http, tg.url, {"jsonrpc": "2.0", "id": 2, "method": "server/discover"}, modern_headers("server/discover"))
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["code"] == -32603
    caller.join(timeout=30)
    assert outcome.get("status") == 200, (outcome, tg.log())
    assert "sleepy" not in json.dumps(outcome["answer"].get("error", {})), outcome
    assert outcome["answer"]["result"]["isError"] is False, outcome
    assert tg.proc.popen.wait(timeout=30) == 0, tg.log()
    assert "drained" in tg.log() and "drain timeout reached" not in tg.log(), "exits once drained, not at the timeout"


def test_a_drain_lets_the_sdk_finish_its_step_then_exits_without_waiting_for_the_timeout(mcp_upstream_sse, toolgate):
    """DESIGN section 2: the official SDK follows a tools/call with tools/list (to check output schemas) and ends its
    session with DELETE. A drain that began during the call serves both; a new session is refused meanwhile."""
    import anyio
    import httpx2
    import mcp
    from mcp.client.streamable_http import streamable_http_client

    policy = {"version": "1", "default": "deny", "tools": {"sleepy": {}}}
    tg = toolgate(mcp_upstream_sse.url, policy, args=["--drain-timeout", "60"])
    statuses: list[tuple[str, str, int]] = []

    async def record(response: httpx2.Response) -> None:
        body = response.request.content.decode(errors="replace") if response.request.method == "POST" else ""
        method = json.loads(body).get("method", "") if body.startswith("{") else ""
        statuses.append((response.request.method, method, response.status_code))

    async def step() -> Any:
        async with httpx2.AsyncClient(timeout=30, event_hooks={"response": [record]}) as http:
            async with streamable_http_client(tg.url, http_client=http) as (read, write):
                async with mcp.ClientSession(read, write, read_timeout_seconds=30) as session:
                    await session.initialize()
                    async with anyio.create_task_group() as group:
                        async def terminate_during_the_call() -> None:
                            await anyio.sleep(1.0)  # the call is with the upstream now
                            tg.proc.popen.send_signal(signal.SIGTERM)
                        group.start_soon(terminate_during_the_call)
                        result = await session.call_tool("sleepy", {"seconds": 2.5, "tag": "step-" + uuid.uuid4().hex})
                    # A new agent is sent elsewhere while this one finishes.
                    with http_client() as other:
                        refused = post(other, tg.url, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "late", "version": "1"}}})
                    assert refused.status_code == 503 and refused.json()["error"]["code"] == -32603, refused.text
                    return result

    result = run_async(step)
    assert result.is_error is False, (result, tg.log())
    after_sigterm = statuses[statuses.index(next(s for s in statuses if s[1] == "tools/call")):]
    assert ("POST", "tools/list", 200) in after_sigterm, (statuses, tg.log())
    assert any(m == "DELETE" and code in (200, 202, 204) for m, _, code in after_sigterm), (statuses, tg.log())
    assert tg.proc.popen.wait(timeout=30) == 0, tg.log()
    assert "drained" in tg.log() and "drain timeout reached" not in tg.log(), "exits once the step is done, not at the timeout"


def test_a_drain_timeout_ends_streams_that_outlive_it(mcp_upstream_sse, toolgate):
    policy = {"version": "1", "default": "deny", "tools": {"sleepy": {}}}
    tg = toolgate(mcp_upstream_sse.url, policy, args=["--drain-timeout", "1"])
    done = threading.Event()

    def endless_call() -> None:
        with http_client() as http:
            try:
                post(http, tg.url, tool_call(1, "sleepy", {"seconds": 60, "tag": "outlive-" + uuid.uuid4().hex}, modern=True),
                     modern_headers("tools/call", "sleepy"))
            except Exception:  # noqa: BLE001 (the stream may be cut either way)
                pass
        done.set()

    threading.Thread(target=endless_call, daemon=True).start()
    time.sleep(1.0)
    tg.proc.popen.send_signal(signal.SIGTERM)
    assert tg.proc.popen.wait(timeout=30) == 0, tg.log()
    assert done.wait(10), "the agent's response ended"
    assert "drain timeout reached" in tg.log()


# --- metrics ------------------------------------------------------------------------------------------------------


def test_promtool_check_metrics_reports_nothing(raw_upstream, toolgate):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: run scripts/bootstrap.sh (Debian package prometheus)", pytrace=False)
    tg = toolgate(raw_upstream.url, SEED_POLICY)
    for i in range(11):
        call(tg, "imageBackgroundRemoval", i, {"image": f"{i}.png"})
    call(tg, "echo")
    with http_client() as http:
        text = http.get(f"{tg.base}/metrics").text
    checked = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0 and checked.stdout.strip() == "" and checked.stderr.strip() == "", (
        checked.stdout + checked.stderr + "\n" + text)
    assert "# HELP toolgate_tool_calls_total " in text
