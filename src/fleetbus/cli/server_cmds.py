"""``fleetbus up`` and ``fleetbus down``: the embedded backbone."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Annotated

import typer

from fleetbus.cli._common import console, err_console, fail, guard, run_async, state
from fleetbus.cli.provision_cmds import print_plan
from fleetbus.connection import ConnectSettings, connect
from fleetbus.errors import FleetbusError
from fleetbus.fleet.model import FleetSpec
from fleetbus.provision import ApplyResult, provision
from fleetbus.publisher import Publisher
from fleetbus.runtime.deadletter import AdvisoryCopier
from fleetbus.server.embedded import EmbeddedServer, start_embedded, stop_embedded


def register(app: typer.Typer) -> None:
    app.command("up")(up)
    app.command("down")(down)


def up(
    ctx: typer.Context,
    detach: Annotated[
        bool, typer.Option("--detach", "-d", help="Run in the background; `fleetbus down` stops.")
    ] = False,
    no_provision: Annotated[
        bool, typer.Option("--no-provision", help="Start the server only.")
    ] = False,
    port: Annotated[
        int | None,
        typer.Option(
            "--port", min=0, max=65535, help="Client port (default server.port; 0: a free one)."
        ),
    ] = None,
    monitor_port: Annotated[
        int | None,
        typer.Option(
            "--monitor-port",
            min=0,
            max=65535,
            help="Monitoring port (default server.monitor_port; 0: a free one).",
        ),
    ] = None,
) -> None:
    """Start the embedded nats-server (JetStream on) and provision the fleet."""
    st = state(ctx)
    spec = guard(st.fleet)
    data_dir = st.data_path()
    ports = {"port": port, "monitor_port": monitor_port}
    server_spec = spec.server.model_copy(
        update={key: value for key, value in ports.items() if value is not None}
    )

    def warn(message: str) -> None:
        err_console.print(f"[yellow]warning:[/] {message}")

    server = guard(lambda: start_embedded(server_spec, data_dir, detach=detach, on_warning=warn))
    console.print(f"nats-server {server.url} (monitor {server.monitor_url}), data in {data_dir}/")
    try:
        if not no_provision:
            result = run_async(lambda: _provision(server.url, spec))
            print_plan(console, spec, result, dry_run=False)
    except (typer.Exit, KeyboardInterrupt):
        if not detach:
            server.stop()
        raise
    if detach:
        console.print(f"running in the background (pid {server.pid}); `fleetbus down` stops it")
        return
    try:
        asyncio.run(_serve(server, spec))
    finally:
        server.stop()
        console.print("stopped")


def down(
    ctx: typer.Context,
    grace: Annotated[float, typer.Option(help="Seconds to wait before SIGKILL.")] = 10.0,
) -> None:
    """Stop the embedded server that `fleetbus up --detach` started."""
    st = state(ctx)
    info = guard(lambda: stop_embedded(st.data_path(), grace))
    console.print(f"stopped nats-server pid {info.pid} ({info.url})")


async def _provision(url: str, spec: FleetSpec) -> ApplyResult:
    nc = await connect(ConnectSettings.from_url(url, name="fleetbus-up"))
    try:
        return await provision(nc, spec)
    finally:
        await nc.close()


async def _serve(server: EmbeddedServer, spec: FleetSpec) -> None:
    """Run the dead-letter copier until SIGINT/SIGTERM."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    # Only now does Ctrl-C mean "stop cleanly" rather than KeyboardInterrupt.
    console.print("serving; Ctrl-C stops the server")
    nc = await connect(ConnectSettings.from_url(server.url, name="fleetbus-up"))
    try:
        if spec.dead_letter_stream:
            copier = AdvisoryCopier(nc, spec, Publisher(nc, sender="fleetbus"))
            with contextlib.suppress(FleetbusError):
                await copier.run(stopping)
        await stopping.wait()
    except FleetbusError as exc:
        fail(str(exc))
    finally:
        with contextlib.suppress(Exception):
            await nc.close()
