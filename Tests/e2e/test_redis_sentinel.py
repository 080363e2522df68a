"""Issue 25 item 2: a Redis master found through Sentinel (`--redis redis+sentinel://…`, DESIGN.md section 7).

Real processes: one master, one replica, three sentinels (`redis-server --sentinel`, what Debian's `redis-sentinel`
runs), on free loopback ports. toolgate asks the sentinels for the master, checks `ROLE`, and after the master is
killed and a replica promoted, serves again without a restart; the time from the promotion to the first call served
is measured (printed and recorded), never asserted. Sentinel's own password is separate from the master's.
"""

from __future__ import annotations

import json
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest

from conftest import RespError, redis_command
from helpers import final_response, free_port, http_client, modern_headers, post, readyz, tool_call, wait_for
from processes import ProcessGroup
from redis_cluster import _wait_pong

MASTER = "mymaster"
POLICY = {"version": "1", "default": "deny", "tools": {"echo": {"limits": [
    {"counter": "echo_rate", "window": "hour", "max": 100000, "scope": "global"}]}}}
SEED = {"version": "1", "default": "deny", "tools": {"imageBackgroundRemoval": {"limits": [
    {"counter": "imagebackgroundremoval_rate", "window": "minute", "max": 10, "scope": "grant"}]}}}


@dataclass
class SentinelSet:
    master_port: int
    replica_port: int
    sentinel_ports: list[int]
    group: ProcessGroup
    procs: dict[int, Any]
    master_password: str | None
    sentinel_password: str | None
    argv: dict[int, list[str]]
    # With TLS: each server's and sentinel's TLS port by its plaintext port (the tests' own commands stay plaintext;
    # the sentinels name masters by their TLS ports, and toolgate speaks only TLS).
    tls_ports: dict[int, int] | None = None

    def restart(self, port: int) -> None:
        """The server on `port` again, empty (no persistence): the sentinels make a returning old master a replica."""
        self.procs[port] = self.group.start(f"redis-{port}-again", self.argv[port])

    def url(self, password: str | None = "default", name: str = MASTER) -> str:
        secret = self.master_password if password == "default" else password
        credentials = f":{secret}@" if secret else ""
        ports = [self.tls_ports[p] for p in self.sentinel_ports] if self.tls_ports else self.sentinel_ports
        hosts = ",".join(f"127.0.0.1:{p}" for p in ports)
        return f"{'rediss' if self.tls_ports else 'redis'}+sentinel://{credentials}{hosts}/{name}"

    def sentinel_says(self) -> int | None:
        """The master's port as the first sentinel that answers says it."""
        for port in self.sentinel_ports:
            try:
                reply = _sentinel(port, self.sentinel_password, "SENTINEL", "get-master-addr-by-name", MASTER)
                if isinstance(reply, list) and len(reply) == 2:
                    named = int(reply[1])
                    plaintext = {t: p for p, t in (self.tls_ports or {}).items()}
                    return plaintext.get(named, named)
            except (OSError, RespError):
                continue
        return None


def _sentinel(port: int, password: str | None, *args: Any) -> Any:
    from redis_cluster import redis_pipeline

    commands = ([("AUTH", password)] if password else []) + [tuple(args)]
    replies = redis_pipeline(port, commands)
    reply = replies[-1]
    if isinstance(reply, RespError):
        raise reply
    return reply


