"""``fleetbus status``: the seed's monitoring section as one screen; exit 1 on an alert."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from fleetbus.cli._common import CliState, console, print_json, run_async, state
from fleetbus.fleet.units import format_size
from fleetbus.ops.status import FleetStatus, collect, evaluate


def register(app: typer.Typer) -> None:
    app.command("status")(status)


def status(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help="The snapshot as JSON.")] = False,
    watch: Annotated[
        float | None, typer.Option("--watch", "-w", help="Refresh every N seconds.")
    ] = None,
) -> None:
    """Streams, consumers, dead letters and replicas; exits 1 when an alert threshold is
    crossed (for cron and CI checks)."""
    st = state(ctx)
    if watch:
        run_async(lambda: _watch(st, watch))
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
    with Live(console=console, auto_refresh=False) as live:
        while True:
            live.update(render(await _snapshot(st)), refresh=True)
            await asyncio.sleep(every)


def render(s: FleetStatus) -> Group:
    streams = Table(title="streams", title_justify="left")
    for column in ("stream", "messages", "bytes", "of limit", "replicas", "leader"):
        streams.add_column(column, justify="right" if column in ("messages", "bytes") else "left")
    for st in s.streams:
        if st.missing:
            streams.add_row(st.name, "-", "-", "[red]missing[/]", "-", "-")
            continue
        percent = st.storage_percent
        streams.add_row(
            st.name,
            str(st.messages),
            format_size(st.bytes),
            "no limit" if percent is None else f"{percent:g}%",
            str(st.replicas) + (f" [red]lagging: {', '.join(st.lagging)}[/]" if st.lagging else ""),
            st.leader or "-",
        )
    consumers = Table(title="consumers", title_justify="left")
    for column in (
        "consumer",
        "stream",
        "role",
        "pending",
        "ack pending",
        "redelivered",
        "polling",
        "last active",
    ):
        consumers.add_column(column)
    for c in s.consumers:
        if c.missing:
            consumers.add_row(
                c.name, c.stream, c.role or "fleetbus", "[red]missing[/]", "", "", "", ""
            )
            continue
        consumers.add_row(
            c.name,
            c.stream,
            c.role or "fleetbus",
            str(c.pending),
            str(c.ack_pending),
            str(c.redelivered),
            "yes" if c.waiting else "[dim]no[/]",
            c.last_active[:19].replace("T", " ") or "-",
        )
    grew = (
        f" (+{s.dead_letters - s.dead_letters_before} since last check)"
        if s.dead_letters_before is not None and s.dead_letters > s.dead_letters_before
        else ""
    )
    lines: list[Table | Text] = [
        Text(
            f"server {s.server} (nats-server {s.version}); fsync "
            + ("after every write" if s.sync_always else "every 2 minutes (server.sync_always)")
        ),
        streams,
        consumers,
        Text(f"dead letters: {s.dead_letters}{grew}"),
    ]
    if s.alerts:
        lines.append(Text.from_markup(f"[bold red]{len(s.alerts)} alert(s):[/]"))
        lines.extend(Text.from_markup(f"  [red]•[/] {a.message}") for a in s.alerts)
    else:
        lines.append(Text.from_markup("[green]no alerts[/]"))
    return Group(*lines)


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
        path.write_text(json.dumps(data))
    except (OSError, ValueError):
        pass  # a read-only data dir only loses the growth comparison
