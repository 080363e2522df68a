"""Redis for the end-to-end tests, below the fixtures: a RESP client of a few lines (so a test can send any command,
replies and errors as they are), and a Redis Cluster of six redis-server nodes on loopback. The fixtures that use
them (`redis_server`, `redis_cluster`, `fresh_redis_cluster`) are in conftest.py."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from processes import STOP_TIMEOUT, Proc, ProcessGroup, _kill_group, _tail

# Redis Cluster: six redis-server nodes (three masters, three replicas) on loopback, for test_cluster.py.
#
# `redis_cluster` is module-scoped: tests that leave the cluster as they found it share it (each keeps to its own
# `--key-prefix`). `fresh_redis_cluster` is function-scoped, for tests that kill nodes or move slots.

CLUSTER_SLOTS = 16384
CLUSTER_NODE_COUNT = 6
CLUSTER_BUS_OFFSET = 10000  # Redis listens for the cluster bus on port + 10000
CLUSTER_START_TIMEOUT = 10.0  # each redis-server answering PING
CLUSTER_CREATE_TIMEOUT = 60.0  # `redis-cli --cluster create`
CLUSTER_HEALTHY_TIMEOUT = 30.0  # every node agreeing that the cluster is ok, every replica in sync


class RespError(Exception):
    """An error reply from Redis (`ERR ...`, `MOVED 1234 127.0.0.1:30001`, `CLUSTERDOWN ...`)."""


def _resp_encode(args: tuple[Any, ...] | list[Any]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _resp_read(f: Any) -> Any:
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError(f"connection closed in the middle of a reply (read {line!r})")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        return RespError(rest.decode(errors="replace"))
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        if len(data) != n + 2:
            raise ConnectionError("connection closed in the middle of a bulk reply")
        return data[:-2].decode(errors="replace")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_resp_read(f) for _ in range(n)]
    raise ConnectionError(f"not a RESP2 reply: {line!r}")


def redis_pipeline(port: int, commands: list[tuple[Any, ...]], timeout: float = 5.0) -> list[Any]:
    """Send `commands` to 127.0.0.1:`port` on one connection; the replies in order, error replies as RespError
    values (not raised). Bulk strings come back as str."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"".join(_resp_encode(c) for c in commands))
        with s.makefile("rb") as f:
            return [_resp_read(f) for _ in commands]


def redis_command(port: int, *args: Any, timeout: float = 5.0) -> Any:
    """One command; an error reply is raised as RespError."""
    reply = redis_pipeline(port, [args], timeout)[0]
    if isinstance(reply, RespError):
        raise reply
    return reply


@dataclass(frozen=True)
class ClusterNode:
    """One line of CLUSTER NODES."""

    id: str
    port: int
    flags: frozenset[str]
    master_id: str | None
    link_state: str
    slots: tuple[tuple[int, int], ...]  # owned ranges, inclusive; importing/migrating markers left out

    @property
    def is_master(self) -> bool:
        return "master" in self.flags

    @property
    def failed(self) -> bool:
        return "fail" in self.flags or "fail?" in self.flags or "noaddr" in self.flags

    @property
    def slot_count(self) -> int:
        return sum(hi - lo + 1 for lo, hi in self.slots)

    def owns(self, slot: int) -> bool:
        return any(lo <= slot <= hi for lo, hi in self.slots)


def parse_cluster_nodes(text: str) -> list[ClusterNode]:
    """`<id> <ip:port@cport[,hostname]> <flags> <master|-> <ping> <pong> <epoch> <link> <slot>...`"""
    nodes = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 8:
            continue
        address = parts[1].split("@", 1)[0]
        port = int(address.rsplit(":", 1)[1] or 0)
        slots = []
        for item in parts[8:]:
            if item.startswith("["):  # [slot->-id] migrating, [slot-<-id] importing
                continue
            lo, _, hi = item.partition("-")
            slots.append((int(lo), int(hi or lo)))
        nodes.append(ClusterNode(parts[0], port, frozenset(parts[2].split(",")),
                                 None if parts[3] == "-" else parts[3], parts[7], tuple(slots)))
    return nodes


