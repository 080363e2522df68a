"""Issue 9's Redis Cluster checks (DESIGN.md section 7, "Redis Cluster"): several `--redis` seeds of one cluster.

toolgate must find the cluster, send each script to the master of its key's slot, keep limits exact across slots
(a call whose limits span slots is reserve-then-refund), and survive live resharding and a master's failover
without a restart. A healthy six-node cluster (`redis_cluster`) is shared by the tests that leave it as they found
it; the resharding and failover tests each break a cluster of their own (`fresh_redis_cluster`).

Key layout: `<prefix>:{<scope>:<subject>}:<counter>`. The hash tag alone decides the slot, so every `global`
counter lives in the slot of `{global:_}` whatever its name or prefix, and an `agent` counter in the slot of
`{agent:<first 32 hex of sha256(agent id)>}`: the tests pick agent ids, not counter names, to place keys.
"""

from __future__ import annotations

import hashlib
import subprocess
import threading
import time
from contextlib import ExitStack
from typing import Any

import httpx2
import pytest

from conftest import CLUSTER_SLOTS, RedisCluster, RespError, redis_command, redis_pipeline
from helpers import free_port, http_client, post, tool_call
from test_fleet import Load, call_echo, max_in_any_window, readyz, wait_for

GLOBAL_TAG = "global:_"


def agent_tag(agent_id: str) -> str:
    return "agent:" + hashlib.sha256(agent_id.encode()).hexdigest()[:32]


def counter_key(prefix: str, tag: str, counter: str) -> str:
    return f"{prefix}:{{{tag}}}:{counter}"


def echo_policy(*limits: dict[str, Any]) -> dict[str, Any]:
    return {"version": "1", "default": "deny", "tools": {"echo": {"limits": list(limits)}}}


def limit(counter: str, window: Any, max_: int, scope: str) -> dict[str, Any]:
    return {"counter": counter, "window": window, "max": max_, "scope": scope}


def call(http: httpx2.Client, url: str, i: int) -> tuple[str, dict[str, Any]]:
    """Like test_fleet.call_echo ('allowed', a denial reason, or the error), plus the denial object."""
    try:
        response = post(http, url, tool_call(i, "echo", {"text": str(i)}))
    except httpx2.HTTPError as e:
        return f"transport error: {e!r}", {}
    body = response.json()
    if "error" in body:
        return f"error {body['error'].get('code')}", {}
    denial = (body.get("result", {}).get("_meta") or {}).get("toolgate/denial")
    return (denial["reason"], denial) if denial else ("allowed", {})


def wait_ready(tg, timeout: float = 10.0) -> dict[str, Any]:
    """Wait for /readyz to say ready; its body."""
    took = wait_for(lambda: readyz(tg)[1].get("status") == "ready", timeout)
    status, body = readyz(tg)
    assert took is not None, f"/readyz not ready after {timeout:.0f} s: {status} {body}"
    return body


def sliding_entries(port: int, key: str) -> int:
    """Calls logged in a sliding counter (its members scored >= 0; the meta member is scored -1). 0 if no key."""
    return redis_command(port, "ZCOUNT", key, 0, "+inf")


def sliding_total(port: int, key: str) -> int:
    """The running total in a sliding counter's meta member `~<total>~<tag>` (0 if there is no key)."""
    meta = redis_command(port, "ZRANGEBYSCORE", key, -1, -1)
    if not meta:
        return 0
    assert len(meta) == 1 and meta[0].startswith("~"), f"{key}: unexpected meta members {meta!r}"
    return int(meta[0].split("~")[1])


def upstream_calls(raw_upstream) -> int:
    return len([m for m in raw_upstream.seen_messages() if m.get("method") == "tools/call"])


