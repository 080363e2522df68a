"""Issue 13 item 2: `toolgate stdio`, the stdio front (the README's "toolgate stdio" section is the contract).

The SDK's stdio client launches `toolgate stdio --policy FILE --upstream URL` as its MCP server; toolgate enforces
the policy in front of the SDK's HTTP server, in both eras, on both stores. stdout carries protocol messages only;
the process exits 0 when stdin closes, after the messages in flight are answered.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import mcp
import pytest
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.shared.exceptions import MCPError

from conftest import toolgate_binary
from helpers import SEED_POLICY, assert_rate_limited_denial, denial_of, run_async, text_of


def stdio_args(policy_path: Path, upstream: str, extra: list[str] | None = None) -> list[str]:
    return ["stdio", "--policy", str(policy_path), "--upstream", upstream, "--agent-id", "e2e-stdio",
            "--log-level", "debug"] + (extra or [])


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TOOLGATE_")}


@asynccontextmanager
async def stdio_session(args: list[str], errlog: Any) -> AsyncIterator[mcp.ClientSession]:
    params = StdioServerParameters(command=toolgate_binary(), args=args, env=clean_env())
    async with stdio_client(params, errlog=errlog) as (read, write):
        async with mcp.ClientSession(read, write, read_timeout_seconds=30) as session:
            await session.initialize()
            yield session


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(SEED_POLICY))
    return path


@pytest.fixture(params=["memory", "redis", "redis-tls"])
def store_args(request: pytest.FixtureRequest) -> list[str]:
    if request.param == "memory":
        return []
    if request.param == "redis-tls":
        # `stdio` takes serve's TLS flags: mutual TLS to a TLS-only Redis.
        from test_redis_tls import mutual_tls_args, start_tls_redis

        tmp_path = request.getfixturevalue("tmp_path")
        redis = start_tls_redis(request.getfixturevalue("procs"), tmp_path / "tls", client_certificates=True)
        return mutual_tls_args(redis, f"tg-e2e-stdio-tls-{uuid.uuid4().hex[:12]}")
    port = request.getfixturevalue("redis_port")
    return ["--redis", f"redis://127.0.0.1:{port}", "--key-prefix", f"tg-e2e-stdio-{uuid.uuid4().hex[:12]}"]


def test_seed_policy_holds_through_the_stdio_front(mcp_upstream, policy_file, store_args, tmp_path):
    errlog = open(tmp_path / "toolgate-stderr.log", "w")

    async def body() -> None:
        async with stdio_session(stdio_args(policy_file, mcp_upstream.url, store_args), errlog) as session:
            tools = await session.list_tools()
            assert [t.name for t in tools.tools] == ["imageBackgroundRemoval"]
            for i in range(10):
                result = await session.call_tool("imageBackgroundRemoval", {"image": f"{i}.png"})
                assert result.is_error is False, f"call {i + 1} refused: {result!r}"
                assert text_of(result) == f"background removed from {i}.png"
            refused = await session.call_tool("imageBackgroundRemoval", {"image": "10.png"})
            assert refused.is_error is True
            assert_rate_limited_denial(
                denial_of(refused), rule="imageBackgroundRemoval", counter="imagebackgroundremoval_rate",
                limit=10, scope="grant", window="minute", window_seconds=60)
            for name in ["echo", "other_tool"]:
                with pytest.raises(MCPError) as info:
                    await session.call_tool(name, {"text": "x"})
                assert info.value.code == -32602 and info.value.message == f"Unknown tool: {name}"

    try:
        run_async(body)
    finally:
        errlog.close()
    log = (tmp_path / "toolgate-stderr.log").read_text()
    assert "stdio: reading MCP messages on stdin" in log, log


def test_the_per_request_era_over_stdio(mcp_upstream_sse, policy_file, tmp_path):
    errlog = open(tmp_path / "toolgate-stderr.log", "w")
    params = StdioServerParameters(command=toolgate_binary(), args=stdio_args(policy_file, mcp_upstream_sse.url),
                                   env=clean_env())

    async def body() -> None:
        async with mcp.Client(stdio_client(params, errlog=errlog), read_timeout_seconds=30) as client:
            assert [t.name for t in (await client.list_tools()).tools] == ["imageBackgroundRemoval"]
            for i in range(10):
                assert (await client.call_tool("imageBackgroundRemoval", {"image": f"{i}"})).is_error is False
            refused = await client.call_tool("imageBackgroundRemoval", {"image": "x"})
            assert refused.is_error is True and denial_of(refused)["reason"] == "rate_limited"

    try:
        run_async(body)
    finally:
        errlog.close()


def test_progress_reaches_the_stdio_client(mcp_upstream_sse, tmp_path):
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"version": "1", "default": "deny", "tools": {"slow_progress": {}}}))
    errlog = open(tmp_path / "toolgate-stderr.log", "w")
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    async def body() -> None:
        async with stdio_session(stdio_args(policy, mcp_upstream_sse.url), errlog) as session:
            result = await session.call_tool("slow_progress", {"steps": 3}, progress_callback=on_progress)
            assert result.is_error is False

    try:
        run_async(body)
    finally:
        errlog.close()
    assert seen == [1, 2, 3]


def raw_stdio(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([toolgate_binary()] + args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=clean_env())


def lines(*messages: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(m).encode() + b"\n" for m in messages)


INITIALIZE = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
              "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                         "clientInfo": {"name": "raw", "version": "1"}}}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


def test_stdout_is_protocol_only_and_stdin_eof_waits_for_the_call_in_flight(mcp_upstream_sse, tmp_path):
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"version": "1", "default": "deny", "tools": {"sleepy": {}}}))
    proc = raw_stdio(stdio_args(policy, mcp_upstream_sse.url))
    tag = "stdio-eof-" + uuid.uuid4().hex
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(lines(INITIALIZE))
    proc.stdin.flush()
    first = json.loads(proc.stdout.readline())
    assert first["id"] == 0 and "result" in first, first
    rest = lines(
        INITIALIZED,
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "sleepy", "arguments": {"seconds": 1.5, "tag": tag}}},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "nope", "arguments": {}}},
    ) + b"this is not json\n"
    out, err = proc.communicate(input=rest, timeout=30)  # stdin closes right after: the call in flight is still answered
    assert proc.returncode == 0, err.decode()
    messages = [json.loads(line) for line in out.decode().splitlines()]  # every line is JSON
    by_id = {m.get("id"): m for m in messages}
    assert by_id[1]["result"]["isError"] is False, messages
    assert by_id[2]["error"] == {"code": -32602, "message": "Unknown tool: nope"}, messages
    assert by_id[None]["error"]["code"] == -32700, messages
    assert b"stdio: stdin closed" in err


@pytest.mark.parametrize("flag, value, says", [
    ("--listen", "127.0.0.1:0", "--listen does not apply"),
    ("--audit-log", "-", "--audit-log - would mix audit lines"),
    ("--grants", "/dev/null", "--grants does not apply"),
])
def test_flags_that_cannot_apply_are_refused(flag, value, says, policy_file):
    proc = subprocess.run([toolgate_binary(), "stdio", "--policy", str(policy_file), "--upstream", "http://127.0.0.1:9/mcp",
                           flag, value], capture_output=True, timeout=30, env=clean_env(), stdin=subprocess.DEVNULL)
    assert proc.returncode == 64, proc
    assert says in proc.stderr.decode(), proc.stderr.decode()
    assert proc.stdout == b""


def test_one_limit_across_a_stdio_front_and_an_http_sidecar(mcp_upstream_json, toolgate, policy_file, redis_port, tmp_path):
    """Limits on Redis hold across fronts: a stdio agent and an HTTP agent of the same grant share one counter."""
    prefix = f"tg-e2e-stdio-fleet-{uuid.uuid4().hex[:12]}"
    redis = ["--redis", f"redis://127.0.0.1:{redis_port}", "--key-prefix", prefix]
    sidecar = toolgate(mcp_upstream_json.url, SEED_POLICY, args=redis)
    errlog = open(tmp_path / "toolgate-stderr.log", "w")

    async def body() -> None:
        from helpers import handshake_session

        async with stdio_session(stdio_args(policy_file, mcp_upstream_json.url, redis), errlog) as session:
            for i in range(6):
                assert (await session.call_tool("imageBackgroundRemoval", {"image": f"s{i}"})).is_error is False
        async with handshake_session(sidecar.url) as session:
            for i in range(4):
                assert (await session.call_tool("imageBackgroundRemoval", {"image": f"h{i}"})).is_error is False
            assert (await session.call_tool("imageBackgroundRemoval", {"image": "h4"})).is_error is True

    try:
        run_async(body)
    finally:
        errlog.close()


def test_stdio_front_in_front_of_a_stdio_upstream(policy_file, tmp_path):
    """Both sides stdio: the SDK's stdio client launches toolgate, which runs the SDK's stdio server."""
    from conftest import E2E_DIR

    server = f"{sys.executable} {E2E_DIR / 'upstream_mcp_server.py'} --stdio"
    args = ["stdio", "--policy", str(policy_file), "--upstream-command", server, "--log-level", "debug"]
    errlog = open(tmp_path / "toolgate-stderr.log", "w")

    async def body() -> None:
        async with stdio_session(args, errlog) as session:
            assert [t.name for t in (await session.list_tools()).tools] == ["imageBackgroundRemoval"]
            for i in range(10):
                assert (await session.call_tool("imageBackgroundRemoval", {"image": f"{i}"})).is_error is False
            refused = await session.call_tool("imageBackgroundRemoval", {"image": "x"})
            assert refused.is_error is True and denial_of(refused)["reason"] == "rate_limited"
            with pytest.raises(MCPError) as info:
                await session.call_tool("echo", {"text": "x"})
            assert info.value.message == "Unknown tool: echo"

    try:
        run_async(body)
    finally:
        errlog.close()
    assert "upstream command ready" in (tmp_path / "toolgate-stderr.log").read_text()


def test_metrics_listen_serves_metrics_in_stdio_mode(mcp_upstream_json, policy_file):
    from helpers import free_port, http_client

    port = free_port()
    proc = raw_stdio(stdio_args(policy_file, mcp_upstream_json.url, ["--metrics-listen", f"127.0.0.1:{port}"]))
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(lines(INITIALIZE))
        proc.stdin.flush()
        assert "result" in json.loads(proc.stdout.readline())
        proc.stdin.write(lines(INITIALIZED, {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                             "params": {"name": "imageBackgroundRemoval", "arguments": {"image": "a"}}}))
        proc.stdin.flush()
        assert json.loads(proc.stdout.readline())["id"] == 1
        with http_client() as http:
            text = http.get(f"http://127.0.0.1:{port}/metrics").text
        assert 'toolgate_tool_calls_total{tool="imageBackgroundRemoval",decision="allowed"} 1' in text, text
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
    assert proc.returncode == 0
