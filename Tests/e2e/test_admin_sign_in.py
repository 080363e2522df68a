"""Issue 22, finding 1 and the display half of finding 6, over raw HTTP (DESIGN.md section 6, "Admin sign-in" and
"Bounds and display"); the browser side is test_admin_page.py.

1. `test_sign_in_gives_a_secret_that_sign_out_revokes`: `POST /admin/session` answers a fresh secret and sets no
   cookie; the secret opens the API as `X-Toolgate-Admin-Session`; no cookie opens anything (the old derived cookie
   included); a request with the secret from another origin is refused; `DELETE /admin/session` revokes it.
2. `test_failed_sign_ins_are_rate_limited`: wrong tokens from one address get 429 with `Retry-After` (then even the
   right token does), another address is not held, the log names the refusals but never a token, and after the
   window the right token signs in.
3. `test_admin_listen_serves_admin_there_and_not_on_mcp`: `--admin-listen` (and `TOOLGATE_ADMIN_LISTEN`) serve
   `/admin` on their own listener with the Host and Origin guards, `/mcp`'s listener no longer has it, and a
   decision there wakes the call waiting on `/mcp`.
4. `test_the_api_lists_fifty_at_a_time`: oldest first, 50 a page, `next` to the following page, `total`; the CLI
   lists every page; `display` shows invisible characters as escapes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest

from conftest import toolgate_binary
from helpers import (denial_of, free_port, handshake_session, modern_headers, raw_response_complete, run_async,
                     split_raw_response, tool_call)

TOOL = "scale"  # upstream_mcp_server.py: scale(replicas: int, force: bool = False, tag: str = "")
SESSION_HEADER = "X-Toolgate-Admin-Session"


def policy(wait: str) -> dict[str, Any]:
    return {"version": "1", "default": "deny",
            "tools": {TOOL: {"action": "approve", "approval": {"wait": wait, "ttl": "1h"}}}}


def token_file(tmp_path: Path) -> tuple[Path, str]:
    token = secrets.token_hex(20)
    path = tmp_path / "admin.token"
    path.write_text(token + "\n")
    return path, token


def sign_in(base: str, token: str) -> httpx2.Response:
    return httpx2.post(f"{base}/admin/session", json={"token": token}, timeout=10.0)


def raw_request(port: int, request: bytes, source: str = "127.0.0.1", timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """One request from a chosen loopback source address (all of 127.0.0.0/8 is loopback on Linux)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.bind((source, 0))
        s.connect(("127.0.0.1", port))
        s.sendall(request)
        received = b""
        while not raw_response_complete(received):
            chunk = s.recv(65536)
            if not chunk:
                break
            received += chunk
    status_line, headers, body = split_raw_response(received)
    return int(status_line.split()[1]), {k.lower(): v for k, v in headers}, body


