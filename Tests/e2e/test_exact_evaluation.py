r"""Issue 8: policy evaluation that is exact and bounded (DESIGN section 4: "Rules see what the upstream will see",
"Exact comparisons", "`regex` runs on Unicode scalars", "Bounded work per request"; section 5: denials).

The upstream is the official SDK's server (upstream_mcp_server.py). Its tools record what they actually ran with,
after the SDK's lenient validation (GET /_runs), so every test checks two things: the forbidden call is refused
(`-32602 Unknown tool` or the `invalid_arguments` denial), and the upstream's record shows no forbidden execution.
Allowed controls run, with the values the record shows, so no refusal passes by refusing everything.

Requests go as raw JSON-RPC POSTs whose `arguments` are exactly the JSON text written here: the SDK client would
reformat numbers (`1234567890123456768.0` becomes `1.2345678901234568e+18`) and escapes.

1. Canonical-equivalence cost: a base letter followed by 100,000 alternating U+0316 U+0301 pairs (400 KB) as a
   tool name, a `method`, an argument key, an `eq` or `in` value is answered quickly, and while two such requests
   are in flight `/healthz` and a normal call still answer; a client that leaves does not leave work behind, and
   the upstream exchange of a client that leaves while toolgate waits for the answer is stopped.
2. Catastrophic regex: `^(\w+\s?)*$` against `"a" * 30 + "!"` is answered (denied) in bounded time.
3. `regex` on Unicode scalars: CR LF is two code points, a combining mark does not hide `;`, NUL or `/`.
4. Coercion beyond strings: `neq`/`not_in` hold only for a value of the policy value's JSON type.
5. Canonical equivalence in keys and values: KELVIN SIGN (U+212A) is not `K`.
6. Large numbers: compared exactly, never through doubles; and (DESIGN "Rules see what the upstream will see") a
   number the upstream reads as a different integer than its exact value is refused where that integer is forbidden.

A premise test sends every forbidden input straight to the SDK server and checks that it runs as the forbidden
value, so no case can pass vacuously.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx2
import pytest

from helpers import (
    HANDSHAKE_VERSION,
    SEED_POLICY,
    final_response,
    modern_headers,
    modern_meta,
    post,
    raw_post,
    request,
    tool_call,
)

DEFAULT_API_KEY = "Key-admin"  # fetch_report's default in upstream_mcp_server.py

# --- helpers -----------------------------------------------------------------------------------------------------


def runs(upstream, tag: str) -> list[dict[str, Any]]:
    """What the upstream's recording tools ran with under `tag`, in order (GET /_runs)."""
    response = httpx2.get(f"http://127.0.0.1:{upstream.port}/_runs", timeout=5.0)
    response.raise_for_status()
    return response.json().get(tag, [])


def client(timeout: float = 10.0) -> httpx2.Client:
    return httpx2.Client(timeout=httpx2.Timeout(timeout))


def with_tag(arguments_json: str, tag: str) -> str:
    """The arguments JSON text (an object, as written) with `"tag": tag` added as its last member."""
    text = arguments_json.rstrip()
    assert text.startswith("{") and text.endswith("}"), text
    inner = text[1:-1].strip()
    return "{" + (inner + ", " if inner else "") + json.dumps("tag") + ": " + json.dumps(tag) + "}"


def raw_modern_call(http: httpx2.Client, url: str, mid: int, tool: str, arguments_json: str) -> dict[str, Any]:
    """A 2026-07-28 `tools/call` whose `arguments` are exactly this JSON text; the single JSON-RPC answer."""
    body = ('{"jsonrpc": "2.0", "id": %d, "method": "tools/call", "params": {"name": %s, "arguments": %s, '
            '"_meta": %s}}' % (mid, json.dumps(tool), arguments_json, json.dumps(modern_meta())))
    response = post(http, url, None, modern_headers("tools/call", tool), raw=body.encode())
    assert response.status_code == 200, f"HTTP {response.status_code}: {response.text[:500]!r}"
    return final_response(response)


def denial_reason(answer: dict[str, Any]) -> str | None:
    result = answer.get("result")
    if not isinstance(result, dict):
        return None
    return ((result.get("_meta") or {}).get("toolgate/denial") or {}).get("reason")


