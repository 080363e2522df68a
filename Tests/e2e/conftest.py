"""Fixtures for the end-to-end tests: free ports, processes with cleanup, upstream servers, toolgate, logs.

toolgate is the real binary named by `TOOLGATE_BIN`. A test starts it with the `toolgate` factory fixture,
inside the test body, so a missing binary is a plain test failure that says so. Every process writes its
stdout and stderr to a log file; when a test fails, the logs of the processes it used are printed with it.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest

from helpers import SEED_POLICY, DelayProxy, free_port

E2E_DIR = Path(__file__).resolve().parent
PYTHON = sys.executable
READY_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
LOG_TAIL_LINES = 300

# (name, log path) of processes that live for the whole session: shown with any failing test.
_session_logs: list[tuple[str, Path]] = []
_LOGS_KEY = pytest.StashKey[list[tuple[str, Path]]]()
# Set when a toolgate start timed out without exiting: later starts fail at once instead of waiting again.
_toolgate_never_ready: str | None = None


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as e:
        return f"<cannot read {path}: {e}>"
    parts = text.splitlines()
    if len(parts) > lines:
        return f"... ({len(parts) - lines} earlier lines in {path})\n" + "\n".join(parts[-lines:])
    return text or "<empty>"


@dataclass
class Proc:
    name: str
    argv: list[str]
    popen: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return _tail(self.log_path)

    def describe_exit(self) -> str:
        code = self.popen.poll()
        return "still running" if code is None else f"exited with code {code}"


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@dataclass
class ProcessGroup:
    """Processes started by one test (or the session); all stopped on teardown, whatever happened."""

    log_dir: Path
    logs: list[tuple[str, Path]]
    procs: list[Proc] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None,
              *, drop_env_prefix: str | None = None) -> Proc:
        """Start a process with this environment plus `env`, less variables starting with `drop_env_prefix`."""
        log_path = self.log_dir / f"{name}.log"
        n = 1
        while log_path.exists():
            n += 1
            log_path = self.log_dir / f"{name}-{n}.log"
        full_env = {k: v for k, v in os.environ.items() if not (drop_env_prefix and k.startswith(drop_env_prefix))}
        full_env.update(env or {})
        with open(log_path, "wb") as log:
            # Its own process group: a wrapper such as faketime forks the real program, and stopping the
            # group stops both (signalling only the wrapper left the child running after the test).
            popen = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=full_env,
                cwd=str(cwd or E2E_DIR), start_new_session=True,
            )
        proc = Proc(name, argv, popen, log_path)
        self.procs.append(proc)
        self.logs.append((name, log_path))
        return proc

    def stop(self, proc: Proc) -> int | None:
        """SIGTERM, wait, then SIGKILL: returns the exit code (None if it had to be killed)."""
        p = proc.popen
        if p.poll() is not None:
            return p.returncode
        try:
            os.killpg(p.pid, signal.SIGTERM)
            return p.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            _kill_group(p.pid)
            p.wait(timeout=STOP_TIMEOUT)
            return None
        except ProcessLookupError:
            return p.poll()
        finally:
            # Whatever the leader did, nothing it started outlives the test.
            _kill_group(p.pid)

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            self.stop(proc)


class NotReady(Exception):
    """A process did not become ready in time (it did not exit either)."""


def wait_until_ready(proc: Proc, probe: Any, what: str, timeout: float = READY_TIMEOUT) -> None:
    """Poll `probe()` (True when ready) until it succeeds, the process exits, or `timeout` passes."""
    deadline = time.monotonic() + timeout
    last_error = ""
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            pytest.fail(
                f"{proc.name} {proc.describe_exit()} before it was ready ({what}).\n"
                f"command: {' '.join(proc.argv)}\n--- {proc.name} log ---\n{proc.log()}",
                pytrace=False,
            )
        try:
            if probe():
                return
        except Exception as e:  # noqa: BLE001 - any failure just means "not yet"
            last_error = f"{type(e).__name__}: {e}"
        time.sleep(0.05)
    message = (
        f"{proc.name} was not ready after {timeout:.0f} s ({what}; last error: {last_error or 'none'}).\n"
        f"command: {' '.join(proc.argv)}\n--- {proc.name} log ---\n{proc.log()}"
    )
    raise NotReady(message)


def _wait_or_fail(proc: Proc, probe: Any, what: str) -> None:
    try:
        wait_until_ready(proc, probe, what)
    except NotReady as e:
        pytest.fail(str(e), pytrace=False)


def tcp_accepts(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1.0):
        return True


def http_200(url: str) -> bool:
    return httpx2.get(url, timeout=2.0).status_code == 200


# ---------------------------------------------------------------------------------------------------------
# Log capture: print the logs of a failing test's processes with its report.


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    for name, path in item.stash.get(_LOGS_KEY, []):
        report.sections.append((f"log of {name} ({path})", _tail(path)))
    for name, path in _session_logs:
        if path.exists() and path.stat().st_size > 0:
            report.sections.append((f"log of shared {name} ({path})", _tail(path, 80)))
    # A Redis Cluster the test used (module-scoped or fresh): its nodes' logs and the `--cluster create` output.
    for value in getattr(item, "funcargs", {}).values():
        if isinstance(value, RedisCluster):
            for name, path in value.logs:
                if path.exists() and path.stat().st_size > 0:
                    report.sections.append((f"log of cluster {name} ({path})", _tail(path, 60)))


@pytest.fixture
def procs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ProcessGroup]:
    """The processes of one test, stopped at its end."""
    logs: list[tuple[str, Path]] = []
    request.node.stash[_LOGS_KEY] = logs
    group = ProcessGroup(log_dir=tmp_path, logs=logs)
    try:
        yield group
    finally:
        group.stop_all()


@pytest.fixture(scope="session")
def session_procs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessGroup]:
    group = ProcessGroup(log_dir=tmp_path_factory.mktemp("shared-logs"), logs=_session_logs)
    try:
        yield group
    finally:
        group.stop_all()


# ---------------------------------------------------------------------------------------------------------
# Upstreams


@dataclass
class McpUpstream:
    """The SDK's MCPServer (upstream_mcp_server.py) in one response mode."""

    mode: str  # "sse" or "json"
    port: int
    proc: Proc

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"


