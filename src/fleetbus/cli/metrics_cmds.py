"""``fleetbus metrics``: serve the fleet's status to Prometheus until Ctrl-C/SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Annotated

import typer

from fleetbus.cli._common import console, run_async, state
from fleetbus.ops.exporter import DEFAULT_HOST, DEFAULT_INTERVAL, DEFAULT_PORT, FleetExporter


def register(app: typer.Typer) -> None:
    app.command("metrics")(metrics)


def metrics(
    ctx: typer.Context,
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="The port to serve /metrics on (0: any).")
    ] = DEFAULT_PORT,
    host: Annotated[
        str, typer.Option(help="The address to bind (0.0.0.0 for every interface).")
    ] = DEFAULT_HOST,
    interval: Annotated[
        float, typer.Option(min=0.1, help="Seconds between two readings of the fleet.")
    ] = DEFAULT_INTERVAL,
) -> None:
    """Serve the fleet's streams, consumers, dead letters and agents as Prometheus metrics,
    read as the admin every INTERVAL seconds (docs/observability.md)."""
    st = state(ctx)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        spec = st.fleet()
        async with st.client() as conn:
            exporter = FleetExporter(conn, spec, interval=interval)
            with exporter.serve(host, port) as url:
                console.print(
                    f"serving fleet {spec.prefix}'s metrics on {url}, read every {interval:g}s;"
                    " Ctrl-C stops",
                    soft_wrap=True,
                )
                async with asyncio.TaskGroup() as tg:
                    refresher = tg.create_task(exporter.refresh_forever())
                    await stop.wait()
                    refresher.cancel()

    run_async(main)
