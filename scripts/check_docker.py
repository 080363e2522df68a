"""The checks behind scripts/check-docker.sh: what can be proved about docker/ without a Docker engine.

    python3 scripts/check_docker.py compose            docker/compose.yaml has the fleet's services and settings
    python3 scripts/check_docker.py queries            dashboard and alert queries name only toolgate's metrics
    python3 scripts/check_docker.py context DIR        DIR (empty) gets exactly what the build stage COPYs
    python3 scripts/check_docker.py build-command      prints the build stage's `swift build` command
    python3 scripts/check_docker.py libraries DIR      the runtime stage installs every library the built binaries load

Each prints what it checked and exits 1 with a message naming the file and the problem on the first failure.
Needs PyYAML. Run from anywhere; paths are relative to the repository root.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
DOCKERFILE = DOCKER / "Dockerfile"
COMPOSE = DOCKER / "compose.yaml"
PROMETHEUS = DOCKER / "prometheus.yml"
ALERTS = DOCKER / "alerts.yml"
DASHBOARD = DOCKER / "grafana" / "dashboards" / "toolgate.json"
GRAFANA_DATASOURCES = DOCKER / "grafana" / "provisioning" / "datasources"
GRAFANA_DASHBOARD_PROVIDERS = DOCKER / "grafana" / "provisioning" / "dashboards"
METRIC_NAMES_SWIFT = ROOT / "Sources" / "ToolgateServer" / "MetricName.swift"

# DESIGN.md section 8 and README "Endpoints": every metric toolgate exports, its labels, and the values a label takes
# where they are a closed set. Histograms add _bucket (label le), _sum and _count.
DECISIONS = {
    "allowed", "allowed_store_unavailable", "unknown_tool", "shadow_denied", "denied", "invalid_arguments",
    "rate_limited", "approval_required", "approval_denied", "store_unavailable",
}
METRICS: dict[str, dict[str, set[str] | None]] = {
    "toolgate_tool_calls_total": {"tool": None, "decision": DECISIONS},
    "toolgate_decision_duration_seconds": {},
    "toolgate_store_operations_total": {"result": {"ok", "timeout", "error"}},
    "toolgate_store_duration_seconds": {},
    "toolgate_upstream_requests_total": {"status": None},
    "toolgate_upstream_duration_seconds": {},
    "toolgate_inflight_requests": {},
    "toolgate_policy_reloads_total": {"result": {"success", "failure"}},
    "toolgate_policy_info": {"sha256": None},
    "toolgate_approvals_pending": {},
    "toolgate_build_info": {"version": None},
    "toolgate_audit_dropped_total": {},
    "toolgate_auth_failures_total": {},
    "toolgate_upstream_events_dropped_total": {},
    "toolgate_argument_checks_undecided_total": {"tool": None},
    "toolgate_upstream_answers_not_jsonrpc_total": {"status": None},
    "toolgate_tool_call_rounds_total": {
        "event": {"remembered", "follow_up", "unrecognized", "remember_failed", "lookup_failed"},
    },
}
HISTOGRAMS = {"toolgate_decision_duration_seconds", "toolgate_store_duration_seconds", "toolgate_upstream_duration_seconds"}
TARGET_LABELS = {"instance", "job"}  # added by Prometheus to every scraped series

EXPECTED_SERVICES = {"redis", "example-upstream", "toolgate-a", "toolgate-b", "prometheus", "grafana"}
SIDECARS = ["toolgate-a", "toolgate-b"]


class CheckFailed(Exception):
    pass


def fail(where: Path | str, message: str) -> None:
    where_text = os.path.relpath(where, ROOT) if isinstance(where, Path) else where
    raise CheckFailed(f"{where_text}: {message}")


def ok(message: str) -> None:
    print(f"  ok: {message}")


def load_yaml(path: Path) -> Any:
    try:
        with open(path) as f:
            return yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        fail(path, f"does not parse as YAML: {e}")


# ---------------------------------------------------------------------------------------------------------------
# compose.yaml


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def argv(value: Any) -> list[str]:
    if value is None:
        return []
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


def mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path → host path (resolved against docker/), for bind mounts."""
    out: dict[str, Path] = {}
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            source, target = volume.get("source", ""), volume.get("target", "")
        else:
            parts = str(volume).split(":")
            if len(parts) < 2:
                continue
            source, target = parts[0], parts[1]
        if source.startswith((".", "/")):
            out[target] = (DOCKER / source).resolve()
    return out


