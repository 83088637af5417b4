"""``fleetbus run module:agent [...]``: serve several agents in one process, one connection."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from fleetbus.cli._common import console, fail, run_async, state
from fleetbus.errors import FleetbusError
from fleetbus.js.connection import Connection, connect
from fleetbus.runtime import Agent
from fleetbus.runtime.eventloop import loop_factory
from fleetbus.telemetry import METRICS, configure_logging


def register(app: typer.Typer) -> None:
    app.command("run")(run)


def load_agent(target: str) -> Agent:
    """``package.module:name`` or ``path/to/file.py:name`` → the ``Agent`` it names."""
    module_name, sep, attr = target.partition(":")
    if not sep or not attr:
        raise FleetbusError(f"{target!r}: write MODULE:AGENT, like examples.backend:agent")
    if module_name.endswith(".py") or "/" in module_name:
        path = Path(module_name)
        if not path.exists():
            raise FleetbusError(f"{target!r}: no such file {path}")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        spec.loader.exec_module(module)
    else:
        if str(Path.cwd()) not in sys.path:
            sys.path.insert(0, str(Path.cwd()))
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise FleetbusError(f"{target!r}: cannot import {module_name}: {exc}") from None
    agent = getattr(module, attr, None)
    if not isinstance(agent, Agent):
        raise FleetbusError(f"{target!r}: {attr} is not a fleetbus Agent")
    return agent


async def _until_done(stopping: asyncio.Event, agents: list[Agent]) -> None:
    """Until Ctrl-C / SIGTERM, an agent fails, or every agent has stopped (each drained)."""
    signalled: asyncio.Task[object] = asyncio.create_task(stopping.wait())
    pending: dict[asyncio.Task[object], Agent] = {
        asyncio.create_task(a.stopped()): a for a in agents
    }
    try:
        while pending:
            done, _ = await asyncio.wait({signalled, *pending}, return_when=asyncio.FIRST_COMPLETED)
            if signalled in done or any(a.failure for a in agents):
                return
            for task in done:
                pending.pop(task, None)
    finally:
        for task in (signalled, *pending):
            task.cancel()


def run(
    ctx: typer.Context,
    targets: Annotated[list[str], typer.Argument(metavar="MODULE:AGENT...")],
    grace: Annotated[
        float, typer.Option(min=0, help="Seconds running handlers get on Ctrl-C.")
    ] = 30.0,
    metrics_port: Annotated[
        int | None,
        typer.Option("--metrics-port", help="Serve Prometheus metrics on 127.0.0.1:PORT/metrics."),
    ] = None,
) -> None:
    """Serve agents until Ctrl-C/SIGTERM, then finish running work and exit 0.

    FLEETBUS_LOG_FORMAT=json logs one JSON object per line (role, task id, trace id). On uvloop
    when it is installed (pip install 'fleetbus[speed]'); FLEETBUS_LOOP=asyncio keeps asyncio."""
    st = state(ctx)
    configure_logging()
    if metrics_port is not None:
        METRICS.serve(metrics_port)
    try:
        agents = [load_agent(t) for t in targets]
    except FleetbusError as exc:
        fail(str(exc))

    async def main() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        started: list[Agent] = []
        spec = st.fleet()
        # A connection per role, as that role, so the server holds each role's handlers to
        # its permissions: one admin connection for several roles let a handler of one act
        # as any role through agent.fleet. Each agent re-issues its polls on its
        # connection's reconnects by itself.
        conns: dict[str, Connection] = {}
        try:
            for agent in agents:
                spec.role(agent.role)
                if agent.role not in conns:
                    settings = st.connect_settings(
                        name=f"fleetbus-run-{agent.role}", role=agent.role
                    )
                    conns[agent.role] = await connect(settings)
                await agent.start(conns[agent.role], spec=spec)
                started.append(agent)
            names = ", ".join(f"{a.role} ({a.worker})" for a in started)
            console.print(f"serving {names}; Ctrl-C stops", soft_wrap=True)
            await _until_done(stopping, started)
        finally:
            failed = [a.failure for a in started if a.failure]
            await asyncio.gather(*(a.stop(0.0 if failed else grace) for a in started))
            await asyncio.gather(*(conn.drain() for conn in conns.values()))
        if failed:  # never linger: exit non-zero, so a supervisor starts a fresh process
            raise FleetbusError("; ".join(failed))

    run_async(main, loop_factory=loop_factory())  # uvloop's when installed
