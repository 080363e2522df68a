"""Issue 7 item 6: a counter whose algorithm or window changes on a policy reload starts fresh, in both stores
alike, never an error (DESIGN section 7).

One counter `c` (max 2, scope grant) on `echo`, in front of the raw upstream. It starts as `sliding` per minute;
each reload (rewrite the file, SIGHUP, wait until /readyz reports the new sha256) changes its algorithm or its
window, and after each the counter starts over: two calls pass, the third is `rate_limited`. No call ever gets
`store_unavailable`, and under `--fail-mode open` the limit still holds (a store error there would let the third
call through silently). A reload that leaves the counter as it was must not reset it.

Runs on the embedded store and on Redis (TOOLGATE_TEST_REDIS_PORT, or a redis-server of our own), each Redis run
under its own key prefix, with `--fail-mode closed` (the default) and `open`.
"""

from __future__ import annotations

import hashlib
import json
import signal
import time
import uuid
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from helpers import assert_rate_limited_denial, final_response, http_client, post, tool_call

WINDOW_SECONDS = {"minute": 60, "hour": 3600}

# (algorithm, window) in force after each reload; the first is the policy toolgate starts with. The last goes
# back to the first: the sliding log of the first phase is still inside its minute, and must not count again.
PHASES = [
    ("sliding", "minute"),
    ("fixed", "minute"),
    ("token_bucket", "minute"),
    ("token_bucket", "hour"),
    ("sliding", "minute"),
]


def policy(algorithm: str, window: str, description: str = "") -> dict[str, Any]:
    document: dict[str, Any] = {
        "version": "1",
        "default": "deny",
        "tools": {"echo": {"limits": [{"counter": "c", "window": window, "max": 2, "algorithm": algorithm}]}},
    }
    if description:
        document["description"] = description
    return document


# --- stores ---------------------------------------------------------------------------------------------------


@pytest.fixture(params=["memory", "redis", "memory-fail-open", "redis-fail-open"])
def store_args(request: pytest.FixtureRequest) -> list[str]:
    args: list[str] = []
    if request.param.startswith("redis"):
        port = request.getfixturevalue("redis_port")
        args += ["--redis", f"redis://127.0.0.1:{port}", "--key-prefix", f"tg-e2e-counter-{uuid.uuid4().hex[:12]}"]
    if request.param.endswith("fail-open"):
        args += ["--fail-mode", "open"]
    return args


# --- helpers ----------------------------------------------------------------------------------------------------


def denial(answer: dict[str, Any]) -> dict[str, Any] | None:
    result = answer.get("result")
    if not isinstance(result, dict):
        return None
    value = (result.get("_meta") or {}).get("toolgate/denial")
    return value if isinstance(value, dict) else None


def passed(answer: dict[str, Any]) -> bool:
    return isinstance(answer.get("result"), dict) and answer["result"].get("isError") is False


def readyz(tg) -> dict[str, Any]:
    with http_client() as http:
        return http.get(f"{tg.base}/readyz").json()


def reload(tg, document: dict[str, Any]) -> None:
    """Rewrite the policy file, SIGHUP, and wait (a few seconds at most) until /readyz reports its sha256."""
    tg.policy_path.write_text(json.dumps(document, indent=2))
    want = hashlib.sha256(tg.policy_path.read_bytes()).hexdigest()
    tg.proc.popen.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if readyz(tg)["policy"]["sha256"] == want:
            return
        time.sleep(0.05)
    pytest.fail(f"/readyz did not report the reloaded policy {want} within 5 s: {readyz(tg)!r}")


def clear_of_minute_edge(margin: float = 3.0) -> None:
    """A fixed window is a calendar-aligned UTC minute: start its phase well inside one."""
    into = time.time() % 60
    if into > 60 - margin:
        time.sleep(60 - into + 0.1)


class Caller:
    def __init__(self, http, tg) -> None:
        self.http, self.tg, self.mid = http, tg, 0

    def echo(self) -> dict[str, Any]:
        self.mid += 1
        response = post(self.http, self.tg.url, tool_call(self.mid, "echo", {"text": f"call {self.mid}"}))
        assert response.status_code == 200, f"HTTP {response.status_code}: {response.text!r}"
        return final_response(response)

    def expect_fresh_counter(self, algorithm: str, window: str) -> None:
        """Two calls pass, the third is rate limited by `c` (nothing else: no store_unavailable)."""
        answers = [self.echo() for _ in range(3)]
        what = f"{algorithm}/{window}"
        for n, answer in enumerate(answers[:2], start=1):
            assert passed(answer), f"{what}: call {n} of a fresh counter (max 2) did not pass: {answer!r}"
        third = denial(answers[2])
        assert third is not None, f"{what}: the third call was let through (limit 2): {answers[2]!r}"
        assert_rate_limited_denial(third, rule="echo", counter="c", limit=2, scope="grant", window=window,
                                   window_seconds=WINDOW_SECONDS[window])


def samples(tg) -> list:
    with http_client() as http:
        text = http.get(f"{tg.base}/metrics").text
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


# --- the test ---------------------------------------------------------------------------------------------------


def test_counter_starts_fresh_when_its_algorithm_or_window_changes(raw_upstream, toolgate, store_args):
    first_algorithm, first_window = PHASES[0]
    tg = toolgate(raw_upstream.url, policy(first_algorithm, first_window), args=store_args)
    with http_client() as http:
        caller = Caller(http, tg)
        caller.expect_fresh_counter(first_algorithm, first_window)

        # A reload that leaves the counter as it was keeps its state: no free calls by reloading.
        reload(tg, policy(first_algorithm, first_window, description="same counter, new file"))
        unchanged = caller.echo()
        assert (denial(unchanged) or {}).get("reason") == "rate_limited", \
            f"a reload that did not change counter c reset it: {unchanged!r}"

        for algorithm, window in PHASES[1:]:
            reload(tg, policy(algorithm, window))
            if algorithm == "fixed":
                clear_of_minute_edge()
            caller.expect_fresh_counter(algorithm, window)
            assert readyz(tg)["status"] == "ready", readyz(tg)

    forwarded = [m for m in raw_upstream.seen_messages() if m.get("method") == "tools/call"]
    assert len(forwarded) == 2 * len(PHASES), f"{len(forwarded)} calls reached the upstream, expected {2 * len(PHASES)}"
    all_samples = samples(tg)
    decisions = {s.labels["decision"]: s.value for s in all_samples
                 if s.name == "toolgate_tool_calls_total" and s.labels.get("tool") == "echo"}
    assert decisions == {"allowed": 2 * len(PHASES), "rate_limited": len(PHASES) + 1}, decisions
    store_results = {s.labels["result"]: s.value for s in all_samples if s.name == "toolgate_store_operations_total"}
    assert set(store_results) <= {"ok"}, f"store operations failed: {store_results}"
