"""Fleet-wide limits through one Redis (DESIGN.md section 7): several sidecars, one limit.

Each test starts its own redis-server on a free loopback port, so it can kill, restart and pause it.
"""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest

from conftest import RedisServer
from helpers import free_port, http_client, post, readyz, tool_call


def admitted_times(tg) -> list[int]:
    """Redis decision times (µs) of every call this sidecar admitted, from its debug log."""
    times = []
    for line in Path(tg.proc.log_path).read_text(errors="replace").splitlines():
        if "tool call admitted" in line:
            match = re.search(r"decidedAtMicros=(\d+)", line)
            assert match, line
            times.append(int(match.group(1)))
    return times


def max_in_any_window(times: list[int], window_us: int) -> int:
    """The most admissions in any half-open interval (t - window, t]; the worst intervals end at an admission."""
    times = sorted(times)
    best, start = 0, 0
    for end in range(len(times)):
        while times[start] <= times[end] - window_us:
            start += 1
        best = max(best, end - start + 1)
    return best


def fleet_policy(window: int, limit: int, algorithm: str = "sliding") -> dict[str, Any]:
    return {"version": "1", "default": "deny", "tools": {"echo": {"limits": [
        {"counter": "fleet", "window": window, "max": limit, "scope": "global", "algorithm": algorithm}]}}}


def call_echo(http: httpx2.Client, url: str, i: int) -> str:
    """Returns 'allowed', a denial reason, or the error."""
    try:
        response = post(http, url, tool_call(i, "echo", {"text": str(i)}))
    except httpx2.HTTPError as e:
        return f"transport error: {e!r}"
    body = response.json()
    if "error" in body:
        return f"error {body['error'].get('code')}"
    denial = (body.get("result", {}).get("_meta") or {}).get("toolgate/denial")
    return denial["reason"] if denial else "allowed"


def saturate_and_check_exactness(sidecars: list[Any], raw_upstream: Any, window: int, limit: int, seconds: float) -> None:
    """36 clients over the sidecars, in bursts at the edges of half-windows for `seconds`; then: no interval of one
    window admitted more than `limit` across them all, and nearly the whole budget was used."""
    raw_upstream.reset()
    stop_at = time.time() + seconds
    outcomes: list[str] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        url = sidecars[n % len(sidecars)].url
        with http_client() as http:
            i = 0
            while time.time() < stop_at:
                # Bursts aligned to the edges of half-windows, where fixed windows and slides are weakest.
                edge = (int(time.time() / (window / 2)) + 1) * (window / 2)
                pause = edge - time.time() - 0.01 * (n % 3)
                if pause > 0:
                    time.sleep(min(pause, max(0.0, stop_at - time.time())))
                for _ in range(4):
                    result = call_echo(http, url, n * 100000 + i)
                    i += 1
                    with lock:
                        outcomes.append(result)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(36)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a client hung"

    times = [t for tg in sidecars for t in admitted_times(tg)]
    allowed = outcomes.count("allowed")
    unexpected = [o for o in outcomes if o not in ("allowed", "rate_limited")]
    assert not unexpected, unexpected[:5]
    assert len(times) == allowed, (len(times), allowed)
    assert len([m for m in raw_upstream.seen_messages() if m.get("method") == "tools/call"]) == allowed
    # Exactness: no interval of one window holds more than the limit, across the sidecars.
    assert max_in_any_window(times, window * 1_000_000) <= limit
    # Liveness: under saturation nearly the whole budget is used: at least 80 % of limit per window.
    assert allowed >= 0.8 * limit * (seconds / window) - limit, (allowed, len(outcomes))
    assert len(outcomes) > 3 * allowed, "the clients did not saturate the limit"


def test_three_sidecars_never_exceed_the_limit_together(raw_upstream, toolgate, redis_server):
    window, limit, seconds = 2, 20, 7.0
    prefix = f"fleet{free_port()}"
    sidecars = [toolgate(raw_upstream.url, fleet_policy(window, limit),
                         args=["--redis", redis_server.url, "--key-prefix", prefix, "--agent-id", f"host-{i}"])
                for i in range(3)]
    saturate_and_check_exactness(sidecars, raw_upstream, window, limit, seconds)


def test_shifted_host_clocks_do_not_matter(raw_upstream, toolgate, redis_server):
    prefix = f"skew{free_port()}"
    policy = fleet_policy(60, 10)
    early = toolgate(raw_upstream.url, policy, args=["--redis", redis_server.url, "--key-prefix", prefix],
                     wrapper=["faketime", "-f", "-600"])
    late = toolgate(raw_upstream.url, policy, args=["--redis", redis_server.url, "--key-prefix", prefix],
                    wrapper=["faketime", "-f", "+600"])
    results = []
    with http_client() as http:
        for i in range(16):
            results.append(call_echo(http, (early if i % 2 else late).url, i))
        denied = post(http, early.url, tool_call(99, "echo", {"text": "x"})).json()
    assert results.count("allowed") == 10, results
    assert results[10:] == ["rate_limited"] * 6, results
    retry = denied["result"]["_meta"]["toolgate/denial"]["retryAfterSeconds"]
    assert 1 <= retry <= 60, retry
    # The sidecars really ran twenty minutes apart: their log timestamps show it.
    def first_log_year_minute(tg) -> str:
        return Path(tg.proc.log_path).read_text(errors="replace").splitlines()[0][:16]
    assert first_log_year_minute(early) != first_log_year_minute(late)
    # And every decision time came from Redis, within seconds of the real clock.
    now_us = time.time() * 1e6
    for t in admitted_times(early) + admitted_times(late):
        assert abs(t - now_us) < 30e6, (t, now_us)


