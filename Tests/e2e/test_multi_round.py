"""Issue 11 item 1: a multi-round `tools/call` is one call (DESIGN section 7, "Multi-round calls are one call").

In the 2026-07-28 era a tool that needs input answers `resultType: "input_required"` with a `requestState`; the
client answers and sends the same call again with that state. toolgate remembers each state it relayed (bound to
grant, tool and arguments, for 10 minutes, used up by its follow-up), so the follow-up is evaluated but not charged.
A made-up state, a state replayed after its use, one sent with other arguments or by another grant is charged as
a new call.

The upstream is the SDK's MCPServer; its `wizard(rounds, tag)` tool asks one question per round before the last.
Every test runs on the embedded store and on Redis, against the SDK upstream in SSE and JSON response modes.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from typing import Any

import mcp
import pytest
from mcp_types import ElicitResult

from helpers import (
    final_response,
    http_client,
    modern_headers,
    post,
    run_async,
    text_of,
    tool_call,
)

LIMIT = 2
POLICY = {
    "version": "1",
    "default": "deny",
    "tools": {"wizard": {"limits": [{"counter": "wizard_rate", "window": "minute", "max": LIMIT, "scope": "grant"}]}},
}


def round_events(tg: Any) -> dict[str, float]:
    with http_client() as http:
        text = http.get(f"{tg.base}/metrics").text
    return {m.group(1): float(m.group(2))
            for m in re.finditer(r'^toolgate_tool_call_rounds_total\{event="([a-z_]+)"\} (\S+)$', text, re.M)}


def denial_reason(answer: dict[str, Any]) -> str | None:
    denial = ((answer.get("result") or {}).get("_meta") or {}).get("toolgate/denial")
    return denial.get("reason") if isinstance(denial, dict) else None


class RawAgent:
    """Drives the rounds by hand over HTTP, so a test can send the states it wants."""

    def __init__(self, url: str, token: str | None = None) -> None:
        self.url = url
        self.headers = modern_headers("tools/call", "wizard")
        if token is not None:
            self.headers["Authorization"] = f"Bearer {token}"
        self.next_id = 0

    def call(self, arguments: dict[str, Any], state: str | None = None) -> dict[str, Any]:
        self.next_id += 1
        body = tool_call(self.next_id, "wizard", arguments, modern=True)
        if state is not None:
            body["params"]["requestState"] = state
            body["params"]["inputResponses"] = {
                key: {"action": "accept", "content": {"answer": f"answer {self.next_id}"}} for key in ("q1", "q2")}
        with http_client() as http:
            return final_response(post(http, self.url, body, self.headers))


def input_required_state(answer: dict[str, Any]) -> str:
    result = answer.get("result") or {}
    assert result.get("resultType") == "input_required", f"expected an input_required answer, got {answer!r}"
    assert isinstance(result.get("requestState"), str)
    return result["requestState"]


def completed(answer: dict[str, Any]) -> bool:
    result = answer.get("result") or {}
    return result.get("resultType") == "complete" and result.get("isError") is False


def test_sdk_client_answers_twice_and_the_call_is_charged_once(mcp_upstream, toolgate, store_args):
    """The issue's case: limit 2 per minute, a 3-round call used to be refused on its third round."""
    tg = toolgate(mcp_upstream.url, POLICY, args=store_args)
    asked: list[str] = []

    async def answer(context: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="accept", content={"answer": f"yes {len(asked)}"})

    async def body() -> None:
        async with mcp.Client(tg.url, elicitation_callback=answer) as client:
            for n in range(1, LIMIT + 1):
                result = await client.call_tool("wizard", {"rounds": 3, "tag": "sdk"})
                assert result.is_error is False, f"3-round call {n} of {LIMIT} was refused: {result!r}"
                assert text_of(result).startswith("wizard done after 3 rounds"), text_of(result)
            # Two calls of three rounds each used the two calls the limit allows: the next first round is refused.
            refused = await client.call_tool("wizard", {"rounds": 3, "tag": "sdk"})
            assert refused.is_error is True, f"a third call should be rate limited: {refused!r}"
            assert text_of(refused).startswith("Denied by policy: "), text_of(refused)

    run_async(body)
    assert asked == ["answer 1 of 2?", "answer 2 of 2?"] * LIMIT
    events = round_events(tg)
    assert events.get("remembered") == 2 * LIMIT, events
    assert events.get("follow_up") == 2 * LIMIT, events
    assert events.get("unrecognized", 0) == 0, events


