"""Fixtures for the end-to-end tests: free ports, processes with cleanup, upstream servers, toolgate, logs.

toolgate is the real binary named by `TOOLGATE_BIN`. A test starts it with the `toolgate` factory fixture,
inside the test body, so a missing binary is a plain test failure that says so. Every process writes its
stdout and stderr to a log file; when a test fails, the logs of the processes it used are printed with it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest

from helpers import SEED_POLICY, DelayProxy, free_port
from processes import (  # noqa: F401 (re-exported: tests import these from conftest)
    E2E_DIR,
    STOP_TIMEOUT,
    NotReady,
    Proc,
    ProcessGroup,
    _tail,
    _wait_or_fail,
    http_200,
    tcp_accepts,
    wait_until_ready,
)
from redis_cluster import (  # noqa: F401 (re-exported: tests import these from conftest)
    CLUSTER_SLOTS,
    RedisCluster,
    RespError,
    _cluster_fixture,
    _wait_pong,
    redis_command,
    redis_pipeline,
)

PYTHON = sys.executable

# (name, log path) of processes that live for the whole session: shown with any failing test.
_session_logs: list[tuple[str, Path]] = []
_LOGS_KEY = pytest.StashKey[list[tuple[str, Path]]]()
# Set when a toolgate start timed out without exiting: later starts fail at once instead of waiting again.
_toolgate_never_ready: str | None = None


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


def _start_mcp_upstream(group: ProcessGroup, mode: str, tag: str | None = None, port: int | None = None,
                        tools_page_size: int | None = None) -> McpUpstream:
    port = port or free_port()
    argv = [PYTHON, str(E2E_DIR / "upstream_mcp_server.py"), "--port", str(port)]
    if mode == "json":
        argv.append("--json-response")
    if tag:
        argv += ["--tag", tag]
    if tools_page_size:
        argv += ["--tools-page-size", str(tools_page_size)]
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


@pytest.fixture(params=["memory", "redis"])
def store_args(request: pytest.FixtureRequest) -> list[str]:
    """The test once on the embedded store and once on the session's Redis, under a key prefix of its own."""
    if request.param == "memory":
        return []
    port = request.getfixturevalue("redis_port")
    module = request.module.__name__.removeprefix("test_").replace("_", "-")
    return ["--redis", f"redis://127.0.0.1:{port}", "--key-prefix", f"tg-e2e-{module}-{uuid.uuid4().hex[:12]}"]


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
    route: str = "/mcp"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base}{self.route}"

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
        # E2E_NAMED_ROUTE=1: the same upstream as the one server of a servers file, every request through
        # `/mcp/NAME` (DESIGN.md section 10 says that route is exactly what `/mcp` is for a single upstream). Only
        # where the test gives toolgate nothing else per upstream.
        named = (os.environ.get("E2E_NAMED_ROUTE") == "1" and upstream is not None
                 and not any(a.startswith("--upstream") for a in (args or []))
                 and not any(k.startswith("TOOLGATE_UPSTREAM") for k in (env or {})))
        upstream_args = ["--upstream", upstream] if upstream is not None else []
        route = "/mcp"
        if named:
            servers_path = self.tmp_path / f"servers-{self.count}.json"
            servers_path.write_text(json.dumps({"mcpServers": {"only": {"url": upstream}}}))
            upstream_args, route = ["--servers", str(servers_path)], "/mcp/only"
        argv = (wrapper or []) + [
            binary, "serve",
            "--policy", str(policy_path),
            *upstream_args,
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
        tg = Toolgate(port=port, proc=proc, policy_path=policy_path, group=self.group, route=route)
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