def healthy_dependencies(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {d: "service_started" for d in deps}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def check_compose() -> None:
    compose = load_yaml(COMPOSE)
    if not isinstance(compose, dict) or not isinstance(compose.get("services"), dict):
        fail(COMPOSE, "has no services mapping")
    services: dict[str, Any] = compose["services"]
    if set(services) != EXPECTED_SERVICES:
        fail(COMPOSE, f"services are {sorted(services)}, expected exactly {sorted(EXPECTED_SERVICES)}")
    ok(f"{os.path.relpath(COMPOSE, ROOT)} parses; services: {', '.join(sorted(services))}")

    redis = services["redis"]
    if not str(redis.get("image", "")).startswith("redis:7"):
        fail(COMPOSE, f"redis: image {redis.get('image')!r} is not Redis 7")
    command = argv(redis.get("command"))
    policy = [command[i + 1] for i, a in enumerate(command[:-1]) if a == "--maxmemory-policy"]
    if policy != ["noeviction"]:
        fail(COMPOSE, f"redis: command {command} does not set --maxmemory-policy noeviction")
    if "healthcheck" not in redis:
        fail(COMPOSE, "redis: no healthcheck (the sidecars wait for it to be healthy)")
    ok("redis: Redis 7 with --maxmemory-policy noeviction and a healthcheck")

    # Every service built from the repository uses docker/Dockerfile with the repository root as its context.
    built = [name for name, s in services.items() if "build" in s]
    for name in ["example-upstream", *SIDECARS]:
        if name not in built:
            fail(COMPOSE, f"{name}: not built from docker/Dockerfile")
    for name in built:
        build = services[name]["build"]
        context = (DOCKER / (build if isinstance(build, str) else build.get("context", "."))).resolve()
        dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        if context != ROOT or (context / dockerfile).resolve() != DOCKERFILE:
            fail(COMPOSE, f"{name}: builds {context / dockerfile} with context {context}; expected docker/Dockerfile "
                          f"with the repository root")
    images = {services[name].get("image") for name in built}
    if len(images) != 1 or None in images:
        fail(COMPOSE, f"services built from docker/Dockerfile should share one image name, got {images}")
    ok(f"{', '.join(built)}: built from docker/Dockerfile (context: the repository root) as {images.pop()}")

    upstream = services["example-upstream"]
    up_argv = argv(upstream.get("entrypoint")) + argv(upstream.get("command"))
    if not up_argv or up_argv[0] != "example-upstream" or len(up_argv) < 2 or not up_argv[1].isdigit():
        fail(COMPOSE, f"example-upstream: runs {up_argv}, expected `example-upstream PORT`")
    upstream_port = up_argv[1]
    bind = up_argv[2] if len(up_argv) > 2 else environment(upstream).get("EXAMPLE_UPSTREAM_HOST", "127.0.0.1")
    if bind != "0.0.0.0":
        fail(COMPOSE, f"example-upstream: binds {bind}, so the sidecars' containers cannot reach it (want 0.0.0.0)")
    if "healthcheck" not in upstream:
        fail(COMPOSE, "example-upstream: no healthcheck of its own (the image's probes toolgate's /healthz)")
    ok(f"example-upstream: `{' '.join(up_argv)}` on 0.0.0.0 with its own healthcheck")

    agent_ids = set()
    scrape_targets = set()
    for name in SIDECARS:
        s = services[name]
        env = environment(s)
        if argv(s.get("entrypoint")) or argv(s.get("command")):
            fail(COMPOSE, f"{name}: overrides the image's entrypoint or command (want `toolgate serve`)")
        if env.get("TOOLGATE_REDIS") != "redis://redis:6379":
            fail(COMPOSE, f"{name}: TOOLGATE_REDIS is {env.get('TOOLGATE_REDIS')!r}, expected redis://redis:6379")
        want_upstream = f"http://example-upstream:{upstream_port}/mcp"
        if env.get("TOOLGATE_UPSTREAM") != want_upstream:
            fail(COMPOSE, f"{name}: TOOLGATE_UPSTREAM is {env.get('TOOLGATE_UPSTREAM')!r}, expected {want_upstream}")
        agent = env.get("TOOLGATE_AGENT_ID", "")
        if not agent or agent in agent_ids:
            fail(COMPOSE, f"{name}: TOOLGATE_AGENT_ID {agent!r} is empty or not distinct")
        agent_ids.add(agent)
        hosts = [h.strip() for h in env.get("TOOLGATE_ALLOWED_HOST", "").splitlines() if h.strip()]
        for needed in [name, "localhost", "127.0.0.1"]:
            if needed not in hosts:
                fail(COMPOSE, f"{name}: TOOLGATE_ALLOWED_HOST {hosts} lacks {needed!r}")
        listen = env.get("TOOLGATE_LISTEN", "0.0.0.0:8931")
        host, _, port = listen.rpartition(":")
        if host != "0.0.0.0" or not port.isdigit():
            fail(COMPOSE, f"{name}: TOOLGATE_LISTEN {listen!r} is not 0.0.0.0:PORT")
        scrape_targets.add(f"{name}:{port}")
        policy_path = env.get("TOOLGATE_POLICY", "/etc/toolgate/policy.json")
        source = mounts(s).get(policy_path)
        if source != ROOT / "examples" / "policy.json":
            fail(COMPOSE, f"{name}: {policy_path} (TOOLGATE_POLICY) is not mounted from examples/policy.json")
        deps = healthy_dependencies(s)
        for dep in ["redis", "example-upstream"]:
            if deps.get(dep) != "service_healthy":
                fail(COMPOSE, f"{name}: does not wait for {dep} to be healthy (depends_on condition service_healthy)")
    ok("toolgate-a, toolgate-b: share redis://redis:6379, distinct agent ids, allowed hosts name the service, "
       "localhost and 127.0.0.1, the policy mounted from examples/policy.json, wait for redis and the upstream")

    prometheus = services["prometheus"]
    if not str(prometheus.get("image", "")).startswith("prom/prometheus"):
        fail(COMPOSE, f"prometheus: image {prometheus.get('image')!r} is not prom/prometheus")
    config_flag = [a.split("=", 1)[1] for a in argv(prometheus.get("command")) if a.startswith("--config.file=")]
    config_path = config_flag[0] if config_flag else "/etc/prometheus/prometheus.yml"
    prom_mounts = mounts(prometheus)
    if prom_mounts.get(config_path) != PROMETHEUS:
        fail(COMPOSE, f"prometheus: {config_path} (--config.file) is not mounted from docker/prometheus.yml")
    config = load_yaml(PROMETHEUS)
    for rule_file in config.get("rule_files") or []:
        in_container = os.path.normpath(os.path.join(os.path.dirname(config_path), rule_file))
        host = prom_mounts.get(in_container)
        if host is None or not host.is_file():
            fail(COMPOSE, f"prometheus: rule file {rule_file} ({in_container} in the container) is not mounted")
    targets = {
        t for job in config.get("scrape_configs") or [] if job.get("job_name") == "toolgate"
        and job.get("metrics_path", "/metrics") == "/metrics"
        for sc in job.get("static_configs") or [] for t in sc.get("targets") or []
    }
    if targets != scrape_targets:
        fail(PROMETHEUS, f"job toolgate scrapes {sorted(targets)} at /metrics; the sidecars listen on {sorted(scrape_targets)}")
    ok(f"prometheus: mounts docker/prometheus.yml and its rule files; job toolgate scrapes {', '.join(sorted(targets))}")

    grafana = services["grafana"]
    if not str(grafana.get("image", "")).startswith("grafana/grafana"):
        fail(COMPOSE, f"grafana: image {grafana.get('image')!r} is not grafana/grafana")
    graf_mounts = mounts(grafana)
    if graf_mounts.get("/etc/grafana/provisioning") != DOCKER / "grafana" / "provisioning":
        fail(COMPOSE, "grafana: /etc/grafana/provisioning is not mounted from docker/grafana/provisioning")
    datasources = [d for f in sorted(GRAFANA_DATASOURCES.glob("*.y*ml")) for d in load_yaml(f).get("datasources") or []]
    prom_sources = [d for d in datasources if d.get("type") == "prometheus"]
    if len(prom_sources) != 1 or prom_sources[0].get("url") != "http://prometheus:9090":
        fail(GRAFANA_DATASOURCES, f"expected one prometheus datasource at http://prometheus:9090, got {prom_sources}")
    providers = [p for f in sorted(GRAFANA_DASHBOARD_PROVIDERS.glob("*.y*ml")) for p in load_yaml(f).get("providers") or []]
    paths = {(p.get("options") or {}).get("path") for p in providers}
    if len(paths) != 1 or graf_mounts.get(next(iter(paths))) != DASHBOARD.parent:
        fail(COMPOSE, f"grafana: dashboard provider paths {paths} are not docker/grafana/dashboards mounted")
    dashboard = json.loads(DASHBOARD.read_text())
    uid = prom_sources[0].get("uid")
    for panel in all_panels(dashboard):
        for source in [panel.get("datasource")] + [t.get("datasource") for t in panel.get("targets") or []]:
            if isinstance(source, dict) and source.get("uid") != uid:
                fail(DASHBOARD, f"panel {panel.get('title')!r} uses datasource {source}, not the provisioned uid {uid!r}")
    ok("grafana: provisioned with the Prometheus datasource (uid %r) and docker/grafana/dashboards" % uid)


# ---------------------------------------------------------------------------------------------------------------
# Dashboard and alert queries


def all_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for panel in dashboard.get("panels") or []:
        out.append(panel)
        out.extend(panel.get("panels") or [])  # panels inside a collapsed row
    return out


KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "offset", "bool",
            "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """Series names an expression selects: identifiers that are not functions, keywords, labels or durations."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)  # label lists
    text = re.sub(r"\boffset\s+\S+", " ", text)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word = m.group(0)
        rest = text[m.end():].lstrip()
        if rest.startswith("(") or word.lower() in KEYWORDS:
            continue
        if m.start() > 0 and (text[m.start() - 1].isdigit() or text[m.start() - 1] == "."):
            continue  # the exponent or unit of a number literal
        names.add(word)
    return names


def base_metric(name: str) -> tuple[str | None, set[str]]:
    """The contract metric a series name belongs to, and the extra labels it has (le for a histogram bucket)."""
    if name in METRICS and name not in HISTOGRAMS:
        return name, set()
    for suffix, extra in (("_bucket", {"le"}), ("_sum", set()), ("_count", set())):
        if name.endswith(suffix) and name[: -len(suffix)] in HISTOGRAMS:
            return name[: -len(suffix)], extra
    return None, set()


def check_expr(where: Path, what: str, expr: str, extra_metrics: set[str] = frozenset()) -> set[str]:
    names = metric_names(expr)
    if not names:
        fail(where, f"{what}: names no metric: {expr}")
    for name in names:
        if name in extra_metrics:
            continue
        metric, extra = base_metric(name)
        if metric is None:
            fail(where, f"{what}: {name} is not a toolgate metric (DESIGN.md section 8): {expr}")
        labels = METRICS[metric]
        allowed = set(labels) | extra | TARGET_LABELS
        for selector in re.finditer(re.escape(name) + r"\s*\{([^}]*)\}", expr):
            for matcher in re.finditer(r'([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"', selector.group(1)):
                label, op, value = matcher.groups()
                if label not in allowed:
                    fail(where, f"{what}: {name} has no label {label!r} (it has {sorted(allowed)}): {expr}")
                values = labels.get(label) if label in labels else None
                if values is None or "$" in value:
                    continue
                words = value.split("|") if op in ("=~", "!~") else [value]
                if op in ("=~", "!~") and not all(re.fullmatch(r"[a-z0-9_]+", w) for w in words):
                    continue  # a real regex: not checked word by word
                unknown = [w for w in words if w not in values]
                if unknown:
                    fail(where, f"{what}: {label} never takes {unknown} on {metric} (values: {sorted(values)}): {expr}")
    return names


def promql_syntax(where: Path, exprs: dict[str, str]) -> None:
    """Parse every expression with promtool, as recording rules of a throwaway rules file."""
    rules = {"groups": [{"name": "syntax", "rules": [{"record": f"check:expr_{i}", "expr": e}
                                                     for i, e in enumerate(exprs.values())]}]}
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        yaml.safe_dump(rules, f)
        path = f.name
    try:
        result = subprocess.run(["promtool", "check", "rules", path], capture_output=True, text=True)
    finally:
        os.unlink(path)
    if result.returncode != 0:
        names = list(exprs)
        detail = re.sub(r"check:expr_(\d+)", lambda m: names[int(m.group(1))], result.stdout + result.stderr)
        fail(where, f"a query does not parse as PromQL (promtool):\n{detail}")


def check_queries() -> None:
    try:
        dashboard = json.loads(DASHBOARD.read_text())
    except (OSError, ValueError) as e:
        fail(DASHBOARD, f"does not parse as JSON: {e}")
    exprs: dict[str, str] = {}
    used: set[str] = set()
    panels = [p for p in all_panels(dashboard) if p.get("type") != "row"]
    if not panels:
        fail(DASHBOARD, "has no panels")
    for panel in panels:
        targets = [t for t in panel.get("targets") or [] if t.get("expr")]
        if not targets:
            fail(DASHBOARD, f"panel {panel.get('title')!r} has no query")
        for target in targets:
            what = f"panel {panel.get('title')!r} query {target.get('refId')}"
            used |= check_expr(DASHBOARD, what, target["expr"])
            # Grafana's variables become what they stand for, so promtool can parse the query.
            exprs[what] = target["expr"].replace("$instance", ".*").replace("$__rate_interval", "5m")
    for variable in (dashboard.get("templating") or {}).get("list") or []:
        query = variable.get("query")
        query = query.get("query") if isinstance(query, dict) else query
        m = re.fullmatch(r"label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*,\s*([A-Za-z_]+)\s*\)", query or "")
        if not m or base_metric(m.group(1))[0] is None:
            fail(DASHBOARD, f"variable {variable.get('name')!r}: query {query!r} is not label_values(<toolgate metric>, label)")
    promql_syntax(DASHBOARD, exprs)
    wanted = {
        "decisions per tool and decision": r"sum by \(tool, decision\) \(rate\(toolgate_tool_calls_total",
        "denial reasons": r'toolgate_tool_calls_total\{[^}]*decision!~"[^"]*allowed[^"]*shadow_denied[^"]*unknown_tool',
        "store latency": r"histogram_quantile\([^,]+, .*toolgate_store_duration_seconds_bucket",
        "store errors": r'toolgate_store_operations_total\{[^}]*result!="ok"',
        "upstream latency": r"histogram_quantile\([^,]+, .*toolgate_upstream_duration_seconds_bucket",
        "approvals pending": r"toolgate_approvals_pending",
        "fail-open admissions": r'decision="allowed_store_unavailable"',
        "reloads": r"toolgate_policy_reloads_total",
    }
    for what, pattern in wanted.items():
        if not any(re.search(pattern, e) for e in exprs.values()):
            fail(DASHBOARD, f"no panel shows {what} (no query matches /{pattern}/)")
    ok(f"{os.path.relpath(DASHBOARD, ROOT)}: {len(panels)} panels, {len(exprs)} queries parse (promtool) and name only "
       f"toolgate metrics, labels and label values; {', '.join(wanted)} are all shown")

    alerts = load_yaml(ALERTS)
    count = 0
    for group in alerts.get("groups") or []:
        for rule in group.get("rules") or []:
            check_expr(ALERTS, f"alert {rule.get('alert') or rule.get('record')}", rule["expr"], extra_metrics={"up"})
            count += 1
    ok(f"{os.path.relpath(ALERTS, ROOT)}: {count} rules name only toolgate metrics (and up)")

    if METRIC_NAMES_SWIFT.is_file():
        declared = set(re.findall(r'case\s+\w+\s*=\s*"(toolgate_[a-z0-9_]+)"', METRIC_NAMES_SWIFT.read_text()))
        if declared != set(METRICS):
            fail(METRIC_NAMES_SWIFT, f"and scripts/check_docker.py's metric list differ: only in the Swift source "
                                     f"{sorted(declared - set(METRICS))}, only in the list {sorted(set(METRICS) - declared)}")
        ok(f"the metric list agrees with {os.path.relpath(METRIC_NAMES_SWIFT, ROOT)} ({len(declared)} metrics)")


# ---------------------------------------------------------------------------------------------------------------
# Dockerfile


def dockerfile_stages() -> list[dict[str, Any]]:
    """[{name, base, instructions: [(KEYWORD, text)]}], continuation lines joined, comments dropped."""
    stages: list[dict[str, Any]] = []
    logical = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not logical and (not line or line.startswith("#")):
            continue
        if logical and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        keyword, _, rest = logical.strip().partition(" ")
        logical = ""
        keyword = keyword.upper()
        if keyword == "FROM":
            words = rest.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append({"name": name, "base": words[0], "instructions": []})
        elif not stages:
            fail(DOCKERFILE, f"{keyword} before the first FROM")
        else:
            stages[-1]["instructions"].append((keyword, rest.strip()))
    if len(stages) < 2:
        fail(DOCKERFILE, "is not multi-stage (expected a build stage and a runtime stage)")
    return stages


def copy_sources(rest: str) -> tuple[list[str], str, dict[str, str]]:
    words = shlex.split(rest)
    flags = {w.split("=", 1)[0][2:]: (w.split("=", 1) + [""])[1] for w in words if w.startswith("--")}
    paths = [w for w in words if not w.startswith("--")]
    if len(paths) < 2:
        fail(DOCKERFILE, f"COPY {rest}: needs a source and a destination")
    return paths[:-1], paths[-1], flags


def dockerignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    """.dockerignore next to the Dockerfile (docker/Dockerfile.dockerignore) wins over the context root's."""
    for path in (DOCKERFILE.parent / (DOCKERFILE.name + ".dockerignore"), ROOT / ".dockerignore"):
        if path.is_file():
            break
    else:
        return []
    out = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip().lstrip("/"))
        regex = ""
        i = 0
        while i < len(pattern):
            c = pattern[i]
            if pattern.startswith("**", i):
                regex += ".*"
                i += 2
                if pattern.startswith("/", i):
                    regex += "/?"
                    i += 1
                continue
            regex += {"*": "[^/]*", "?": "[^/]"}.get(c, re.escape(c))
            i += 1
        out.append((negate, re.compile(regex + "(/.*)?")))
    return out