def short(value: Any, limit: int = 300) -> str:
    text = ascii(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def assert_invalid_arguments(answer: dict[str, Any], what: str, reason_text: str | None = None) -> None:
    assert denial_reason(answer) == "invalid_arguments", f"{what} was not refused: {short(answer, 600)}"
    result = answer["result"]
    assert result.get("isError") is True, answer
    if reason_text is not None:
        text = "".join(block.get("text", "") for block in result.get("content", []))
        assert text == f"Denied by policy: {reason_text}", f"{what}: refused by another rule: {text!r}"


def assert_ran(answer: dict[str, Any], what: str) -> None:
    result = answer.get("result")
    assert isinstance(result, dict) and result.get("isError") is False and denial_reason(answer) is None, \
        f"{what} did not run: {short(answer, 600)}"


def raw_initialize(http: httpx2.Client, url: str) -> dict[str, str]:
    """A handshake-era initialize and notifications/initialized by hand: the session's request headers."""
    params = {"protocolVersion": HANDSHAKE_VERSION, "capabilities": {},
              "clientInfo": {"name": "toolgate-e2e-raw", "version": "1"}}
    response = post(http, url, request(0, "initialize", params))
    assert response.status_code == 200, response.text
    assert "result" in final_response(response), response.text
    session_id = response.headers.get("mcp-session-id")
    assert session_id, f"the upstream issued no session id: {response.headers}"
    session = {"Mcp-Session-Id": session_id, "MCP-Protocol-Version": HANDSHAKE_VERSION}
    done = post(http, url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, session)
    assert done.status_code in (200, 202), done.text
    return session


def policy(tool: str, rules: list[dict[str, Any]], **extra_tools: Any) -> dict[str, Any]:
    return {"version": "1", "default": "deny", "tools": {tool: {"arguments": rules}, **extra_tools}}


# --- findings 4, 5 and 6: exact comparisons that see what the upstream sees ----------------------------------------


@dataclass
class Case:
    tool: str
    rules: list[dict[str, Any]]
    # (arguments JSON text as on the wire, without `tag`; predicate on the upstream's record: ran as forbidden)
    forbidden: list[tuple[str, Callable[[dict[str, Any]], bool]]]
    # (arguments JSON text; the upstream's record, less "tool"): allowed calls that must run.
    controls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def _force_true(r: dict[str, Any]) -> bool:
    return r["force"] is True


def _zero_replicas(r: dict[str, Any]) -> bool:
    return r["replicas"] == 0


def _default_key(r: dict[str, Any]) -> bool:
    return r["apiKey"] == DEFAULT_API_KEY


def _key(value: str) -> Callable[[dict[str, Any]], bool]:
    return lambda r: r["apiKey"] == value


def _channel(value: int) -> Callable[[dict[str, Any]], bool]:
    return lambda r: r["channel_id"] == value


def _not_channel(value: int) -> Callable[[dict[str, Any]], bool]:
    return lambda r: r["channel_id"] != value


BIG = 1234567890123456789  # not a double: the nearest one is 1234567890123456768
BIG_AS_DOUBLE = 1234567890123456768

FORCE_RULE = {"path": "force", "op": "neq", "value": True, "reason": "force is not allowed"}
REPLICAS_RULE = {"path": "replicas", "op": "neq", "value": 0, "reason": "scaling to zero is not allowed"}
KEY_EQ_RULE = {"path": "apiKey", "op": "eq", "value": "Key-public", "reason": "only the public key"}

CASES: dict[str, Case] = {
    # Finding 4. The SDK server (pydantic, lax mode) runs each of these with force=True; a value of another JSON
    # type than the policy's `true` fails `neq`. ("Y", "1", "true" and 1E0 are further spellings it coerces.)
    "f4-force-neq-true": Case(
        tool="scale", rules=[FORCE_RULE],
        forbidden=[('{"replicas": 3, "force": %s}' % v, _force_true)
                   for v in ["1", "1.0", '"yes"', '"On"', '"T"', '"Y"', '"1"', '"true"', "1E0"]],
        # (Leaving `force` out is no control: a missing path fails `neq`, DESIGN section 4.)
        controls=[('{"replicas": 3, "force": false}', {"replicas": 3, "force": False})],
    ),
    # Finding 4. Each runs with replicas=0: `false` and strings by coercion; -0, 0.0 and 0E5 are numbers whose
    # exact value is 0, so they equal the policy's 0 and fail `neq` as plain 0 does.
    "f4-replicas-neq-0": Case(
        tool="scale", rules=[REPLICAS_RULE],
        forbidden=[('{"replicas": %s}' % v, _zero_replicas)
                   for v in ["false", '"+0"', '"0_0"', '"00"', '"-0"', '" 0"', '"0.0"', "-0", "0.0", "0E5", "0"]],
        controls=[('{"replicas": 3}', {"replicas": 3, "force": False}),
                  ('{"replicas": 1}', {"replicas": 1, "force": False})],
    ),
    # Finding 5. The upstream ignores the unknown key "api\u212aey" and runs with its default apiKey, Key-admin.
    "f5-key-exists": Case(
        tool="fetch_report", rules=[{"path": "apiKey", "op": "exists", "value": True, "reason": "apiKey is required"}],
        forbidden=[('{"api\\u212aey": "Key-public"}', _default_key)],
        controls=[('{"apiKey": "Key-public"}', {"apiKey": "Key-public"})],
    ),
    "f5-key-eq": Case(
        tool="fetch_report", rules=[KEY_EQ_RULE],
        forbidden=[
            ('{"api\\u212aey": "Key-public"}', _default_key),
            # The value: KELVIN SIGN is not K, and the upstream runs with it as sent.
            ('{"apiKey": "\\u212aey-public"}', _key("\u212aey-public")),
        ],
        controls=[('{"apiKey": "Key-public"}', {"apiKey": "Key-public"})],
    ),
    "f5-key-neq-admin": Case(
        tool="fetch_report",
        rules=[{"path": "apiKey", "op": "neq", "value": DEFAULT_API_KEY, "reason": "never the admin key"}],
        forbidden=[('{"api\\u212aey": "Key-public"}', _default_key)],
        controls=[('{"apiKey": "Key-public"}', {"apiKey": "Key-public"})],
    ),
    "f5-key-in": Case(
        tool="fetch_report",
        rules=[{"path": "apiKey", "op": "in", "value": ["Key-public", "Key-team"], "reason": "public or team"}],
        forbidden=[('{"api\\u212aey": "Key-team"}', _default_key),
                   ('{"apiKey": "\\u212aey-team"}', _key("\u212aey-team"))],
        controls=[('{"apiKey": "Key-team"}', {"apiKey": "Key-team"})],
    ),
    # Finding 5, NFC against NFD: "Key-cafe\u0301" is canonically equivalent to "Key-caf\u00e9", not equal.
    "f5-value-nfd": Case(
        tool="fetch_report",
        rules=[{"path": "apiKey", "op": "eq", "value": "Key-caf\u00e9", "reason": "only the cafe key"}],
        forbidden=[('{"apiKey": "Key-cafe\\u0301"}', _key("Key-cafe\u0301"))],
        controls=[('{"apiKey": "Key-caf\\u00e9"}', {"apiKey": "Key-caf\u00e9"})],
    ),
    # Finding 6. 1234567890123456768.0 is not 1234567890123456789 (only their doubles are equal); the upstream
    # posts to channel 1234567890123456768. 1.0 still equals 1 (the control of the next case).
    "f6-channel-in-big": Case(
        tool="post_message",
        rules=[{"path": "channel_id", "op": "in", "value": [BIG], "reason": "only the ops channel"}],
        forbidden=[('{"channel_id": %s}' % v, _not_channel(BIG))
                   for v in ["1234567890123456768.0", "1234567890123456768", "1.2345678901234568e18"]],
        controls=[('{"channel_id": 1234567890123456789}', {"channel_id": BIG, "text": ""})],
    ),
    "f6-channel-eq-big": Case(
        tool="post_message",
        rules=[{"path": "channel_id", "op": "eq", "value": BIG, "reason": "only the ops channel"}],
        forbidden=[('{"channel_id": 1234567890123456768.0}', _not_channel(BIG))],
        controls=[('{"channel_id": 1234567890123456789}', {"channel_id": BIG, "text": ""})],
    ),
    "f6-channel-eq-1": Case(
        tool="post_message",
        rules=[{"path": "channel_id", "op": "eq", "value": 1, "reason": "only channel 1"}],
        forbidden=[('{"channel_id": 2}', _channel(2))],
        controls=[('{"channel_id": 1.0}', {"channel_id": 1, "text": ""}),
                  ('{"channel_id": 1}', {"channel_id": 1, "text": ""}),
                  ('{"channel_id": 1E0}', {"channel_id": 1, "text": ""})],
    ),
    "f6-channel-eq-1.0": Case(
        tool="post_message",
        rules=[{"path": "channel_id", "op": "eq", "value": 1.0, "reason": "only channel 1"}],
        forbidden=[('{"channel_id": 2}', _channel(2))],
        controls=[('{"channel_id": 1}', {"channel_id": 1, "text": ""})],
    ),
    # Finding 6 seen from the other side ("Rules see what the upstream will see"): these spellings' exact values are
    # 1234567890123456789 or differ from 1234567890123456768, but the upstream (Python's float) reads each as
    # 1234567890123456768 and posts there. Exact comparison alone lets them through.
    "f6-channel-in-big-upstream-reads-other": Case(
        tool="post_message",
        rules=[{"path": "channel_id", "op": "in", "value": [BIG], "reason": "only the ops channel"}],
        forbidden=[('{"channel_id": %s}' % v, _not_channel(BIG))
                   for v in ["1234567890123456789.0", "12345678901234567890e-1"]],
        controls=[('{"channel_id": 1234567890123456789}', {"channel_id": BIG, "text": ""})],
    ),
    "f6-channel-neq-upstream-reads-forbidden": Case(
        tool="post_message",
        rules=[{"path": "channel_id", "op": "neq", "value": BIG_AS_DOUBLE, "reason": "not the payroll channel"}],
        forbidden=[('{"channel_id": %s}' % v, _channel(BIG_AS_DOUBLE))
                   for v in ["1234567890123456769.0", "1234567890123456770.5", "1234567890123456789.0",
                             "12345678901234567e2"]],
        # A control every reading keeps apart from the forbidden channel. (1234567890123456769 is refused on
        # purpose: a JavaScript upstream reads that integer literal as the forbidden double …768.)
        controls=[('{"channel_id": 1234567890123457024}', {"channel_id": BIG_AS_DOUBLE + 256, "text": ""})],
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_premise_the_sdk_server_runs_each_input_as_the_forbidden_value(mcp_upstream_json, name):
    """Directly against the SDK server (no toolgate): every forbidden input runs, as the forbidden value, and every
    control runs as recorded. If this fails, the SDK changed and the toolgate test of the same case proves nothing."""
    case = CASES[name]
    with client() as http:
        for mid, (arguments, ran_as) in enumerate(case.forbidden, start=1):
            tag = uuid.uuid4().hex
            answer = raw_modern_call(http, mcp_upstream_json.url, mid, case.tool, with_tag(arguments, tag))
            assert_ran(answer, f"directly, {arguments}")
            record = runs(mcp_upstream_json, tag)
            assert len(record) == 1 and ran_as(record[0]), f"directly, {arguments} ran as {record!r}"
        for mid, (arguments, expected) in enumerate(case.controls, start=100):
            tag = uuid.uuid4().hex
            assert_ran(raw_modern_call(http, mcp_upstream_json.url, mid, case.tool, with_tag(arguments, tag)),
                       f"directly, {arguments}")
            assert runs(mcp_upstream_json, tag) == [{"tool": case.tool, **expected}]


@pytest.mark.parametrize("name", list(CASES))
def test_forbidden_value_is_refused_and_never_runs(mcp_upstream_json, toolgate, name):
    case = CASES[name]
    tg = toolgate(mcp_upstream_json.url, policy(case.tool, case.rules))
    reason = case.rules[0]["reason"]
    let_through: list[str] = []
    with client() as http:
        for mid, (arguments, ran_as) in enumerate(case.forbidden, start=1):
            tag = uuid.uuid4().hex
            answer = raw_modern_call(http, tg.url, mid, case.tool, with_tag(arguments, tag))
            ran = runs(mcp_upstream_json, tag)
            if denial_reason(answer) != "invalid_arguments" or ran:
                let_through.append(f"{arguments}: answered {short(answer.get('result') or answer, 200)}, "
                                   f"the upstream ran {ran!r}")
                continue
            assert_invalid_arguments(answer, arguments, reason)
            assert answer["result"].get("resultType") == "complete", answer
        for mid, (arguments, expected) in enumerate(case.controls, start=100):
            tag = uuid.uuid4().hex
            assert_ran(raw_modern_call(http, tg.url, mid, case.tool, with_tag(arguments, tag)),
                       f"the control {arguments}")
            assert runs(mcp_upstream_json, tag) == [{"tool": case.tool, **expected}], arguments
    assert not let_through, "forbidden inputs that were not refused:\n" + "\n".join(let_through)


# --- finding 3: regex runs on Unicode scalars ----------------------------------------------------------------------

SHELL_SAFE = "^[^;&|`$\\n]*$"


@dataclass
class RegexCase:
    pattern: str
    value: str  # as Python text; sent with every non-ASCII and control character \u-escaped (json.dumps)
    controls: list[str]


REGEX_CASES: dict[str, RegexCase] = {
    # CR LF is one grapheme cluster but two code points: the negated class must see the LF.
    "cr-lf": RegexCase(SHELL_SAFE, "echo hi #\r\nid", ["echo hi # done", "ls -la /tmp"]),
    "semicolon-acute": RegexCase(SHELL_SAFE, "ls;\u0301 id", ["ls -la", "e\u0301cho"]),
    "nul-acute": RegexCase("^[^\\x00]*$", "\u0000\u0301", ["e\u0301", "plain"]),
    "slash-acute": RegexCase("^[^/]*$", "/\u0301", ["e\u0301", "a\u0301b"]),
    # 5,001 code points, one grapheme cluster.
    "5001-code-points": RegexCase("^.{1,8}$", "a" + "\u0301" * 5000, ["a\u0301" * 4, "abcdefgh"]),
}


@pytest.mark.parametrize("name", list(REGEX_CASES))
def test_regex_runs_on_unicode_scalars(mcp_upstream_json, toolgate, name):
    case = REGEX_CASES[name]
    reason = f"command must match {case.pattern}"
    rule = {"path": "command", "op": "regex", "value": case.pattern, "reason": reason}
    tg = toolgate(mcp_upstream_json.url, policy("run_command", [rule]))
    direct_tag, refused_tag, allowed_tag = uuid.uuid4().hex, uuid.uuid4().hex, uuid.uuid4().hex
    arguments = json.dumps({"command": case.value})
    with client() as http:
        # Premise: the upstream would run exactly this command.
        assert_ran(raw_modern_call(http, mcp_upstream_json.url, 1, "run_command", with_tag(arguments, direct_tag)),
                   "directly")
        assert runs(mcp_upstream_json, direct_tag) == [{"tool": "run_command", "command": case.value}]

        answer = raw_modern_call(http, tg.url, 2, "run_command", with_tag(arguments, refused_tag))
        ran = runs(mcp_upstream_json, refused_tag)
        assert not ran, f"{short(case.value)} ran through toolgate as {short(ran)}; answer {short(answer, 200)}"
        assert_invalid_arguments(answer, f"{short(case.value)} against {case.pattern}", reason)

        for mid, control in enumerate(case.controls, start=3):
            assert_ran(raw_modern_call(http, tg.url, mid, "run_command",
                                       with_tag(json.dumps({"command": control}), allowed_tag)),
                       f"the control {control!r}")
    assert runs(mcp_upstream_json, allowed_tag) == [{"tool": "run_command", "command": c} for c in case.controls]


# --- finding 2: a pathological regex is bounded --------------------------------------------------------------------

REGEX_BOUND = 10.0  # seconds; the old engine needed minutes for 22 characters


def test_catastrophic_regex_is_answered_in_bounded_time(mcp_upstream_json, toolgate):
    reason = "words separated by single spaces"
    rule = {"path": "command", "op": "regex", "value": "^(\\w+\\s?)*$", "reason": reason}
    tg = toolgate(mcp_upstream_json.url, policy("run_command", [rule]))
    refused_tag, allowed_tag = uuid.uuid4().hex, uuid.uuid4().hex
    evil = "a" * 30 + "!"

    def evil_call() -> dict[str, Any]:
        with client(REGEX_BOUND) as http:
            return raw_modern_call(http, tg.url, 1, "run_command", with_tag(json.dumps({"command": evil}), refused_tag))

    start = time.monotonic()
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(evil_call)
        time.sleep(0.3)  # let it reach the matcher; nothing is asserted about this
        left = max(1.0, REGEX_BOUND - (time.monotonic() - start))
        try:
            health = httpx2.get(f"{tg.base}/healthz", timeout=left)
        except Exception as e:  # noqa: BLE001
            pytest.fail(f"GET /healthz got no answer while the regex ran: {type(e).__name__}: {e}")
        assert health.status_code == 200, health.text
        with client(max(1.0, REGEX_BOUND - (time.monotonic() - start))) as http:
            normal = raw_modern_call(http, tg.url, 2, "run_command",
                                     with_tag(json.dumps({"command": "hello world"}), allowed_tag))
        try:
            answer = future.result()
        except Exception as e:  # noqa: BLE001
            pytest.fail(f"the call with {evil!r} got no answer within {REGEX_BOUND:.0f} s: {type(e).__name__}: {e}")
    assert_ran(normal, "the normal call 'hello world'")
    assert runs(mcp_upstream_json, allowed_tag) == [{"tool": "run_command", "command": "hello world"}]
    assert_invalid_arguments(answer, f"{evil!r} against ^(\\w+\\s?)*$", reason)
    assert runs(mcp_upstream_json, refused_tag) == []


# --- finding 1: canonical-equivalence cost -------------------------------------------------------------------------

BOMB_PAIRS = 100_000  # 400 KB in UTF-8: the old binary took about 28 s per request
BOMB_BOUND = 15.0  # seconds, for everything one test sends; generous on purpose


def bomb(pairs: int = BOMB_PAIRS) -> str:
    """A base letter followed by alternating U+0316 (ccc 220) and U+0301 (ccc 230): canonical ordering of it is
    quadratic."""
    return "a" + "\u0316\u0301" * pairs


BOMB_RULES = {
    "eq": {"path": "apiKey", "op": "eq", "value": "Key-public", "reason": "only the public key"},
    "in": {"path": "apiKey", "op": "in", "value": ["Key-public", "Key-team"], "reason": "only the public key"},
}


def bomb_policy(op: str) -> dict[str, Any]:
    """fetch_report with one rule on apiKey, plus a glob entry and a hide glob so names meet globs too."""
    p = policy("fetch_report", [BOMB_RULES[op]], **{"post_*": {"action": "deny", "reason": "posting is off"}})
    p["hide"] = ["secret_*"]
    return p


# kind: (the rule's op, builds the message given (id, tag), ensure_ascii, what the answer must be)
BOMB_KINDS: dict[str, tuple[str, Callable[[int, str], dict[str, Any]], bool, str]] = {
    # Sent as UTF-8 (400 KB).
    "tool-name": ("eq", lambda mid, tag: tool_call(mid, bomb(), {"tag": tag}), False, "unknown-tool"),
    # Sent \u-escaped (1.2 MB): unescaping must be linear too.
    "argument-key": ("eq", lambda mid, tag: tool_call(mid, "fetch_report", {bomb(): "Key-public", "tag": tag}),
                     True, "invalid_arguments"),
    "eq-value": ("eq", lambda mid, tag: tool_call(mid, "fetch_report", {"apiKey": bomb(), "tag": tag}),
                 False, "invalid_arguments"),
    "in-value": ("in", lambda mid, tag: tool_call(mid, "fetch_report", {"apiKey": bomb(), "tag": tag}),
                 True, "invalid_arguments"),
    # Not a method anyone knows: whoever answers, it is answered (an error), and nothing runs.
    "method": ("eq", lambda mid, tag: request(mid, bomb(), {"name": "fetch_report", "arguments": {"tag": tag}}),
               False, "error"),
}


def check_bomb_answer(response: httpx2.Response, expect: str, what: str) -> None:
    if expect == "error":
        assert response.status_code < 500, f"{what}: HTTP {response.status_code}: {response.text[:300]!r}"
        if response.status_code == 200:
            answer = final_response(response)
            assert "error" in answer, f"{what}: {short(answer)}"
        return
    assert response.status_code == 200, f"{what}: HTTP {response.status_code}: {response.text[:300]!r}"
    answer = final_response(response)
    if expect == "unknown-tool":
        error = answer.get("error") or {}
        assert error.get("code") == -32602, f"{what}: {short(answer)}"
        assert str(error.get("message", "")).startswith("Unknown tool: a\u0316\u0301"), f"{what}: {short(answer)}"
    else:
        assert denial_reason(answer) == expect, f"{what}: {short(answer)}"


def normal_call(tg, session: dict[str, str], tag: str, timeout: float) -> dict[str, Any]:
    with client(timeout) as http:
        response = post(http, tg.url, tool_call(99, "fetch_report", {"apiKey": "Key-public", "tag": tag}), session)
        assert response.status_code == 200, response.text
        return final_response(response)


@pytest.mark.parametrize("kind", list(BOMB_KINDS))
def test_combining_mark_bombs_are_answered_and_do_not_stall_the_sidecar(mcp_upstream_json, toolgate, kind):
    op, build, ensure_ascii, expect = BOMB_KINDS[kind]
    tg = toolgate(mcp_upstream_json.url, bomb_policy(op))
    bomb_tag, ok_tag = uuid.uuid4().hex, uuid.uuid4().hex
    with client() as http:
        session = raw_initialize(http, tg.url)
    bodies = [json.dumps(build(mid, bomb_tag), ensure_ascii=ensure_ascii).encode() for mid in (1, 2)]
    assert all(len(b) > 400_000 for b in bodies)

    start = time.monotonic()

    def left() -> float:
        return max(1.0, BOMB_BOUND - (time.monotonic() - start))

    def send(body: bytes) -> httpx2.Response:
        with client(BOMB_BOUND) as http:
            return post(http, tg.url, None, session, raw=body)

    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(send, body) for body in bodies]
        time.sleep(0.3)  # both bodies on their way; nothing is asserted about this
        try:
            health = httpx2.get(f"{tg.base}/healthz", timeout=left())
        except Exception as e:  # noqa: BLE001
            pytest.fail(f"GET /healthz got no answer within {BOMB_BOUND:.0f} s while two {kind} bombs were in "
                        f"flight: {type(e).__name__}: {e}")
        assert health.status_code == 200
        try:
            normal = normal_call(tg, session, ok_tag, left())
        except Exception as e:  # noqa: BLE001
            pytest.fail(f"a normal call got no answer within {BOMB_BOUND:.0f} s while two {kind} bombs were in "
                        f"flight: {type(e).__name__}: {e}")
        responses = []
        for future in futures:
            try:
                responses.append(future.result())
            except Exception as e:  # noqa: BLE001
                pytest.fail(f"a {kind} bomb got no answer within {BOMB_BOUND:.0f} s: {type(e).__name__}: {e}")
    elapsed = time.monotonic() - start
    assert elapsed < BOMB_BOUND + 2, f"took {elapsed:.1f} s"
    assert_ran(normal, "the normal call")
    assert runs(mcp_upstream_json, ok_tag) == [{"tool": "fetch_report", "apiKey": "Key-public"}]
    for response in responses:
        check_bomb_answer(response, expect, kind)
    assert runs(mcp_upstream_json, bomb_tag) == []
    # A process that still grinds on a request does not stop on SIGTERM (the old binary did not).
    assert tg.stop() is not None, "toolgate did not exit on SIGTERM within 10 s; it had to be killed"


def test_near_limit_bomb_is_answered(mcp_upstream_json, toolgate):
    """About 4 MB (1,000,000 pairs, under the 4 MiB body limit) as a tool name: linear work answers it in seconds
    (quadratic work would take the best part of an hour)."""
    tg = toolgate(mcp_upstream_json.url, bomb_policy("eq"))
    with client() as http:
        session = raw_initialize(http, tg.url)
    body = json.dumps(tool_call(1, bomb(1_000_000), {"tag": uuid.uuid4().hex}), ensure_ascii=False).encode()
    assert 4_000_000 < len(body) < 4 * 1024 * 1024
    with client(BOMB_BOUND) as http:
        try:
            response = post(http, tg.url, None, session, raw=body)
        except Exception as e:  # noqa: BLE001
            pytest.fail(f"a 4 MB tool name got no answer within {BOMB_BOUND:.0f} s: {type(e).__name__}: {e}")
    check_bomb_answer(response, "unknown-tool", "4 MB tool name")


def test_bombs_whose_client_left_leave_no_work_behind(mcp_upstream_json, toolgate):
    """Two bombs sent whole, then the connections closed without reading: the sidecar still answers /healthz and a
    normal call, and exits on SIGTERM (it does not grind on for the clients that left)."""
    tg = toolgate(mcp_upstream_json.url, bomb_policy("eq"))
    with client() as http:
        session = raw_initialize(http, tg.url)
    body = json.dumps(tool_call(1, bomb(), {"tag": uuid.uuid4().hex}), ensure_ascii=False).encode()
    headers = [("Host", f"127.0.0.1:{tg.port}"), ("Content-Type", "application/json"),
               ("Accept", "application/json, text/event-stream"), *session.items()]
    data = raw_post("/mcp", body, headers)
    for _ in range(2):
        with socket.create_connection(("127.0.0.1", tg.port), timeout=10.0) as s:
            s.sendall(data)
    start = time.monotonic()
    left = lambda: max(1.0, BOMB_BOUND - (time.monotonic() - start))  # noqa: E731
    try:
        assert httpx2.get(f"{tg.base}/healthz", timeout=left()).status_code == 200
        normal = normal_call(tg, session, ok_tag := uuid.uuid4().hex, left())
    except Exception as e:  # noqa: BLE001
        pytest.fail(f"no answer within {BOMB_BOUND:.0f} s after two bomb clients left: {type(e).__name__}: {e}")
    assert_ran(normal, "the normal call")
    assert runs(mcp_upstream_json, ok_tag) == [{"tool": "fetch_report", "apiKey": "Key-public"}]
    assert tg.stop() is not None, "toolgate did not exit on SIGTERM within 10 s; it had to be killed"


@pytest.mark.parametrize("leave", ["close", "shutdown-write"])
def test_upstream_exchange_stops_when_the_agent_leaves(raw_upstream, toolgate, leave):
    """A call is forwarded to an upstream that never answers; the agent closes its connection (or only its
    sending side, the FIN a closing client sends first). toolgate stops the exchange at once: the upstream sees its
    connection closed long before any toolgate timeout would have ended it, and toolgate then serves calls as
    before."""
    tg = toolgate(raw_upstream.url, SEED_POLICY)
    raw_upstream.set_mode("tools/call", "hang", times=1, seconds=30)
    body = json.dumps(tool_call(7, "imageBackgroundRemoval", {"image": "x"})).encode()
    headers = [("Host", f"127.0.0.1:{tg.port}"), ("Content-Type", "application/json"),
               ("Accept", "application/json, text/event-stream"), ("MCP-Protocol-Version", HANDSHAKE_VERSION)]
    s = socket.create_connection(("127.0.0.1", tg.port), timeout=10.0)
    try:
        s.sendall(raw_post("/mcp", body, headers))
        deadline = time.monotonic() + 10
        while not any(r["method"] == "POST" for r in raw_upstream.seen()):
            assert time.monotonic() < deadline, "the call never reached the upstream"
            time.sleep(0.05)
        left_at = time.monotonic()
        if leave == "close":
            s.close()
        else:
            s.shutdown(socket.SHUT_WR)
        while not [e for e in raw_upstream.events() if e["kind"] == "hang_ended"]:
            assert time.monotonic() - left_at < 10, "the upstream exchange went on 10 s after the agent left"
            time.sleep(0.05)
    finally:
        s.close()
    ended = [e for e in raw_upstream.events() if e["kind"] == "hang_ended"]
    assert ended[0]["reason"] == "peer_closed", ended
    with httpx2.Client(timeout=10.0) as http:
        answer = post(http, tg.url, tool_call(8, "imageBackgroundRemoval", {"image": "y"}),
                      {"MCP-Protocol-Version": HANDSHAKE_VERSION})
    assert answer.status_code == 200, answer.text
