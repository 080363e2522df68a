"""Issue 27 item 1: `toolgate scan` lists every server's tools classified, and their resources and prompts
(DESIGN.md section 11), against real SDK servers: one over HTTP answering JSON, one over HTTP listing its tools a few
per page, and one over stdio, all from one servers file; and one server given alone by --upstream.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from conftest import E2E_DIR, _start_mcp_upstream, toolgate_binary
from helpers import free_port

STDIO = [sys.executable, str(E2E_DIR / "upstream_mcp_server.py"), "--stdio", "--tag", "files"]


def scan(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([toolgate_binary(), "scan", *args], capture_output=True, text=True, timeout=timeout)


def test_scan_lists_and_classifies_every_servers_tools(procs, tmp_path: Path):
    alpha = _start_mcp_upstream(procs, "json", tag="alpha")
    beta = _start_mcp_upstream(procs, "sse", tag="beta", tools_page_size=3)
    servers = tmp_path / "servers.json"
    servers.write_text(json.dumps({"mcpServers": {
        "alpha": {"url": alpha.url}, "beta": {"url": beta.url}, "files": {"command": STDIO[0], "args": STDIO[1:]}}}))
    done = scan("--servers", str(servers), "--format", "json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    by_name = {s["name"]: s for s in report["servers"]}
    assert list(by_name) == ["alpha", "beta", "files"], list(by_name)
    for name, server in by_name.items():
        tools = {t["name"]: t for t in server["tools"]}
        # Every page: beta lists 3 at a time, and all of them are here.
        assert {"echo", "transfer", "run_command", "fetch_report", "post_message", "other_tool"} <= set(tools), (name, sorted(tools))
        for tool in tools.values():
            assert set(tool) >= {"name", "category", "risk", "confidence", "evidence", "annotations"}, tool
            assert tool["category"] in {"read", "write", "execute", "destructive", "financial"}
            assert tool["risk"] in {"low", "medium", "high"} and tool["confidence"] in {"low", "medium", "high"}
            assert tool["evidence"], tool
        assert tools["run_command"]["category"] == "execute" and tools["run_command"]["risk"] == "high"
        assert tools["fetch_report"]["category"] == "read"
        assert tools["transfer"]["category"] == "financial"
        assert tools["post_message"]["category"] == "write"
        uris = {r.get("uri") or r.get("uriTemplate") for r in server["resources"]}
        assert {f"tagged://{name}/about", "test://items/{item_id}"} <= uris, uris
        assert "summarize" in {p["name"] for p in server["prompts"]}
    for form, marker in (("table", "CATEGORY"), ("markdown", "| tool | category |")):
        done = scan("--servers", str(servers), "--format", form)
        assert done.returncode == 0 and marker in done.stdout and "run_command" in done.stdout, done.stdout[:2000]


def test_a_server_that_cannot_be_listed_fails_the_scan_and_the_others_still_print(procs, tmp_path: Path):
    alpha = _start_mcp_upstream(procs, "json", tag="alpha")
    servers = tmp_path / "servers.json"
    servers.write_text(json.dumps({"mcpServers": {
        "alpha": {"url": alpha.url}, "gone": {"url": f"http://127.0.0.1:{free_port()}/mcp"}}}))
    done = scan("--servers", str(servers), "--format", "json")
    assert done.returncode == 1, (done.returncode, done.stderr)
    report = json.loads(done.stdout)
    assert [s["name"] for s in report["servers"]] == ["alpha", "gone"]
    assert report["servers"][0]["tools"] and "error" in report["servers"][1], report
    assert "scan: gone:" in done.stderr
    alone = scan("--upstream", alpha.url)
    assert alone.returncode == 0 and "imageBackgroundRemoval" in alone.stdout, alone.stderr
    for bad, message in ((["--upstream", "ftp://x"], "http:// or https://"), ([], "give one of"),
                         (["--upstream", alpha.url, "--format", "xml"], "--format must be")):
        refused = scan(*bad)
        assert refused.returncode == 64 and message in refused.stderr, (bad, refused.stderr)