def _start_mcp_upstream(group: ProcessGroup, mode: str) -> McpUpstream:
    port = free_port()
    argv = [PYTHON, str(E2E_DIR / "upstream_mcp_server.py"), "--port", str(port)]
    if mode == "json":
        argv.append("--json-response")
    proc = group.start(f"upstream-mcp-{mode}", argv)
    _wait_or_fail(proc, lambda: tcp_accepts(port), f"listening on 127.0.0.1:{port}")
    return McpUpstream(mode=mode, port=port, proc=proc)


@pytest.fixture(scope="session")
def mcp_upstream_sse(session_procs: ProcessGroup) -> McpUpstream:
    return _start_mcp_upstream(session_procs, "sse")


@pytest.fixture(scope="session")
def mcp_upstream_json(session_procs: ProcessGroup) -> McpUpstream:
    return _start_mcp_upstream(session_procs, "json")


@pytest.fixture(params=["sse", "json"])
def mcp_upstream(request: pytest.FixtureRequest) -> McpUpstream:
    """The SDK upstream, once in SSE response mode and once in JSON response mode."""
    return request.getfixturevalue(f"mcp_upstream_{request.param}")


@dataclass
class RawUpstream:
    """raw_upstream.py: our own JSON-RPC server that records what reaches it."""

    port: int
    control_port: int
    proc: Proc

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def seen(self) -> list[dict[str, Any]]:
        """Every request that reached /mcp: {method, path, headers: [[name, value]...], body}."""
        response = httpx2.get(f"http://127.0.0.1:{self.control_port}/_seen", timeout=5.0)
        response.raise_for_status()
        return response.json()

    def seen_posts(self) -> list[dict[str, Any]]:
        return [r for r in self.seen() if r["method"] == "POST"]

    def seen_messages(self) -> list[dict[str, Any]]:
        """Every JSON-RPC message POSTed, batches flattened."""
        out: list[dict[str, Any]] = []
        for record in self.seen_posts():
            try:
                value = json.loads(record["body"])
            except ValueError:
                continue
            out.extend(value if isinstance(value, list) else [value])
        return out

    def fail_all(self, code: int, message: str) -> None:
        """Answer every request with this JSON-RPC error until the next reset."""
        httpx2.post(f"http://127.0.0.1:{self.control_port}/_fail", json={"code": code, "message": message},
                    timeout=5.0).raise_for_status()

    def reset(self) -> None:
        httpx2.post(f"http://127.0.0.1:{self.control_port}/_reset", timeout=5.0).raise_for_status()

    def set_mode(self, on: str, mode: str, times: int | None = None, **params: Any) -> None:
        """Make the next `times` requests of kind `on` (a JSON-RPC method, or "GET") misbehave as `mode`
        (raw_upstream.py lists the modes and their parameters); `times=None`: until the next reset."""
        body: dict[str, Any] = {"on": on, "mode": mode, **params}
        if times is not None:
            body["times"] = times
        httpx2.post(f"http://127.0.0.1:{self.control_port}/_mode", json=body, timeout=5.0).raise_for_status()

    def events(self) -> list[dict[str, Any]]:
        """What the misbehaving answers reported (such as when an endless stream's writes failed)."""
        response = httpx2.get(f"http://127.0.0.1:{self.control_port}/_events", timeout=5.0)
        response.raise_for_status()
        return response.json()