def start_sentinel_set(group: ProcessGroup, tmp_path: Path, *, master_password: str | None = None,
                       sentinel_password: str | None = None, tls: Any = None) -> SentinelSet:
    """`tls`: a test_redis_tls.Certificates; every server and sentinel then also listens on a TLS port, replicates
    and monitors over TLS (`tls-replication yes`), and the sentinels name masters by their TLS ports."""
    master_port, replica_port = free_port(), free_port()
    auth = ["--requirepass", master_password, "--masterauth", master_password] if master_password else []
    tls_ports = {port: free_port() for port in (master_port, replica_port)} if tls else None
    tls_settings = {"tls-cert-file": tls.server_cert, "tls-key-file": tls.server_key, "tls-ca-cert-file": tls.ca,
                    "tls-auth-clients": "no", "tls-replication": "yes"} if tls else {}
    tls_argv = [x for key, value in tls_settings.items() for x in (f"--{key}", value)]
    procs: dict[int, Any] = {}
    argv: dict[int, list[str]] = {}
    upstream_port = tls_ports[master_port] if tls_ports else master_port
    for name, port, extra in (("master", master_port, []),
                              ("replica", replica_port, ["--replicaof", "127.0.0.1", str(upstream_port)])):
        directory = tmp_path / name
        directory.mkdir()
        listen_tls = ["--tls-port", str(tls_ports[port]), *tls_argv] if tls_ports else []
        argv[port] = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                      "--dir", str(directory), *auth, *listen_tls, *extra]
        proc = group.start(f"redis-{name}", argv[port])
        if (problem := _wait_pong(proc, port, 10.0, master_password)) is not None:
            pytest.fail(f"{problem}:\n{proc.log()}", pytrace=False)
        procs[port] = proc
    sentinel_ports = [free_port() for _ in range(3)]
    if tls_ports is not None:
        tls_ports.update({port: free_port() for port in sentinel_ports})
    for i, port in enumerate(sentinel_ports):
        config = tmp_path / f"sentinel-{i}.conf"
        lines = [
            f"port {port}", "bind 127.0.0.1", f"dir {tmp_path}",
            f"sentinel monitor {MASTER} 127.0.0.1 {upstream_port} 2",
            f"sentinel down-after-milliseconds {MASTER} 1000",
            f"sentinel failover-timeout {MASTER} 5000",
            f"sentinel parallel-syncs {MASTER} 1",
        ]
        if master_password:
            lines.append(f"sentinel auth-pass {MASTER} {master_password}")
        if sentinel_password:
            lines += [f"requirepass {sentinel_password}", f"sentinel sentinel-pass {sentinel_password}"]
        if tls_ports is not None:
            lines += [f"tls-port {tls_ports[port]}", *(f"{key} {value}" for key, value in tls_settings.items())]
        config.write_text("\n".join(lines) + "\n")
        proc = group.start(f"sentinel-{i}", ["redis-server", str(config), "--sentinel"])
        procs[port] = proc
    sentinels = SentinelSet(master_port, replica_port, sentinel_ports, group, procs, master_password, sentinel_password,
                            argv, tls_ports)
    assert wait_for(lambda: sentinels.sentinel_says() == master_port, timeout=15), "the sentinels never named the master"
    # The replica in sync, so a failover has something to promote.
    assert wait_for(lambda: "master_link_status:up" in str(_info(replica_port, master_password)), timeout=15)
    return sentinels


def _info(port: int, password: str | None) -> str:
    try:
        return str(_sentinel(port, password, "INFO", "replication"))
    except (OSError, RespError):
        return ""


def call(tg: Any, tool: str, arguments: dict[str, Any], mid: int = 1) -> dict[str, Any]:
    """One per-request-era call (no session to open first), its JSON-RPC answer."""
    with http_client() as http:
        return final_response(post(http, tg.url, tool_call(mid, tool, arguments, modern=True),
                                   modern_headers("tools/call", tool)))


def denial(answer: dict[str, Any]) -> str | None:
    """None for a result the tool gave; the denial's reason; "error" for a JSON-RPC error."""
    if "error" in answer:
        return "error"
    result = answer.get("result") or {}
    if not result.get("isError"):
        return None
    return (result.get("_meta") or {}).get("toolgate/denial", {}).get("reason", "error")


# ---------------------------------------------------------------------------------------------------------


def test_the_seed_policy_through_sentinel(toolgate, procs, mcp_upstream_json, tmp_path):
    sentinels = start_sentinel_set(procs, tmp_path)
    tg = toolgate(mcp_upstream_json.url, SEED,
                  args=["--redis", sentinels.url(), "--key-prefix", f"tg-sentinel-{uuid.uuid4().hex[:8]}"])
    assert wait_for(lambda: readyz(tg)[1]["status"] == "ready", timeout=10), readyz(tg)
    answers = [call(tg, "imageBackgroundRemoval", {"image": f"{i}.png"}, i) for i in range(11)]
    assert [denial(a) for a in answers] == [None] * 10 + ["rate_limited"], answers
    # The counter is on the master the sentinels named.
    keys = redis_command(sentinels.master_port, "KEYS", "tg-sentinel-*")
    assert keys, "no counter on the master"