class Load:
    """A steady stream of calls from a few clients, recording when each answer came and what it was."""

    def __init__(self, url: str, clients: int = 4) -> None:
        self.url = url
        self.records: list[tuple[float, float, str]] = []  # (sent, answered, outcome)
        self.lock = threading.Lock()
        self.running = True
        self.threads = [threading.Thread(target=self._run, args=(n,)) for n in range(clients)]

    def _run(self, n: int) -> None:
        with http_client() as http:
            i = 0
            while self.running:
                sent = time.monotonic()
                outcome = call_echo(http, self.url, n * 1_000_000 + i)
                with self.lock:
                    self.records.append((sent, time.monotonic(), outcome))
                i += 1
                time.sleep(0.01)

    def __enter__(self) -> "Load":
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.running = False
        for t in self.threads:
            t.join(timeout=30)
        assert not any(t.is_alive() for t in self.threads), "a client hung"

    def since(self, t: float) -> list[tuple[float, float, str]]:
        with self.lock:
            return [r for r in self.records if r[0] >= t]


def wait_for(predicate, timeout: float) -> float | None:
    """Seconds until `predicate()` held, or None."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.02)
    return None


@pytest.mark.parametrize("fail_mode", ["closed", "open"])
def test_redis_faults_follow_the_fail_mode_and_heal(raw_upstream, toolgate, redis_server, fail_mode):
    prefix = f"fault{free_port()}"
    tg = toolgate(raw_upstream.url, fleet_policy(60, 1_000_000),
                  args=["--redis", redis_server.url, "--key-prefix", prefix, "--fail-mode", fail_mode,
                        "--redis-timeout", "100"])
    outage_answer = "store_unavailable" if fail_mode == "closed" else "allowed"
    outage_ready = (503, "not_ready") if fail_mode == "closed" else (200, "degraded")
    assert wait_for(lambda: readyz(tg)[1]["status"] == "ready", 5) is not None, readyz(tg)

    with Load(tg.url) as load:
        # Waits for the state, not a fixed time: a busy machine may take a while to answer the first calls.
        assert wait_for(lambda: load.since(0), 30) is not None, "no call completed"
        assert {r[2] for r in load.since(0)} == {"allowed"}

        for fault in ("kill", "pause"):
            start = time.monotonic()
            if fault == "kill":
                redis_server.kill()
            else:
                redis_server.signal(signal.SIGSTOP)
            # Calls that started once the outage was under way: some must complete, or requests hang.
            assert wait_for(lambda: len(load.since(start + 0.5)) >= 3, 30) is not None, \
                "no calls completed during the outage: requests hang"
            during = [r for r in load.since(start + 0.5)]
            assert {r[2] for r in during} == {outage_answer}, (fault, {r[2] for r in during})
            # Refusals come within the Redis timeout, not after a hang (a bound generous enough for a loaded machine,
            # far below a hang).
            assert max(r[1] - r[0] for r in during) < 5.0, (fault, max(r[1] - r[0] for r in during))
            status, body = readyz(tg)
            assert (status, body["status"]) == outage_ready, (fault, status, body)
            assert body["store"]["connected"] is False

            healed_at = time.monotonic()
            if fault == "kill":
                redis_server.start()
            else:
                redis_server.signal(signal.SIGCONT)
            # Served again within about 2 s of Redis's return (DESIGN section 7); the bound leaves room for a machine
            # busy with other tests, and still fails a reconnect that waits for a restart or never happens.
            if fail_mode == "closed":
                took = wait_for(lambda: any(r[2] == "allowed" for r in load.since(healed_at)), 10)
                assert took is not None and took < 6.0, (fault, took)
            took = wait_for(lambda: readyz(tg)[1]["status"] == "ready", 10)
            assert took is not None and took < 6.0, (fault, took)
            time.sleep(0.3)

    assert tg.proc.popen.poll() is None, "toolgate exited during the faults"
    assert all(r[2] in ("allowed", "store_unavailable") for r in load.records), {r[2] for r in load.records}


def test_an_evicting_redis_is_reported(raw_upstream, toolgate, procs, tmp_path):
    lossy = RedisServer(procs, free_port(), tmp_path, eviction="allkeys-lru")
    lossy.start()
    tg = toolgate(raw_upstream.url, fleet_policy(60, 10), args=["--redis", lossy.url])
    assert wait_for(lambda: readyz(tg)[1]["store"]["warnings"] != [], 5) is not None, readyz(tg)
    status, body = readyz(tg)
    assert status == 200 and body["status"] == "ready", body
    assert body["store"]["kind"] == "redis" and body["store"]["connected"] is True, body
    assert any("allkeys-lru" in w and "noeviction" in w for w in body["store"]["warnings"]), body
    assert "allkeys-lru" in Path(tg.proc.log_path).read_text(errors="replace")
