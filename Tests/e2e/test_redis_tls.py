"""TLS to Redis (DESIGN.md section 7, "Connecting to the Redis users run"): `rediss://` against a real TLS-only
redis-server (`--port 0 --tls-port P`) with certificates made by `openssl` in the test.

The seed policy and the fleet exactness test over mutual TLS; a wrong CA, a wrong server name and a missing client
certificate each refused with OpenSSL's reason in the log and in /readyz, and the fail mode applied; plaintext to a
TLS-only port refused with a hint; TLS flags with a plain URL a usage error.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import RespError, toolgate_binary
from helpers import (
    SEED_POLICY,
    assert_rate_limited_denial,
    denial_of,
    free_port,
    handshake_session,
    http_client,
    readyz,
    run_async,
    text_of,
    wait_for,
)
from redis_cluster import _resp_encode, _resp_read
from test_fleet import call_echo, fleet_policy, saturate_and_check_exactness

PASSWORD = "tls-s3cret-pw"


@dataclass
class Certificates:
    directory: Path

    def __getattr__(self, name: str) -> str:
        files = {"ca": "ca.crt", "other_ca": "otherca.crt", "server_cert": "server.crt", "server_key": "server.key",
                 "client_cert": "client.crt", "client_key": "client.key"}
        if name not in files:
            raise AttributeError(name)
        return str(self.directory / files[name])


def make_certificates(directory: Path) -> Certificates:
    """A CA, a server certificate for 127.0.0.1 and localhost, a client certificate, and another CA."""
    directory.mkdir(parents=True, exist_ok=True)
    script = """
        set -e
        ca() { openssl req -x509 -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.crt" -days 2 -subj "/CN=e2e $1"; }
        ca ca
        ca otherca
        openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=localhost"
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > server.ext
        openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile server.ext
        openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj "/CN=toolgate"
        openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out client.crt -days 2
    """
    subprocess.run(["sh", "-c", script], cwd=directory, check=True, capture_output=True, timeout=60)
    return Certificates(directory)


@dataclass
class TLSRedis:
    port: int
    certs: Certificates
    proc: Any

    @property
    def url(self) -> str:
        return f"rediss://:{PASSWORD}@127.0.0.1:{self.port}"

    def pipeline(self, commands: list[tuple[Any, ...]], timeout: float = 5.0) -> list[Any]:
        """Over TLS with the client certificate, after AUTH; error replies as RespError values."""
        context = ssl.create_default_context(cafile=self.certs.ca)
        context.load_cert_chain(self.certs.client_cert, self.certs.client_key)
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as raw:
            with context.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(b"".join(_resp_encode(c) for c in [("AUTH", PASSWORD), *commands]))
                with s.makefile("rb") as f:
                    return [_resp_read(f) for _ in range(len(commands) + 1)][1:]

    def command(self, *args: Any) -> Any:
        reply = self.pipeline([args])[0]
        if isinstance(reply, RespError):
            raise reply
        return reply


def start_tls_redis(procs, directory: Path, client_certificates: bool) -> TLSRedis:
    """A TLS-only redis-server (`--port 0`), with a password; `client_certificates`: `--tls-auth-clients yes`."""
    certs = make_certificates(directory)
    port = free_port()
    proc = procs.start("redis-tls", [
        "redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1", "--save", "",
        "--appendonly", "no", "--dir", str(directory), "--maxmemory-policy", "noeviction", "--requirepass", PASSWORD,
        "--tls-cert-file", certs.server_cert, "--tls-key-file", certs.server_key, "--tls-ca-cert-file", certs.ca,
        "--tls-auth-clients", "yes" if client_certificates else "no",
    ])
    redis = TLSRedis(port, certs, proc)

    def answers() -> bool:
        try:
            return redis.pipeline([("PING",)], timeout=0.5) == ["PONG"]
        except (OSError, ConnectionError):
            return False

    if not wait_for(answers, 10):
        pytest.fail(f"the TLS redis-server did not answer on {port}:\n{proc.log()}", pytrace=False)
    return redis


@pytest.fixture
def tls_redis(procs, tmp_path) -> TLSRedis:
    return start_tls_redis(procs, tmp_path / "tls", client_certificates=True)


def mutual_tls_args(redis: TLSRedis, prefix: str) -> list[str]:
    c = redis.certs
    return ["--redis", redis.url, "--redis-ca-file", c.ca, "--redis-cert-file", c.client_cert,
            "--redis-key-file", c.client_key, "--key-prefix", prefix]


def test_seed_policy_over_mutual_tls(mcp_upstream, toolgate, tls_redis):
    prefix = f"tlsseed{free_port()}"
    tg = toolgate(mcp_upstream.url, SEED_POLICY, args=mutual_tls_args(tls_redis, prefix))
    assert wait_for(lambda: readyz(tg)[1]["status"] == "ready", 15), readyz(tg)
    assert readyz(tg)[1]["store"]["kind"] == "redis"

    async def body():
        async with handshake_session(tg.url) as session:
            for i in range(10):
                result = await session.call_tool("imageBackgroundRemoval", {"image": f"img-{i}.png"})
                assert result.is_error is False, f"call {i + 1} of 10 was refused: {result!r}"
            result = await session.call_tool("imageBackgroundRemoval", {"image": "img-10.png"})
            assert result.is_error is True, f"the 11th call should be rate limited: {result!r}"
            assert_rate_limited_denial(
                denial_of(result), rule="imageBackgroundRemoval", counter="imagebackgroundremoval_rate",
                limit=10, scope="grant", window="minute", window_seconds=60,
            )
            assert text_of(result).startswith("Denied by policy: ")

    run_async(body)
    # The counters are in the TLS Redis (read back over TLS), not in an in-memory store.
    keys = tls_redis.command("KEYS", f"{prefix}:*")
    assert keys, "no counter was written to the TLS Redis"
    log = Path(tg.proc.log_path).read_text(errors="replace")
    assert PASSWORD not in log, "the Redis password is in the log"


def test_three_sidecars_never_exceed_the_limit_together_over_tls(raw_upstream, toolgate, tls_redis):
    """test_fleet's exactness test, every sidecar on mutual TLS to one Redis."""
    window, limit, seconds = 2, 20, 7.0
    prefix = f"tlsfleet{free_port()}"
    sidecars = [toolgate(raw_upstream.url, fleet_policy(window, limit),
                         args=mutual_tls_args(tls_redis, prefix) + ["--agent-id", f"host-{i}"])
                for i in range(3)]
    for tg in sidecars:
        assert wait_for(lambda: readyz(tg)[1]["status"] == "ready", 15), readyz(tg)
    saturate_and_check_exactness(sidecars, raw_upstream, window, limit, seconds)


OUTAGE_ANSWER = {"closed": "store_unavailable", "open": "allowed"}
OUTAGE_READYZ = {"closed": (503, "not_ready"), "open": (200, "degraded")}


def refused_args(redis: TLSRedis, case: str) -> tuple[list[str], str]:
    """The flags of a sidecar the TLS Redis refuses (or that refuses it), and the words its refusal must carry."""
    c = redis.certs
    client = ["--redis-cert-file", c.client_cert, "--redis-key-file", c.client_key]
    if case == "wrong CA":
        return ["--redis", redis.url, "--redis-ca-file", c.other_ca, *client], "not signed by a trusted CA"
    if case == "wrong server name":
        return (["--redis", redis.url, "--redis-ca-file", c.ca, "--redis-tls-server-name", "redis.example", *client],
                "hostname mismatch")
    if case == "no client certificate":
        return ["--redis", redis.url, "--redis-ca-file", c.ca], "--redis-cert-file"
    assert case == "plaintext to the TLS port"
    return ["--redis", f"redis://:{PASSWORD}@127.0.0.1:{redis.port}"], "the server may want TLS: use rediss://"


@pytest.mark.parametrize(("case", "fail_mode"), [
    ("wrong CA", "closed"), ("wrong server name", "closed"), ("no client certificate", "closed"),
    ("plaintext to the TLS port", "closed"), ("wrong CA", "open"),
])
def test_a_refused_tls_connection_says_why_and_applies_the_fail_mode(raw_upstream, toolgate, tls_redis, case,
                                                                     fail_mode):
    # Would catch: a verification failure that falls back to plaintext or to no verification (calls would be
    # counted), a refusal with no reason (the operator cannot tell a wrong CA from a wrong name), a crash.
    prefix = f"tlsbad{free_port()}"
    args, words = refused_args(tls_redis, case)
    tg = toolgate(raw_upstream.url, fleet_policy(60, 10),
                  args=args + ["--key-prefix", prefix, "--fail-mode", fail_mode])
    assert wait_for(lambda: "problem" in readyz(tg)[1]["store"], 15), readyz(tg)
    status, body = readyz(tg)
    assert (status, body["status"]) == OUTAGE_READYZ[fail_mode], body
    assert body["store"]["connected"] is False, body
    assert words in body["store"]["problem"], body
    with http_client() as http:
        answers = [call_echo(http, tg.url, i) for i in range(1, 4)]
    assert answers == [OUTAGE_ANSWER[fail_mode]] * 3, answers
    log = Path(tg.proc.log_path).read_text(errors="replace")
    assert words in log, f"the log does not say {words!r}"
    assert PASSWORD not in log and PASSWORD not in str(body), "the Redis password is shown"
    assert tls_redis.command("KEYS", f"{prefix}:*") == [], "a refused sidecar wrote counters"
    assert tg.proc.popen.poll() is None, "toolgate exited on a refused TLS connection"


def test_tls_flags_need_rediss_and_both_halves_of_a_client_certificate(tmp_path):
    policy = tmp_path / "p.json"
    policy.write_text('{"version": "1", "default": "deny", "tools": {}}')
    base = [toolgate_binary(), "serve", "--policy", str(policy), "--upstream", "http://127.0.0.1:1/mcp",
            "--listen", f"127.0.0.1:{free_port()}"]
    cases = {
        "plain URL": (["--redis", "redis://127.0.0.1:6379", "--redis-ca-file", "/etc/hostname"], "rediss://"),
        "no Redis": (["--redis-tls-server-name", "redis.example"], "rediss://"),
        "cert without key": (["--redis", "rediss://127.0.0.1:6380", "--redis-cert-file", "/etc/hostname"],
                             "--redis-key-file"),
        "missing CA file": (["--redis", "rediss://127.0.0.1:6380", "--redis-ca-file", str(tmp_path / "nope.pem")],
                            "--redis-ca-file"),
        "mixed schemes": (["--redis", "rediss://127.0.0.1:7000", "--redis", "redis://127.0.0.1:7001"], "rediss://"),
    }
    for name, (args, words) in cases.items():
        result = subprocess.run(base + args, capture_output=True, text=True, timeout=30,
                                env={"PATH": "/usr/bin:/bin"})
        assert result.returncode == 64, (name, result)
        assert words in result.stderr, (name, result.stderr)
    env = {"PATH": "/usr/bin:/bin", "TOOLGATE_REDIS": "redis://127.0.0.1:6379", "TOOLGATE_REDIS_CA_FILE": "/etc/hostname"}
    result = subprocess.run(base, capture_output=True, text=True, timeout=30, env=env)
    assert result.returncode == 64 and "rediss://" in result.stderr, result


# --- Redis Cluster with tls-cluster yes ------------------------------------------------------------------------


def start_tls_cluster(procs, directory: Path) -> tuple[list[int], Certificates]:
    """Three TLS-only masters (`--port 0`, `tls-cluster yes`: the bus is TLS too, and CLUSTER SLOTS names the TLS
    ports), joined by `redis-cli --tls --cluster create`; returns their ports once every node says cluster_state:ok."""
    from redis_cluster import cluster_ports

    certs = make_certificates(directory)
    ports = cluster_ports(3)
    for port in ports:
        procs.start(f"redis-tls-cluster-{port}", [
            "redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
            "--tls-cert-file", certs.server_cert, "--tls-key-file", certs.server_key, "--tls-ca-cert-file", certs.ca,
            "--tls-auth-clients", "yes", "--tls-cluster", "yes", "--tls-replication", "yes",
            "--cluster-enabled", "yes", "--cluster-node-timeout", "1000",
            "--cluster-config-file", str(directory / f"nodes-{port}.conf"), "--save", "", "--appendonly", "no",
            "--dir", str(directory), "--maxmemory-policy", "noeviction", "--requirepass", PASSWORD,
            "--masterauth", PASSWORD,
        ])
    nodes = [TLSRedis(port, certs, None) for port in ports]

    def answers(node: TLSRedis) -> bool:
        try:
            return node.pipeline([("PING",)], timeout=0.5) == ["PONG"]
        except (OSError, ConnectionError):
            return False

    for node in nodes:
        assert wait_for(lambda: answers(node), 10), f"TLS cluster node {node.port} did not answer"
    cli = ["redis-cli", "--tls", "--cacert", certs.ca, "--cert", certs.client_cert, "--key", certs.client_key,
           "-a", PASSWORD, "--no-auth-warning"]
    create = subprocess.run(cli + ["--cluster", "create", *[f"127.0.0.1:{p}" for p in ports], "--cluster-replicas",
                                   "0", "--cluster-yes"], capture_output=True, text=True, timeout=60,
                            stdin=subprocess.DEVNULL)
    assert create.returncode == 0, create.stdout + create.stderr

    def healthy() -> bool:
        try:
            return all("cluster_state:ok" in node.command("CLUSTER", "INFO")
                       and "cluster_known_nodes:3" in node.command("CLUSTER", "INFO") for node in nodes)
        except (OSError, ConnectionError, RespError):
            return False

    assert wait_for(healthy, 20), "the TLS cluster did not become healthy"
    return ports, certs


def test_a_cluster_with_tls_cluster_yes_works_as_the_plain_one(raw_upstream, toolgate, procs, tmp_path):
    """Seeds and the nodes CLUSTER SLOTS names (bare IPs) all on mutual TLS: limits in two slots stay exact."""
    ports, certs = start_tls_cluster(procs, tmp_path / "tls-cluster")
    prefix = f"tlscl{free_port()}"
    global_max = 12
    policy = {"version": "1", "default": "deny", "tools": {"echo": {"limits": [
        {"counter": "fleet_calls", "window": "minute", "max": global_max, "scope": "global"},
        {"counter": "host_calls", "window": "minute", "max": 1000, "scope": "agent"}]}}}
    seeds = []
    for port in ports[:2]:
        seeds += ["--redis", f"rediss://:{PASSWORD}@127.0.0.1:{port}"]
    tls_args = ["--redis-ca-file", certs.ca, "--redis-cert-file", certs.client_cert, "--redis-key-file",
                certs.client_key, "--key-prefix", prefix, "--redis-timeout", "2000"]
    sidecars = [toolgate(raw_upstream.url, policy, args=seeds + tls_args + ["--agent-id", f"tls-agent-{i}"])
                for i in range(3)]
    for tg in sidecars:
        assert wait_for(lambda: readyz(tg)[1].get("status") == "ready", 15), readyz(tg)
        assert (readyz(tg)[1]["store"].get("cluster") or {}).get("nodes") == 3, readyz(tg)
    raw_upstream.reset()
    with http_client() as http:
        outcomes = [call_echo(http, sidecars[i % 3].url, i) for i in range(global_max + 6)]
    assert outcomes == ["allowed"] * global_max + ["rate_limited"] * 6, outcomes
    assert len([m for m in raw_upstream.seen_messages() if m.get("method") == "tools/call"]) == global_max
    # The counters (one global, one per agent; refund markers aside) are spread over the masters, read back over
    # TLS on whichever node holds each: the nodes the slot map named were reached over TLS too.
    counters = {port: [k for k in TLSRedis(port, certs, None).command("KEYS", f"{prefix}:*") if ":refund:" not in k]
                for port in ports}
    assert sum(len(keys) for keys in counters.values()) == 4, counters
    assert sum(1 for keys in counters.values() if keys) >= 2, counters
