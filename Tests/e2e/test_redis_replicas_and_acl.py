"""Issue 25 items 3 and 4 (DESIGN.md section 7, "Connecting to the Redis users run").

- `--redis-wait-replicas 1` against a real master and replica (`--replicaof`): a call is admitted once the replica
  holds its write; with the replica gone the call is refused `store_unavailable`, its charge given back (the
  counter is unchanged) and `toolgate_store_operations_total{result="not_replicated"}` counts it.
- A Redis ACL user with exactly README's rules, `CONFIG` and `INFO` denied: limits and refunds work through
  `redis://toolgate:pass@…`, `/readyz` warns that `maxmemory-policy` could not be read, and every connection is named
  `toolgate:<agent-id>`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conftest import RedisServer, toolgate_binary
from helpers import SEED_POLICY, free_port, http_client, post, readyz, tool_call, wait_for
from test_fleet import call_echo, fleet_policy
from test_operations import metric
from test_redis_faults import counter_key, forwarded_ids, sliding_log, wait_ready


def calls(tg: Any, ids: range) -> list[str]:
    with http_client() as http:
        return [call_echo(http, tg.url, i) for i in ids]


def start_pair(procs: Any, tmp_path: Path) -> tuple[RedisServer, RedisServer]:
    """A master and a replica that finished its first sync."""
    (tmp_path / "master").mkdir()
    (tmp_path / "replica").mkdir()
    master = RedisServer(procs, free_port(), tmp_path / "master", args=["--repl-diskless-sync-delay", "0"])
    master.start()
    replica = RedisServer(procs, free_port(), tmp_path / "replica", args=["--replicaof", "127.0.0.1", str(master.port)])
    replica.start()
    # Synced, and acknowledging: a replica just past its first sync may not answer WAIT for a moment.
    linked = wait_for(lambda: "master_link_status:up" in replica.command("INFO", "replication")
                      and master.command("WAIT", 1, 100) == 1, 20)
    if not linked:
        pytest.fail(f"the replica never synced:\n{replica.command('INFO', 'replication')}")
    return master, replica


def test_wait_replicas_admits_with_the_replica_and_refunds_and_refuses_without(raw_upstream, toolgate, procs, tmp_path):
    # Would catch: admitting without WAIT (the calls after the replica died would be "allowed"); WAIT on another
    # connection than the script's (it counts that connection's writes, none, and answers at once); a refused call
    # left charged (the counter would hold 3).
    master, replica = start_pair(procs, tmp_path)
    prefix = f"wait{free_port()}"
    key = counter_key(prefix)
    tg = toolgate(raw_upstream.url, fleet_policy(3600, 10),
                  args=["--redis", master.url, "--key-prefix", prefix, "--redis-wait-replicas", "1",
                        "--redis-timeout", "1000"])
    wait_ready(tg)
    assert calls(tg, range(1, 3)) == ["allowed"] * 2
    # Admitted only once the replica held the write: it is there when the answer is.
    assert sliding_log(replica.command, key)[1] == 2

    replica.kill()
    refused = calls(tg, range(10, 13))
    assert refused == ["store_unavailable"] * 3, refused
    assert sliding_log(master.command, key)[1] == 2
    assert metric(tg, "toolgate_store_operations_total", result="not_replicated") == 3
    assert sorted(forwarded_ids(raw_upstream)) == [1, 2]


def test_wait_replicas_under_fail_mode_open_admits_and_keeps_the_charge(raw_upstream, toolgate, procs, tmp_path):
    master, replica = start_pair(procs, tmp_path)
    prefix = f"waitopen{free_port()}"
    key = counter_key(prefix)
    tg = toolgate(raw_upstream.url, fleet_policy(3600, 10),
                  args=["--redis", master.url, "--key-prefix", prefix, "--redis-wait-replicas", "1",
                        "--redis-timeout", "1000", "--fail-mode", "open"])
    wait_ready(tg)
    replica.kill()
    assert calls(tg, range(1, 3)) == ["allowed"] * 2
    assert metric(tg, "toolgate_tool_calls_total", tool="echo", decision="allowed_store_unavailable") == 2
    assert sliding_log(master.command, key)[1] == 2


ACL_RULES = re.search(r"^ACL SETUSER toolgate on '>PASSWORD' (.*)$",
                      (Path(__file__).resolve().parents[2] / "README.md").read_text(), re.M)


def test_the_documented_acl_user_runs_limits_and_refunds_without_config(raw_upstream, toolgate, redis_server):
    assert ACL_RULES, "README lost its ACL SETUSER line"
    rules = [r.strip("'") for r in ACL_RULES.group(1).split()]
    # CONFIG and INFO denied, as a managed service does.
    rules = [r for r in rules if r not in ("+config|get", "+info")]
    assert redis_server.command("ACL", "SETUSER", "toolgate", "on", ">tg-pass-3", *rules) == "OK"
    prefix = "toolgate"
    key = counter_key(prefix)
    tg = toolgate(raw_upstream.url, fleet_policy(3600, 3),
                  args=["--redis", f"redis://toolgate:tg-pass-3@127.0.0.1:{redis_server.port}",
                        "--agent-id", "acl agent 1"])
    assert wait_for(lambda: any("could not read maxmemory-policy (CONFIG GET refused: NOPERM" in w
                                for w in readyz(tg)[1]["store"].get("warnings", [])), 15), readyz(tg)
    status, body = readyz(tg)
    assert status == 200 and body["status"] == "ready", body

    # A refund: the upstream refuses the call up front (HTTP 400, -32602), so its charge is given back.
    raw_upstream.set_mode("tools/call", "status", times=1, status=400,
                          error={"code": -32602, "message": "invalid params"})
    with http_client() as http:
        post(http, tg.url, tool_call(1, "echo", {"text": "refused upstream"}))
    assert wait_for(lambda: sliding_log(redis_server.command, key)[1] == 0, 5), sliding_log(redis_server.command, key)
    assert calls(tg, range(10, 15)) == ["allowed"] * 3 + ["rate_limited"] * 2
    assert sliding_log(redis_server.command, key)[1] == 3
    # Every connection of this sidecar carries its name, the agent id's space made "_".
    clients = redis_server.command("CLIENT", "LIST")
    assert clients.count("name=toolgate:acl_agent_1 ") >= 2, clients
    assert "user=toolgate" in clients


@pytest.mark.parametrize("args,env,message", [
    (["--redis-wait-replicas=-1", "--redis", "redis://127.0.0.1:1"], {}, "--redis-wait-replicas must be a number"),
    (["--redis-wait-replicas", "two", "--redis", "redis://127.0.0.1:1"], {}, "--redis-wait-replicas must be a number"),
    (["--redis-wait-replicas", "1"], {}, "--redis-wait-replicas needs --redis"),
    ([], {"TOOLGATE_REDIS_WAIT_REPLICAS": "1"}, "--redis-wait-replicas needs --redis"),
], ids=["negative", "not-a-number", "no-redis", "env-no-redis"])
def test_wait_replicas_is_checked_at_start(raw_upstream, tmp_path, args, env, message):
    policy = tmp_path / "p.json"
    policy.write_text(json.dumps(SEED_POLICY))
    for command in (["serve", "--upstream", raw_upstream.url], ["stdio", "--upstream", raw_upstream.url]):
        result = subprocess.run([toolgate_binary(), *command, "--policy", str(policy), *args], capture_output=True,
                                text=True, timeout=30, env={**os.environ, **env}, stdin=subprocess.DEVNULL)
        assert result.returncode == 64, (command, result)
        assert message in result.stderr, result.stderr