def ignored(rel: str, patterns: list[tuple[bool, re.Pattern[str]]]) -> bool:
    result = False
    for negate, regex in patterns:
        if regex.fullmatch(rel):
            result = not negate
    return result


def copy_into(source: Path, target: Path, patterns: list[tuple[bool, re.Pattern[str]]]) -> int:
    """Copy one file or a folder's content, skipping what .dockerignore excludes; the number of files copied."""
    rel = source.relative_to(ROOT).as_posix()
    if ignored(rel, patterns):
        return 0
    if source.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
        return 1
    count = 0
    target.mkdir(parents=True, exist_ok=True)
    for child in sorted(source.iterdir()):
        count += copy_into(child, target / child.name, patterns)
    return count


def check_context(context: Path) -> None:
    """Fill the empty folder `context` with what the build stage's COPY lines copy (WORKDIR = `context`), then let
    SwiftPM load the package there: every target folder Package.swift names must exist."""
    if any(context.iterdir()):
        fail(str(context), "is not empty")
    stages = dockerfile_stages()
    build = stages[0]
    patterns = dockerignore_patterns()
    workdir = None
    copied = []
    for keyword, rest in build["instructions"]:
        if keyword == "WORKDIR":
            workdir = rest
        if keyword != "COPY":
            continue
        sources, dest, flags = copy_sources(rest)
        if "from" in flags:
            continue
        if workdir is None:
            fail(DOCKERFILE, f"COPY {rest}: before any WORKDIR, so its destination cannot be mapped")
        dest_path = Path(os.path.normpath(os.path.join(workdir, dest)))
        try:
            dest_rel = dest_path.relative_to(workdir)
        except ValueError:
            fail(DOCKERFILE, f"COPY {rest}: copies outside WORKDIR {workdir}")
        for pattern in sources:
            matches = sorted(glob.glob(str(ROOT / pattern)))
            if not matches:
                fail(DOCKERFILE, f"COPY {rest}: {pattern} matches nothing in the repository")
            for match in matches:
                src = Path(match)
                # Docker's COPY: a folder's content goes into the destination; a file goes into it when it ends
                # with "/" or several sources are copied, and otherwise becomes it.
                if src.is_dir():
                    target = context / dest_rel
                elif dest.endswith("/") or len(matches) > 1 or len(sources) > 1:
                    target = context / dest_rel / src.name
                else:
                    target = context / dest_rel
                n = copy_into(src, target, patterns)
                if n == 0:
                    fail(DOCKERFILE, f"COPY {rest}: .dockerignore leaves nothing of {pattern}")
                copied.append(f"{pattern} ({n} files)")
    if not copied:
        fail(DOCKERFILE, "the build stage copies nothing from the context")
    ok(f"build stage ({build['base']}) COPY: {', '.join(copied)}")

    # The runtime stage's own context copies must exist too.
    for keyword, rest in stages[-1]["instructions"]:
        if keyword == "COPY":
            sources, _, flags = copy_sources(rest)
            if "from" not in flags:
                for pattern in sources:
                    if not glob.glob(str(ROOT / pattern)) or ignored(pattern, patterns):
                        fail(DOCKERFILE, f"runtime stage COPY {rest}: {pattern} is not in the build context")

    result = subprocess.run(["swift", "package", "describe", "--type", "json"], cwd=context, capture_output=True,
                            text=True)
    problems = [line for line in result.stderr.splitlines() if "error:" in line or "warning:" in line]
    if result.returncode != 0 or problems:
        fail(DOCKERFILE, "SwiftPM cannot load the package from what the build stage copies "
                         f"(exit {result.returncode}):\n    " + "\n    ".join(problems or result.stderr.splitlines()))
    described = json.loads(result.stdout)
    ok(f"SwiftPM loads the package from the copied context: {len(described.get('targets', []))} targets, "
       "every target folder present, no warnings")


