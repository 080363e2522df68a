"""Issue 10's end-to-end checks: human approval of tool calls (DESIGN.md sections 2, 5 and 6).

A tool entry with `action: approve` makes each `tools/call` wait for a human: it is bound to (grant, tool, SHA-256 of
the canonical arguments, policy hash); an approval given for that binding is used once; otherwise a pending approval
is stored and the call waits up to `approval.wait`, then answers `approval_required` (or `approval_denied`) with the
`approvalId` in `_meta["toolgate/denial"]`. The agent side is the official MCP Python SDK's `ClientSession` against the
SDK upstream (upstream_mcp_server.py, whose `scale` tool records every run it makes: GET /_runs), so a test can tell
whether a call really ran. The approver side is the admin API (`/admin/approvals`, raw HTTP) and the
`toolgate approvals list|approve|deny` CLI.

1. Two sidecars on one Redis: a call waiting on A is approved through B's API and completes on A promptly with the
   tool's real result; an identical retry does not pass on the used approval.
2. Denied through the CLI on B: the waiting call on A answers `approval_denied`; the denial is sticky.
3. Unapproved: `approval_required` after `wait`; `toolgate approvals list` shows it pending; approved with the CLI,
   a canonically identical retry (keys re-ordered, `1.0` for `1`) passes at once, exactly once; other arguments do not.
4. Admin auth: 401 without or with a wrong token, 404 for everything under /admin without `--admin-token-file`, and
   the CLI fails (non-zero, with a message) on a wrong token, an unknown id and an unreachable sidecar.
5. Limits still apply to approved calls.
6. The in-memory store (no `--redis`) serves the approve flow too.
7. `toolgate_approvals_pending` counts the calls waiting on that sidecar.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp
from mcp.client.streamable_http import streamable_http_client
from prometheus_client.parser import text_string_to_metric_families

from conftest import toolgate_binary
from helpers import HTTP_TIMEOUT, denial_of, free_port, handshake_session, http_client, run_async, text_of

TOOL = "scale"  # upstream_mcp_server.py: scale(replicas: int, force: bool = False, tag: str = "") records its runs
GRANT = "default"  # no --grants: every caller is grant "default"
# A call approved through another sidecar is seen at that sidecar's next poll (every 200 ms); this bound leaves
# room for a loaded machine and is still far below every `wait` used with it.
PROMPT_SECONDS = 1.0


def approval_policy(wait: str, ttl: str = "1h", limits: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"action": "approve", "approval": {"wait": wait, "ttl": ttl}}
    if limits is not None:
        entry["limits"] = limits
    return {"version": "1", "default": "deny", "tools": {TOOL: entry, "echo": {}}}


def token_file(tmp_path: Path, name: str, token: str | None = None) -> tuple[Path, str]:
    token = token or secrets.token_hex(16)
    path = tmp_path / f"{name}.token"
    path.write_text(token + "\n")
    return path, token


def new_tag() -> str:
    # Short: the CLI's table cuts cells longer than 60 characters, and the arguments must stay readable there.
    return uuid.uuid4().hex[:12]


def runs(upstream, tag: str) -> list[dict[str, Any]]:
    """What the upstream's `scale` ran with under `tag` (GET /_runs)."""
    response = httpx2.get(f"http://127.0.0.1:{upstream.port}/_runs", timeout=5.0)
    response.raise_for_status()
    return response.json().get(tag, [])


def scaled(replicas: int) -> str:
    return f"scaled to {replicas} (force=False)"


def assert_approval_denial(result: Any, reason: str) -> str:
    """An approval denial result (DESIGN section 5); returns its approvalId."""
    assert result.is_error is True, f"expected a {reason} denial, got {result!r}"
    assert text_of(result).startswith("Denied by policy: "), text_of(result)
    denial = denial_of(result)
    assert denial.get("reason") == reason, denial
    assert denial.get("rule") == TOOL, denial
    approval_id = denial.get("approvalId")
    assert isinstance(approval_id, str) and approval_id, f"no approvalId in {denial!r}"
    return approval_id


def assert_ran(result: Any, replicas: int) -> None:
    assert result.is_error is False, f"the call should have run: {result!r}"
    assert text_of(result) == scaled(replicas), result


# ---------------------------------------------------------------------------------------------------------
# The approver's side: the admin API and the CLI


