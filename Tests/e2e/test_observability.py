"""Issue 23, items 5 to 7: what was refused is visible, `/readyz` tells the truth, and a normal client exit is quiet.

- The audit log's `rule`, `reason` and `detail` (DESIGN section 8): `detail` names what decided a refusal, `reason`
  never just repeats the decision, `rule` is null for a tool no entry covers.
- `/readyz` (DESIGN section 3): `degraded` (200) with `upstream.problem` while the HTTP upstream is unreachable; a
  client that leaves is not an upstream status; `policy.lastReloadError` until a good reload.
- A client that leaves normally (the SDK closing its session) is logged at debug, not as a broken upstream answer.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

from helpers import (
    readyz,
    final_response,
    free_port,
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
from processes import E2E_DIR, tcp_accepts


def call(tg: Any, name: str, mid: int, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
    """A per-request-era call (the SDK upstream serves it without a session), over raw HTTP."""
    with http_client() as http:
        response = post(http, tg.url, tool_call(mid, name, arguments or {}, modern=True), modern_headers("tools/call", name))
        return final_response(response)


# --- audit fields ---------------------------------------------------------------------------------------------

AUDITED = {
    "version": "1",
    "default": "deny",
    "hide": ["other_*"],
    "tools": {
        "echo": {"limits": [{"counter": "echo_burst", "window": "minute", "max": 1}]},
        "imageBackgroundRemoval": {"arguments": [
            {"path": "image", "op": "max_length", "value": 100},
            {"path": "width", "op": "lte", "value": 500},
        ]},
        "other_tool": {},
        "sleepy": {"action": "deny", "reason": "no sleeping on the job"},
    },
}


def test_audit_lines_name_the_rule_that_decided_and_never_repeat_the_decision(mcp_upstream_json, toolgate, tmp_path):
    audit = tmp_path / "audit.log"
    tg = toolgate(mcp_upstream_json.url, AUDITED, args=["--audit-log", str(audit)])
    answers = [
        call(tg, "echo", 1, {"text": "one"}),
        call(tg, "echo", 2, {"text": "two"}),
        call(tg, "imageBackgroundRemoval", 3, {"image": "a.png", "width": 900}),
        call(tg, "other_tool", 4),
        call(tg, "sleepy", 5),
        call(tg, "nope", 6),
    ]
    # The agent's text is what it was: the detail goes to the audit log only.
    assert text_of_answer(answers[2]).endswith("argument width must be a number of at most 500"), answers[2]

    def lines() -> list[dict[str, Any]]:
        return [json.loads(line) for line in audit.read_text().splitlines()] if audit.exists() else []

    assert wait_for(lambda: len(lines()) == 6), (lines(), tg.log()[-3000:])
    by_tool = {}
    for line in lines():
        by_tool.setdefault(line["tool"], []).append(line)
    for line in lines():
        assert line["reason"] != line["decision"], line
        assert "detail" in line, line

    allowed, limited = by_tool["echo"]
    assert allowed["decision"] == "allowed" and allowed["detail"] is None and allowed["reason"] is None, allowed
    assert limited["decision"] == "rate_limited" and limited["rule"] == "echo", limited
    assert limited["detail"] == "limit echo_burst", limited
    assert limited["reason"].startswith("rate limit echo_burst reached"), limited

    [invalid] = by_tool["imageBackgroundRemoval"]
    assert invalid["decision"] == "invalid_arguments" and invalid["rule"] == "imageBackgroundRemoval", invalid
    assert invalid["detail"] == "arguments[1]: width lte 500", invalid
    assert invalid["reason"] == "argument width must be a number of at most 500", invalid

    [hidden] = by_tool["other_tool"]
    assert hidden["decision"] == "unknown_tool" and hidden["rule"] is None and hidden["detail"] == "hidden", hidden

    [denied] = by_tool["sleepy"]
    assert denied["decision"] == "denied" and denied["rule"] == "sleepy", denied
    assert denied["reason"] == "no sleeping on the job" and denied["detail"] == "action deny", denied

    [unknown] = by_tool["nope"]
    assert unknown["decision"] == "unknown_tool" and unknown["rule"] is None, unknown
    assert unknown["detail"] == "no entry (default deny)", unknown


def text_of_answer(answer: dict[str, Any]) -> str:
    return "".join(part.get("text", "") for part in answer["result"]["content"])


# --- /readyz --------------------------------------------------------------------------------------------------


def test_readyz_is_degraded_while_the_http_upstream_is_unreachable_and_ready_once_it_answers(toolgate, procs):
    port = free_port()
    tg = toolgate(f"http://127.0.0.1:{port}/mcp", {"version": "1", "default": "deny", "tools": {"echo": {}}})
    answer = call(tg, "echo", 1, {"text": "hello"})
    assert answer["error"]["code"] == -32603, answer
    status, body = readyz(tg)
    assert (status, body["status"]) == (200, "degraded"), body
    assert body["upstream"]["problem"], body
    assert body["upstream"]["lastStatus"] == "unreachable", body

    upstream = procs.start("late-upstream", [sys.executable, str(E2E_DIR / "upstream_mcp_server.py"), "--port", str(port),
                                             "--json-response"])
    def accepts() -> bool:
        try:
            return tcp_accepts(port)
        except OSError:
            return False

    assert wait_for(accepts, timeout=30), upstream.log()
    answer = call(tg, "echo", 2, {"text": "hello"})
    assert "result" in answer, answer
    status, body = readyz(tg)
    assert (status, body["status"]) == (200, "ready"), body
    assert "problem" not in body["upstream"], body


def inflight(tg: Any) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    with http_client() as http:
        text = http.get(f"{tg.base}/metrics").text
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == "toolgate_inflight_requests")


def test_a_client_that_leaves_normally_is_no_upstream_status_and_no_warning(mcp_upstream_sse, toolgate):
    tg = toolgate(mcp_upstream_sse.url, {"version": "1", "default": "deny", "tools": {"echo": {}, "sleepy": {}}})

    async def handshake_step() -> None:
        async with handshake_session(tg.url) as session:
            result = await session.call_tool("echo", {"text": "hi"})
            assert text_of(result) == "echo: hi"

    async def modern_step() -> None:
        async with modern_client(tg.url) as client:
            result = await client.call_tool("echo", {"text": "hi"})
            assert text_of(result) == "echo: hi"

    # SDK clients closing their sessions: the modern client's open streams end as it goes (on the old code each such
    # exit logged "upstream answer broken ... the agent went away" as a warning).
    for _ in range(3):
        run_async(handshake_step)
        run_async(modern_step)
    # Every answer has ended (the gauge counts relaying streams too), so every line about them is written.
    assert wait_for(lambda: inflight(tg) == 0, timeout=30), tg.log()[-4000:]
    warnings = [line for line in tg.log().splitlines() if re.search(r"\b(warning|error|critical)\b", line)]
    assert not [line for line in warnings if "went away" in line or "upstream answer broken" in line], warnings
    status, body = readyz(tg)
    assert (status, body["status"]) == (200, "ready"), body
    assert body["upstream"].get("lastStatus") != "cancelled", body


def test_a_refused_reload_shows_in_readyz_until_a_good_one(mcp_upstream_json, toolgate):
    tg = toolgate(mcp_upstream_json.url, {"version": "1", "default": "deny", "tools": {"echo": {}}})
    assert "lastReloadError" not in readyz(tg)[1]["policy"]
    first_sha = readyz(tg)[1]["policy"]["sha256"]
    tg.policy_path.write_text(json.dumps({"version": "1", "tools": {"echo": {"acton": "allow"}}}))

    def refused() -> dict[str, Any] | None:
        return readyz(tg)[1]["policy"].get("lastReloadError")

    assert wait_for(lambda: refused() is not None, timeout=20), tg.log()[-3000:]
    error = refused()
    assert error["path"] == str(tg.policy_path), error
    assert "acton" in error["error"], error
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", error["time"]), error
    status, body = readyz(tg)
    assert status == 200 and body["policy"]["sha256"] == first_sha, body

    tg.policy_path.write_text(json.dumps({"version": "1", "default": "deny", "tools": {"echo": {}, "sleepy": {}}}))
    assert wait_for(lambda: readyz(tg)[1]["policy"]["sha256"] != first_sha, timeout=20), tg.log()[-3000:]
    assert refused() is None, readyz(tg)