def build_command() -> str:
    """The build stage's `swift build` RUN, checked to be nothing but `swift build ...` commands joined by &&."""
    runs = [rest for keyword, rest in dockerfile_stages()[0]["instructions"]
            if keyword == "RUN" and "swift build" in rest]
    if len(runs) != 1:
        fail(DOCKERFILE, f"expected one RUN with `swift build` in the build stage, found {len(runs)}")
    parts = [p.strip() for p in runs[0].split("&&")]
    for part in parts:
        if not part.startswith("swift build ") or any(c in part for c in ";|`$<>"):
            fail(DOCKERFILE, f"the build RUN holds {part!r}: this check runs only plain `swift build` commands")
    return " && ".join(parts)


# ---------------------------------------------------------------------------------------------------------------
# Shared libraries


def runtime_packages() -> set[str]:
    runtime = dockerfile_stages()[-1]
    packages: set[str] = set()
    for keyword, rest in runtime["instructions"]:
        if keyword == "RUN" and "apt-get install" in rest:
            for command in rest.split("&&"):
                words = shlex.split(command)
                if "install" in words and "apt-get" in words[: words.index("install")]:
                    packages |= {w for w in words[words.index("install") + 1:] if not w.startswith("-")}
    if not packages:
        fail(DOCKERFILE, "the runtime stage installs no packages")
    return packages