class Admin:
    """The admin API of one sidecar, asynchronously (calls are made while an agent's call waits)."""

    def __init__(self, http: httpx2.AsyncClient, base: str, token: str) -> None:
        self.http, self.base, self.token = http, base, token

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def approvals(self) -> list[dict[str, Any]]:
        response = await self.http.get(f"{self.base}/admin/approvals", headers=self.auth)
        assert response.status_code == 200, (response.status_code, response.text)
        body = response.json()
        assert isinstance(body.get("approvals"), list), body
        return body["approvals"]

    async def find(self, tag: str, state: str = "pending", exclude: set[str] = frozenset(),
                   timeout: float = 5.0) -> dict[str, Any]:
        """The approval of the `scale` call tagged `tag` in `state` (waiting for it to appear)."""
        deadline = time.monotonic() + timeout
        seen: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            seen = await self.approvals()
            found = [a for a in seen if a.get("tool") == TOOL and isinstance(a.get("arguments"), dict)
                     and a["arguments"].get("tag") == tag and a.get("state") == state and a.get("id") not in exclude]
            if found:
                assert len(found) == 1, found
                return found[0]
            await anyio.sleep(0.02)
        raise AssertionError(f"no {state} approval for tag {tag} at {self.base} within {timeout} s: {seen!r}")

    async def decide(self, approval_id: str, decision: str) -> httpx2.Response:
        return await self.http.post(f"{self.base}/admin/approvals/{approval_id}", headers=self.auth,
                                    json={"decision": decision})


@asynccontextmanager
async def admin_client(tg, token: str) -> AsyncIterator[Admin]:
    async with httpx2.AsyncClient(timeout=HTTP_TIMEOUT) as http:
        yield Admin(http, tg.base, token)