def test_a_failover_is_served_again_without_restart(toolgate, procs, mcp_upstream_json, tmp_path, record_property):
    sentinels = start_sentinel_set(procs, tmp_path, master_password="master-secret", sentinel_password="sentinel-secret")
    tg = toolgate(mcp_upstream_json.url, POLICY,
                  args=["--redis", sentinels.url(), "--redis-sentinel-password", "sentinel-secret",
                        "--key-prefix", f"tg-sentinel-{uuid.uuid4().hex[:8]}"])
    assert wait_for(lambda: readyz(tg)[1]["status"] == "ready", timeout=10), readyz(tg)
    assert denial(call(tg, "echo", {"text": "before"})) is None
    assert "master-secret" not in tg.log() and "sentinel-secret" not in tg.log()

    sentinels.procs[sentinels.master_port].popen.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    # While no master serves, calls are refused store_unavailable (fail mode closed), and /readyz says why.
    assert wait_for(lambda: denial(call(tg, "echo", {"text": "down"})) == "store_unavailable", timeout=10)
    status, body = readyz(tg)
    assert status == 503 and body["store"].get("problem"), body

    assert wait_for(lambda: sentinels.sentinel_says() == sentinels.replica_port, timeout=60), "no failover happened"
    promoted = time.monotonic()
    assert wait_for(lambda: denial(call(tg, "echo", {"text": "after"})) is None, timeout=30, interval=0.02), tg.log()[-3000:]
    served = time.monotonic()
    record_property("failover: kill to promotion (s)", round(promoted - killed, 2))
    record_property("failover: promotion to first call served (s)", round(served - promoted, 2))
    print(f"sentinel failover: promotion {promoted - killed:.2f} s after the kill; served {served - promoted:.2f} s later")
    assert wait_for(lambda: readyz(tg)[1]["status"] == "ready", timeout=10), readyz(tg)
    assert f"127.0.0.1:{sentinels.replica_port}" in tg.log()


def test_tls_sentinels_name_a_tls_master_and_a_failover_is_served_again(toolgate, procs, mcp_upstream_json, tmp_path):
    """`rediss+sentinel://`: the sentinels are asked over TLS, and the master they name is reached over TLS, both
    verified against --redis-ca-file; a sidecar with another CA reaches neither and says so."""
    from test_redis_tls import make_certificates

    certs = make_certificates(tmp_path / "tls")
    sentinels = start_sentinel_set(procs, tmp_path, master_password="master-secret", tls=certs)
    prefix = f"tg-sentinel-tls-{uuid.uuid4().hex[:8]}"
    tg = toolgate(mcp_upstream_json.url, POLICY,
                  args=["--redis", sentinels.url(), "--redis-ca-file", certs.ca, "--key-prefix", prefix])
    assert wait_for(lambda: readyz(tg)[1]["status"] == "ready", timeout=15), (readyz(tg), tg.log()[-3000:])
    assert denial(call(tg, "echo", {"text": "before"})) is None
    assert _sentinel(sentinels.master_port, "master-secret", "KEYS", f"{prefix}*"), "no counter on the master"
    assert f"127.0.0.1:{sentinels.tls_ports[sentinels.master_port]}" in tg.log()

    wrong_ca = toolgate(mcp_upstream_json.url, POLICY, args=["--redis", sentinels.url(), "--redis-ca-file", certs.other_ca])
    assert wait_for(lambda: "certificate" in str(readyz(wrong_ca)[1]["store"].get("problem")).lower(), timeout=15), \
        readyz(wrong_ca)
    assert denial(call(wrong_ca, "echo", {"text": "x"})) == "store_unavailable"

    sentinels.procs[sentinels.master_port].popen.send_signal(signal.SIGKILL)
    assert wait_for(lambda: sentinels.sentinel_says() == sentinels.replica_port, timeout=60), "no failover happened"
    assert wait_for(lambda: denial(call(tg, "echo", {"text": "after"})) is None, timeout=30, interval=0.05), \
        tg.log()[-3000:]
    assert f"127.0.0.1:{sentinels.tls_ports[sentinels.replica_port]}" in tg.log()


def test_what_the_sentinels_cannot_say_shows_in_readyz(toolgate, procs, mcp_upstream_json, tmp_path):
    sentinels = start_sentinel_set(procs, tmp_path, sentinel_password="sentinel-secret")
    unknown = toolgate(mcp_upstream_json.url, POLICY, args=["--redis", sentinels.url(name="othermaster"),
                                                             "--redis-sentinel-password", "sentinel-secret"])
    assert wait_for(lambda: "knows no master named \"othermaster\"" in str(readyz(unknown)[1]["store"].get("problem")),
                    timeout=10), readyz(unknown)
    assert denial(call(unknown, "echo", {"text": "x"})) == "store_unavailable"
    no_password = toolgate(mcp_upstream_json.url, POLICY, args=["--redis", sentinels.url()])
    assert wait_for(lambda: "NOAUTH" in str(readyz(no_password)[1]["store"].get("problem"))
                    or "auth" in str(readyz(no_password)[1]["store"].get("problem")).lower(), timeout=10), readyz(no_password)