@pytest.fixture(scope="session")
def _raw_upstream_process(session_procs: ProcessGroup) -> RawUpstream:
    port, control_port = free_port(), free_port()
    proc = session_procs.start(
        "raw-upstream",
        [PYTHON, str(E2E_DIR / "raw_upstream.py"), "--port", str(port), "--control-port", str(control_port)],
    )
    _wait_or_fail(proc, lambda: http_200(f"http://127.0.0.1:{control_port}/_seen"), "GET /_seen answers 200")
    _wait_or_fail(proc, lambda: tcp_accepts(port), f"listening on 127.0.0.1:{port}")
    return RawUpstream(port=port, control_port=control_port, proc=proc)


@pytest.fixture
def raw_upstream(_raw_upstream_process: RawUpstream) -> RawUpstream:
    """The raw upstream with an empty record."""
    _raw_upstream_process.reset()
    return _raw_upstream_process


# ---------------------------------------------------------------------------------------------------------
# Redis


@pytest.fixture(scope="session")
def redis_port(session_procs: ProcessGroup) -> int:
    """A Redis for tests that run on both stores: TOOLGATE_TEST_REDIS_PORT if set (scripts/test.sh starts one),
    else a redis-server of our own for the session. Each test keeps to its own `--key-prefix`."""
    env_port = os.environ.get("TOOLGATE_TEST_REDIS_PORT")
    if env_port:
        return int(env_port)
    if shutil.which("redis-server") is None:
        pytest.skip("no TOOLGATE_TEST_REDIS_PORT and no redis-server on PATH")
    port = free_port()
    proc = session_procs.start("redis-e2e", ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                                             "--save", "", "--appendonly", "no"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return port
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"redis-server did not start on {port}:\n{proc.log()}", pytrace=False)


# ---------------------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------------------
# A redis-server of one test's own, for tests that kill, restart, pause, reconfigure or fill it.


@dataclass
class RedisServer:
    """A private redis-server on a free loopback port, without persistence, so a restart on the same port comes back
    empty. `args` adds to its command line (`--maxmemory 2mb`, say); with `password` it runs with `--requirepass`
    and `command`/`pipeline` authenticate first."""

    group: ProcessGroup
    port: int
    directory: Path
    proc: Proc | None = None
    eviction: str = "noeviction"
    args: list[str] = field(default_factory=list)
    password: str | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start it (again, on the same port) and wait until it answers PING."""
        self.proc = self.group.start("redis", [
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(self.directory), "--maxmemory-policy", self.eviction,
            *(["--requirepass", self.password] if self.password else []), *self.args,
        ])
        if (problem := _wait_pong(self.proc, self.port, 10.0, self.password)) is not None:
            pytest.fail(f"{problem}:\n{self.proc.log()}", pytrace=False)

    def pipeline(self, commands: list[tuple[Any, ...]], timeout: float = 5.0) -> list[Any]:
        """Like `redis_pipeline`, on one authenticated connection."""
        if self.password is None:
            return redis_pipeline(self.port, commands, timeout)
        auth, *replies = redis_pipeline(self.port, [("AUTH", self.password), *commands], timeout)
        if isinstance(auth, RespError):
            raise auth
        return replies

    def command(self, *args: Any, timeout: float = 5.0) -> Any:
        """One command; an error reply is raised as RespError."""
        reply = self.pipeline([args], timeout)[0]
        if isinstance(reply, RespError):
            raise reply
        return reply

    def kill(self) -> None:
        """SIGKILL: no shutdown, and (no persistence) nothing kept for a restart."""
        assert self.proc is not None
        self.proc.popen.kill()
        self.proc.popen.wait(timeout=STOP_TIMEOUT)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.popen.send_signal(sig)


@pytest.fixture
def redis_server(procs: ProcessGroup, tmp_path: Path) -> RedisServer:
    """A running redis-server of this test's own (`noeviction`, no persistence)."""
    server = RedisServer(procs, free_port(), tmp_path)
    server.start()
    return server


@pytest.fixture
def delay_proxy() -> Iterator[Any]:
    """Factory: `delay_proxy(port)` → a `DelayProxy` in front of 127.0.0.1:port (a slow or cut network), closed at
    the end of the test."""
    proxies: list[DelayProxy] = []

    def make(port: int) -> DelayProxy:
        proxies.append(DelayProxy(port))
        return proxies[-1]

    try:
        yield make
    finally:
        for proxy in proxies:
            proxy.close()


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


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """A healthy 3-master, 3-replica cluster shared by one module's tests: leave it as you found it (no kills, no
    resharding) and keep to your own `--key-prefix`."""
    yield from _cluster_fixture(tmp_path_factory.mktemp("redis-cluster"))