def cli(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """`toolgate approvals ARGS...`, with no TOOLGATE_* variable reaching it (every flag reads one)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLGATE_")}
    return subprocess.run([toolgate_binary(), "approvals", *args], capture_output=True, text=True, timeout=timeout,
                          env=env, stdin=subprocess.DEVNULL)


def cli_ok(*args: str) -> str:
    result = cli(*args)
    assert result.returncode == 0, f"toolgate approvals {' '.join(args)} failed: {result!r}"
    return result.stdout


async def acli_ok(*args: str) -> str:
    return await anyio.to_thread.run_sync(lambda: cli_ok(*args))


def cli_table(stdout: str) -> list[list[str]]:
    """The rows of `toolgate approvals list` (header checked), each split into its six columns."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert lines, f"empty output: {stdout!r}"
    assert lines[0].split() == ["ID", "STATE", "GRANT", "TOOL", "EXPIRES", "ARGUMENTS"], stdout
    rows = [line.split(None, 5) for line in lines[1:]]
    assert all(len(row) == 6 for row in rows), stdout
    return rows


def parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert parsed.tzinfo is not None, value
    return parsed


def readyz(tg) -> dict[str, Any]:
    with http_client() as http:
        response = http.get(f"{tg.base}/readyz")
    assert response.status_code == 200, response.text
    return response.json()


def pending_gauge(tg) -> float | None:
    """`toolgate_approvals_pending` on this sidecar's /metrics (None when absent)."""
    with http_client() as http:
        response = http.get(f"{tg.base}/metrics")
    assert response.status_code == 200, response.text
    values = [s.value for family in text_string_to_metric_families(response.text) for s in family.samples
              if s.name == "toolgate_approvals_pending"]
    assert len(values) <= 1, values
    return values[0] if values else None


# ---------------------------------------------------------------------------------------------------------
# The agent's side: the SDK's handshake-era ClientSession, recording the bytes it sends


@asynccontextmanager
async def recording_session(url: str, sent: list[bytes]) -> AsyncIterator[mcp.ClientSession]:
    """Like helpers.handshake_session, but every request body the SDK sends is appended to `sent`."""

    async def record(request: httpx2.Request) -> None:
        if request.method == "POST":
            sent.append(request.content)

    async with httpx2.AsyncClient(timeout=HTTP_TIMEOUT, event_hooks={"request": [record]}) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with mcp.ClientSession(read, write, read_timeout_seconds=30) as session:
                await session.initialize()
                yield session


class Pending:
    """One agent call running in the background: its result and when it came."""

    def __init__(self) -> None:
        self.result: Any = None
        self.started = 0.0
        self.finished: float | None = None

    @property
    def seconds(self) -> float:
        assert self.finished is not None
        return self.finished - self.started


def start_call(task_group: anyio.abc.TaskGroup, session: mcp.ClientSession, arguments: dict[str, Any]) -> Pending:
    pending = Pending()

    async def run() -> None:
        pending.started = time.monotonic()
        pending.result = await session.call_tool(TOOL, arguments)
        pending.finished = time.monotonic()

    task_group.start_soon(run)
    return pending


async def timed_call(session: mcp.ClientSession, arguments: dict[str, Any]) -> tuple[Any, float]:
    started = time.monotonic()
    result = await session.call_tool(TOOL, arguments)
    return result, time.monotonic() - started


def two_sidecars(toolgate, upstream, redis_port: int, policy: dict[str, Any], tmp_path: Path):
    """Sidecars A and B on one Redis, one key prefix, each with its own admin token."""
    prefix = f"approvals{free_port()}"
    redis = f"redis://127.0.0.1:{redis_port}"
    file_a, token_a = token_file(tmp_path, "admin-a")
    file_b, token_b = token_file(tmp_path, "admin-b")
    a = toolgate(upstream.url, policy, args=["--redis", redis, "--key-prefix", prefix, "--agent-id", "sidecar-a",
                                             "--admin-token-file", str(file_a)])
    b = toolgate(upstream.url, policy, args=["--redis", redis, "--key-prefix", prefix, "--agent-id", "sidecar-b",
                                             "--admin-token-file", str(file_b)])
    assert readyz(a)["store"]["kind"] == "redis" and readyz(b)["store"]["kind"] == "redis"
    return a, b, (file_a, token_a), (file_b, token_b)


# ---------------------------------------------------------------------------------------------------------
# 1. Approved through the other sidecar


def test_call_waiting_on_a_is_approved_through_b(toolgate, mcp_upstream_json, redis_port, tmp_path):
    wait = 5.0
    policy = approval_policy(f"{wait:.0f}s", "1h")
    a, b, _, (_, token_b) = two_sidecars(toolgate, mcp_upstream_json, redis_port, policy, tmp_path)
    policy_sha = readyz(a)["policy"]["sha256"]
    assert readyz(b)["policy"]["sha256"] == policy_sha
    tag = new_tag()
    arguments = {"replicas": 3, "tag": tag}

    async def body():
        async with handshake_session(a.url) as session, admin_client(b, token_b) as admin_b:
            async with anyio.create_task_group() as group:
                call = start_call(group, session, arguments)
                approval = await admin_b.find(tag)
                # B lists what waits on A: the binding's parts, as the approver must see them.
                assert approval["grant"] == GRANT and approval["tool"] == TOOL, approval
                assert approval["arguments"] == arguments, approval
                assert approval["policySha256"] == policy_sha, approval
                created, expires = parse_time(approval["createdAt"]), parse_time(approval["expiresAt"])
                assert abs(created - datetime.now(timezone.utc)) < timedelta(seconds=30), approval
                assert abs((expires - created) - timedelta(hours=1)) < timedelta(seconds=2), approval
                assert call.finished is None, f"the call did not wait for the approval: {call.result!r}"

                response = await admin_b.decide(approval["id"], "approve")
                approved_at = time.monotonic()
                assert response.status_code == 200, response.text
                decided = response.json()["approval"]
                assert decided["id"] == approval["id"] and decided["state"] == "approved", decided
            assert call.finished is not None
            assert_ran(call.result, 3)
            after_approval = call.finished - approved_at
            assert after_approval < PROMPT_SECONDS, f"A answered {after_approval:.2f} s after B's approval"
            assert call.seconds < wait - 1, call.seconds

            # The approval is used up: an identical retry waits again, for a new approval, and times out.
            retry, seconds = await timed_call(session, arguments)
            retry_id = assert_approval_denial(retry, "approval_required")
            assert retry_id != approval["id"], "the retry was answered with the used approval's id"
            assert wait - 0.5 <= seconds < wait + 3, f"the retry did not wait `wait` ({wait} s): {seconds:.2f} s"
            listed = await admin_b.find(tag, exclude={approval["id"]})
            assert listed["id"] == retry_id, listed
            return after_approval

    after_approval = run_async(body)
    assert runs(mcp_upstream_json, tag) == [{"tool": TOOL, "replicas": 3, "force": False}], \
        f"the upstream must have run the approved call exactly once (A answered {after_approval:.2f} s after approval)"


# ---------------------------------------------------------------------------------------------------------
# 2. Denied with the CLI on the other sidecar


def test_call_waiting_on_a_is_denied_with_the_cli_on_b(toolgate, mcp_upstream_json, redis_port, tmp_path):
    wait = 8.0
    a, b, _, (file_b, token_b) = two_sidecars(toolgate, mcp_upstream_json, redis_port,
                                              approval_policy(f"{wait:.0f}s", "1h"), tmp_path)
    tag = new_tag()
    arguments = {"tag": tag, "replicas": 5}

    async def body():
        async with handshake_session(a.url) as session, admin_client(b, token_b) as admin_b:
            async with anyio.create_task_group() as group:
                call = start_call(group, session, arguments)
                approval = await admin_b.find(tag)
                out = await acli_ok("deny", approval["id"], "--url", b.base, "--admin-token-file", str(file_b))
                denied_at = time.monotonic()
                assert out.strip() == f"{approval['id']}: denied ({TOOL} for {GRANT})", out
            assert call.finished is not None
            assert assert_approval_denial(call.result, "approval_denied") == approval["id"]
            assert call.finished - denied_at < PROMPT_SECONDS, call.finished - denied_at

            # Sticky: an identical retry is denied at once, with the same approval, on either sidecar.
            for url in (a.url, b.url):
                async with handshake_session(url) as other:
                    retry, seconds = await timed_call(other, arguments)
                assert assert_approval_denial(retry, "approval_denied") == approval["id"], url
                assert seconds < PROMPT_SECONDS, f"a denied binding must not wait again ({seconds:.2f} s)"

            # A decided approval cannot be decided again.
            again = await admin_b.decide(approval["id"], "approve")
            assert again.status_code == 409, (again.status_code, again.text)
            listed = await admin_b.find(tag, state="denied")
            assert listed["id"] == approval["id"], listed

    run_async(body)
    assert runs(mcp_upstream_json, tag) == [], "a denied call reached the upstream"


# ---------------------------------------------------------------------------------------------------------
# 3. Unapproved, then approved with the CLI: the retry passes once, on the canonical binding


def test_unapproved_call_then_cli_approval_passes_one_canonical_retry(toolgate, mcp_upstream_json, redis_port,
                                                                     tmp_path):
    wait = 2.0
    admin_file, _ = token_file(tmp_path, "admin")
    tg = toolgate(mcp_upstream_json.url, approval_policy(f"{wait:.0f}s", "1h"),
                  args=["--redis", f"redis://127.0.0.1:{redis_port}", "--key-prefix", f"approvals{free_port()}",
                        "--admin-token-file", str(admin_file)])
    connection = ["--url", tg.base, "--admin-token-file", str(admin_file)]
    tag = new_tag()
    first = {"tag": tag, "replicas": 1}
    # The same call to a human: keys in another order, the number spelled 1.0.
    same = {"replicas": 1.0, "tag": tag}
    other = {"tag": tag, "replicas": 2}
    sent: list[bytes] = []

    async def body():
        async with recording_session(tg.url, sent) as session:
            result, seconds = await timed_call(session, first)
            approval_id = assert_approval_denial(result, "approval_required")
            assert wait - 0.5 <= seconds < wait + 3, f"the call did not wait `wait` ({wait} s): {seconds:.2f} s"

            rows = cli_table(await acli_ok("list", *connection))
            mine = [row for row in rows if row[0] == approval_id]
            assert len(mine) == 1, rows
            _, state, grant, tool, expires, listed_arguments = mine[0]
            # Through /mcp/NAME (E2E_NAMED_ROUTE) the list names the server too: SERVER/TOOL.
            shown_tool = TOOL if tg.route == "/mcp" else tg.route.removeprefix("/mcp/") + "/" + TOOL
            assert (state, grant, tool) == ("pending", GRANT, shown_tool), mine
            assert json.loads(listed_arguments) == first, mine
            assert timedelta(minutes=55) < parse_time(expires) - datetime.now(timezone.utc) <= timedelta(hours=1), mine

            out = await acli_ok("approve", approval_id, *connection)
            assert out.strip() == f"{approval_id}: approved ({TOOL} for {GRANT})", out
            rows = cli_table(await acli_ok("list", *connection))
            assert [row[1] for row in rows if row[0] == approval_id] == ["approved"], rows

            # Other arguments are another binding: not approved, and they leave the approval unused.
            result, _ = await timed_call(session, other)
            other_id = assert_approval_denial(result, "approval_required")
            assert other_id != approval_id
            rows = cli_table(await acli_ok("list", *connection))
            assert [row[1] for row in rows if row[0] == approval_id] == ["approved"], rows

            # The canonically identical retry passes at once.
            result, seconds = await timed_call(session, same)
            assert_ran(result, 1)
            assert seconds < PROMPT_SECONDS, f"the approved retry waited {seconds:.2f} s"

            # Exactly once: the next identical retry needs an approval of its own.
            result, seconds = await timed_call(session, first)
            again_id = assert_approval_denial(result, "approval_required")
            assert again_id not in (approval_id, other_id), again_id
            assert seconds >= wait - 0.5, seconds
            rows = cli_table(await acli_ok("list", *connection))
            states = {row[0]: row[1] for row in rows}
            assert approval_id not in states, f"a used approval is still listed: {rows}"
            assert states.get(again_id) == "pending" and states.get(other_id) == "pending", rows

    run_async(body)
    # Premise: the SDK really sent other bytes for the retry (otherwise the canonical binding was not put to the test).
    calls = [b.replace(b" ", b"") for b in sent if b'"tools/call"' in b]
    assert len(calls) == 4, calls
    assert f'"arguments":{{"tag":"{tag}","replicas":1}}'.encode() in calls[0], calls[0]
    assert f'"arguments":{{"replicas":1.0,"tag":"{tag}"}}'.encode() in calls[2], calls[2]
    assert runs(mcp_upstream_json, tag) == [{"tool": TOOL, "replicas": 1, "force": False}], \
        "the upstream must have run exactly the one approved call"


# ---------------------------------------------------------------------------------------------------------
# 4. Admin authentication


def test_admin_api_needs_the_token_and_exists_only_with_it(toolgate, mcp_upstream_json, tmp_path):
    admin_file, token = token_file(tmp_path, "admin")
    wrong_file, wrong = token_file(tmp_path, "wrong")
    assert wrong != token
    tg = toolgate(mcp_upstream_json.url, approval_policy("1s", "1h"), args=["--admin-token-file", str(admin_file)])
    plain = toolgate(mcp_upstream_json.url, approval_policy("1s", "1h"))
    tag = new_tag()

    async def make_pending() -> str:
        async with handshake_session(tg.url) as session:
            result = await session.call_tool(TOOL, {"replicas": 7, "tag": tag})
        return assert_approval_denial(result, "approval_required")

    approval_id = run_async(make_pending)
    approvals_url = f"{tg.base}/admin/approvals"
    decide_url = f"{approvals_url}/{approval_id}"

    def state_of(http: httpx2.Client) -> str:
        response = http.get(approvals_url, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.text
        return next(a["state"] for a in response.json()["approvals"] if a["id"] == approval_id)

    with http_client() as http:
        refusals = {
            "GET, no token": http.get(approvals_url),
            "GET, wrong token": http.get(approvals_url, headers={"Authorization": f"Bearer {wrong}"}),
            "GET, not a bearer": http.get(approvals_url, headers={"Authorization": f"Basic {token}"}),
            "POST, no token": http.post(decide_url, json={"decision": "approve"}),
            "POST, wrong token": http.post(decide_url, json={"decision": "approve"},
                                           headers={"Authorization": f"Bearer {wrong}"}),
        }
        for what, response in refusals.items():
            assert response.status_code == 401, (what, response.status_code, response.text)
            assert response.headers.get("www-authenticate", "").startswith("Bearer"), (what, response.headers)
            assert approval_id not in response.text, (what, response.text)
        assert state_of(http) == "pending", "a refused POST decided the approval"

        auth = {"Authorization": f"Bearer {token}"}
        for bad in [b"", b"not json", b'{"decision": "maybe"}', b'{"decision": true}', b"[]"]:
            response = http.post(decide_url, content=bad, headers={**auth, "Content-Type": "application/json"})
            assert response.status_code == 400, (bad, response.status_code, response.text)
        assert state_of(http) == "pending", "a bad body decided the approval"
        response = http.post(f"{approvals_url}/no-such-approval", json={"decision": "approve"}, headers=auth)
        assert response.status_code == 404, (response.status_code, response.text)

        # Without --admin-token-file nothing under /admin exists, whatever the caller presents.
        for path in ["/admin/approvals", "/admin/", "/admin"]:
            for headers in [{}, auth]:
                response = http.get(f"{plain.base}{path}", headers=headers)
                assert response.status_code == 404, (path, headers, response.status_code, response.text)
        response = http.post(f"{plain.base}/admin/approvals/{approval_id}", json={"decision": "approve"}, headers=auth)
        assert response.status_code == 404, (response.status_code, response.text)

        # The CLI: a wrong token, an unknown id, a sidecar without the admin API, an unreachable URL.
        failures = {
            "wrong token, list": (cli("list", "--url", tg.base, "--admin-token-file", str(wrong_file)), "401"),
            "wrong token, approve": (cli("approve", approval_id, "--url", tg.base, "--admin-token-file",
                                         str(wrong_file)), "401"),
            "unknown id": (cli("approve", "no-such-approval", "--url", tg.base, "--admin-token-file",
                               str(admin_file)), "404"),
            "no admin API": (cli("list", "--url", plain.base, "--admin-token-file", str(admin_file)), "404"),
        }
        dead = f"http://127.0.0.1:{free_port()}"
        failures["unreachable"] = (cli("list", "--url", dead, "--admin-token-file", str(admin_file)), dead)
        for what, (result, expected) in failures.items():
            message = result.stderr + result.stdout
            assert result.returncode != 0, (what, result)
            assert expected in message, (what, expected, result)
            assert token not in message and wrong not in message, (what, "the CLI printed a token", result)
        assert state_of(http) == "pending", "a refused CLI call decided the approval"

    # A token shorter than 16 characters is refused at start.
    short_file, _ = token_file(tmp_path, "short", "short-token")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLGATE_")}
    result = subprocess.run([toolgate_binary(), "serve", "--policy", str(tg.policy_path), "--upstream",
                             mcp_upstream_json.url, "--listen", f"127.0.0.1:{free_port()}",
                             "--admin-token-file", str(short_file)],
                            capture_output=True, text=True, timeout=30, env=env, stdin=subprocess.DEVNULL)
    assert result.returncode != 0 and "16" in result.stderr, result


# ---------------------------------------------------------------------------------------------------------
# 5. Limits apply to approved calls


def test_limits_still_apply_after_approval(toolgate, mcp_upstream_json, redis_port, tmp_path):
    admin_file, token = token_file(tmp_path, "admin")
    limit = {"counter": "approved_scale", "window": "minute", "max": 1, "scope": "grant"}
    tg = toolgate(mcp_upstream_json.url, approval_policy("10s", "1h", [limit]),
                  args=["--redis", f"redis://127.0.0.1:{redis_port}", "--key-prefix", f"approvals{free_port()}",
                        "--admin-token-file", str(admin_file)])
    tag = new_tag()

    async def approved_call(session, admin, replicas: int) -> Any:
        async with anyio.create_task_group() as group:
            call = start_call(group, session, {"replicas": replicas, "tag": tag})
            approval = await admin.find(tag)
            assert approval["arguments"]["replicas"] == replicas, approval
            response = await admin.decide(approval["id"], "approve")
            assert response.status_code == 200, response.text
        return call.result

    async def body():
        async with handshake_session(tg.url) as session, admin_client(tg, token) as admin:
            assert_ran(await approved_call(session, admin, 1), 1)
            # DESIGN section 6: limits are checked before a human is asked, so this one is refused at once.
            result = await session.call_tool(TOOL, {"replicas": 2, "tag": tag})
            assert result.is_error is True, f"the second call passed the limit of 1 a minute: {result!r}"
            denial = denial_of(result)
            assert denial.get("reason") == "rate_limited", denial
            assert (denial.get("rule"), denial.get("counter"), denial.get("limit")) == (TOOL, "approved_scale", 1)
            assert 1 <= denial.get("retryAfterSeconds", 0) <= 60, denial
            assert not [a for a in await admin.approvals() if a["arguments"].get("replicas") == 2], "a human was asked"

    run_async(body)
    assert runs(mcp_upstream_json, tag) == [{"tool": TOOL, "replicas": 1, "force": False}]


# ---------------------------------------------------------------------------------------------------------
# 6. The in-memory store


def test_in_memory_store_approve_flow(toolgate, mcp_upstream_json, tmp_path):
    wait = 4.0
    admin_file, token = token_file(tmp_path, "admin")
    tg = toolgate(mcp_upstream_json.url, approval_policy(f"{wait:.0f}s", "1h"),
                  args=["--admin-token-file", str(admin_file)])
    assert readyz(tg)["store"]["kind"] == "memory"
    tag = new_tag()
    arguments = {"replicas": 4, "tag": tag}

    async def body():
        async with handshake_session(tg.url) as session, admin_client(tg, token) as admin:
            async with anyio.create_task_group() as group:
                call = start_call(group, session, arguments)
                approval = await admin.find(tag)
                assert (approval["grant"], approval["tool"], approval["arguments"]) == (GRANT, TOOL, arguments)
                response = await admin.decide(approval["id"], "approve")
                approved_at = time.monotonic()
                assert response.status_code == 200 and response.json()["approval"]["state"] == "approved", \
                    response.text
            assert_ran(call.result, 4)
            assert call.finished - approved_at < PROMPT_SECONDS, call.finished - approved_at

            result, seconds = await timed_call(session, arguments)
            retry_id = assert_approval_denial(result, "approval_required")
            assert retry_id != approval["id"] and seconds >= wait - 0.5, (retry_id, seconds)
            # Decided through the API after the call gave up: the next identical retry uses it at once, once.
            response = await admin.decide(retry_id, "approve")
            assert response.status_code == 200, response.text
            result, seconds = await timed_call(session, arguments)
            assert_ran(result, 4)
            assert seconds < PROMPT_SECONDS, seconds

    run_async(body)
    assert len(runs(mcp_upstream_json, tag)) == 2


# ---------------------------------------------------------------------------------------------------------
# 7. toolgate_approvals_pending


def test_approvals_pending_gauge_counts_calls_waiting_on_this_sidecar(toolgate, mcp_upstream_json, redis_port,
                                                                     tmp_path):
    a, b, (_, token_a), _ = two_sidecars(toolgate, mcp_upstream_json, redis_port, approval_policy("10s", "1h"),
                                         tmp_path)
    tag = new_tag()
    before = (pending_gauge(a), pending_gauge(b))

    async def wait_gauge(tg, value: float, timeout: float = 3.0) -> float | None:
        deadline = time.monotonic() + timeout
        seen = None
        while time.monotonic() < deadline:
            seen = await anyio.to_thread.run_sync(lambda: pending_gauge(tg))
            if seen == value:
                return seen
            await anyio.sleep(0.05)
        return seen

    async def body():
        async with handshake_session(a.url) as session, admin_client(a, token_a) as admin_a:
            async with anyio.create_task_group() as group:
                call = start_call(group, session, {"replicas": 6, "tag": tag})
                approval = await admin_a.find(tag)
                while_waiting = (await wait_gauge(a, 1), await anyio.to_thread.run_sync(lambda: pending_gauge(b)))
                response = await admin_a.decide(approval["id"], "approve")
                assert response.status_code == 200, response.text
            assert_ran(call.result, 6)
            return while_waiting

    while_waiting = run_async(body)
    after = (pending_gauge(a), pending_gauge(b))
    assert before == (0, 0), f"before any call waited: A, B = {before}"
    assert while_waiting == (1, 0), f"while a call waited on A: A, B = {while_waiting}"
    assert after == (0, 0), f"after it completed: A, B = {after}"


# ---------------------------------------------------------------------------------------------------------
# 8. Bounds (DESIGN section 6, "Bounds and display"): what an agent cannot do to the approver and the store


def raw_scale(tg, mid: int, arguments: dict[str, Any], token: str | None = None) -> dict[str, Any]:
    from helpers import modern_headers, post, tool_call

    headers = modern_headers("tools/call", TOOL)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    with http_client() as http:
        response = post(http, tg.url, tool_call(mid, TOOL, arguments, modern=True), headers)
    assert response.status_code == 200, response.text
    return response.json()


def raw_denial(answer: dict[str, Any]) -> dict[str, Any]:
    return ((answer.get("result") or {}).get("_meta") or {}).get("toolgate/denial") or {}


def admin_list(tg, token: str) -> list[dict[str, Any]]:
    with http_client() as http:
        response = http.get(f"{tg.base}/admin/approvals", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return response.json()["approvals"]


def admin_decide(tg, token: str, approval_id: str, decision: str) -> None:
    with http_client() as http:
        response = http.post(f"{tg.base}/admin/approvals/{approval_id}", headers={"Authorization": f"Bearer {token}"},
                             json={"decision": decision})
    assert response.status_code == 200, response.text


def bounded_sidecar(toolgate, upstream, tmp_path, store_args: list[str], approval: dict[str, Any],
                    limits: list[dict[str, Any]] | None = None, grants: dict[str, Any] | None = None):
    admin_file, token = token_file(tmp_path, "admin")
    entry: dict[str, Any] = {"action": "approve", "approval": {"wait": "0s", **approval}}
    if limits:
        entry["limits"] = limits
    tg = toolgate(upstream.url, {"version": "1", "default": "deny", "tools": {TOOL: entry}}, grants=grants,
                  args=[*store_args, "--admin-token-file", str(admin_file), "--max-body-bytes", str(8 << 20)])
    return tg, token


def store_args_for(kind: str, redis_port_value: int | None) -> list[str]:
    if kind == "memory":
        return []
    return ["--redis", f"redis://127.0.0.1:{redis_port_value}", "--key-prefix", f"approvals{uuid.uuid4().hex[:10]}"]


import pytest  # noqa: E402


@pytest.fixture(params=["memory", "redis"])
def bounds_store(request) -> list[str]:
    port = request.getfixturevalue("redis_port") if request.param == "redis" else None
    return store_args_for(request.param, port)


def test_limits_are_checked_before_a_human_is_asked_and_an_approval_outlives_a_refusal(
        toolgate, mcp_upstream_json, tmp_path, bounds_store):
    """A call the limits would refuse never creates a pending approval; an approved call the limits refuse when it
    proceeds keeps its approval for a retry (the human's yes is not lost)."""
    limit = {"counter": "bounded_scale", "window": "minute", "max": 1, "scope": "grant"}
    tg, token = bounded_sidecar(toolgate, mcp_upstream_json, tmp_path, bounds_store, {}, [limit])
    tag = new_tag()
    first, second = {"replicas": 1, "tag": tag}, {"replicas": 2, "tag": tag}
    ids = {}
    for mid, arguments in ((1, first), (2, second)):
        denial = raw_denial(raw_scale(tg, mid, arguments))
        assert denial.get("reason") == "approval_required" and denial.get("approvalId"), denial
        ids[arguments["replicas"]] = denial["approvalId"]
    assert len(admin_list(tg, token)) == 2, "asking for approval charged nothing: both could ask"
    for approval_id in ids.values():
        admin_decide(tg, token, approval_id, "approve")
    assert raw_scale(tg, 3, first)["result"]["isError"] is False  # charged now: 1 of 1
    refused = raw_denial(raw_scale(tg, 4, second))
    assert refused.get("reason") == "rate_limited", refused
    states = {a["id"]: a["state"] for a in admin_list(tg, token)}
    assert states == {ids[2]: "approved"}, f"the refused call's approval was used up: {states}"
    # A third call: the limits refuse it before anyone is asked.
    third = raw_denial(raw_scale(tg, 5, {"replicas": 3, "tag": tag}))
    assert third.get("reason") == "rate_limited" and "approvalId" not in third, third
    assert {a["id"] for a in admin_list(tg, token)} == {ids[2]}, "a pending approval was created for a refused call"
    assert runs(mcp_upstream_json, tag) == [{"tool": TOOL, "replicas": 1, "force": False}]


def test_pending_approvals_are_capped_per_grant(toolgate, mcp_upstream_json, tmp_path, bounds_store):
    tokens = {"mallory": "mallory-" + uuid.uuid4().hex, "alice": "alice-" + uuid.uuid4().hex}
    import hashlib

    grants = {"grants": [{"name": n, "sha256": hashlib.sha256(t.encode()).hexdigest()} for n, t in tokens.items()]}
    tg, token = bounded_sidecar(toolgate, mcp_upstream_json, tmp_path, bounds_store, {"maxPending": 3}, grants=grants)
    tag = new_tag()
    for n in range(3):
        denial = raw_denial(raw_scale(tg, n, {"replicas": n, "tag": tag}, tokens["mallory"]))
        assert denial.get("reason") == "approval_required" and denial.get("approvalId"), denial
    over = raw_scale(tg, 9, {"replicas": 9, "tag": tag}, tokens["mallory"])
    denial = raw_denial(over)
    assert denial.get("reason") == "approval_required" and "approvalId" not in denial, denial
    assert "already wait" in over["result"]["content"][0]["text"], over
    # Another grant is not held back by mallory's requests.
    assert raw_denial(raw_scale(tg, 10, {"replicas": 10, "tag": tag}, tokens["alice"])).get("approvalId")
    listed = admin_list(tg, token)
    assert sorted(a["grant"] for a in listed) == ["alice", "mallory", "mallory", "mallory"], listed
    # A decision frees a place.
    admin_decide(tg, token, next(a["id"] for a in listed if a["grant"] == "mallory"), "deny")
    assert raw_denial(raw_scale(tg, 11, {"replicas": 11, "tag": tag}, tokens["mallory"])).get("approvalId")


def test_arguments_too_large_to_review_are_refused_and_never_stored(toolgate, mcp_upstream_json, tmp_path, bounds_store):
    """The issue's case: many approve-tool calls of megabytes each used to grow the store and the page without bound.
    Past `approval.maxArgumentBytes` (default 64 KiB) a call is `invalid_arguments` and no approval is stored."""
    tg, token = bounded_sidecar(toolgate, mcp_upstream_json, tmp_path, bounds_store, {})
    tag = new_tag()
    for n in range(8):
        answer = raw_scale(tg, n, {"replicas": n, "tag": tag, "pad": "x" * (1 << 20)})
        denial = raw_denial(answer)
        assert denial.get("reason") == "invalid_arguments", denial
        assert "approval.maxArgumentBytes" in answer["result"]["content"][0]["text"], answer
    just_under = raw_denial(raw_scale(tg, 99, {"replicas": 1, "tag": tag, "pad": "x" * 60_000}))
    assert just_under.get("reason") == "approval_required", just_under
    assert len(admin_list(tg, token)) == 1
