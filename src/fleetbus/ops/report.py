"""``fleetbus status`` as a screen: streams, consumers, dead letters and the alerts raised."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from fleetbus._terminal import safe_text
from fleetbus.fleet.units import format_size
from fleetbus.ops.status import FleetStatus

__all__ = ["rates", "render"]


def rates(before: FleetStatus, after: FleetStatus, seconds: float) -> dict[str, float]:
    """Messages stored per second in each stream between two snapshots (its last sequence
    grows by one per message stored, whatever retention removes)."""
    if seconds <= 0:
        return {}
    earlier = {st.name: st.last_seq for st in before.streams if not st.missing}
    return {
        st.name: max(st.last_seq - earlier[st.name], 0) / seconds
        for st in after.streams
        if not st.missing and st.name in earlier
    }


def render(s: FleetStatus, per_second: dict[str, float] | None = None) -> Group:
    """The snapshot as tables; with ``per_second`` (``status --watch``: from the previous
    snapshot) a column of message rates."""
    streams = Table(title="streams", title_justify="left")
    columns = ["stream", "messages", "bytes", "of limit", "replicas", "leader"]
    if per_second is not None:
        columns.insert(2, "msg/s")
    for column in columns:
        streams.add_column(column, justify="left" if column in ("stream", "of limit") else "right")
    for st in s.streams:
        if st.missing:
            blank = ["-"] * (len(columns) - 2)
            streams.add_row(st.name, *blank[:2], "[red]missing[/]", *blank[2:])
            continue
        percent = st.storage_percent
        limit = "no limit" if percent is None else f"{percent:g}%"
        if st.subject_percent is not None:
            limit += f"; fullest subject {st.subject_percent:g}%"
        rate = [] if per_second is None else [f"{per_second.get(st.name, 0.0):,.1f}"]
        streams.add_row(
            st.name,
            str(st.messages),
            *rate,
            format_size(st.bytes),
            limit,
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
            "yes" if c.waiting else ("[dim]idle[/]" if c.idle else "[dim]no[/]"),
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
    if s.agents:
        parts = []
        for role, counts in s.agents.items():
            shown = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()) if n)
            parts.append(f"{role} {shown or 'none'}")
        lines.append(safe_text(f"agents: {'; '.join(parts)}"))  # states agents wrote
    idle = sorted({c.role for c in s.consumers if c.idle and c.role})
    if idle:
        waiting = sum(c.pending for c in s.consumers if c.idle)
        lines.append(
            Text(
                f"idle roles (no agent serving; {waiting} message(s) kept for them):"
                f" {', '.join(idle)}"
            )
        )
    if s.alerts:
        lines.append(Text.from_markup(f"[bold red]{len(s.alerts)} alert(s):[/]"))
        lines.extend(Text.from_markup(f"  [red]•[/] {a.message}") for a in s.alerts)
    else:
        lines.append(Text.from_markup("[green]no alerts[/]"))
    return Group(*lines)
