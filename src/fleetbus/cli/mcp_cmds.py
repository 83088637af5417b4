"""``fleetbus mcp --role ROLE``: an MCP server through which an LLM host joins the fleet as
ROLE. Standard output belongs to the MCP protocol on stdio: everything else goes to stderr."""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
from enum import StrEnum
from typing import Annotated

import typer

from fleetbus.cli._common import err_console, fail, run_async, state
from fleetbus.errors import FleetbusError
from fleetbus.wire.subjects import ADMIN


class Transport(StrEnum):
    stdio = "stdio"
    http = "http"


def register(app: typer.Typer) -> None:
    app.command("mcp")(mcp)


def mcp(
    ctx: typer.Context,
    role: Annotated[
        str,
        typer.Option(
            "--role",
            help="The role the host acts as (its credentials), or admin.",
            show_default=False,
        ),
    ],
    transport: Annotated[
        Transport, typer.Option(help="stdio: the host starts this command; http: it connects.")
    ] = Transport.stdio,
    host: Annotated[
        str, typer.Option(help="HTTP: the address to bind (anything but loopback needs a token).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP: the port (0: any free one).")] = 8765,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="FLEETBUS_MCP_TOKEN",
            help="HTTP: the bearer token clients must send (generated and printed when bound"
            " beyond loopback without one).",
        ),
    ] = None,
) -> None:
    """Serve an MCP server (Model Context Protocol) acting as ROLE: its tools send, assign,
    ask and read as that role only. docs/mcp.md shows the host configurations."""
    st = state(ctx)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    try:
        from fleetbus.mcp import serve
        from fleetbus.mcp.server import is_loopback
    except ImportError as exc:
        fail(f"fleetbus mcp needs the MCP SDK ({exc.name}): pip install 'fleetbus[mcp]'")
    spec = st.fleet()
    if role != ADMIN:
        try:
            spec.role(role)
        except FleetbusError as exc:
            fail(str(exc))
    settings = st.connect_settings(
        name=f"fleetbus-mcp-{role}", role=None if role == ADMIN else role
    )
    if role != ADMIN and settings.identity not in (None, role):
        fail(f"the credentials given are {settings.identity}'s, not {role}'s")
    if role != ADMIN and settings.user == ADMIN:
        err_console.print(
            f"warning: logged in as the admin, so the NATS server does not hold this server to"
            f" {role}'s permissions (give it {role}'s credentials)",
            soft_wrap=True,
        )
    if transport is Transport.http and not token and not is_loopback(host):
        token = secrets.token_urlsafe(32)
        err_console.print(f"bearer token for this server: {token}", soft_wrap=True, markup=False)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(
            spec,
            settings,
            role,
            transport=transport.value,
            host=host,
            port=port,
            token=token,
            announce=lambda line: err_console.print(line, soft_wrap=True, markup=False),
            stop=stop,
        )

    run_async(main)
