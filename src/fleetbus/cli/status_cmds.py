"""``fleetbus status``: the seed's monitoring section as one screen; exit 1 on an alert."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.live import Live

from fleetbus._files import write_private
from fleetbus.cli._common import CliState, console, print_json, run_async, state
from fleetbus.ops.report import rates, render
from fleetbus.ops.status import FleetStatus, collect, evaluate


def register(app: typer.Typer) -> None:
    app.command("status")(status)


def status(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help="The snapshot as JSON.")] = False,
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Redraw until Ctrl-C (every --every seconds).")
    ] = False,
    every: Annotated[
        float, typer.Option("--every", min=0.5, help="Seconds between redraws of --watch.")
    ] = 2.0,
) -> None:
    """Streams, consumers, dead letters and replicas; exits 1 when an alert threshold is
    crossed (for cron and CI checks)."""
    st = state(ctx)
    if watch:
        run_async(lambda: _watch(st, every))
        return
    snapshot = run_async(lambda: _snapshot(st))
    if json_out:
        print_json(snapshot.to_json())
    else:
        console.print(render(snapshot))
    if snapshot.alerts:
        raise typer.Exit(1)


async def _snapshot(st: CliState) -> FleetStatus:
    spec = st.fleet()
    memo = st.data_path() / "status.json"
    async with st.client() as conn:
        url = st.connect_settings().display_url
        before = _remembered(memo, url)
        snapshot = await collect(conn, spec, dead_letters_before=before)
    _remember(memo, url, snapshot.dead_letters)
    from dataclasses import replace

    return replace(snapshot, alerts=evaluate(snapshot, spec.alerts))


async def _watch(st: CliState, every: float) -> None:
    """Redraw every ``every`` seconds, with each stream's message rate since the last one."""
    previous: tuple[float, FleetStatus] | None = None
    with Live(console=console, auto_refresh=False) as live:
        while True:
            snapshot = await _snapshot(st)
            now = time.monotonic()
            per_second = rates(previous[1], snapshot, now - previous[0]) if previous else {}
            live.update(render(snapshot, per_second), refresh=True)
            previous = (now, snapshot)
            await asyncio.sleep(every)


def _remembered(path: Path, url: str) -> int | None:
    try:
        value = json.loads(path.read_text()).get(url)
    except (OSError, ValueError, AttributeError):
        return None
    return int(value) if isinstance(value, int) else None


def _remember(path: Path, url: str, count: int) -> None:
    try:
        data = json.loads(path.read_text()) if path.exists() else {}
        if not isinstance(data, dict):
            data = {}
        data[url] = count
        path.parent.mkdir(parents=True, exist_ok=True)
        write_private(path, json.dumps(data))
    except (OSError, ValueError):
        pass  # a read-only data dir only loses the growth comparison