def _info_fields(text: str) -> dict[str, str]:
    fields = {}
    for line in text.splitlines():
        name, sep, value = line.strip().partition(":")
        if sep and not name.startswith("#"):
            fields[name] = value
    return fields


@dataclass
class RedisCluster:
    """A running cluster: its ports (P; the bus is P + 10000), processes, logs, and helpers to inspect and break it."""

    ports: list[int]
    procs: dict[int, Proc]
    group: ProcessGroup
    data_dir: Path
    logs: list[tuple[str, Path]]
    create_seconds: float = 0.0

    # --- talking to nodes

    def alive(self) -> list[int]:
        return [p for p in self.ports if self.procs[p].popen.poll() is None]

    def command(self, port: int, *args: Any, timeout: float = 5.0) -> Any:
        return redis_command(port, *args, timeout=timeout)

    def any_command(self, *args: Any) -> Any:
        """A command on the first live node that answers (an error reply is an answer, and is raised)."""
        problems = []
        for port in self.alive():
            try:
                return redis_command(port, *args, timeout=3.0)
            except (OSError, ConnectionError) as e:
                problems.append(f"{port}: {e!r}")
        raise ConnectionError(f"no live cluster node answered {args!r}: {problems or 'no node is alive'}")

    def key_command(self, key: str, *args: Any) -> Any:
        """A command about `key` on the master of its slot, following MOVED and ASK like a cluster client."""
        port = self.master_of(self.keyslot(key))
        asking = False
        for _ in range(5):
            commands: list[tuple[Any, ...]] = [("ASKING",), args] if asking else [args]
            reply = redis_pipeline(port, commands)[-1]
            if isinstance(reply, RespError):
                kind, *rest = str(reply).split()
                if kind in ("MOVED", "ASK") and len(rest) == 2:
                    port, asking = int(rest[1].rsplit(":", 1)[1]), kind == "ASK"
                    continue
                raise reply
            return reply
        raise AssertionError(f"{args!r} for {key!r}: still redirected after 5 hops")

    # --- the cluster's shape (as a live node sees it)

    def nodes(self, port: int | None = None) -> list[ClusterNode]:
        text = self.command(port, "CLUSTER", "NODES") if port is not None else self.any_command("CLUSTER", "NODES")
        return parse_cluster_nodes(text)

    def keyslot(self, key: str) -> int:
        return int(self.any_command("CLUSTER", "KEYSLOT", key))

    def master_of(self, slot: int, port: int | None = None) -> int:
        """The port of the live master that owns `slot` (as node `port`, or the first live node, sees it)."""
        nodes = self.nodes(port)
        owners = [n.port for n in nodes if n.is_master and not n.failed and n.owns(slot)]
        if len(owners) != 1:
            raise AssertionError(f"slot {slot} has owners {owners}: CLUSTER NODES is\n" + "\n".join(map(str, nodes)))
        return owners[0]

    def node_ids(self) -> dict[int, str]:
        """Port → node id, for every node the cluster knows (dead ones too)."""
        return {n.port: n.id for n in self.nodes()}

    def masters(self) -> list[int]:
        """Ports of the live masters that own slots."""
        return sorted(n.port for n in self.nodes() if n.is_master and not n.failed and n.slots)

    def replicas_of(self, port: int) -> list[int]:
        nodes = self.nodes()
        master_id = next(n.id for n in nodes if n.port == port)
        return sorted(n.port for n in nodes if n.master_id == master_id and not n.is_master)

    def slot_count(self, port: int) -> int:
        return next(n.slot_count for n in self.nodes() if n.port == port)

    def redis_args(self, seeds: int = 3) -> list[str]:
        """`--redis` flags naming the first `seeds` nodes as seeds."""
        out: list[str] = []
        for port in self.ports[:seeds]:
            out += ["--redis", f"redis://127.0.0.1:{port}"]
        return out

    # --- breaking it

    def kill(self, port: int) -> None:
        """SIGKILL one node (no shutdown, no goodbye to the cluster bus)."""
        popen = self.procs[port].popen
        _kill_group(popen.pid)
        popen.wait(timeout=STOP_TIMEOUT)

    def stop_all(self) -> None:
        for port in self.ports:
            proc = self.procs.get(port)
            if proc is not None:
                _kill_group(proc.popen.pid)
                try:
                    proc.popen.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    pass

    # --- waiting

    def problems(self, masters: int = 3, replicas: int = 3) -> list[str]:
        """Why the cluster is not (yet) healthy, as every live node sees it; [] when it is."""
        out = []
        alive = self.alive()
        for port in self.ports:
            if port not in alive:
                out.append(f"{port}: {self.procs[port].describe_exit()}")
        for port in alive:
            try:
                info = _info_fields(self.command(port, "CLUSTER", "INFO", timeout=2.0))
                nodes = self.nodes(port)
            except (OSError, ConnectionError, RespError) as e:
                out.append(f"{port}: {e!r}")
                continue
            if info.get("cluster_state") != "ok":
                out.append(f"{port}: cluster_state:{info.get('cluster_state')}")
            for name in ("cluster_slots_assigned", "cluster_slots_ok"):
                if info.get(name) != str(CLUSTER_SLOTS):
                    out.append(f"{port}: {name}:{info.get(name)}")
            live_masters = [n for n in nodes if n.is_master and not n.failed and n.slots]
            covered = sum(n.slot_count for n in live_masters)
            if len(live_masters) != masters or covered != CLUSTER_SLOTS:
                out.append(f"{port}: sees {len(live_masters)} live masters covering {covered} slots")
            master_ids = {n.id for n in live_masters}
            live_replicas = [n for n in nodes if not n.is_master and not n.failed and n.master_id in master_ids]
            if len(live_replicas) != replicas:
                out.append(f"{port}: sees {len(live_replicas)} live replicas of live masters")
            me = next((n for n in nodes if "myself" in n.flags), None)
            if me is not None and not me.is_master:
                link = _info_fields(self.command(port, "INFO", "replication", timeout=2.0)).get("master_link_status")
                if link != "up":
                    out.append(f"{port}: replica with master_link_status:{link}")
        return out

    def wait_healthy(self, timeout: float = CLUSTER_HEALTHY_TIMEOUT, masters: int = 3, replicas: int = 3) -> float:
        """Wait until every live node reports cluster_state:ok, all slots served by `masters` live masters, and
        `replicas` replicas in sync; the seconds it took. Fails the test with the nodes' logs otherwise."""
        start = time.monotonic()
        problems = ["not checked yet"]
        while time.monotonic() - start < timeout:
            problems = self.problems(masters, replicas)
            if not problems:
                return time.monotonic() - start
            time.sleep(0.1)
        pytest.fail(f"the Redis Cluster on {self.ports} was not healthy after {timeout:.0f} s:\n  "
                    + "\n  ".join(problems[:30]) + "\n" + self.log_tails(), pytrace=False)

    def log_tails(self, lines: int = 30) -> str:
        return "\n".join(f"--- {name} ({path}) ---\n{_tail(path, lines)}" for name, path in self.logs)


