"""/metrics (Prometheus text, parsed with prometheus_client's parser), /healthz and /readyz."""

from __future__ import annotations

import hashlib

import pytest
from mcp.shared.exceptions import MCPError
from prometheus_client.parser import text_string_to_metric_families

from helpers import SEED_POLICY, handshake_session, http_client, run_async, wait_for


def _samples(text: str) -> list:
    """Every sample of every family (a counter's family is named without `_total`; its samples keep it)."""
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def _value(samples: list, name: str, **labels: str) -> float:
    matches = [s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    return sum(matches)


def _metrics(tg) -> str:
    with http_client() as http:
        response = http.get(f"{tg.base}/metrics")
    assert response.status_code == 200, response.text
    content_type = response.headers.get("content-type", "")
    assert content_type.startswith("text/plain") or content_type.startswith("application/openmetrics-text"), content_type
    return response.text


def test_metrics_count_the_decisions_just_made(mcp_upstream_sse, toolgate):
    tg = toolgate(mcp_upstream_sse.url, SEED_POLICY)

    async def body():
        async with handshake_session(tg.url) as session:
            for i in range(11):
                await session.call_tool("imageBackgroundRemoval", {"image": f"{i}.png"})
            for name in ["echo", "other_tool", "no_such_tool"]:
                with pytest.raises(MCPError):
                    await session.call_tool(name, {})

    run_async(body)
    text = _metrics(tg)
    samples = _samples(text)
    calls = [s for s in samples if s.name == "toolgate_tool_calls_total"]
    assert calls, f"no toolgate_tool_calls_total samples in:\n{text}"
    assert _value(samples, "toolgate_tool_calls_total", tool="imageBackgroundRemoval", decision="allowed") == 10
    assert _value(samples, "toolgate_tool_calls_total", tool="imageBackgroundRemoval", decision="rate_limited") == 1
    # Tools outside the policy are counted under "_other", so cardinality stays bounded.
    assert _value(samples, "toolgate_tool_calls_total", tool="_other", decision="unknown_tool") == 3
    assert {s.labels["tool"] for s in calls} <= {"imageBackgroundRemoval", "_other"}, calls
    assert sum(s.value for s in calls) == 14
    for name in ["echo", "other_tool", "no_such_tool"]:
        assert f'tool="{name}"' not in text


def test_metric_names_and_policy_info(raw_upstream, toolgate):
    tg = toolgate(raw_upstream.url, SEED_POLICY)
    with http_client() as http:
        response = http.post(tg.url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                           "params": {"name": "imageBackgroundRemoval", "arguments": {"image": "m"}}},
                             headers={"Accept": "application/json, text/event-stream"})
        assert response.status_code == 200
        readyz = http.get(f"{tg.base}/readyz").json()
    samples = _samples(_metrics(tg))
    names = {s.name for s in samples}
    for expected in [
        "toolgate_tool_calls_total",
        "toolgate_decision_duration_seconds_count",
        "toolgate_decision_duration_seconds_bucket",
        "toolgate_upstream_requests_total",
        "toolgate_upstream_duration_seconds_count",
        "toolgate_inflight_requests",
        "toolgate_policy_info",
        "toolgate_build_info",
    ]:
        assert expected in names, f"{expected} missing; metrics have {sorted(names)}"
    assert _value(samples, "toolgate_decision_duration_seconds_count") >= 1
    policy_info = [s for s in samples if s.name == "toolgate_policy_info"]
    assert [s.labels.get("sha256") for s in policy_info] == [readyz["policy"]["sha256"]], policy_info
    assert all(s.labels.get("version") for s in samples if s.name == "toolgate_build_info")


def test_healthz_and_readyz(raw_upstream, toolgate):
    tg = toolgate(raw_upstream.url, SEED_POLICY)
    with http_client() as http:
        healthz = http.get(f"{tg.base}/healthz")
        readyz = http.get(f"{tg.base}/readyz")
    assert healthz.status_code == 200
    assert readyz.status_code == 200, readyz.text
    assert readyz.headers.get("content-type", "").startswith("application/json"), readyz.headers
    body = readyz.json()
    assert body["status"] == "ready", body
    assert body["policy"]["sha256"] == hashlib.sha256(tg.policy_path.read_bytes()).hexdigest(), body
    assert body["store"]["kind"] == "memory", body
    assert isinstance(body["store"].get("warnings", []), list), body


def test_sigterm_exits_zero(raw_upstream, toolgate):
    tg = toolgate(raw_upstream.url, SEED_POLICY)
    assert tg.stop() == 0, f"toolgate should exit 0 on SIGTERM:\n{tg.log()}"


def test_sighup_reloads_a_valid_policy_and_keeps_the_old_one_on_errors(raw_upstream, toolgate):
    import json
    import signal

    from helpers import post, tool_call

    tg = toolgate(raw_upstream.url, SEED_POLICY)
    first_sha = hashlib.sha256(tg.policy_path.read_bytes()).hexdigest()

    def readyz_sha() -> str:
        with http_client() as http:
            return http.get(f"{tg.base}/readyz").json()["policy"]["sha256"]

    def echo_answer() -> dict:
        with http_client() as http:
            return post(http, tg.url, tool_call(1, "echo", {"text": "hi"})).json()

    assert readyz_sha() == first_sha
    assert echo_answer()["error"]["code"] == -32602  # not in the seed policy

    # A valid new policy takes effect on SIGHUP.
    allowing = {"version": "1", "default": "deny", "tools": {"echo": {}}}
    tg.policy_path.write_text(json.dumps(allowing))
    second_sha = hashlib.sha256(tg.policy_path.read_bytes()).hexdigest()
    tg.proc.popen.send_signal(signal.SIGHUP)
    assert wait_for(lambda: readyz_sha() == second_sha), tg.log()
    assert "result" in echo_answer()

    # A broken policy is refused whole: the one in force stays, and the process keeps serving.
    tg.policy_path.write_text('{"version":"1","tools":{"echo":{"limits":[{"counter":"c","window":"minit","max":1}]}}}')
    tg.proc.popen.send_signal(signal.SIGHUP)
    assert wait_for(lambda: _value(_samples(_metrics(tg)), "toolgate_policy_reloads_total", result="failure") == 1), tg.log()
    assert readyz_sha() == second_sha
    assert "result" in echo_answer()
    samples = _samples(_metrics(tg))
    assert _value(samples, "toolgate_policy_reloads_total", result="success") == 1
    assert _value(samples, "toolgate_policy_info", sha256=second_sha) == 1
    assert _value(samples, "toolgate_policy_info", sha256=first_sha) == 0
    assert 'unknown window "minit"' in tg.log()
