"""The MCP server itself, on the official SDK's low-level ``Server``: the tools of
``fleetbus.mcp.tools`` and three resources, served over stdio or streamable HTTP.

Why the low-level server: each identity gets its own tool list, and a tool's input schema
names the roles that identity may address (an enum built from the fleet file at start), so
the schemas come from pydantic models, adjusted per identity, not from Python signatures.

Every tool call ends in a result: a refusal, bad arguments or a failure of fleetbus is a tool
error (``isError``) whose text says why; nothing a host sends stops the server.

Over HTTP the server binds 127.0.0.1 unless told otherwise, and anywhere else only with a
bearer token: whoever reaches the port acts with the role's credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping, Sequence
from typing import Any

import mcp_types as types
import uvicorn
from mcp.server import Server
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError
from pydantic import ValidationError

from fleetbus._version import __version__
from fleetbus.errors import FleetbusError
from fleetbus.fleet import FleetSpec
from fleetbus.js.connection import ConnectSettings
from fleetbus.mcp.calls import FleetCalls, explain
from fleetbus.mcp.tools import ToolDef, offered_tools

__all__ = ["MCP_PATH", "build_server", "is_loopback", "serve"]

log = logging.getLogger("fleetbus.mcp")

MCP_PATH = "/mcp"
FLEET_URI = "fleetbus://fleet"
INBOX_URI = "fleetbus://inbox"
TASK_URI = "fleetbus://tasks/{role}/{task_id}"
_TASKS = "fleetbus://tasks/"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]


def build_server(calls: FleetCalls, tools: Sequence[ToolDef[Any]]) -> Server[Any]:
    """An MCP server offering ``tools`` (and the resources) over ``calls``."""
    reach = calls.reach
    by_name = {t.name: t for t in tools}
    listed = [
        types.Tool(
            name=t.name,
            description=t.description(reach),
            input_schema=t.schema(reach),
            annotations=types.ToolAnnotations(
                read_only_hint=t.read_only, destructive_hint=False, open_world_hint=False
            ),
        )
        for t in tools
    ]

    async def list_tools(
        ctx: Any, params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=listed)

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        tool = by_name.get(params.name)
        if tool is None:
            return _error(
                f"no tool {params.name!r} for {reach.identity}; its tools are: {', '.join(by_name)}"
            )
        try:
            args = tool.args.model_validate(params.arguments or {})
        except ValidationError as exc:
            return _error(f"invalid arguments for {tool.name}: {_problems(exc)}")
        try:
            out = await tool.run(calls, args)
        except Exception as exc:
            if not isinstance(exc, FleetbusError):
                log.exception("%s failed", tool.name)
            return _error(f"{tool.name} failed: {explain(exc)}")
        out = within_budget(out)
        return types.CallToolResult(content=[_json(out)], structured_content=out)

    async def list_resources(
        ctx: Any, params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        found = [
            types.Resource(
                uri=FLEET_URI,
                name="fleet",
                description="The fleet: its roles, what each does, whom each may address,"
                f" and what {reach.identity} may do",
                mime_type="application/json",
            )
        ]
        if reach.inbox:
            found.append(
                types.Resource(
                    uri=INBOX_URI,
                    name="inbox",
                    description=f"{reach.identity}'s inbox: how many messages wait, and the"
                    " ones held for you (read them with read_inbox)",
                    mime_type="application/json",
                )
            )
        found += [
            types.Resource(
                uri=f"{_TASKS}{role}/{task_id}",
                name=f"task {task_id}",
                description=f"task {task_id}, assigned to {role}: its state and updates",
                mime_type="application/json",
            )
            for task_id, role in calls.assigned_here()
        ]
        return types.ListResourcesResult(resources=found)

    async def list_templates(
        ctx: Any, params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        templates = []
        if reach.tasks:
            templates.append(
                types.ResourceTemplate(
                    uri_template=TASK_URI,
                    name="task",
                    description="A task you assigned to a role: its state and updates",
                    mime_type="application/json",
                )
            )
        return types.ListResourceTemplatesResult(resource_templates=templates)

    async def read_resource(
        ctx: Any, params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        uri = str(params.uri)
        try:
            if uri == FLEET_URI:
                out = calls.overview()
            elif uri == INBOX_URI:
                out = await calls.inbox_view()
            elif uri.startswith(_TASKS) and uri.count("/") == 4:
                role, task_id = uri[len(_TASKS) :].split("/")
                out = await calls.task(task_id, role)
            else:
                raise FleetbusError(f"no resource {uri}: see resources/list")
        except Exception as exc:
            raise MCPError(types.INVALID_PARAMS, explain(exc)) from None
        text = json.dumps(within_budget(out), ensure_ascii=False, indent=2, default=str)
        return types.ReadResourceResult(
            contents=[types.TextResourceContents(uri=uri, mime_type="application/json", text=text)]
        )

    who = "the admin" if reach.admin else f"role {reach.identity}"
    return Server(
        "fleetbus",
        version=__version__,
        instructions=(
            f"You act in a fleetbus fleet (agents that message each other over NATS) as {who},"
            " with its credentials and nothing more. Read the fleetbus://fleet resource for"
            " the roles and what each does. Tools only offer what this identity may do."
        ),
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_list_resource_templates=list_templates,
        on_read_resource=read_resource,
    )


async def serve(
    spec: FleetSpec,
    settings: ConnectSettings,
    identity: str,
    *,
    transport: str = "stdio",
    host: str = "127.0.0.1",
    port: int = 8765,
    token: str | None = None,
    announce: Callable[[str], None] = print,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve ``identity``'s MCP server until the host goes away (stdio: its stdin closes)
    or ``stop`` is set. ``announce`` gets one line once it serves. On the way out, inbox
    messages the host did not confirm are given back."""
    if transport == "http" and not token and not is_loopback(host):
        raise FleetbusError(
            f"serving MCP over HTTP on {host} needs a token: anyone who reaches the port"
            f" would act as {identity}"
        )
    async with FleetCalls.open(spec, settings, identity) as calls:
        tools = offered_tools(calls.reach, calls.provides)
        server = build_server(calls, tools)
        names = ", ".join(t.name for t in tools)
        if transport == "stdio":
            announce(f"fleetbus mcp: {identity} on stdio, {settings.display_url}; tools: {names}")
            async with stdio_server() as (read, write):
                run = asyncio.ensure_future(
                    server.run(read, write, server.create_initialization_options())
                )
                async with _when_set(stop, run.cancel):
                    with contextlib.suppress(asyncio.CancelledError):
                        await run
            return
        app: Asgi = server.streamable_http_app(streamable_http_path=MCP_PATH, host=host)
        if token:
            app = _require_token(app, token)
        with _listening(host, port) as sock:
            bound = sock.getsockname()[1]
            shown = f"[{host}]" if ":" in host else host
            announce(
                f"fleetbus mcp: {identity} on http://{shown}:{bound}{MCP_PATH},"
                f" {settings.display_url}; tools: {names}"
            )
            config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
            web = _Uvicorn(config)
            async with _when_set(stop, web.exit):
                await web.serve(sockets=[sock])


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Uvicorn(uvicorn.Server):
    """uvicorn, minus its signal handling: it re-raises a caught SIGTERM once it has shut
    down, which would end the process before the inbox gives back what it holds."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def exit(self) -> None:
        self.should_exit = True


@contextlib.asynccontextmanager
async def _when_set(event: asyncio.Event | None, then: Callable[[], object]) -> AsyncIterator[None]:
    """Call ``then`` once ``event`` is set, while the block runs."""
    if event is None:
        yield
        return

    async def watch() -> None:
        await event.wait()
        then()

    watcher = asyncio.ensure_future(watch())
    try:
        yield
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


class _listening:
    """A listening socket on ``host:port`` (0: any free port), closed on exit. Listening
    before uvicorn starts, so a client that connects at once waits instead of being refused."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((host, port))
        except OSError as exc:
            self.sock.close()
            raise FleetbusError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        self.sock.listen(128)

    def __enter__(self) -> socket.socket:
        return self.sock

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