def _ephemeral_port_range() -> tuple[int, int]:
    try:
        lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_ports(count: int = CLUSTER_NODE_COUNT) -> list[int]:
    """`count` ports P with P and P + 10000 both free, all distinct. Chosen at random, outside the kernel's ephemeral
    range when possible (so no outgoing connection grabs a bus port between this check and redis-server's bind)."""
    eph_lo, eph_hi = _ephemeral_port_range()
    preferred = [p for p in range(20000, 55536)
                 if not (eph_lo <= p <= eph_hi) and not (eph_lo <= p + CLUSTER_BUS_OFFSET <= eph_hi)]
    pool = preferred if len(preferred) >= 200 else list(range(20000, 55536))
    taken: set[int] = set()
    chosen: list[int] = []
    for _ in range(5000):
        port = random.choice(pool)
        pair = {port, port + CLUSTER_BUS_OFFSET}
        if pair & taken or not (_bindable(port) and _bindable(port + CLUSTER_BUS_OFFSET)):
            continue
        chosen.append(port)
        taken |= pair
        if len(chosen) == count:
            return chosen
    pytest.fail(f"could not find {count} free port pairs (P, P+{CLUSTER_BUS_OFFSET}) on 127.0.0.1", pytrace=False)


def _wait_pong(proc: Proc, port: int, timeout: float, password: str | None = None) -> str | None:
    """None once `port` answers PING (after AUTH with `password`); else why not (the process exited, or the time
    ran out)."""
    deadline = time.monotonic() + timeout
    commands: list[tuple[Any, ...]] = [("AUTH", password), ("PING",)] if password else [("PING",)]
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            return f"redis-server on {port} {proc.describe_exit()}"
        try:
            if redis_pipeline(port, commands, timeout=0.5)[-1] == "PONG":
                return None
        except (OSError, ConnectionError):
            pass
        time.sleep(0.05)
    return f"redis-server on {port} did not answer PING within {timeout:.0f} s"


