"""Issue 24 item 5: `toolgate wrap CLIENT_CONFIG`, and the rewritten config used as a client would use it.

A Claude-Desktop-shaped config names one HTTP server (the SDK's MCPServer, upstream_mcp_server.py) with a header
that holds a `${ENV}` reference, and one stdio server (the same script with --stdio, by a name toolgate renames).
`toolgate wrap` moves both to a servers file and points the config at toolgate; the test starts `toolgate serve`
exactly as wrap printed it, then the SDK's streamable HTTP client uses the rewritten URL and its stdio client the
rewritten command and args: a call passes and a call is denied through each. `--undo` restores the config byte for
byte.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import mcp
from mcp.client.stdio import StdioServerParameters, stdio_client

from conftest import E2E_DIR, toolgate_binary
from helpers import denial_of, free_port, handshake_session, run_async, text_of
from processes import http_200, wait_until_ready

# Top-level rules for the HTTP server; the stdio server has its own section, so each is told apart by what it allows.
POLICY = {
    "version": "1",
    "default": "deny",
    "tools": {
        "echo": {},
        "imageBackgroundRemoval": {"action": "deny", "reason": "no images through the notes server"},
    },
    "servers": {
        "local-files": {
            "default": "deny",
            "tools": {
                "imageBackgroundRemoval": {},
                "echo": {"action": "deny", "reason": "no echo through the files server"},
            },
        },
    },
}


def clean_env(**extra: str) -> dict[str, str]:
    """This environment less toolgate's own settings (every flag reads TOOLGATE_<FLAG>), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLGATE_")}
    env.update(extra)
    return env