def package_of(path: str) -> str | None:
    candidates = [path, os.path.realpath(path)]
    for p in list(candidates):
        candidates.append(p[4:] if p.startswith("/usr/") else "/usr" + p)
    for p in candidates:
        result = subprocess.run(["dpkg", "-S", p], capture_output=True, text=True)
        if result.returncode == 0:
            return result.stdout.split(":")[0].strip()
    return None


def check_libraries(context: Path) -> None:
    """Every binary the runtime stage copies from the build stage: each shared library it names (NEEDED) comes from a
    package the runtime stage installs, or from libc6."""
    stages = dockerfile_stages()
    build_workdir = next((rest for keyword, rest in stages[0]["instructions"] if keyword == "WORKDIR"), None)
    installed = runtime_packages() | {"libc6"}
    binaries = []
    for keyword, rest in stages[-1]["instructions"]:
        if keyword != "COPY":
            continue
        sources, _, flags = copy_sources(rest)
        if flags.get("from") != stages[0]["name"]:
            continue
        for source in sources:
            rel = os.path.relpath(source, build_workdir)
            if rel.startswith(".."):
                fail(DOCKERFILE, f"COPY --from: {source} is outside the build stage's WORKDIR {build_workdir}")
            binaries.append(context / rel)
    if not binaries:
        fail(DOCKERFILE, "the runtime stage copies nothing from the build stage")
    for binary in binaries:
        if not binary.is_file():
            fail(str(binary), "was not built, but the runtime stage copies it")
        readelf = subprocess.run(["readelf", "-d", str(binary)], capture_output=True, text=True, check=True).stdout
        needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", readelf)
        ldd = subprocess.run(["ldd", str(binary)], capture_output=True, text=True).stdout
        resolved = dict(re.findall(r"^\s*(\S+) => (\S+)", ldd, flags=re.M))
        resolved.update({Path(p).name: p for p in re.findall(r"^\s*(/\S+) \(", ldd, flags=re.M)})
        packages = {}
        for lib in needed:
            path = resolved.get(lib)
            package = package_of(path) if path else None
            if package is None:
                fail(str(binary), f"needs {lib} ({path or 'not found'}), which no Debian package provides: "
                                  "is the Swift runtime linked statically (--static-swift-stdlib)?")
            if package not in installed:
                fail(DOCKERFILE, f"{binary.name} needs {lib} from {package}, which the runtime stage does not install "
                                 f"(it installs {sorted(installed)})")
            packages[lib] = package
        ok(f"{binary.name}: {len(needed)} shared libraries, all from runtime packages: "
           + ", ".join(f"{lib} ({pkg})" for lib, pkg in packages.items()))


def main(args: list[str]) -> int:
    try:
        if args == ["compose"]:
            check_compose()
        elif args == ["queries"]:
            check_queries()
        elif len(args) == 2 and args[0] == "context":
            check_context(Path(args[1]).resolve())
        elif args == ["build-command"]:
            print(build_command())
        elif len(args) == 2 and args[0] == "libraries":
            check_libraries(Path(args[1]).resolve())
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except CheckFailed as e:
        print(f"check-docker: FAILED: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