def start_redis_cluster(log_dir: Path) -> RedisCluster:
    """Start six nodes, join them with `redis-cli --cluster create --cluster-replicas 1`, wait until healthy.
    On any failure the nodes are stopped and the test fails with their logs."""
    for tool in ("redis-server", "redis-cli"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not on PATH: the Redis Cluster tests need it")

    started = time.monotonic()
    logs: list[tuple[str, Path]] = []
    group = ProcessGroup(log_dir=log_dir, logs=logs)
    data_dir = Path(tempfile.mkdtemp(prefix="toolgate-redis-cluster-"))
    cluster: RedisCluster | None = None
    try:
        for attempt in range(3):
            ports = cluster_ports()
            procs = {}
            for port in ports:
                procs[port] = group.start(f"redis-cluster-{port}", [
                    "redis-server", "--port", str(port), "--bind", "127.0.0.1",
                    "--cluster-enabled", "yes", "--cluster-node-timeout", "1000",
                    "--cluster-config-file", str(data_dir / f"nodes-{port}.conf"),
                    "--save", "", "--appendonly", "no", "--dir", str(data_dir),
                    "--maxmemory-policy", "noeviction",
                    # Replicas sync at once instead of after the default 5 s wait for more replicas to join.
                    "--repl-diskless-sync-delay", "0",
                ])
            cluster = RedisCluster(ports=ports, procs=procs, group=group, data_dir=data_dir, logs=logs)
            failures = [f for f in (_wait_pong(procs[p], p, CLUSTER_START_TIMEOUT) for p in ports) if f]
            if not failures:
                break
            in_use = any("Address already in use" in procs[p].log() for p in ports)
            cluster.stop_all()
            if not in_use or attempt == 2:
                pytest.fail("Redis Cluster nodes did not start:\n  " + "\n  ".join(failures) + "\n"
                            + cluster.log_tails(), pytrace=False)
        assert cluster is not None
        create_log = log_dir / "redis-cli-cluster-create.log"
        logs.append(("redis-cli --cluster create", create_log))
        argv = ["redis-cli", "--cluster", "create", *[f"127.0.0.1:{p}" for p in cluster.ports],
                "--cluster-replicas", "1", "--cluster-yes"]
        with open(create_log, "wb") as log:
            try:
                result = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                        timeout=CLUSTER_CREATE_TIMEOUT)
                failure = None if result.returncode == 0 else f"exited with code {result.returncode}"
            except subprocess.TimeoutExpired:
                failure = f"did not finish within {CLUSTER_CREATE_TIMEOUT:.0f} s"
        if failure:
            pytest.fail(f"{' '.join(argv)} {failure}\n{cluster.log_tails()}", pytrace=False)
        cluster.wait_healthy()
        cluster.create_seconds = time.monotonic() - started
        return cluster
    except BaseException:
        if cluster is not None:
            cluster.stop_all()
        group.stop_all()
        shutil.rmtree(data_dir, ignore_errors=True)
        raise


def _cluster_fixture(log_dir: Path) -> Iterator[RedisCluster]:
    cluster = start_redis_cluster(log_dir)
    try:
        yield cluster
    finally:
        cluster.stop_all()
        cluster.group.stop_all()
        shutil.rmtree(cluster.data_dir, ignore_errors=True)