def raw_sign_in(port: int, token: str, source: str = "127.0.0.1") -> tuple[int, dict[str, str], bytes]:
    body = json.dumps({"token": token}).encode()
    return raw_request(port, b"POST /admin/session HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                       b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (port, len(body), body), source)


def make_pending(url: str, tokens: list[str | None], per_token: int, tag: str = "t") -> None:
    """`per_token` pending approvals for each grant token (None: no Authorization), one after another, with raw
    per-request-era calls on a policy that waits 0 s."""
    with httpx2.Client(timeout=10.0) as http:
        n = 0
        for grant_token in tokens:
            for _ in range(per_token):
                n += 1
                headers = {**modern_headers("tools/call", TOOL), "Accept": "application/json, text/event-stream"}
                if grant_token is not None:
                    headers["Authorization"] = f"Bearer {grant_token}"
                body = tool_call(n, TOOL, {"replicas": n, "tag": f"{tag}{n:03d}"}, modern=True)
                response = http.post(url, json=body, headers=headers)
                assert response.status_code == 200 and "approval_required" in response.text, response.text


# ---------------------------------------------------------------------------------------------------------
# 1. The secret, and no cookie


def test_sign_in_gives_a_secret_that_sign_out_revokes(toolgate, mcp_upstream_json, tmp_path):
    admin_file, token = token_file(tmp_path)
    tg = toolgate(mcp_upstream_json.url, policy("0s"), args=["--admin-token-file", str(admin_file)])
    make_pending(tg.url, [None], 1)
    approvals = f"{tg.base}/admin/approvals"

    assert sign_in(tg.base, "wrong-" + token).status_code == 401
    for bad in [b"", b"not json", b"{}", b'{"token": 5}']:
        response = httpx2.post(f"{tg.base}/admin/session", content=bad, timeout=10.0)
        assert response.status_code == 400, (bad, response.status_code, response.text)
    first, second = sign_in(tg.base, token), sign_in(tg.base, token)
    for response in (first, second):
        assert response.status_code == 200, response.text
        assert "set-cookie" not in response.headers, response.headers
        assert re.fullmatch(r"[0-9a-f]{64}", response.json()["session"]), response.json()
        assert response.json()["idleTimeoutSeconds"] == 1800 and response.json()["maxAgeSeconds"] == 43200
    secret = first.json()["session"]
    assert secret != second.json()["session"], "every sign-in gets its own secret"
    assert token not in secret

    listed = httpx2.get(approvals, headers={SESSION_HEADER: secret}, timeout=10.0)
    assert listed.status_code == 200 and len(listed.json()["approvals"]) == 1, listed.text
    approval_id = listed.json()["approvals"][0]["id"]

    # No cookie opens anything: not the secret as a cookie, not the old cookie derived from the token.
    old_cookie = hashlib.sha256(("toolgate-admin-session:" + token).encode()).hexdigest()
    old_csrf = hashlib.sha256(("toolgate-admin-csrf:" + token).encode()).hexdigest()
    for cookie in [f"toolgate_admin={old_cookie}", f"toolgate_admin={secret}", f"{SESSION_HEADER}={secret}"]:
        assert httpx2.get(approvals, headers={"Cookie": cookie}, timeout=10.0).status_code == 401, cookie
        response = httpx2.post(f"{approvals}/{approval_id}", json={"decision": "approve"},
                               headers={"Cookie": cookie, "X-Toolgate-CSRF": old_csrf}, timeout=10.0)
        assert response.status_code == 401, (cookie, response.text)
    for path in ["/admin/login", "/admin/decide", "/admin/logout"]:
        response = httpx2.post(f"{tg.base}{path}", data={"id": approval_id, "decision": "approve", "csrf": old_csrf,
                                                         "token": token},
                               headers={"Cookie": f"toolgate_admin={old_cookie}"}, timeout=10.0)
        assert response.status_code in (404, 405), (path, response.status_code, response.text)
        assert "set-cookie" not in response.headers
    # The page itself sets none either.
    page = httpx2.get(f"{tg.base}/admin/", timeout=10.0)
    assert page.status_code == 200 and "set-cookie" not in page.headers
    assert "default-src 'none'" in page.headers["content-security-policy"]

    # The secret from another origin (an agent's page on another loopback port): refused, even with the secret.
    other = f"http://127.0.0.1:{free_port()}"
    for origin in [other, "null", "http://localhost:1"]:
        response = httpx2.post(f"{approvals}/{approval_id}", json={"decision": "approve"},
                               headers={SESSION_HEADER: secret, "Origin": origin}, timeout=10.0)
        assert response.status_code == 403, (origin, response.status_code, response.text)
    response = httpx2.get(approvals, headers={SESSION_HEADER: secret, "Origin": tg.base}, timeout=10.0)
    assert response.status_code == 200, "the page's own origin is accepted"
    assert [a["state"] for a in response.json()["approvals"]] == ["pending"]

    # Sign out: that secret stops working at once; the other sign-in is untouched.
    assert httpx2.request("DELETE", f"{tg.base}/admin/session", headers={SESSION_HEADER: secret},
                          timeout=10.0).status_code == 204
    assert httpx2.get(approvals, headers={SESSION_HEADER: secret}, timeout=10.0).status_code == 401
    response = httpx2.post(f"{approvals}/{approval_id}", json={"decision": "approve"}, headers={SESSION_HEADER: secret},
                           timeout=10.0)
    assert response.status_code == 401, response.text
    assert httpx2.get(approvals, headers={SESSION_HEADER: second.json()["session"]}, timeout=10.0).status_code == 200
    # The bearer token keeps working for the API and the CLI.
    response = httpx2.post(f"{approvals}/{approval_id}", json={"decision": "deny"},
                           headers={"Authorization": f"Bearer {token}"}, timeout=10.0)
    assert response.status_code == 200 and response.json()["approval"]["state"] == "denied", response.text
    assert token not in tg.log() and secret not in tg.log()


# ---------------------------------------------------------------------------------------------------------
# 2. Failed sign-ins are rate-limited per address


@pytest.mark.timeout(150)
def test_failed_sign_ins_are_rate_limited(toolgate, mcp_upstream_json, tmp_path):
    admin_file, token = token_file(tmp_path)
    tg = toolgate(mcp_upstream_json.url, policy("0s"), args=["--admin-token-file", str(admin_file)])
    wrong = [f"guess-{i}-{secrets.token_hex(8)}" for i in range(12)]
    statuses = [raw_sign_in(tg.port, guess)[0] for guess in wrong]
    assert statuses[:5] == [401] * 5, statuses
    assert statuses[5:] == [429] * 7, statuses
    status, headers, body = raw_sign_in(tg.port, wrong[0])
    assert status == 429 and 1 <= int(headers["retry-after"]) <= 60, (status, headers, body)
    assert b"too many wrong admin tokens" in body
    # While held, the right token is refused too: a refusal never tells a right guess from a wrong one.
    status, headers, _ = raw_sign_in(tg.port, token)
    assert status == 429, status
    # Nor does the API take the token from a held address: it is no way around the throttle.
    approvals_request = (b"GET /admin/approvals HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Bearer %s\r\n"
                         b"Connection: close\r\n\r\n" % (tg.port, token.encode()))
    assert raw_request(tg.port, approvals_request)[0] == 429
    # Another address is not held by this one's failures.
    status, _, body = raw_sign_in(tg.port, token, source="127.0.0.2")
    assert status == 200 and json.loads(body)["session"], (status, body)

    log = tg.log()
    assert "admin sign-in refused" in log, log[-3000:]
    assert "127.0.0.1" in log
    assert token not in log and not any(guess in log for guess in wrong), "a token reached the log"

    # After the window, the right token signs in from the held address.
    deadline = time.monotonic() + int(headers["retry-after"]) + 30
    while True:
        status, headers, body = raw_sign_in(tg.port, token)
        if status == 200 or time.monotonic() > deadline:
            break
        assert status == 429, (status, body)
        time.sleep(min(float(headers.get("retry-after", "1")), 5.0))
    assert status == 200 and re.fullmatch(r"[0-9a-f]{64}", json.loads(body)["session"]), (status, body)


# ---------------------------------------------------------------------------------------------------------
# 3. --admin-listen


def test_admin_listen_serves_admin_there_and_not_on_mcp(toolgate, mcp_upstream_json, tmp_path):
    admin_file, token = token_file(tmp_path)
    bearer = {"Authorization": f"Bearer {token}"}
    admin_port = free_port()
    tg = toolgate(mcp_upstream_json.url, policy("30s"),
                  args=["--admin-token-file", str(admin_file), "--admin-listen", f"127.0.0.1:{admin_port}"])
    admin = f"http://127.0.0.1:{admin_port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx2.get(f"{admin}/admin/", timeout=2.0).status_code == 200:
                break
        except httpx2.HTTPError:
            time.sleep(0.1)
    assert f"admin listening" in tg.log(), tg.log()[-2000:]

    # /mcp's listener has no /admin any more; the admin listener has nothing but /admin.
    with httpx2.Client(timeout=10.0) as http:
        for method, path in [("GET", "/admin/"), ("GET", "/admin/approvals"), ("POST", "/admin/session")]:
            response = http.request(method, f"{tg.base}{path}", headers=bearer, json={"token": token})
            assert response.status_code == 404, (method, path, response.status_code, response.text)
        assert http.get(f"{admin}/admin/approvals", headers=bearer).status_code == 200
        assert http.post(f"{admin}/mcp", json=tool_call(1, TOOL, {}), headers=bearer).status_code == 404
        assert http.get(f"{admin}/admin/").status_code == 200
        # The same guards as /mcp: a Host that is not loopback, an Origin of another port.
        response = http.get(f"{admin}/admin/approvals", headers={**bearer, "Host": "evil.example"})
        assert response.status_code == 403, response.text
        response = http.get(f"{admin}/admin/approvals", headers={**bearer, "Origin": tg.base})
        assert response.status_code == 403, response.text
        secret = http.post(f"{admin}/admin/session", json={"token": token}).json()["session"]

    # A call waiting on /mcp is approved through the admin listener, and runs at once.
    async def call_and_approve() -> Any:
        import anyio

        async with handshake_session(tg.url) as session:
            async with anyio.create_task_group() as tasks:
                results: list[Any] = []

                async def call() -> None:
                    results.append(await session.call_tool(TOOL, {"replicas": 3, "tag": "via-admin-listen"}))

                tasks.start_soon(call)
                async with httpx2.AsyncClient(timeout=10.0) as http:
                    pending: list[Any] = []
                    for _ in range(200):
                        pending = (await http.get(f"{admin}/admin/approvals", headers={SESSION_HEADER: secret})).json()["approvals"]
                        if pending:
                            break
                        await anyio.sleep(0.05)
                    assert len(pending) == 1, pending
                    answer = await http.post(f"{admin}/admin/approvals/{pending[0]['id']}", json={"decision": "approve"},
                                             headers={SESSION_HEADER: secret, "Origin": admin})
                    assert answer.status_code == 200, answer.text
            return results[0]

    result = run_async(call_and_approve)
    assert result.is_error is False, result

    # The variable works as the flag does; and --admin-listen without the admin token is a usage error.
    env_port = free_port()
    tg2 = toolgate(mcp_upstream_json.url, policy("0s"), args=["--admin-token-file", str(admin_file)],
                   env={"TOOLGATE_ADMIN_LISTEN": f"127.0.0.1:{env_port}"})
    deadline = time.monotonic() + 30
    status = 0
    while time.monotonic() < deadline and status != 200:
        try:
            status = httpx2.get(f"http://127.0.0.1:{env_port}/admin/approvals", headers=bearer, timeout=2.0).status_code
        except httpx2.HTTPError:
            time.sleep(0.1)
    assert status == 200
    assert httpx2.get(f"{tg2.base}/admin/approvals", headers=bearer, timeout=10.0).status_code == 404
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLGATE_")}
    result = subprocess.run([toolgate_binary(), "serve", "--policy", str(tg.policy_path), "--upstream",
                             mcp_upstream_json.url, "--listen", f"127.0.0.1:{free_port()}",
                             "--admin-listen", f"127.0.0.1:{free_port()}"],
                            capture_output=True, text=True, timeout=30, env=env, stdin=subprocess.DEVNULL)
    assert result.returncode == 64 and "--admin-token-file" in result.stderr, result
    result = subprocess.run([toolgate_binary(), "serve", "--policy", str(tg.policy_path), "--upstream",
                             mcp_upstream_json.url, "--admin-token-file", str(admin_file), "--admin-listen", "nope"],
                            capture_output=True, text=True, timeout=30, env=env, stdin=subprocess.DEVNULL)
    assert result.returncode == 64 and "--admin-listen must be HOST:PORT" in result.stderr, result


# ---------------------------------------------------------------------------------------------------------
# 4. Fifty at a time, oldest first


def test_the_api_lists_fifty_at_a_time(toolgate, mcp_upstream_json, tmp_path):
    admin_file, token = token_file(tmp_path)
    tokens = [secrets.token_hex(16) for _ in range(6)]
    grants = {"grants": [{"name": f"g{i}", "sha256": hashlib.sha256(t.encode()).hexdigest()} for i, t in enumerate(tokens)]}
    tg = toolgate(mcp_upstream_json.url, policy("0s"), grants=grants, args=["--admin-token-file", str(admin_file)])
    make_pending(tg.url, tokens, 10)
    bearer = {"Authorization": f"Bearer {token}"}

    with httpx2.Client(timeout=10.0) as http:
        first = http.get(f"{tg.base}/admin/approvals", headers=bearer).json()
        assert len(first["approvals"]) == 50 and first["total"] == 60 and first["next"], (len(first["approvals"]), first["next"])
        second = http.get(f"{tg.base}/admin/approvals", params={"after": first["next"]}, headers=bearer).json()
        assert len(second["approvals"]) == 10 and second["total"] == 60 and second["next"] is None, second["next"]
        tags = [a["arguments"]["tag"] for a in first["approvals"] + second["approvals"]]
        assert tags == [f"t{n:03d}" for n in range(1, 61)], "oldest first, every approval once"
        created = [a["createdAt"] for a in first["approvals"] + second["approvals"]]
        assert created == sorted(created)
        for bad in ["nonsense", "12", ":x"]:
            response = http.get(f"{tg.base}/admin/approvals", params={"after": bad}, headers=bearer)
            assert response.status_code == 400 and "after" in response.json()["error"], response.text

    # The CLI goes through every page.
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLGATE_")}
    result = subprocess.run([toolgate_binary(), "approvals", "list", "--url", tg.base, "--admin-token-file", str(admin_file)],
                            capture_output=True, text=True, timeout=30, env=env, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result
    assert len([line for line in result.stdout.splitlines() if " pending " in line]) == 60, result.stdout


def test_display_escapes_invisible_characters(toolgate, mcp_upstream_json, tmp_path):
    admin_file, token = token_file(tmp_path)
    tg = toolgate(mcp_upstream_json.url, policy("0s"), args=["--admin-token-file", str(admin_file)])

    async def call() -> None:
        async with handshake_session(tg.url) as session:
            result = await session.call_tool(TOOL, {"replicas": 9007199254740993, "tag": "x\u202ey\u2066z\u200b" + " " * 40})
        assert denial_of(result).get("reason") == "approval_required", result

    run_async(call)
    approval = httpx2.get(f"{tg.base}/admin/approvals", headers={"Authorization": f"Bearer {token}"},
                          timeout=10.0).json()["approvals"][0]
    display = approval["display"]["arguments"]
    escapes = [s["escape"] for s in display if isinstance(s, dict)]
    assert escapes == ["\\u202e", "\\u2066", "\\u200b", "[40 spaces]"], display
    text = "".join(s if isinstance(s, str) else s["escape"] for s in display)
    assert '"replicas": 9007199254740993' in text, text  # the number as sent, not as a double rounds it
    assert not any(c in text for c in "\u202e\u2066\u200b")
    # The CLI shows the same escapes.
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLGATE_")}
    result = subprocess.run([toolgate_binary(), "approvals", "list", "--url", tg.base, "--admin-token-file", str(admin_file)],
                            capture_output=True, text=True, timeout=30, env=env, stdin=subprocess.DEVNULL)
    assert result.returncode == 0 and "\\u202e" in result.stdout and "\u202e" not in result.stdout, result
