"""Issue 11, item 4: errors a user can act on (DESIGN sections 3 and 7).

- `store_unavailable` tells the agent when to try again: `retryAfterSeconds` in the denial and HTTP `Retry-After`.
- A request refused for its token is logged (throttled, never the token) and counted (`toolgate_auth_failures_total`).
- `toolgate hash-token` gives the digest a grants file needs, one trailing newline ignored.
- A port in use names the address and the flag.
- A grants file in YAML is read like a YAML policy.
- `toolgate demo` runs from any directory (its policy is built in).
- SIGHUP reloads the grants file with the policy, atomically: both or neither.
- A wrong upstream path (a 404 page, not JSON-RPC) reaches the agent as a JSON-RPC error naming the status, is
  logged and counted, and `/readyz` shows the last upstream status.
- `--metrics-listen` serves /metrics, /healthz and /readyz apart from /mcp; /mcp beyond loopback without grants is
  warned about at start.
- Item 3: `toolgate check FILE --upstream URL [--strict]` names typos, argument paths that are not arguments and
  uncovered tools; `serve` logs the same once an agent's `tools/list` shows the upstream's tools.
- Item 5: `RateLimit-Policy` and `RateLimit` headers for the call's tightest limit, on answers and denials.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import time

import pytest

from conftest import toolgate_binary
from helpers import SEED_POLICY, free_port, http_client, post, tool_call


def test_store_unavailable_says_when_to_retry(raw_upstream, toolgate):
    # Nothing listens on this port: every call meets an unreachable Redis, and fail mode closed refuses it.
    tg = toolgate(raw_upstream.url, SEED_POLICY, args=["--redis", f"redis://127.0.0.1:{free_port()}", "--fail-mode", "closed"])
    with http_client() as http:
        response = post(http, tg.url, tool_call(1, "imageBackgroundRemoval", {"image": "x"}))
    body = response.json()
    denial = body["result"]["_meta"]["toolgate/denial"]
    assert denial["reason"] == "store_unavailable", body
    assert denial["retryAfterSeconds"] == 1, denial
    assert response.headers.get("Retry-After") == "1", dict(response.headers)
    assert raw_upstream.seen_posts() == [], "a call was forwarded while the store was unavailable"


# --- a refused token leaves a trace; toolgate hash-token --------------------------------------------------------

TOKEN = "ci-bot-token-77a1c4d2"


def test_a_refused_token_is_logged_and_counted_but_never_shown(raw_upstream, toolgate):
    grants = {"grants": [{"name": "ci-bot", "sha256": hashlib.sha256(TOKEN.encode()).hexdigest()}]}
    tg = toolgate(raw_upstream.url, SEED_POLICY, grants=grants)
    wrong = TOKEN + "-wrong"
    with http_client() as http:
        assert post(http, tg.url, tool_call(1, "imageBackgroundRemoval"), {}).status_code == 401
        assert post(http, tg.url, tool_call(2, "imageBackgroundRemoval"), {"Authorization": f"Bearer {wrong}"}).status_code == 401
        assert post(http, tg.url, tool_call(3, "imageBackgroundRemoval"), {"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        metrics = http.get(f"{tg.base}/metrics").text
    counted = [line for line in metrics.splitlines() if line.startswith("toolgate_auth_failures_total")]
    assert counted and float(counted[0].split()[-1]) == 2, counted
    log = tg.log()
    assert "refused a request without a known bearer token" in log, log[-2000:]
    assert wrong not in log and TOKEN not in log, "a token reached the log"


def test_hash_token_matches_what_a_grants_file_needs():
    binary = os.environ["TOOLGATE_BIN"]
    expected = hashlib.sha256(TOKEN.encode()).hexdigest()
    for given in (TOKEN + "\n", TOKEN, TOKEN + "\r\n"):  # echo, printf, a Windows editor
        out = subprocess.run([binary, "hash-token"], input=given.encode(), capture_output=True, timeout=30)
        assert out.returncode == 0, out.stderr
        assert out.stdout.decode().strip() == expected, (given, out.stdout)
    # Only one newline is dropped: a token that ends in a blank line is another token.
    out = subprocess.run([binary, "hash-token"], input=(TOKEN + "\n\n").encode(), capture_output=True, timeout=30)
    assert out.stdout.decode().strip() == hashlib.sha256((TOKEN + "\n").encode()).hexdigest()
    empty = subprocess.run([binary, "hash-token"], input=b"", capture_output=True, timeout=30)
    assert empty.returncode != 0 and b"no token" in empty.stderr


# --- a port in use names the address and the flag ----------------------------------------------------------------

def test_a_port_in_use_names_the_address_and_the_flag(tmp_path):
    binary = os.environ["TOOLGATE_BIN"]
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps(SEED_POLICY))
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        out = subprocess.run(
            [binary, "serve", "--policy", str(policy), "--upstream", "http://127.0.0.1:9/mcp", "--listen", f"127.0.0.1:{port}"],
            capture_output=True, timeout=60)
    assert out.returncode != 0
    err = out.stderr.decode()
    assert f"127.0.0.1:{port}" in err and "--listen" in err and "already in use" in err, err[-2000:]
    assert "bind(descriptor" not in err.splitlines()[-1], err[-2000:]


# --- a YAML grants file is read like a YAML policy ----------------------------------------------------------------

def test_a_yaml_grants_file_is_accepted(raw_upstream, toolgate, tmp_path):
    grants = tmp_path / "grants.yaml"
    grants.write_text(f"grants:\n  - name: ci-bot\n    sha256: {hashlib.sha256(TOKEN.encode()).hexdigest()}\n")
    tg = toolgate(raw_upstream.url, SEED_POLICY, args=["--grants", str(grants)])
    with http_client() as http:
        assert post(http, tg.url, tool_call(1, "imageBackgroundRemoval"), {"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert post(http, tg.url, tool_call(2, "imageBackgroundRemoval"), {"Authorization": "Bearer nope"}).status_code == 401
    broken = tmp_path / "broken.yaml"
    broken.write_text("grants:\n  - name: [unclosed\n")
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps(SEED_POLICY))
    out = subprocess.run(
        [os.environ["TOOLGATE_BIN"], "serve", "--policy", str(policy), "--upstream", raw_upstream.url, "--listen", "127.0.0.1:0",
         "--grants", str(broken)], capture_output=True, timeout=60)
    assert out.returncode != 0 and str(broken) in out.stderr.decode() and "JSON" not in out.stderr.decode(), out.stderr


# --- toolgate demo runs from any directory ------------------------------------------------------------------------

def test_demo_runs_from_any_directory(tmp_path):
    out = subprocess.run([os.environ["TOOLGATE_BIN"], "demo"], cwd=tmp_path, capture_output=True, timeout=120)
    text = out.stdout.decode()
    assert out.returncode == 0, (text[-2000:], out.stderr.decode()[-2000:])
    assert "examples/policy.json (built in)" in text, text[:2000]
    assert "demo failed" not in out.stderr.decode(), out.stderr.decode()[-2000:]


# --- SIGHUP reloads the grants with the policy, both or neither ---------------------------------------------------

def test_sighup_reloads_grants_with_the_policy(raw_upstream, toolgate, tmp_path):
    old, new = "old-token-3f9c1a2b7d", "new-token-8e2d4c6f1a"

    def grants_doc(token: str) -> str:
        return json.dumps({"grants": [{"name": "ci-bot", "sha256": hashlib.sha256(token.encode()).hexdigest()}]})

    grants = tmp_path / "grants.json"
    grants.write_text(grants_doc(old))
    tg = toolgate(raw_upstream.url, SEED_POLICY, args=["--grants", str(grants)])

    def status(token: str) -> int:
        with http_client() as http:
            return post(http, tg.url, tool_call(1, "imageBackgroundRemoval"), {"Authorization": f"Bearer {token}"}).status_code

    def reloaded(count: int) -> bool:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if tg.log().count("policy reloaded") + tg.log().count("reload refused") >= count:
                return True
            time.sleep(0.05)
        return False

    assert (status(old), status(new)) == (200, 401)
    grants.write_text(grants_doc(new))
    tg.proc.popen.send_signal(signal.SIGHUP)
    assert reloaded(1), tg.log()[-2000:]
    assert (status(old), status(new)) == (401, 200)

    # A broken grants file: nothing changes, the policy included.
    grants.write_text("{not json")
    tg.policy_path.write_text(json.dumps({"version": "1", "default": "allow", "tools": {}}))
    tg.proc.popen.send_signal(signal.SIGHUP)
    assert reloaded(2), tg.log()[-2000:]
    assert "reload refused" in tg.log()
    assert (status(old), status(new)) == (401, 200)
    with http_client() as http:
        # Still the seed policy's default deny: the valid new policy was not taken without its grants.
        body = post(http, tg.url, tool_call(2, "not_listed"), {"Authorization": f"Bearer {new}"}).json()
    assert body.get("error", {}).get("code") == -32602, body


# --- a wrong upstream path: a JSON-RPC error naming the status, a log line, a count, and /readyz -------------------

def test_a_wrong_upstream_path_is_named_to_the_agent_and_the_operator(raw_upstream, toolgate):
    wrong = raw_upstream.url.rsplit("/", 1)[0] + "/not-mcp"
    tg = toolgate(wrong, {"version": "1", "default": "allow", "tools": {}})
    with http_client() as http:
        response = post(http, tg.url, tool_call(5, "echo", {"text": "x"}))
        metrics = http.get(f"{tg.base}/metrics").text
        ready = http.get(f"{tg.base}/readyz").json()
    assert response.status_code == 200, response.text
    body = response.json()
    assert body.get("id") == 5 and body["error"]["code"] == -32603, body
    assert "HTTP 404" in body["error"]["message"] and "--upstream" in body["error"]["message"], body
    assert "upstream answer is not JSON-RPC" in tg.log(), tg.log()[-2000:]
    assert 'toolgate_upstream_answers_not_jsonrpc_total{status="404"} 1' in metrics, \
        [line for line in metrics.splitlines() if "not_jsonrpc" in line]
    assert ready["upstream"]["lastStatus"] == "404" and ready["upstream"]["lastAnswerWasMCP"] is False, ready


# --- item 6: a listener for probes and metrics; a warning for /mcp open to the network without grants ---------------

def test_metrics_listen_serves_probes_apart_from_mcp(raw_upstream, toolgate):
    probes = free_port()
    tg = toolgate(raw_upstream.url, SEED_POLICY, args=["--metrics-listen", f"127.0.0.1:{probes}"])
    base = f"http://127.0.0.1:{probes}"
    deadline = time.monotonic() + 10
    while True:
        try:
            with http_client() as http:
                health = http.get(f"{base}/healthz")
            break
        except Exception:  # noqa: BLE001
            assert time.monotonic() < deadline, tg.log()[-2000:]
            time.sleep(0.1)
    with http_client() as http:
        assert health.status_code == 200
        assert http.get(f"{base}/readyz").json()["status"] == "ready"
        assert "toolgate_build_info" in http.get(f"{base}/metrics").text
        assert http.post(f"{base}/mcp", json=tool_call(1, "imageBackgroundRemoval")).status_code == 404
        assert raw_upstream.seen_posts() == []
    assert f"127.0.0.1:{probes}" in tg.log() and "probes and metrics listening" in tg.log()


def test_mcp_beyond_loopback_without_grants_is_warned_about(raw_upstream, toolgate):
    tg = toolgate(raw_upstream.url, SEED_POLICY, listen_host="0.0.0.0")
    deadline = time.monotonic() + 10
    while "beyond loopback without --grants" not in tg.log():
        assert time.monotonic() < deadline, tg.log()[-2000:]
        time.sleep(0.1)


# --- item 3: the policy held against the real server --------------------------------------------------------------

TYPO_POLICY = {"version": "1", "default": "deny", "tools": {
    "transfr": {},
    "echo": {"arguments": [{"path": "txet", "op": "max_length", "value": 10}]},
}}


@pytest.mark.parametrize("mode", ["json", "sse"])
def test_check_upstream_names_typos_and_missing_arguments(request, tmp_path, mode):
    upstream = request.getfixturevalue(f"mcp_upstream_{mode}")
    binary = os.environ["TOOLGATE_BIN"]
    typo = tmp_path / "typo.json"
    typo.write_text(json.dumps(TYPO_POLICY))
    out = subprocess.run([binary, "check", str(typo), "--upstream", upstream.url], capture_output=True, timeout=60)
    err = out.stderr.decode()
    assert out.returncode == 0, err
    assert 'tools.transfr: the upstream has no tool "transfr" (did you mean "transfer"?)' in err, err
    assert 'tools.echo.arguments[0].path: "txet" is not an argument of echo' in err, err
    assert "default deny hides them" in err, err
    strict = subprocess.run([binary, "check", str(typo), "--upstream", upstream.url, "--strict"], capture_output=True, timeout=60)
    assert strict.returncode == 1, strict.stderr.decode()
    unreachable = subprocess.run([binary, "check", str(typo), "--upstream", f"http://127.0.0.1:{free_port()}/mcp"],
                                 capture_output=True, timeout=60)
    assert unreachable.returncode == 1 and b"cannot reach" in unreachable.stderr, unreachable.stderr


def test_serve_warns_when_the_upstreams_list_lacks_a_policy_tool(mcp_upstream_json, toolgate):
    tg = toolgate(mcp_upstream_json.url, TYPO_POLICY)
    with http_client() as http:
        init = post(http, tg.url, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
        session = init.headers.get("mcp-session-id")
        headers = {"Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-06-18"} if session else {}
        post(http, tg.url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, headers)
        listed = post(http, tg.url, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, headers)
    assert listed.status_code == 200
    deadline = time.monotonic() + 5
    while 'the upstream has no tool \\"transfr\\"' not in tg.log() and "the upstream has no tool" not in tg.log():
        assert time.monotonic() < deadline, tg.log()[-3000:]
        time.sleep(0.05)
    assert "transfr" in tg.log()


# --- item 5: quota an agent can see ------------------------------------------------------------------------------

def test_ratelimit_headers_show_the_tightest_limit(raw_upstream, toolgate):
    tg = toolgate(raw_upstream.url, SEED_POLICY)
    seen = []
    with http_client() as http:
        for i in range(11):
            response = post(http, tg.url, tool_call(i, "imageBackgroundRemoval", {"image": str(i)}))
            seen.append((response.headers.get("RateLimit-Policy"), response.headers.get("RateLimit"), response.json()))
    policy, state, _ = seen[0]
    assert policy == '"imagebackgroundremoval_rate";q=10;w=60', policy
    assert state == '"imagebackgroundremoval_rate";r=9;t=60', state
    assert seen[9][1] == '"imagebackgroundremoval_rate";r=0;t=60', seen[9][1]
    policy, state, body = seen[10]
    assert body["result"]["_meta"]["toolgate/denial"]["reason"] == "rate_limited"
    assert policy == '"imagebackgroundremoval_rate";q=10;w=60'
    retry = body["result"]["_meta"]["toolgate/denial"]["retryAfterSeconds"]
    assert state == f'"imagebackgroundremoval_rate";r=0;t={retry}', (state, retry)


# --- secrets never reach the log, at any level ----------------------------------------------------------------------

def test_no_secret_reaches_the_log_even_at_trace_level(raw_upstream, toolgate, tmp_path, monkeypatch):
    """A grant token read from the environment (tokenEnv), an --upstream-header value expanded from ${ENV} and the
    admin token are secrets; at --log-level trace, services and settings are printed (swift-service-lifecycle logs
    every service at debug), and none of the three may appear."""
    grant_token = "grant-secret-5f1c9a7e3b"
    header_secret = "upstream-secret-8d2e4b6a1c"
    admin_token = "admin-secret-3a9c7e5f2d1b"
    monkeypatch.setenv("E2E_GRANT_TOKEN", grant_token)
    monkeypatch.setenv("E2E_UPSTREAM_KEY", header_secret)
    admin_file = tmp_path / "admin-token"
    admin_file.write_text(admin_token + "\n")
    grants = {"grants": [{"name": "env-bot", "tokenEnv": "E2E_GRANT_TOKEN"}]}
    tg = toolgate(raw_upstream.url, SEED_POLICY, grants=grants, args=[
        "--log-level", "trace", "--upstream-header", "X-Api-Key: ${E2E_UPSTREAM_KEY}",
        "--admin-token-file", str(admin_file)])
    with http_client() as http:
        ok = post(http, tg.url, tool_call(1, "imageBackgroundRemoval", {"image": "x"}),
                  {"Authorization": f"Bearer {grant_token}"})
        assert ok.status_code == 200, ok.text
        assert post(http, tg.url, tool_call(2, "imageBackgroundRemoval"), {"Authorization": "Bearer wrong"}).status_code == 401
    [record] = [r for r in raw_upstream.seen_posts() if '"id": 1' in r["body"] or '"id":1' in r["body"]]
    assert header_secret in json.dumps(record), "the configured header did not reach the upstream"
    log = tg.log()
    assert "PolicyReloader(" in log, "the trace log no longer shows the services: this test proves nothing"
    for secret in (grant_token, header_secret, admin_token):
        assert secret not in log, f"a secret reached the log: ...{log[max(0, log.find(secret) - 300):log.find(secret) + 50]}"


@pytest.mark.parametrize("flag", ["--max-connections", "--upstream-max-connections"])
@pytest.mark.parametrize("value", ["0", "-3", "many", "99999999999"])
def test_connection_caps_must_be_positive_counts(raw_upstream, tmp_path, flag, value):
    """A cap of zero, a negative or unreadable count, or one past what a descriptor table could hold is refused at
    start with exit 64 and the flag's name, never taken as "no limit"."""
    policy = tmp_path / "p.json"
    policy.write_text(json.dumps(SEED_POLICY))
    result = subprocess.run([toolgate_binary(), "serve", "--policy", str(policy), "--upstream", raw_upstream.url,
                             f"{flag}={value}"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 64, result
    assert f"{flag} must be a positive integer" in result.stderr, result.stderr