def test_sentinel_urls_and_flags_are_checked_at_start(tmp_path):
    import os
    import subprocess

    from conftest import toolgate_binary

    policy = tmp_path / "p.json"
    policy.write_text(json.dumps(POLICY))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLGATE_")}

    def refused(*args: str) -> str:
        done = subprocess.run([toolgate_binary(), "serve", "--policy", str(policy), "--upstream", "http://127.0.0.1:1/mcp",
                               "--listen", "127.0.0.1:0", *args], capture_output=True, text=True, timeout=30, env=env)
        assert done.returncode == 64, (done.returncode, done.stderr)
        return done.stderr

    assert "the master's name is missing" in refused("--redis", "redis+sentinel://127.0.0.1:26379")
    assert "give it once, alone" in refused("--redis", "redis+sentinel://127.0.0.1:1/m", "--redis", "redis://127.0.0.1:2")
    assert "goes with a redis+sentinel:// URL" in refused("--redis", "redis://127.0.0.1:2", "--redis-sentinel-password", "x")
    assert "not a number" in refused("--redis", "redis+sentinel://127.0.0.1:99999/m")


# ---------------------------------------------------------------------------------------------------------
# Over-admission across a failover (issue 25 item 4): three sidecars under load, the master killed mid-way.
# Replication is asynchronous: admissions the master took but had not yet sent to the replica are forgotten by the
# promoted replica, and the limit admits that many again. Measured and recorded, never asserted, for the default.

FAILOVER_MAX = 150


def run_failover_load(toolgate, sentinels: SentinelSet, upstream_url: str, extra: list[str]) -> dict[str, float]:
    import threading

    policy = {"version": "1", "default": "deny", "tools": {"echo": {"limits": [
        {"counter": "failover_cap", "window": "day", "max": FAILOVER_MAX, "scope": "global"}]}}}
    prefix = f"tg-failover-{uuid.uuid4().hex[:8]}"
    sidecars = [toolgate(upstream_url, policy, args=["--redis", sentinels.url(), "--key-prefix", prefix, *extra])
                for _ in range(3)]
    admitted = 0
    held = 0  # threads that ended on 20 refusals in a row after the promotion: the limit holds again
    lock = threading.Lock()
    stop = threading.Event()
    killed = threading.Event()
    restarted = threading.Event()

    def hammer(tg: Any) -> None:
        nonlocal admitted, held
        refused_in_a_row = 0
        deadline = time.monotonic() + 90
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                reason = denial(call(tg, "echo", {"text": "x"}))
            except Exception:  # noqa: BLE001 - a call cut by the failover is neither admitted nor refused
                continue
            if reason is None:
                with lock:
                    admitted += 1
                    if admitted >= FAILOVER_MAX // 2 and not killed.is_set():
                        killed.set()
                        sentinels.procs[sentinels.master_port].popen.send_signal(signal.SIGKILL)
                refused_in_a_row = 0
            elif killed.is_set() and sentinels.sentinel_says() == sentinels.replica_port:
                # Promoted: the old master comes back (empty) and is made the new master's replica, so a sidecar
                # that waits for one replica can be admitted again.
                with lock:
                    if not restarted.is_set():
                        restarted.set()
                        sentinels.restart(sentinels.master_port)
                if reason != "rate_limited":
                    refused_in_a_row = 0
                    continue
                refused_in_a_row += 1
                if refused_in_a_row >= 20:
                    with lock:
                        held += 1
                    return

    threads = [threading.Thread(target=hammer, args=(tg,)) for tg in sidecars for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    stop.set()
    assert killed.is_set(), "the load never reached half the limit"
    return {"admitted": admitted, "over": admitted - FAILOVER_MAX, "held": held, "threads": len(threads)}


@pytest.mark.parametrize("wait", [None, 1], ids=["default", "wait-replicas-1"])
def test_over_admission_across_a_failover(toolgate, procs, mcp_upstream_json, tmp_path, record_property, wait):
    sentinels = start_sentinel_set(procs, tmp_path)
    extra = ["--redis-wait-replicas", str(wait)] if wait else []
    result = run_failover_load(toolgate, sentinels, mcp_upstream_json.url, extra)
    label = f"--redis-wait-replicas {wait}" if wait else "without --redis-wait-replicas"
    record_property(f"failover {label}: admitted over the limit", result["over"])
    print(f"failover under load, three sidecars, limit {FAILOVER_MAX}: admitted {result['admitted']} "
          f"({result['over']} over) {label}")
    # What holds even without waiting for replicas: after the promotion the limit holds again on every sidecar.
    assert result["held"] == result["threads"], result
    if wait:
        # Every admission was on the replica before the call went through: the promoted replica forgot none.
        assert result["over"] <= 0, result
