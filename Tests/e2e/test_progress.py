"""A tool that streams progress notifications: through toolgate, every notification reaches the client
intact, in order, and as it happens (toolgate streams SSE event by event, unbuffered)."""

from __future__ import annotations

import json
import time

import pytest

from helpers import handshake_session, http_client, modern_client, post, run_async, sse_events, text_of, tool_call

PROGRESS_POLICY = {
    "version": "1",
    "default": "deny",
    "tools": {"slow_progress": {"limits": [{"counter": "progress_rate", "window": "minute", "max": 100}]}},
}

STEPS = 4
DELAY = 0.25  # seconds between steps: the upstream takes about STEPS * DELAY = 1 s per call


def _session(era: str, url: str):
    return handshake_session(url) if era == "handshake" else modern_client(url)


@pytest.mark.parametrize("era", ["handshake", "per-request"])
def test_progress_notifications_stream_through(mcp_upstream_sse, toolgate, era):
    tg = toolgate(mcp_upstream_sse.url, PROGRESS_POLICY)

    async def body():
        progress: list[tuple[float, float | None, str | None, float]] = []

        async def on_progress(p, total, message):
            progress.append((p, total, message, time.monotonic()))

        async with _session(era, tg.url) as c:
            result = await c.call_tool("slow_progress", {"steps": STEPS, "delay": DELAY}, progress_callback=on_progress)
            done = time.monotonic()
        assert result.is_error is False, result
        assert text_of(result) == f"done after {STEPS} steps"
        assert [(p, t, m) for p, t, m, _ in progress] == [(i, STEPS, f"step {i} of {STEPS}") for i in range(1, STEPS + 1)]
        # Buffered, every notification would arrive together with the result.
        lead = done - progress[0][3]
        assert lead >= (STEPS - 1) * DELAY * 0.6, f"first progress arrived only {lead:.3f} s before the result"

    run_async(body)


@pytest.mark.parametrize("era", ["handshake", "per-request"])
def test_progress_tool_in_json_mode_still_answers(mcp_upstream_json, toolgate, era):
    """The SDK server drops progress in JSON mode (see test_fixtures_direct); the result must still arrive."""
    tg = toolgate(mcp_upstream_json.url, PROGRESS_POLICY)

    async def body():
        async with _session(era, tg.url) as c:
            result = await c.call_tool("slow_progress", {"steps": 2}, progress_callback=None)
        assert result.is_error is False, result
        assert text_of(result) == "done after 2 steps"

    run_async(body)


def test_sse_event_ids_kept(raw_upstream, toolgate):
    """An upstream SSE response is relayed event by event with its event ids."""
    policy = {"version": "1", "default": "deny", "tools": {"sse_stream": {}}}
    tg = toolgate(raw_upstream.url, policy)
    with http_client() as http:
        response = post(http, tg.url, tool_call(21, "sse_stream", {}))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream"), response.headers
    events = [e for e in sse_events(response.text) if "data" in e]
    assert [e.get("id") for e in events] == ["ev-1", "ev-2", "ev-3"], response.text
    payloads = [json.loads(e["data"]) for e in events]
    assert [p.get("method") for p in payloads[:2]] == ["notifications/progress"] * 2
    assert payloads[2]["id"] == 21 and payloads[2]["result"]["content"][0]["text"] == "raw sse_stream done"