def test_forged_replayed_and_rebound_states_are_charged(mcp_upstream, toolgate, store_args):
    """Only the state toolgate relayed, once, for the same call, rides free."""
    tg = toolgate(mcp_upstream.url, POLICY, args=store_args)
    agent = RawAgent(tg.url)
    arguments = {"rounds": 2, "tag": "forge"}

    first = agent.call(arguments)  # charged: 1 of 2
    state = input_required_state(first)
    assert completed(agent.call(arguments, state)), "the genuine follow-up runs, not charged"

    second = agent.call(arguments)  # charged: 2 of 2
    other_state = input_required_state(second)

    # Each of these is charged as a new call, and the limit is used up, so each is refused before the upstream.
    forged = agent.call(arguments, "v1." + "A" * 80)
    assert denial_reason(forged) == "rate_limited", forged
    replayed = agent.call(arguments, state)
    assert denial_reason(replayed) == "rate_limited", f"a state used once is charged when replayed: {replayed!r}"
    rebound = agent.call({"rounds": 2, "tag": "other arguments"}, other_state)
    assert denial_reason(rebound) == "rate_limited", f"a state carried by other arguments is charged: {rebound!r}"

    # The failed attempts did not use the state up: its own follow-up still rides free.
    assert completed(agent.call(arguments, other_state))
    events = round_events(tg)
    assert events == {"remembered": 2, "follow_up": 2, "unrecognized": 3}, events


def test_a_state_is_bound_to_the_grant_it_was_relayed_to(mcp_upstream, toolgate, store_args):
    """Bob cannot spend a state alice was given: it is charged to bob as a new call."""
    tokens = {"alice": "alice-token-" + uuid.uuid4().hex, "bob": "bob-token-" + uuid.uuid4().hex}
    grants = {"grants": [{"name": name, "sha256": hashlib.sha256(token.encode()).hexdigest()}
                         for name, token in tokens.items()]}
    tg = toolgate(mcp_upstream.url, POLICY, grants=grants, args=store_args)
    alice, bob = RawAgent(tg.url, tokens["alice"]), RawAgent(tg.url, tokens["bob"])
    arguments = {"rounds": 2, "tag": "grants"}

    state = input_required_state(alice.call(arguments))
    assert input_required_state(bob.call(arguments))  # bob: 1 of 2
    assert completed(bob.call(arguments, state))  # alice's state: charged to bob, 2 of 2
    assert denial_reason(bob.call(arguments)) == "rate_limited"
    assert completed(alice.call(arguments, state)), "alice's own follow-up still rides free"
    events = round_events(tg)
    assert events == {"remembered": 2, "follow_up": 1, "unrecognized": 1}, events


def _reload(tg: Any, policy: dict[str, Any]) -> None:
    """Rewrite the policy file and wait until toolgate serves it."""
    import json
    import time

    text = json.dumps(policy)
    tg.policy_path.write_text(text)
    want = hashlib.sha256(text.encode()).hexdigest()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with http_client() as http:
            if http.get(f"{tg.base}/readyz").json()["policy"]["sha256"] == want:
                return
        time.sleep(0.05)
    raise AssertionError(f"the policy was not reloaded: {tg.log()}")


def test_a_follow_up_after_its_tools_entry_changed_goes_through_the_whole_decision(mcp_upstream, toolgate, store_args):
    """A state remembered before a reload that put the tool under approval does not ride free: its follow-up
    needs the approval (and so remembers no new state); an unrelated edit leaves it free."""
    tg = toolgate(mcp_upstream.url, POLICY, args=store_args)
    agent = RawAgent(tg.url)
    arguments = {"rounds": 3, "tag": "reload-" + uuid.uuid4().hex}
    state = input_required_state(agent.call(arguments))

    # An unrelated edit: the entry that decides `wizard` is unchanged, so the state still rides free.
    unrelated = {**POLICY, "tools": {**POLICY["tools"], "other_tool": {}}}
    _reload(tg, unrelated)
    state = input_required_state(agent.call(arguments, state))

    approve = {"version": "1", "default": "deny", "tools": {"wizard": {
        "action": "approve", "approval": {"wait": "0s"},
        "limits": [{"counter": "wizard_rate", "window": "minute", "max": LIMIT, "scope": "grant"}]}}}
    _reload(tg, approve)
    follow_up = agent.call(arguments, state)
    assert denial_reason(follow_up) == "approval_required", f"the follow-up skipped the new approval: {follow_up!r}"
    events = round_events(tg)
    assert events.get("follow_up") == 1 and events.get("unrecognized") == 1, events
