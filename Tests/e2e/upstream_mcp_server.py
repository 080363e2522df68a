"""Upstream MCP server for the end-to-end tests: the official SDK's MCPServer over Streamable HTTP.

Run: python upstream_mcp_server.py --port PORT [--json-response], or --stdio to serve on stdin/stdout
Serves POST/GET/DELETE /mcp on 127.0.0.1:PORT, in SSE response mode by default or JSON mode with
--json-response. Both protocol eras are served (the SDK answers initialize and server/discover).

`sleepy(seconds, tag)` sleeps, counting its executions per tag: GET /_executions (a plain HTTP route on the
same port, outside MCP) returns {tag: {"started": n, "finished": n}}, so a test can tell how often the
upstream really ran a call whatever toolgate answered.

`transfer(amount, tag, force, opts)` has typed parameters, so the SDK validates its arguments leniently (pydantic's
lax mode, after parsing JSON held in strings): it records the values it actually ran with, after that coercion, and
GET /_transfers returns {tag: [{"amount": ..., "force": ..., "opts": ...}, ...]}, so a test can see what ran.

`post_message(channel_id, text, tag)`, `fetch_report(apiKey, tag)` (apiKey has a default, used when the key is
absent: unknown keys are ignored), `run_command(command, tag)` (records the command, never runs it) and
`scale(replicas, force, tag)` likewise record the coerced values they ran with: GET /_runs returns
{tag: [{"tool": ..., <parameter>: <value>, ...}, ...]}.

`wizard(rounds, tag)` is a multi-round tool (2026-07-28 `input_required`): it asks one question per round before
the last, carrying the round in its (SDK-sealed) `requestState`; each round it runs is recorded in /_runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections import defaultdict
from typing import Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp_types import Completion, ElicitRequest, ElicitRequestFormParams, InputRequiredResult
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

PROGRESS_STEPS = 5

mcp = MCPServer("toolgate-e2e-upstream", log_level="WARNING")


@mcp.tool()
def imageBackgroundRemoval(image: str) -> str:  # noqa: N802 (the tool name is the contract)
    """Remove the background of an image (a stand-in that echoes what it got)."""
    return f"background removed from {image}"


@mcp.tool()
def echo(text: str) -> str:
    """Echo the text back."""
    return f"echo: {text}"


@mcp.tool()
def other_tool() -> str:
    """A tool the seed policy does not allow."""
    return "other_tool ran"


@mcp.tool()
async def slow_progress(ctx: Context, steps: int = PROGRESS_STEPS, delay: float = 0.0) -> str:
    """Report `steps` progress notifications (`delay` seconds apart), then return."""
    for i in range(1, steps + 1):
        await ctx.report_progress(i, steps, f"step {i} of {steps}")
        if delay > 0:
            await anyio.sleep(delay)
    return f"done after {steps} steps"


_executions: defaultdict[str, dict[str, int]] = defaultdict(lambda: {"started": 0, "finished": 0})


@mcp.tool()
async def sleepy(seconds: float, tag: str = "") -> str:
    """Sleep `seconds`, then return; every execution is counted under `tag` (GET /_executions)."""
    _executions[tag]["started"] += 1
    await anyio.sleep(seconds)
    _executions[tag]["finished"] += 1
    return f"slept {seconds} s"


@mcp.custom_route("/_executions", methods=["GET"])
async def executions(request: Request) -> Response:
    return JSONResponse({tag: dict(counts) for tag, counts in _executions.items()})


_transfers: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)


@mcp.tool()
def transfer(amount: int, tag: str = "", force: bool = False, opts: dict[str, Any] | None = None) -> str:
    """Record the (already validated and coerced) arguments it runs with under `tag` (GET /_transfers)."""
    record = {"amount": amount, "force": force, "opts": opts}
    _transfers[tag].append(record)
    return f"transferred {amount} (force={force}, opts={opts})"


@mcp.custom_route("/_transfers", methods=["GET"])
async def transfers(request: Request) -> Response:
    # json.dumps, not JSONResponse: a record may hold NaN or Infinity (Python's JSON reads and writes them).
    return Response(json.dumps({tag: list(records) for tag, records in _transfers.items()}),
                    media_type="application/json")


_runs: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)

DEFAULT_API_KEY = "Key-admin"


@mcp.tool()
def post_message(channel_id: int, text: str = "", tag: str = "") -> str:
    """Record the channel (an int, after the SDK's coercion) a message would go to (GET /_runs)."""
    _runs[tag].append({"tool": "post_message", "channel_id": channel_id, "text": text})
    return f"posted to channel {channel_id}"


@mcp.tool()
def fetch_report(apiKey: str = DEFAULT_API_KEY, tag: str = "") -> str:  # noqa: N803 (the key is the contract)
    """Record the API key the report would be fetched with; without `apiKey` it is the default (GET /_runs)."""
    _runs[tag].append({"tool": "fetch_report", "apiKey": apiKey})
    return f"report fetched with {apiKey}"


@mcp.tool()
def run_command(command: str, tag: str = "") -> str:
    """Record the command a shell would run (it is never run) (GET /_runs)."""
    _runs[tag].append({"tool": "run_command", "command": command})
    return f"would run {len(command)} characters"


@mcp.tool()
def scale(replicas: int, force: bool = False, tag: str = "") -> str:
    """Record the replica count and force flag a deployment would be scaled with (GET /_runs)."""
    _runs[tag].append({"tool": "scale", "replicas": replicas, "force": force})
    return f"scaled to {replicas} (force={force})"


# Resources and prompts, for the policy's `resources` and `prompts` sections (test_resources_and_prompts.py).
@mcp.resource("test://static/readme", name="readme", mime_type="text/plain")
def readme() -> str:
    return "the public readme"


@mcp.resource("secret://keys", name="keys", mime_type="text/plain")
def keys() -> str:
    return "sk-live-do-not-leak"


@mcp.resource("test://items/{item_id}", name="item", mime_type="text/plain")
def item(item_id: str) -> str:
    return f"item {item_id}"


@mcp.prompt()
def summarize(text: str) -> str:
    return f"Summarize: {text}"


@mcp.prompt()
def internal_debug() -> str:
    return "internal debugging instructions"


@mcp.tool()
async def wizard(ctx: Context, rounds: int = 3, tag: str = "") -> str | InputRequiredResult:
    """Needs one answer from the user per round before the last (2026-07-28 `input_required`).

    The round reached travels in `requestState` (sealed by the SDK, so a forged one is refused by this server);
    the answers so far travel with it. Each execution is recorded per tag: GET /_runs shows them.
    """
    state = json.loads(ctx.request_state) if ctx.request_state else {"round": 1, "answers": []}
    answers = list(state["answers"])
    for response in (ctx.input_responses or {}).values():
        content = getattr(response, "content", None) or {}
        answers.append(content.get("answer"))
    _runs[tag].append({"tool": "wizard", "round": state["round"], "answers": answers})
    if state["round"] < rounds:
        question = ElicitRequest(params=ElicitRequestFormParams(
            message=f"answer {state['round']} of {rounds - 1}?",
            requested_schema={"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]},
        ))
        return InputRequiredResult(
            input_requests={f"q{state['round']}": question},
            request_state=json.dumps({"round": state["round"] + 1, "answers": answers}),
        )
    return f"wizard done after {rounds} rounds: {answers}"


@mcp.custom_route("/_runs", methods=["GET"])
async def runs(request: Request) -> Response:
    return Response(json.dumps({tag: list(records) for tag, records in _runs.items()}),
                    media_type="application/json")


@mcp.tool()
def crash(code: int = 3) -> str:
    """Exit the whole server at once, mid-call (for the stdio upstream's fault tests)."""
    os._exit(code)


@mcp.tool()
def flood_stderr(lines: int = 10000, tag: str = "") -> str:
    """Write `lines` lines to stderr, then answer."""
    for i in range(lines):
        sys.stderr.write(f"flood {tag} line {i} " + "x" * 100 + "\n")
    sys.stderr.flush()
    return f"wrote {lines} lines to stderr"


class Answer(BaseModel):
    answer: str


@mcp.tool()
async def ask(ctx: Context, question: str = "ok?") -> str:
    """Ask the client (elicitation, a request of the server's own mid-call), then say what came back."""
    result = await ctx.elicit(question, Answer)
    data = getattr(result, "data", None)
    return f"{result.action}: {data.answer if data else ''}"


@mcp.tool()
def executions(tag: str) -> str:
    """`sleepy`'s counts for `tag` as JSON, for a stdio server, which has no /_executions route."""
    return json.dumps(_executions[tag])


@mcp.tool()
def getenv(name: str) -> str:
    """An environment variable of the server's process, or "<unset>" (what a stdio server was given)."""
    return os.environ.get(name, "<unset>")


# The stdio wire, taken before the SDK diverts fd 1 to stderr (it guards its stdout).
_wire = 1
_waiters: dict[str, int] = defaultdict(int)
_sent: dict[str, threading.Event] = defaultdict(threading.Event)


_NOTIFICATIONS = {
    "log": {"method": "notifications/message", "params": {"level": "warning", "logger": "e2e", "data": "log {tag}"}},
    "resource_updated": {"method": "notifications/resources/updated", "params": {"uri": "file:///{tag}"}},
    "progress": {"method": "notifications/progress", "params": {"progressToken": "made-up-{tag}", "progress": 1}},
    "tools_list_changed": {"method": "notifications/tools/list_changed"},
    "resources_list_changed": {"method": "notifications/resources/list_changed"},
    "prompts_list_changed": {"method": "notifications/prompts/list_changed"},
}


@mcp.tool()
async def notify_later(kind: str, tag: str, waiters: int = 1) -> str:
    """Answer at once; then, once `waiters` calls of `wait_sent(tag)` are in flight, write one notification of the
    server's own that belongs to no request (stdio only: it is written straight to stdout, one whole line, as a
    server's background work would): "log" (notifications/message), "resource_updated", "progress" (with a token no
    request gave), or "tools_list_changed", "resources_list_changed", "prompts_list_changed"."""
    message = json.loads(json.dumps(_NOTIFICATIONS[kind]).replace("{tag}", tag))
    line = json.dumps({"jsonrpc": "2.0", **message}).encode() + b"\n"

    def later() -> None:
        deadline = time.monotonic() + 30
        while _waiters[tag] < waiters and time.monotonic() < deadline:
            time.sleep(0.02)
        os.write(_wire, line)  # one write of a short line: whole, never interleaved with the SDK's own lines
        _sent[tag].set()

    threading.Thread(target=later, daemon=True).start()
    return f"will send {kind}"


@mcp.tool()
async def wait_sent(tag: str) -> str:
    """Stay in flight until `notify_later(tag)`'s notification has been written (it is on stdout before this answer)."""
    _waiters[tag] += 1
    with anyio.fail_after(30):
        while not _sent[tag].is_set():
            await anyio.sleep(0.02)
    return f"sent {tag}"


@mcp.tool()
def whoami() -> str:
    """The server's process id: a restarted stdio server answers with another."""
    return str(os.getpid())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int)
    parser.add_argument("--json-response", action="store_true")
    parser.add_argument("--stdio", action="store_true", help="serve on stdin/stdout instead of HTTP")
    parser.add_argument("--tag", help="also serve tagged://TAG/about, a resource no other instance has")
    parser.add_argument("--tools-page-size", type=int, help="answer tools/list in pages of N (the cursor: an offset)")
    args = parser.parse_args()
    if args.tools_page_size:
        from mcp_types import ListToolsResult, PaginatedRequestParams

        size = args.tools_page_size

        async def paged(ctx: Any, params: PaginatedRequestParams | None) -> ListToolsResult:
            tools = await mcp.list_tools()
            start = int(params.cursor) if params is not None and params.cursor else 0
            end = start + size
            return ListToolsResult(tools=tools[start:end], next_cursor=str(end) if end < len(tools) else None)

        mcp._lowlevel_server.add_request_handler("tools/list", PaginatedRequestParams, paged)
    if args.tag:
        tag = args.tag
        mcp.resource(f"tagged://{tag}/about", name=f"about-{tag}", mime_type="text/plain")(lambda: f"about {tag}")

        async def complete(ref: Any, argument: Any, context: Any) -> Completion:
            """Completions that say which server gave them (the merged endpoint routes by the ref)."""
            return Completion(values=[f"{tag}:{getattr(ref, 'name', None) or getattr(ref, 'uri', '')}:{argument.value}"])

        mcp.completion()(complete)
    if args.stdio:
        global _wire
        _wire = os.dup(1)
        mcp.run(transport="stdio")
        return
    if args.port is None:
        parser.error("--port is required unless --stdio")
    mcp.run(
        transport="streamable-http",
        host="127.0.0.1",
        port=args.port,
        streamable_http_path="/mcp",
        json_response=args.json_response,
    )


if __name__ == "__main__":
    main()
