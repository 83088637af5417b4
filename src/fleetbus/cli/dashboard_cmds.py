"""``fleetbus dashboard``: the fleet as a live web page, served until Ctrl-C."""

from __future__ import annotations

import asyncio
import signal
from typing import TYPE_CHECKING, Annotated

import typer

from fleetbus.cli._common import console, fail, run_async, state

if TYPE_CHECKING:
    from fleetbus.dashboard import Dashboard


def register(app: typer.Typer) -> None:
    app.command("dashboard")(dashboard)


def dashboard(
    ctx: typer.Context,
    port: Annotated[
        int, typer.Option("--port", "-p", help="Port to listen on (0: any free one).")
    ] = 8765,
    host: Annotated[
        str,
        typer.Option(help="Address to bind (every request needs the access token printed)."),
    ] = "127.0.0.1",
) -> None:
    """Serve a live web dashboard of the fleet: agents, tasks, dead letters, streams,
    meetings, events. Needs `pip install 'fleetbus[dashboard]'`."""
    st = state(ctx)
    try:
        from fleetbus import dashboard as web
    except ImportError as exc:
        fail(
            "fleetbus dashboard needs its extra: pip install 'fleetbus[dashboard]'"
            f" ({exc.name or exc} is missing)"
        )
    # Always: every user of this machine reaches 127.0.0.1 too (an agent under an account of
    # its own, as docs/security.md advises), and the dashboard acts as the admin.
    token = web.new_token()

    def ready(served: Dashboard) -> None:
        console.print(
            f"dashboard of {st.fleet().prefix} on {served.address}", markup=False, soft_wrap=True
        )
        console.print(
            "every request needs this access token: the link above carries it once, then the"
            " browser keeps it; scripts send `Authorization: Bearer <token>`",
            markup=False,
            soft_wrap=True,
        )
        console.print("Ctrl-C stops", markup=False)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with st.client() as conn:
            await web.serve(
                conn, st.fleet(), until=stop, host=host, port=port, token=token, on_ready=ready
            )

    run_async(main)