def run_toolgate(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([toolgate_binary(), *args], cwd=cwd, env=env or clean_env(), capture_output=True, text=True,
                          timeout=60)


def test_wrap_then_use_the_rewritten_config_then_undo(mcp_upstream_sse, procs, tmp_path):
    client_dir = tmp_path / "Application Support" / "Claude"
    client_dir.mkdir(parents=True)
    config = client_dir / "claude_desktop_config.json"
    original = json.dumps({
        "mcpServers": {
            "notes": {"url": mcp_upstream_sse.url, "headers": {"X-Notes-Key": "${WRAP_E2E_NOTES_KEY}"}},
            "Local Files": {
                "command": sys.executable,
                "args": [str(E2E_DIR / "upstream_mcp_server.py"), "--stdio"],
                "env": {"WRAP_E2E_MARK": "1"},
            },
        },
        "globalShortcut": "Ctrl+Space",
    }, indent=2).encode() + b"\n"
    config.write_bytes(original)
    config.chmod(0o600)
    port = free_port()

    wrapped = run_toolgate("wrap", config.name, "--listen", f"127.0.0.1:{port}", cwd=client_dir)
    assert wrapped.returncode == 0, wrapped.stderr
    assert (client_dir / "claude_desktop_config.json.toolgate-backup").read_bytes() == original
    assert config.stat().st_mode & 0o777 == 0o600
    servers_path = client_dir / "toolgate-servers.json"
    policy_path = client_dir / "toolgate-policy.json"
    servers = json.loads(servers_path.read_text())
    assert servers == {"mcpServers": {
        "notes": {"url": mcp_upstream_sse.url, "headers": {"X-Notes-Key": "${WRAP_E2E_NOTES_KEY}"}},
        "local-files": json.loads(original)["mcpServers"]["Local Files"],
    }}, "every server as the client had it, the secret's reference unexpanded, under toolgate's name"
    assert json.loads(policy_path.read_text())["default"] == "deny", "the starter policy denies until edited"

    rewritten = json.loads(config.read_text())
    assert rewritten["globalShortcut"] == "Ctrl+Space"
    assert rewritten["mcpServers"]["notes"] == {"url": f"http://127.0.0.1:{port}/mcp/notes"}
    files = rewritten["mcpServers"]["local-files"]
    assert files["command"] == os.path.realpath(toolgate_binary())
    assert files["args"] == ["stdio", "--servers", str(servers_path), "--server", "local-files",
                             "--policy", str(policy_path)]

    # A second wrap is refused and changes nothing.
    again = run_toolgate("wrap", config.name, "--listen", f"127.0.0.1:{port}", cwd=client_dir)
    assert again.returncode == 1 and "--undo" in again.stderr
    assert json.loads(config.read_text()) == rewritten

    # The user writes the policy wrap named, and checks it against the servers file.
    policy_path.write_text(json.dumps(POLICY, indent=2))
    # The servers file names a variable this environment lacks, as the user's shell may: check says which.
    unset = run_toolgate("check", str(policy_path), "--servers", str(servers_path), cwd=client_dir)
    assert unset.returncode == 1 and "WRAP_E2E_NOTES_KEY is not set" in unset.stderr, unset.stderr
    checked = run_toolgate("check", str(policy_path), "--servers", str(servers_path), cwd=client_dir,
                           env=clean_env(WRAP_E2E_NOTES_KEY="k-123"))
    assert checked.returncode == 0, checked.stderr

    # `toolgate serve` exactly as wrap printed it, with the secret in its environment.
    lines = wrapped.stdout.splitlines()
    serve_line = lines[lines.index(next(line for line in lines if line.startswith("start the sidecar"))) + 1]
    argv = shlex.split(serve_line)
    assert argv[0] == os.path.realpath(toolgate_binary()) and argv[1] == "serve"
    assert argv[argv.index("--listen") + 1] == f"127.0.0.1:{port}"
    serve = procs.start("toolgate-serve", argv + ["--log-level", "debug"], env={"WRAP_E2E_NOTES_KEY": "k-123"},
                        drop_env_prefix="TOOLGATE_")
    wait_until_ready(serve, lambda: http_200(f"http://127.0.0.1:{port}/healthz"), f"toolgate serve on port {port}")

    errlog = open(tmp_path / "toolgate-stdio-stderr.log", "w")
    # The desktop client starts the stdio server with its own environment, which holds none of the shell's secrets:
    # `toolgate stdio --server local-files` must not need the notes server's WRAP_E2E_NOTES_KEY (only the variables
    # of the server it runs).
    params = StdioServerParameters(command=files["command"], args=files["args"], env=clean_env())

    async def body() -> None:
        async with handshake_session(rewritten["mcpServers"]["notes"]["url"]) as http:
            assert text_of(await http.call_tool("echo", {"text": "through the sidecar"})) == "echo: through the sidecar"
            denied = await http.call_tool("imageBackgroundRemoval", {"image": "x"})
            assert denied.is_error is True
            assert denial_of(denied)["reason"] == "denied" and denial_of(denied)["server"] == "notes"
            assert "no images through the notes server" in text_of(denied), "the top-level rules"

        async with stdio_client(params, errlog=errlog) as (read, write):
            async with mcp.ClientSession(read, write, read_timeout_seconds=30) as stdio:
                await stdio.initialize()
                allowed = await stdio.call_tool("imageBackgroundRemoval", {"image": "cat.png"})
                assert allowed.is_error is False, text_of(allowed)
                denied = await stdio.call_tool("echo", {"text": "x"})
                assert denied.is_error is True
                assert denial_of(denied)["reason"] == "denied" and denial_of(denied)["server"] == "local-files"
                assert "no echo through the files server" in text_of(denied), "the server's own section"

    try:
        run_async(body)
    finally:
        errlog.close()

    undone = run_toolgate("wrap", "--undo", config.name, cwd=client_dir)
    assert undone.returncode == 0, undone.stderr
    assert config.read_bytes() == original
    assert config.stat().st_mode & 0o777 == 0o600
    assert not (client_dir / "claude_desktop_config.json.toolgate-backup").exists()


def test_wrap_refuses_the_old_sse_transport_and_writes_nothing(tmp_path):
    config = tmp_path / "mcp.json"
    original = b'{"mcpServers": {"legacy": {"type": "sse", "url": "http://127.0.0.1:9/sse"}}}\n'
    config.write_bytes(original)
    result = run_toolgate("wrap", str(config), cwd=tmp_path)
    assert result.returncode == 1
    assert "old HTTP+SSE transport" in result.stderr and "legacy" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mcp.json"]
    assert config.read_bytes() == original