def _require_token(app: Asgi, token: str) -> Asgi:
    expected = f"Bearer {token}".encode()

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(given, expected):
                body = b'{"error": "unauthorized: send Authorization: Bearer <token>"}'
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"www-authenticate", b"Bearer"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await app(scope, receive, send)

    return guarded


RESULT_BUDGET = 1_000_000
"""The most characters of JSON one tool result holds: past it, its longest list is cut (each
value a role wrote is already at most ``calls.SHOWN``)."""


def within_budget(out: Any) -> Any:
    """``out``, or with its longest list cut to fit ``RESULT_BUDGET`` and a note saying so."""

    def size(value: Any) -> int:
        return len(json.dumps(value, ensure_ascii=False, default=str))

    if not isinstance(out, dict) or size(out) <= RESULT_BUDGET:
        return out
    lists = [k for k, v in out.items() if isinstance(v, list)]
    if not lists:
        return out
    key = max(lists, key=lambda k: len(out[k]))
    items: list[Any] = out[key]
    low, high = 0, len(items)  # the most items that fit: between low and high
    while low < high:
        middle = (low + high + 1) // 2
        if size({**out, key: items[:middle]}) <= RESULT_BUDGET:
            low = middle
        else:
            high = middle - 1
    note = (
        f"{low} of {len(items)} {key} shown: a result holds at most {RESULT_BUDGET:,}"
        " characters; ask for fewer (limit)"
    )
    return {**out, key: items[:low], "truncated": note}


def _json(out: Any) -> types.TextContent:
    return types.TextContent(text=json.dumps(out, ensure_ascii=False, indent=2, default=str))


def _error(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=text)], is_error=True)


def _problems(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}" for e in exc.errors()
    )
