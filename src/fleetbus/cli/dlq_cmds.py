"""``fleetbus dlq``: list, show, replay and purge dead letters."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from fleetbus.cli._common import (
    console,
    fail,
    one_line,
    print_error,
    print_json,
    run_async,
    safe_text,
    state,
)
from fleetbus.deadletters import DeadLetterEntry, DeadLetters
from fleetbus.errors import FleetbusError, ServerError

dlq_app = typer.Typer(help="Dead letters: what exhausted its attempts or was rejected.")


def register(app: typer.Typer) -> None:
    app.add_typer(dlq_app, name="dlq")


@dlq_app.command("list")
def list_cmd(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, help="At most this many.")] = 100,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Every dead letter, oldest first."""
    st = state(ctx)

    async def main() -> list[DeadLetterEntry]:
        async with st.client() as conn:
            return await DeadLetters(conn, st.fleet()).list(limit=limit)

    entries = run_async(main)
    if json_out:
        print_json([e.to_json() for e in entries])
        return
    table = Table(title=f"{len(entries)} dead letter(s)", title_justify="left")
    for column in ("id", "time", "from", "consumer", "tries", "reason", "error"):
        table.add_column(column, overflow="fold")
    for e in entries:
        row = (e.id, e.time[:19], f"{e.original_subject} #{e.seq}", e.consumer, e.deliveries)
        table.add_row(*map(safe_text, (*row, e.reason, e.error)))
    console.print(table)


@dlq_app.command("show")
def show_cmd(
    ctx: typer.Context,
    dead_letter_id: Annotated[int, typer.Argument(metavar="ID")],
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """One dead letter: where it came from, why it died, its body and headers."""
    st = state(ctx)

    async def main() -> DeadLetterEntry:
        async with st.client() as conn:
            return await DeadLetters(conn, st.fleet()).get(dead_letter_id)

    entry = run_async(main)
    if json_out:
        print_json(entry.to_json())
        return
    data = entry.to_json()
    for key in (
        "id",
        "time",
        "original_subject",
        "stream",
        "seq",
        "consumer",
        "deliveries",
        "reason",
        "error",
    ):
        console.print(_field(key, data[key]))
    console.print(_field("headers", data["headers"]))
    console.print(_field("body", data["body"], multiline=True))
    if entry.traceback:
        console.print(Text("traceback:", style="bold"))
        console.print(safe_text(entry.traceback, multiline=True), soft_wrap=True)


def _field(name: str, value: object, multiline: bool = False) -> Text:
    """``name: value``: fleetbus's label, then what the dead letter holds, shown as text (the
    agent that dead-lettered it, or the role that sent the message, wrote it)."""
    return Text.assemble((f"{name}:", "bold"), " ", safe_text(value, multiline=multiline))


@dlq_app.command("replay")
def replay_cmd(
    ctx: typer.Context,
    dead_letter_id: Annotated[int | None, typer.Argument(metavar="[ID]")] = None,
    replay_all: Annotated[bool, typer.Option("--all", help="Replay every dead letter.")] = False,
) -> None:
    """Send a dead letter back to its original subject, starting again at attempt 1."""
    st = state(ctx)
    if (dead_letter_id is None) == (not replay_all):
        fail("give a dead letter ID or --all (not both)", 2)

    async def main() -> list[tuple[int, str, str]]:
        async with st.client() as conn:
            dlq = DeadLetters(conn, st.fleet())
            if not replay_all:
                subject, _ = await dlq.replay(dead_letter_id or 0)
                return [(dead_letter_id or 0, subject, "")]
            done = []
            for entry in await dlq.list(limit=100_000):
                # One that cannot be replayed (too large for its stream now, say: a role
                # writes its own dead letters) is told and left; the others still go.
                try:
                    subject, _ = await dlq.replay(entry.id)
                except FleetbusError as exc:
                    said = one_line(exc) if isinstance(exc, ServerError) else str(exc)
                    done.append((entry.id, "", said))
                else:
                    done.append((entry.id, subject, ""))
            return done

    failed = 0
    for i, subject, error in run_async(main):
        if error:
            failed += 1
            print_error(f"dead letter {i} not replayed (kept): {error}")
        else:
            console.print(safe_text(f"replayed dead letter {i} to {subject}"))
    if failed:
        raise typer.Exit(1)


@dlq_app.command("purge")
def purge_cmd(
    ctx: typer.Context,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
) -> None:
    """Delete every dead letter."""
    st = state(ctx)
    if not yes and not typer.confirm("delete every dead letter?"):
        raise typer.Exit(1)

    async def main() -> int:
        async with st.client() as conn:
            return await DeadLetters(conn, st.fleet()).purge()

    console.print(f"purged {run_async(main)} dead letter(s)")