def crc16_xmodem(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


# --- the fixture itself -------------------------------------------------------------------------------------------


def test_the_cluster_fixture_is_three_masters_with_one_replica_each(redis_cluster: RedisCluster):
    """Not toolgate: the cluster the other tests rely on (so a fixture fault is not blamed on toolgate)."""
    masters = redis_cluster.masters()
    assert len(masters) == 3, redis_cluster.nodes()
    assert sum(redis_cluster.slot_count(m) for m in masters) == CLUSTER_SLOTS
    assert all(len(redis_cluster.replicas_of(m)) == 1 for m in masters), redis_cluster.nodes()
    assert sorted(redis_cluster.node_ids()) == sorted(redis_cluster.ports)
    # CLUSTER KEYSLOT hashes only the tag: the prefix and the counter name do not move a key.
    key = counter_key("fixture-check", GLOBAL_TAG, "c")
    slot = redis_cluster.keyslot(key)
    assert slot == crc16_xmodem(GLOBAL_TAG.encode()) % CLUSTER_SLOTS == redis_cluster.keyslot("x:{global:_}:y")
    owner = redis_cluster.master_of(slot)
    assert redis_cluster.command(owner, "SET", key, "1", "PX", 5000) == "OK"
    other = next(m for m in masters if m != owner)
    with pytest.raises(RespError, match=r"^MOVED \d+ 127\.0\.0\.1:%d$" % owner):
        redis_cluster.command(other, "GET", key)
    assert redis_cluster.key_command(key, "DEL", key) == 1


# --- readiness ----------------------------------------------------------------------------------------------------


def test_readyz_describes_the_cluster(raw_upstream, toolgate, redis_cluster: RedisCluster):
    prefix = f"cl-ready{free_port()}"
    tg = toolgate(raw_upstream.url, echo_policy(limit("ready_calls", "minute", 10, "global")),
                  args=redis_cluster.redis_args() + ["--key-prefix", prefix])
    wait_ready(tg)
    # CLUSTER SLOTS lists a replica only once its master has heard (by gossip) that it synced, which can lag the
    # cluster's own health by a second; toolgate reloads the map every second, so the count catches up.
    deadline = time.monotonic() + 5
    while True:
        status, body = readyz(tg)
        if (body.get("store", {}).get("cluster") or {}).get("nodes") == 6 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert status == 200 and body["status"] == "ready", (status, body)
    store = body["store"]
    assert store["kind"] == "redis" and store["connected"] is True, store
    assert isinstance(store.get("warnings"), list), store
    cluster = store.get("cluster")
    assert isinstance(cluster, dict), f"/readyz has no store.cluster object on a cluster: {body}"
    assert cluster.get("nodes") == 6, cluster
    assert cluster.get("masters") == 3, cluster
    assert cluster.get("slotsCovered") == CLUSTER_SLOTS, cluster
    # And the store really is the cluster: a call is counted on the master of the counter's slot.
    with http_client() as http:
        assert call_echo(http, tg.url, 1) == "allowed"
    key = counter_key(prefix, GLOBAL_TAG, "ready_calls")
    assert sliding_entries(redis_cluster.master_of(redis_cluster.keyslot(key)), key) == 1


def test_a_standalone_redis_is_not_taken_for_a_cluster(raw_upstream, toolgate, redis_port):
    prefix = f"cl-standalone{free_port()}"
    tg = toolgate(raw_upstream.url, echo_policy(limit("standalone_calls", "minute", 10, "global")),
                  args=["--redis", f"redis://127.0.0.1:{redis_port}", "--key-prefix", prefix])
    wait_ready(tg)
    status, body = readyz(tg)
    assert status == 200 and body["status"] == "ready", (status, body)
    assert body["store"]["kind"] == "redis" and body["store"]["connected"] is True, body
    assert "cluster" not in body["store"], f"a standalone Redis is reported as a cluster: {body}"
    with http_client() as http:
        assert call_echo(http, tg.url, 1) == "allowed"
    assert sliding_entries(redis_port, counter_key(prefix, GLOBAL_TAG, "standalone_calls")) == 1


# --- exactness across slots ---------------------------------------------------------------------------------------


def pick_agents(cluster: RedisCluster, prefix: str, counter: str, global_slot: int, count: int) -> list[str]:
    """Agent ids whose agent counter sits in a slot below `global_slot`, on another master, each in its own slot.

    Below: toolgate acquires slot by slot in ascending order, so each call reserves its agent counter first and
    must refund it when the global counter then denies: the reserve-then-refund path is really taken."""
    nodes = cluster.nodes()
    global_master = next(n.id for n in nodes if n.is_master and n.owns(global_slot))
    chosen: list[str] = []
    slots: set[int] = set()
    for n in range(1000):
        agent_id = f"cluster-agent-{n}"
        slot = cluster.keyslot(counter_key(prefix, agent_tag(agent_id), counter))
        owner = next(node.id for node in nodes if node.is_master and node.owns(slot))
        if slot < global_slot and owner != global_master and slot not in slots:
            chosen.append(agent_id)
            slots.add(slot)
            if len(chosen) == count:
                return chosen
    pytest.fail(f"no {count} agent ids with a slot below {global_slot} on another master than the global counter's")


def test_limits_in_two_slots_stay_exact_across_three_sidecars(raw_upstream, toolgate, redis_cluster: RedisCluster):
    cluster = redis_cluster
    prefix = f"cl-exact{free_port()}"
    global_max, agent_max = 30, 1000
    policy = echo_policy(limit("fleet_calls", "minute", global_max, "global"),
                         limit("host_calls", "minute", agent_max, "agent"))
    global_key = counter_key(prefix, GLOBAL_TAG, "fleet_calls")
    global_slot = cluster.keyslot(global_key)
    global_master = cluster.master_of(global_slot)
    agents = pick_agents(cluster, prefix, "host_calls", global_slot, 3)
    agent_keys = [counter_key(prefix, agent_tag(a), "host_calls") for a in agents]
    agent_masters = []
    for key in agent_keys:
        slot = cluster.keyslot(key)
        assert slot != global_slot and slot < global_slot, (key, slot, global_slot)
        agent_masters.append(cluster.master_of(slot))
        assert agent_masters[-1] != global_master, (key, slot, agent_masters[-1], global_master)

    # Exactness is what this test judges, not the timeout: a generous --redis-timeout keeps a machine busy with
    # other tests (the suite runs in parallel) from turning calls into store_unavailable.
    sidecars = [toolgate(raw_upstream.url, policy, args=cluster.redis_args() + ["--key-prefix", prefix,
                                                                                  "--agent-id", agent_id,
                                                                                  "--redis-timeout", "2000"])
                for agent_id in agents]
    for tg in sidecars:
        wait_ready(tg)
    raw_upstream.reset()

    # 3 sidecars x 8 clients x 5 calls = 120 calls at once for 30 places.
    per_client, clients_per_sidecar = 5, 8
    outcomes: list[tuple[int, str, dict[str, Any]]] = []  # (sidecar, outcome, denial)
    lock = threading.Lock()
    barrier = threading.Barrier(len(sidecars) * clients_per_sidecar)

    def client(sidecar: int, n: int) -> None:
        with http_client() as http:
            barrier.wait(timeout=30)
            for i in range(per_client):
                outcome, denial = call(http, sidecars[sidecar].url, sidecar * 10_000 + n * 100 + i)
                with lock:
                    outcomes.append((sidecar, outcome, denial))

    threads = [threading.Thread(target=client, args=(s, n)) for s in range(len(sidecars))
               for n in range(clients_per_sidecar)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a client hung"

    assert len(outcomes) == 120
    allowed_by = [sum(1 for s, o, _ in outcomes if s == i and o == "allowed") for i in range(len(sidecars))]
    unexpected = [o for _, o, _ in outcomes if o not in ("allowed", "rate_limited")]
    assert not unexpected, unexpected[:5]
    assert sum(allowed_by) == global_max, (allowed_by, [o for _, o, _ in outcomes])
    for _, outcome, denial in outcomes:
        if outcome == "rate_limited":
            assert (denial.get("counter"), denial.get("scope"), denial.get("limit")) == \
                ("fleet_calls", "global", global_max), denial
    assert upstream_calls(raw_upstream) == global_max

    # The counters, each read on the master of its own slot: only admitted calls are in them.
    assert sliding_entries(global_master, global_key) == global_max
    assert sliding_total(global_master, global_key) == global_max
    for i, key in enumerate(agent_keys):
        assert (sliding_entries(agent_masters[i], key), sliding_total(agent_masters[i], key)) == \
            (allowed_by[i], allowed_by[i]), (agents[i], key, allowed_by)

    # Reserve-then-refund: every further call reserves its agent counter, is denied by the global one, and
    # gives the reservation back. The agent counters do not grow.
    with http_client() as http:
        later = [call(http, sidecars[i % 3].url, 900_000 + i)[0] for i in range(15)]
    assert later == ["rate_limited"] * 15, later
    for i, key in enumerate(agent_keys):
        assert (sliding_entries(agent_masters[i], key), sliding_total(agent_masters[i], key)) == \
            (allowed_by[i], allowed_by[i]), f"{agents[i]}: a denied call left its agent reservation consumed"
    assert sliding_entries(global_master, global_key) == global_max
    assert upstream_calls(raw_upstream) == global_max


# --- live resharding ----------------------------------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_moving_the_counters_slots_under_load_admits_no_more(raw_upstream, toolgate, fresh_redis_cluster, tmp_path):
    """Every slot of the counter's master moves to another master while two sidecars are saturated."""
    cluster: RedisCluster = fresh_redis_cluster
    prefix = f"cl-reshard{free_port()}"
    window, max_ = 2, 10
    # Two global counters, so one slot: the 2 s limit that binds, and an hour-long ledger that never does and so
    # holds every admitted call with its Redis decision time.
    policy = echo_policy(limit("reshard_rate", window, max_, "global"),
                         limit("reshard_ledger", "hour", 1_000_000, "global"))
    rate_key = counter_key(prefix, GLOBAL_TAG, "reshard_rate")
    ledger_key = counter_key(prefix, GLOBAL_TAG, "reshard_ledger")
    slot = cluster.keyslot(rate_key)
    assert cluster.keyslot(ledger_key) == slot
    src = cluster.master_of(slot)
    dst = next(p for p in cluster.masters() if p != src)
    ids = cluster.node_ids()
    moving = cluster.slot_count(src)
    assert moving > 5000, moving

    sidecars = [toolgate(raw_upstream.url, policy, args=cluster.redis_args() + [
        "--key-prefix", prefix, "--agent-id", f"reshard-{i}"]) for i in range(2)]
    for tg in sidecars:
        wait_ready(tg)
    raw_upstream.reset()

    reshard_log = tmp_path / "redis-cli-cluster-reshard.log"
    loads = [Load(tg.url, clients=3) for tg in sidecars]
    with ExitStack() as stack:
        for load in loads:
            stack.enter_context(load)
        time.sleep(1.5)
        before = [r[2] for load in loads for r in load.since(0)]
        assert "allowed" in before and "rate_limited" in before, "the load does not saturate the limit"
        assert redis_command(src, "EXISTS", ledger_key) == 1, "the counter is not on its slot's master"

        reshard_start = time.monotonic()
        argv = ["redis-cli", "--cluster", "reshard", f"127.0.0.1:{src}", "--cluster-from", ids[src],
                "--cluster-to", ids[dst], "--cluster-slots", str(moving), "--cluster-yes"]
        with open(reshard_log, "wb") as log:
            result = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    timeout=200)
        reshard_end = time.monotonic()
        reshard_tail = "\n".join(reshard_log.read_text(errors="replace").splitlines()[-30:])
        assert result.returncode == 0, f"{' '.join(argv)} exited {result.returncode}:\n{reshard_tail}"

        time.sleep(2.5)  # the load goes on against the new owner
        assert cluster.master_of(slot) == dst, cluster.nodes()
        assert cluster.slot_count(src) == 0, cluster.nodes()
        assert redis_command(dst, "EXISTS", ledger_key) == 1, "the counter did not move to the new owner"
        assert redis_command(dst, "EXISTS", rate_key) == 1, "the counter did not move to the new owner"

    records = [r for load in loads for r in load.records]
    outcomes = [r[2] for r in records]
    odd = sorted({o for o in outcomes if o not in ("allowed", "rate_limited", "store_unavailable")})
    assert not odd, odd
    during = [r[2] for r in records if reshard_start <= r[0] < reshard_end]
    after = [r[2] for r in records if r[0] >= reshard_end]
    assert during, "no call was made during the reshard"
    assert "store_unavailable" not in after, \
        f"calls after the reshard were refused: {after.count('store_unavailable')} of {len(after)}"
    assert "allowed" in after and "rate_limited" in after, (after.count("allowed"), after.count("rate_limited"))
    # ASK and MOVED are followed, so the move itself should be all but invisible.
    assert during.count("store_unavailable") <= 0.05 * len(during), \
        f"{during.count('store_unavailable')} of {len(during)} calls during the reshard got store_unavailable"

    # Exactness: the ledger holds each admitted call once, and no interval of one window holds more than max.
    allowed = outcomes.count("allowed")
    ledger = redis_command(dst, "ZRANGEBYSCORE", ledger_key, 0, "+inf", "WITHSCORES")
    times = [int(float(score)) for score in ledger[1::2]]
    assert len(times) == allowed, f"{allowed} calls admitted, {len(times)} in the ledger"
    assert upstream_calls(raw_upstream) == allowed
    assert max_in_any_window(times, window * 1_000_000) <= max_, max_in_any_window(times, window * 1_000_000)
    assert all(tg.proc.popen.poll() is None for tg in sidecars), "a sidecar exited"


# --- failover -----------------------------------------------------------------------------------------------------


@pytest.mark.timeout(180)
@pytest.mark.parametrize("fail_mode", ["closed", "open"])
def test_a_killed_master_is_replaced_without_a_restart(raw_upstream, toolgate, fresh_redis_cluster, fail_mode):
    """SIGKILL the master of the counter's slot: its replica is promoted by the cluster, and toolgate counts on
    it again within seconds. Meanwhile calls follow the fail mode (closed: store_unavailable; open: allowed)."""
    cluster: RedisCluster = fresh_redis_cluster
    prefix = f"cl-failover{free_port()}"
    key = counter_key(prefix, GLOBAL_TAG, "failover_calls")
    slot = cluster.keyslot(key)
    master = cluster.master_of(slot)
    [replica] = cluster.replicas_of(master)
    tg = toolgate(raw_upstream.url, echo_policy(limit("failover_calls", "hour", 1_000_000, "global")),
                  args=cluster.redis_args() + ["--key-prefix", prefix, "--fail-mode", fail_mode])
    wait_ready(tg)
    pid = tg.proc.popen.pid

    with http_client() as http:
        first = [call_echo(http, tg.url, i) for i in range(5)]
        assert first == ["allowed"] * 5, first
        assert sliding_entries(master, key) == 5
        # The replica holds them too before its master dies (replication is asynchronous).
        replicated = wait_for(lambda: redis_pipeline(replica, [("READONLY",), ("ZCOUNT", key, 0, "+inf")])[-1] == 5, 5)
        assert replicated is not None, "the replica never caught up"

        def counted() -> int | None:
            """Calls on the replica's copy of the counter once it is a master; None while it answers MOVED."""
            try:
                return redis_command(replica, "ZCOUNT", key, 0, "+inf", timeout=1.0)
            except (OSError, ConnectionError, RespError):
                return None

        killed_at = time.monotonic()
        cluster.kill(master)
        timeline: list[tuple[float, str, int | None, int | None]] = []  # (since the kill, outcome, before, after)
        healed_after = None
        i = 100
        while time.monotonic() - killed_at < 20:
            before = counted()
            outcome = call_echo(http, tg.url, i)
            after = counted()
            i += 1
            timeline.append((round(time.monotonic() - killed_at, 2), outcome, before, after))
            if outcome == "allowed" and before is not None and after == before + 1:
                healed_after = time.monotonic() - killed_at
                break
            time.sleep(0.1)
        assert healed_after is not None, f"calls were never counted again after the kill: {timeline[-10:]}"
        assert healed_after <= 10.0, (healed_after, timeline)

        outage = [t[1] for t in timeline[:-1]]
        assert outage, f"the first call after the kill was already counted on the replica: {timeline}"
        expected = "store_unavailable" if fail_mode == "closed" else "allowed"
        assert set(outage) == {expected}, timeline

        healed_count = timeline[-1][3]
        assert healed_count is not None and healed_count >= 5 + 1, f"calls counted before the kill were lost: {timeline}"
        # Healed for good: every call is admitted and counted on the promoted replica.
        more = [call_echo(http, tg.url, 1000 + j) for j in range(5)]
        assert more == ["allowed"] * 5, more
    if fail_mode == "closed":
        # Every admitted call was counted, and only those: a refused call that did run late was refunded.
        assert wait_for(lambda: counted() == 5 + 1 + 5, 3) is not None, (counted(), timeline)
    else:
        # Open: calls allowed during the outage were not counted (nowhere to count them); later ones all were.
        assert counted() == healed_count + 5, (counted(), timeline)

    nodes = {n.port: n for n in cluster.nodes()}
    assert nodes[replica].is_master and nodes[replica].owns(slot) and not nodes[replica].failed, nodes[replica]
    assert "fail" in nodes[master].flags, nodes[master]
    assert cluster.master_of(slot) == replica
    assert tg.proc.popen.poll() is None and tg.proc.popen.pid == pid, "toolgate exited"
    body = wait_ready(tg, 5.0)
    assert body["store"]["connected"] is True, body