@pytest.fixture
def fresh_redis_cluster(tmp_path: Path) -> Iterator[RedisCluster]:
    """A cluster of this test's own, to kill nodes in or reshard."""
    log_dir = tmp_path / "redis-cluster"
    log_dir.mkdir()
    yield from _cluster_fixture(log_dir)


# ---------------------------------------------------------------------------------------------------------
# toolgate


@dataclass
class Toolgate:
    port: int
    proc: Proc
    policy_path: Path
    group: ProcessGroup

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base}/mcp"

    def log(self) -> str:
        return self.proc.log()

    def stop(self) -> int | None:
        return self.group.stop(self.proc)


def toolgate_binary() -> str:
    """`TOOLGATE_BIN`, checked: a missing binary fails the test that needs it, with a clear message."""
    binary = os.environ.get("TOOLGATE_BIN", "")
    if not binary:
        pytest.fail("TOOLGATE_BIN is not set: point it at the built toolgate binary (an absolute path)", pytrace=False)
    if not os.path.isabs(binary):
        pytest.fail(f"TOOLGATE_BIN must be an absolute path, got {binary!r}", pytrace=False)
    if not os.path.isfile(binary):
        pytest.fail(f"toolgate binary not found: TOOLGATE_BIN={binary} does not exist", pytrace=False)
    if not os.access(binary, os.X_OK):
        pytest.fail(f"toolgate binary not executable: TOOLGATE_BIN={binary}", pytrace=False)
    return binary


class ToolgateFactory:
    def __init__(self, group: ProcessGroup, tmp_path: Path) -> None:
        self.group = group
        self.tmp_path = tmp_path
        self.count = 0

    def __call__(
        self,
        upstream: str | None,
        policy: dict[str, Any] | str = SEED_POLICY,
        *,
        grants: dict[str, Any] | None = None,
        args: list[str] | None = None,
        env: dict[str, str] | None = None,
        listen_host: str = "127.0.0.1",
        wait: bool = True,
        wrapper: list[str] | None = None,
    ) -> Toolgate:
        """Start `toolgate serve` on a free port in front of `upstream` and wait for /healthz.

        It listens on 127.0.0.1 unless `listen_host` says otherwise; the tests reach it over 127.0.0.1 always.
        `wrapper` runs it under another command, such as `faketime -f -600`. `upstream` None gives no `--upstream`
        (the test names `--upstream-command` in `args`).
        """
        global _toolgate_never_ready
        binary = toolgate_binary()
        if _toolgate_never_ready is not None:
            pytest.fail("not starting toolgate again: an earlier start never became ready (it neither served "
                        f"/healthz nor exited), so this run stays short. That start:\n{_toolgate_never_ready}",
                        pytrace=False)
        self.count += 1
        policy_path = self.tmp_path / f"policy-{self.count}.json"
        policy_path.write_text(policy if isinstance(policy, str) else json.dumps(policy, indent=2))
        port = free_port()
        argv = (wrapper or []) + [
            binary, "serve",
            "--policy", str(policy_path),
            *(["--upstream", upstream] if upstream is not None else []),
            "--listen", f"{listen_host}:{port}",
            "--agent-id", "e2e-agent",
            "--log-level", "debug",
        ]
        if grants is not None:
            grants_path = self.tmp_path / f"grants-{self.count}.json"
            grants_path.write_text(json.dumps(grants, indent=2))
            argv += ["--grants", str(grants_path)]
        argv += args or []
        # Every flag also reads from TOOLGATE_<FLAG>: only the variables a test sets may reach toolgate.
        proc = self.group.start("toolgate", argv, env=env, drop_env_prefix="TOOLGATE_")
        tg = Toolgate(port=port, proc=proc, policy_path=policy_path, group=self.group)
        if wait:
            try:
                wait_until_ready(proc, lambda: http_200(f"{tg.base}/healthz"), f"GET {tg.base}/healthz answers 200")
            except NotReady as e:
                _toolgate_never_ready = str(e)
                pytest.fail(str(e), pytrace=False)
        return tg


@pytest.fixture
def toolgate(procs: ProcessGroup, tmp_path: Path) -> ToolgateFactory:
    """Factory: `toolgate(upstream_url, policy=..., grants=..., args=[...], env={...})` → a running toolgate."""
    return ToolgateFactory(procs, tmp_path)
