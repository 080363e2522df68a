"""docker/: what can be proved without a Docker engine, and the repository's own Prometheus set-up against a real
Prometheus (Debian's `prometheus`) scraping the real toolgate binary.

scripts/check-docker.sh runs here without its build step (`--skip-build`): scripts/test.sh runs it in full.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml
from mcp.shared.exceptions import MCPError

from conftest import ProcessGroup, wait_until_ready, NotReady
from helpers import SEED_POLICY, free_port, handshake_session, run_async

ROOT = Path(__file__).resolve().parent.parent.parent
DOCKER = ROOT / "docker"
PROMETHEUS_TIMEOUT = 30.0  # Prometheus must show the decisions within this many seconds of starting


def _load_check_docker() -> Any:
    """scripts/check_docker.py, for its metric contract and its dashboard helpers."""
    spec = importlib.util.spec_from_file_location("check_docker", ROOT / "scripts" / "check_docker.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("check_docker", module)
    spec.loader.exec_module(module)
    return module


def test_check_docker_passes_without_the_build():
    result = subprocess.run(["bash", str(ROOT / "scripts" / "check-docker.sh"), "--skip-build"], cwd=ROOT,
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=110)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"scripts/check-docker.sh --skip-build failed (exit {result.returncode}):\n{output}"
    assert "check-docker: all checks passed" in output, output
    for step in ["promtool test rules docker/alerts.test.yml", "build context"]:
        assert step in output, f"step {step!r} did not run:\n{output}"


# ---------------------------------------------------------------------------------------------------------------
# A real Prometheus with docker/prometheus.yml and docker/alerts.yml


def _prometheus_binary() -> str:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("the `prometheus` server is not installed: run bash scripts/bootstrap.sh (installs Debian's "
                    "prometheus, which also brings promtool)", pytrace=False)
    return binary


def _config_for(toolgate_port: int, tmp_path: Path) -> Path:
    """docker/prometheus.yml, scraping the toolgate on loopback every second; rule files by absolute path."""
    config = yaml.safe_load((DOCKER / "prometheus.yml").read_text())
    config.setdefault("global", {}).update({"scrape_interval": "1s", "evaluation_interval": "1s"})
    config["rule_files"] = [str((DOCKER / f).resolve()) for f in config.get("rule_files") or []]
    assert config["rule_files"], "docker/prometheus.yml names no rule files"
    jobs = [job for job in config["scrape_configs"] if job.get("job_name") == "toolgate"]
    assert len(jobs) == 1, f"docker/prometheus.yml should have one job named toolgate: {config['scrape_configs']}"
    assert jobs[0].get("metrics_path", "/metrics") == "/metrics"
    jobs[0]["static_configs"] = [{"targets": [f"127.0.0.1:{toolgate_port}"]}]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def _start_prometheus(procs: ProcessGroup, config: Path, tmp_path: Path) -> str:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = procs.start("prometheus", [
        _prometheus_binary(),
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=info",
    ])
    try:
        wait_until_ready(proc, lambda: httpx2.get(f"{base}/-/ready", timeout=2.0).status_code == 200,
                         f"GET {base}/-/ready answers 200")
    except NotReady as e:
        pytest.fail(str(e), pytrace=False)
    return base


def _api(base: str, path: str, **params: str) -> Any:
    response = httpx2.get(f"{base}/api/v1/{path}", params=params, timeout=5.0)
    body = response.json()
    assert response.status_code == 200 and body.get("status") == "success", f"{path} {params}: {response.text}"
    return body["data"]


def _poll(what: str, probe: Any, timeout: float = PROMETHEUS_TIMEOUT) -> Any:
    """Call probe() until it returns (ok, value) with ok true; fail with the last value after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        ready, last = probe()
        if ready:
            return last
        time.sleep(0.25)
    pytest.fail(f"after {timeout:.0f} s, {what}; last seen: {json.dumps(last, indent=1, default=str)}", pytrace=False)


def test_prometheus_scrapes_toolgate_with_the_repository_config(mcp_upstream_sse, toolgate, procs, tmp_path):
    _prometheus_binary()
    check_docker = _load_check_docker()
    tg = toolgate(mcp_upstream_sse.url, SEED_POLICY)

    # The seed policy: imageBackgroundRemoval 10 a minute per grant; every other tool unknown.
    async def calls():
        async with handshake_session(tg.url) as session:
            for i in range(11):
                await session.call_tool("imageBackgroundRemoval", {"image": f"{i}.png"})
            for name in ["echo", "delete_repository"]:
                with pytest.raises(MCPError):
                    await session.call_tool(name, {})

    run_async(calls)
    expected = {
        ("imageBackgroundRemoval", "allowed"): 10.0,
        ("imageBackgroundRemoval", "rate_limited"): 1.0,
        ("_other", "unknown_tool"): 2.0,
    }

    base = _start_prometheus(procs, _config_for(tg.port, tmp_path), tmp_path)
    instance = f"127.0.0.1:{tg.port}"

    def decisions() -> tuple[bool, Any]:
        result = _api(base, "query", query="toolgate_tool_calls_total")["result"]
        # Series at 0 (made ahead of their first event) are no decisions.
        seen = {(r["metric"].get("tool"), r["metric"].get("decision")): float(r["value"][1])
                for r in result if float(r["value"][1]) != 0}
        labelled = all(r["metric"].get("job") == "toolgate" and r["metric"].get("instance") == instance for r in result)
        return seen == expected and labelled, result

    _poll(f"Prometheus did not show toolgate_tool_calls_total == {expected} for job toolgate, instance {instance}",
          decisions)

    # The alert rules of docker/alerts.yml are loaded, evaluate without errors on real data, and none fires.
    alert_names = {r["alert"] for g in yaml.safe_load((DOCKER / "alerts.yml").read_text())["groups"]
                   for r in g["rules"] if "alert" in r}

    def rules() -> tuple[bool, Any]:
        groups = _api(base, "rules", type="alert")["groups"]
        loaded = {r["name"]: (r.get("health"), r.get("state"), r.get("lastError", "")) for g in groups for r in g["rules"]}
        ready = set(loaded) == alert_names and all(h == "ok" and s == "inactive" for h, s, _ in loaded.values())
        return ready, loaded

    _poll(f"Prometheus did not load and evaluate the alerts {sorted(alert_names)} (health ok, state inactive)", rules)

    # Every toolgate_* series the binary exports is in the contract the dashboard and alerts are checked against.
    names = {n for n in _api(base, "label/__name__/values") if n.startswith("toolgate_")}
    unknown = sorted(n for n in names if check_docker.base_metric(n)[0] is None)
    assert not unknown, f"toolgate exports metrics that scripts/check_docker.py does not know: {unknown}"

    # Every dashboard query runs on this Prometheus; the decisions panel shows the calls just made.
    dashboard = json.loads((DOCKER / "grafana" / "dashboards" / "toolgate.json").read_text())
    queries = [(p["title"], t["expr"].replace("$instance", ".*"))
               for p in check_docker.all_panels(dashboard) for t in p.get("targets") or [] if t.get("expr")]
    assert queries, "the dashboard has no queries"
    for title, expr in queries:
        _api(base, "query", query=expr)

    decisions_expr = next(expr for title, expr in queries if title == "Decisions per tool and decision")

    def panel() -> tuple[bool, Any]:
        result = _api(base, "query", query=decisions_expr)["result"]
        shown = {(r["metric"].get("tool"), r["metric"].get("decision")) for r in result}
        return set(expected) <= shown, result

    _poll("the dashboard's decisions panel did not show every (tool, decision) just counted", panel)
