"""An upstream with resource templates, prompts, completions and subscriptions: the official SDK's MCPServer over
Streamable HTTP, for the hidden-resource tests (test_resources_and_prompts.py).

Run: python resource_upstream.py --port PORT [--json-response]

It serves the resource `test://static/readme`, the templates `secret://{name}/token` (a per-user secret) and
`test://items/{item_id}`, and the prompts `summarize(text)` and `internal_debug(topic)`. Like a real server it
refuses what it does not have, naming it: `completion/complete` of an unknown prompt or template, and
`resources/subscribe` / `resources/unsubscribe` of an unknown URI, answer -32602 with the name in the message
(and the URI in `data`).

Every HTTP request to /mcp (method, headers, body) is recorded: GET /_seen returns them as JSON, so a test can
check that a name never reached the upstream in any form.
"""

from __future__ import annotations

import argparse
import json
import re
from typing import Any

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from mcp_types import Completion, EmptyResult, PromptReference, ResourceTemplateReference, SubscribeRequestParams
from mcp_types import UnsubscribeRequestParams
from starlette.requests import Request
from starlette.responses import Response

INVALID_PARAMS = -32602

mcp = MCPServer("toolgate-e2e-resources", log_level="WARNING")

TEMPLATES = ["secret://{name}/token", "test://items/{item_id}"]
PROMPTS = ["summarize", "internal_debug"]
_seen: list[dict[str, Any]] = []
_subscribed: list[str] = []


@mcp.resource("test://static/readme", name="readme", mime_type="text/plain")
def readme() -> str:
    return "the public readme"


@mcp.resource("secret://{name}/token", name="token", mime_type="text/plain")
def token(name: str) -> str:
    return f"sk-live-token-of-{name}"


@mcp.resource("test://items/{item_id}", name="item", mime_type="text/plain")
def item(item_id: str) -> str:
    return f"item {item_id}"


@mcp.prompt()
def summarize(text: str) -> str:
    return f"Summarize: {text}"


@mcp.prompt()
def internal_debug(topic: str) -> str:
    return f"internal debugging instructions about {topic}"


@mcp.completion()
async def complete(ref: Any, argument: Any, context: Any) -> Completion:
    if isinstance(ref, PromptReference):
        if ref.name not in PROMPTS:
            raise MCPError(code=INVALID_PARAMS, message=f"Unknown prompt: {ref.name}")
        return Completion(values=[f"{argument.value}-{ref.name}-1", f"{argument.value}-{ref.name}-2"])
    if isinstance(ref, ResourceTemplateReference):
        if ref.uri not in TEMPLATES:
            raise MCPError(code=INVALID_PARAMS, message=f"Unknown resource template: {ref.uri}", data={"uri": ref.uri})
        return Completion(values=[f"{argument.value}alice", f"{argument.value}bob"])
    return Completion(values=[])


def _known(uri: str) -> bool:
    if uri == "test://static/readme":
        return True
    for template in TEMPLATES:
        pattern = "^" + re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, uri):
            return True
    return False


async def subscribe(ctx: Any, params: SubscribeRequestParams) -> EmptyResult:
    if not _known(params.uri):
        raise MCPError(code=INVALID_PARAMS, message=f"Unknown resource: {params.uri}", data={"uri": params.uri})
    _subscribed.append(params.uri)
    return EmptyResult()


async def unsubscribe(ctx: Any, params: UnsubscribeRequestParams) -> EmptyResult:
    if params.uri not in _subscribed:
        raise MCPError(code=INVALID_PARAMS, message=f"Not subscribed: {params.uri}", data={"uri": params.uri})
    _subscribed.remove(params.uri)
    return EmptyResult()


mcp._lowlevel_server.add_request_handler("resources/subscribe", SubscribeRequestParams, subscribe)
mcp._lowlevel_server.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, unsubscribe)


@mcp.custom_route("/_seen", methods=["GET"])
async def seen(request: Request) -> Response:
    return Response(json.dumps(_seen), media_type="application/json")


class Recorder:
    """ASGI middleware: records every request to /mcp before the server sees it."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/mcp":
            await self.app(scope, receive, send)
            return
        record: dict[str, Any] = {
            "method": scope["method"],
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
            "body": "",
        }
        _seen.append(record)

        async def recording_receive() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                record["body"] += message.get("body", b"").decode("utf-8", "replace")
            return message

        await self.app(scope, recording_receive, send)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--json-response", action="store_true")
    args = parser.parse_args()
    app = mcp.streamable_http_app(streamable_http_path="/mcp", json_response=args.json_response, host="127.0.0.1")
    uvicorn.run(Recorder(app), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
