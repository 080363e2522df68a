r"""Issue 7 item 5: argument rules see what the upstream will see (DESIGN section 4).

The official SDK's server validates a tool's arguments leniently (pydantic's lax mode, after parsing JSON held in
strings): `"1000"` becomes `1000`, `1` and `"yes"` become `true`, `"{\"force\": true}"` becomes an object. A rule
that forbids a value must therefore refuse every input the upstream would turn into it. Each case below names a rule,
inputs the SDK server coerces into the forbidden value (a premise test sends them to the server directly, so a case
can never pass vacuously), and allowed controls.

Through toolgate, every coerced input must come back as the `invalid_arguments` denial, and the upstream's record
(`transfer` in upstream_mcp_server.py, GET /_transfers) must show it never ran; the controls run, with the values
the record shows. Both eras: the handshake-era `ClientSession` and the 2026-07-28 `mcp.Client`. Number spellings
the SDK client cannot send (`1E3`, `1000.00000000000001`) go as raw 2026-07-28 POSTs. Last, strings that Python's
`json.loads` (so the SDK server) reads as an object although a strict JSON parser refuses them (duplicate keys,
NaN, lone surrogates, deep nesting): the upstream runs with `opts.force` set, so `exists: false` must not hold.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx2
import pytest

from helpers import (
    denial_of,
    final_response,
    handshake_session,
    http_client,
    modern_client,
    modern_headers,
    modern_meta,
    post,
    run_async,
    text_of,
)


@dataclass
class Case:
    rule: dict[str, Any]
    # Inputs (without `tag`) the SDK server coerces into what the rule forbids.
    coerced: list[dict[str, Any]]
    # What the SDK server runs with, given each coerced input: the forbidden value.
    forbidden: Any
    # (input, what the upstream records for it): allowed calls that must run.
    controls: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)


def ran_with(amount: int, force: bool = False, opts: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"amount": amount, "force": force, "opts": opts}


CASES = {
    "neq-1000": Case(
        rule={"path": "amount", "op": "neq", "value": 1000, "reason": "amount 1000 is reserved"},
        coerced=[{"amount": "1000"}, {"amount": 1000.0}, {"amount": " 1000"}],
        forbidden=lambda record: record["amount"] == 1000,
        controls=[({"amount": 999}, ran_with(999))],
    ),
    "not_in-1-2": Case(
        rule={"path": "amount", "op": "not_in", "value": [1, 2], "reason": "amounts 1 and 2 are reserved"},
        coerced=[{"amount": "2"}, {"amount": "1"}, {"amount": 2.0}],
        forbidden=lambda record: record["amount"] in (1, 2),
        controls=[({"amount": 3}, ran_with(3)), ({"amount": 999}, ran_with(999))],
    ),
    "exists-false-opts.force": Case(
        rule={"path": "opts.force", "op": "exists", "value": False, "reason": "opts.force is not allowed"},
        coerced=[{"amount": 5, "opts": '{"force": true}'}, {"amount": 5, "opts": ' {"force": false, "depth": 2}'}],
        forbidden=lambda record: isinstance(record["opts"], dict) and "force" in record["opts"],
        controls=[
            ({"amount": 5, "opts": {"depth": 1}}, ran_with(5, opts={"depth": 1})),
            # A string holding an object without `force`: the path is absent there too, so it is allowed.
            ({"amount": 5, "opts": '{"depth": 1}'}, ran_with(5, opts={"depth": 1})),
            ({"amount": 5}, ran_with(5)),
        ],
    ),
    "neq-true-force": Case(
        rule={"path": "force", "op": "neq", "value": True, "reason": "force is not allowed"},
        coerced=[{"amount": 5, "force": 1}, {"amount": 5, "force": "yes"}, {"amount": 5, "force": "true"},
                 {"amount": 5, "force": 1.0}, {"amount": 5, "force": "on"}],
        forbidden=lambda record: record["force"] is True,
        controls=[({"amount": 5, "force": False}, ran_with(5, force=False))],
    ),
}


def policy_for(case: Case) -> dict[str, Any]:
    return {"version": "1", "default": "deny", "tools": {"transfer": {"arguments": [case.rule]}}}


def transfers(upstream, tag: str) -> list[dict[str, Any]]:
    """What `transfer` ran with under `tag`, in order (GET /_transfers on the upstream)."""
    response = httpx2.get(f"http://127.0.0.1:{upstream.port}/_transfers", timeout=5.0)
    response.raise_for_status()
    return response.json().get(tag, [])


@pytest.mark.parametrize("name", list(CASES))
def test_premise_the_sdk_server_coerces_into_the_forbidden_value(mcp_upstream_json, name):
    """Directly against the SDK server (no toolgate): every coerced input runs, with the forbidden value.
    If this fails, the SDK stopped coercing and the toolgate test of the same case proves nothing."""
    case = CASES[name]
    tag = uuid.uuid4().hex

    async def body():
        async with handshake_session(mcp_upstream_json.url) as session:
            for arguments in case.coerced:
                result = await session.call_tool("transfer", {**arguments, "tag": tag})
                assert result.is_error is False, f"the SDK server refused {arguments!r}: {text_of(result)}"

    run_async(body)
    records = transfers(mcp_upstream_json, tag)
    assert len(records) == len(case.coerced), records
    for arguments, record in zip(case.coerced, records):
        assert case.forbidden(record), f"{arguments!r} ran as {record!r}, not as the forbidden value"


@pytest.mark.parametrize("era", ["handshake", "modern"])
@pytest.mark.parametrize("name", list(CASES))
def test_coerced_forbidden_value_never_runs(mcp_upstream_json, toolgate, name, era):
    case = CASES[name]
    tg = toolgate(mcp_upstream_json.url, policy_for(case))
    refused_tag, allowed_tag = uuid.uuid4().hex, uuid.uuid4().hex

    async def body():
        client = handshake_session(tg.url) if era == "handshake" else modern_client(tg.url)
        async with client as c:
            for arguments in case.coerced:
                result = await c.call_tool("transfer", {**arguments, "tag": refused_tag})
                assert result.is_error is True, f"{arguments!r} was not refused: {result!r}"
                denial = denial_of(result)
                assert denial.get("reason") == "invalid_arguments", (arguments, denial)
                assert denial.get("rule") == "transfer", (arguments, denial)
                assert text_of(result) == f"Denied by policy: {case.rule['reason']}", (arguments, text_of(result))
            for arguments, _ in case.controls:
                result = await c.call_tool("transfer", {**arguments, "tag": allowed_tag})
                assert result.is_error is False, f"the control {arguments!r} was refused: {result!r}"

    run_async(body)
    ran = transfers(mcp_upstream_json, refused_tag)
    assert ran == [], f"refused calls reached the upstream and ran as {ran!r}"
    assert transfers(mcp_upstream_json, allowed_tag) == [expected for _, expected in case.controls]


# Strings that the SDK server's `json.loads` reads as an object holding `force`, although a strict JSON parser
# (RFC 8259 with unique keys, no NaN, valid Unicode, bounded depth) refuses them. "Rules see what the upstream will
# see": for the upstream each is `opts` with `force` in it, so `exists: false` on `opts.force` must not hold.
LENIENTLY_PARSED = {
    "duplicate-key": '{"force": false, "force": true}',
    "nan": '{"force": true, "n": NaN}',
    "infinity": '{"force": true, "n": -Infinity}',
    "lone-surrogate": '{"force": true, "s": "\\ud800"}',
    "deep-nesting": '{"force": true, "d": ' + "[" * 300 + "]" * 300 + "}",
}


@pytest.mark.parametrize("name", list(LENIENTLY_PARSED))
def test_string_the_upstream_reads_as_an_object_is_read_as_one(mcp_upstream_json, toolgate, name):
    case = CASES["exists-false-opts.force"]
    arguments = {"amount": 5, "opts": LENIENTLY_PARSED[name]}
    direct_tag, refused_tag = uuid.uuid4().hex, uuid.uuid4().hex
    tg = toolgate(mcp_upstream_json.url, policy_for(case))

    async def body():
        async with handshake_session(mcp_upstream_json.url) as direct:
            assert (await direct.call_tool("transfer", {**arguments, "tag": direct_tag})).is_error is False
        async with handshake_session(tg.url) as session:
            return await session.call_tool("transfer", {**arguments, "tag": refused_tag})

    result = run_async(body)
    ran_directly = transfers(mcp_upstream_json, direct_tag)
    assert len(ran_directly) == 1 and "force" in ran_directly[0]["opts"], \
        f"premise: the SDK server did not run with opts.force: {str(ran_directly)[:300]}"
    ran = transfers(mcp_upstream_json, refused_tag)
    assert ran == [], f"the upstream ran a call whose opts.force the policy forbids, as {str(ran)[:200]}"
    assert result.is_error is True and denial_of(result).get("reason") == "invalid_arguments", result


# Number spellings the SDK client never produces (it writes Python floats), each of which the SDK server reads as
# the forbidden integer: an exponent, or a decimal that rounds to it as a double.
RAW_NUMBERS = {
    "neq-1000": ["1E3", "10000e-1", "1000.00000000000001", "999.99999999999999"],
    "not_in-1-2": ["2E0", "0.2e1", "2.0000000000000001", "1.00000000000000001"],
}


def raw_transfer(http, url: str, mid: int, arguments_json: str):
    """A 2026-07-28 `tools/call` of transfer whose `arguments` are exactly this JSON text."""
    body = ('{"jsonrpc": "2.0", "id": %d, "method": "tools/call", "params": {"name": "transfer", "arguments": %s, '
            '"_meta": %s}}' % (mid, arguments_json, json.dumps(modern_meta())))
    response = post(http, url, None, modern_headers("tools/call", "transfer"), raw=body.encode())
    assert response.status_code == 200, f"HTTP {response.status_code}: {response.text!r}"
    return final_response(response)


@pytest.mark.parametrize("name", list(RAW_NUMBERS))
def test_number_spellings_of_the_forbidden_value_never_run(mcp_upstream_json, toolgate, name):
    case = CASES[name]
    tg = toolgate(mcp_upstream_json.url, policy_for(case))
    with http_client() as http:
        for mid, number in enumerate(RAW_NUMBERS[name], start=1):
            direct_tag, refused_tag = uuid.uuid4().hex, uuid.uuid4().hex
            arguments = '{"amount": %s, "tag": "%s"}'
            direct = raw_transfer(http, mcp_upstream_json.url, mid, arguments % (number, direct_tag))
            assert direct.get("result", {}).get("isError") is False, direct
            ran_directly = transfers(mcp_upstream_json, direct_tag)
            assert len(ran_directly) == 1 and case.forbidden(ran_directly[0]), \
                f"premise: the SDK server ran amount {number} as {ran_directly!r}"

            answer = raw_transfer(http, tg.url, mid, arguments % (number, refused_tag))
            result = answer.get("result") or {}
            reason = ((result.get("_meta") or {}).get("toolgate/denial") or {}).get("reason")
            assert reason == "invalid_arguments", f"amount {number} was not refused: {answer!r}"
            assert result.get("resultType") == "complete", answer
            assert transfers(mcp_upstream_json, refused_tag) == [], f"amount {number} ran through toolgate"
