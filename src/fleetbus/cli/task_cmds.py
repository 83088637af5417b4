"""Tasks from the command line: ``tasks`` (the list, like ``temporal workflow list``) and
``task ID`` / ``task cancel ID`` / ``task respond ID BODY``.

The list and the lookups read the task list (the admin's); with ``--as ROLE`` cancel and
respond act as that role, which must be the task's assigner.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table
from typer.core import TyperGroup

from fleetbus.cli._common import (
    age,
    console,
    err_console,
    fail,
    print_json,
    print_json_line,
    run_async,
    safe_text,
    state,
)
from fleetbus.client.fleet import Fleet
from fleetbus.fleet.units import parse_duration
from fleetbus.tasks import TaskSummary
from fleetbus.wire.updates import TaskUpdate

__all__ = ["print_update", "register"]

_JSON = typer.Option("--json", help="Machine-readable output.")
_AS = typer.Option("--as", help="Act as this role (the task's assigner).")
_ROLE = typer.Option("--role", help="The role the task was assigned to (default: looked up).")


class _TaskGroup(TyperGroup):
    """``task ID`` shows a task; ``task cancel ID`` and ``task respond ID BODY`` act on it."""

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["show", *args]
        return super().resolve_command(ctx, args)


task_app = typer.Typer(
    cls=_TaskGroup,
    help="A task: `task ID` (its history), `task cancel ID`, `task respond ID BODY`.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.command("tasks")(tasks)
    app.add_typer(task_app, name="task")


def _since(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        fail(f"--since: {exc}", 2)


def tasks(
    ctx: typer.Context,
    role: Annotated[str | None, typer.Option(help="Only this role's tasks.")] = None,
    task_state: Annotated[
        str | None,
        typer.Option(
            "--state",
            help="submitted, working, input-required, completed, failed, canceled, rejected,"
            " expired (A2A's words), or fleetbus's (accepted, dead_lettered, ...).",
        ),
    ] = None,
    since: Annotated[str | None, typer.Option(help="Changed within, e.g. 1h, 30m.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, the newest first.")] = 100,
    json_out: Annotated[bool, _JSON] = False,
) -> None:
    """The task list: each task with its state, agent, attempt, progress and age."""
    st = state(ctx)
    window = _since(since)

    async def main() -> list[TaskSummary]:
        async with st.client() as conn:
            fleet = Fleet.attach(conn, st.fleet())
            return await fleet.tasks(role=role, state=task_state, since=window, limit=limit)

    found = run_async(main)
    if json_out:
        print_json([t.to_json() for t in found])
        return
    table = Table(title=f"{len(found)} task(s)", title_justify="left")
    for column in ("task", "role", "from", "state", "agent", "try", "progress", "age", "updated"):
        table.add_column(column, overflow="fold")
    now = datetime.now(UTC)
    for t in found:
        table.add_row(
            *map(safe_text, (t.task_id, t.role, t.assigner)),
            safe_text(t.a2a_state if t.a2a_state == t.state else f"{t.a2a_state} ({t.state})"),
            safe_text(t.worker or "-"),
            safe_text(t.attempt or "-"),
            safe_text(f"{_percent(t.percent)}{t.message or t.error or ''}"),
            age(t.created, now),
            safe_text(t.updated[11:19]),
        )
    console.print(table)


async def _locate(fleet: Fleet, task_id: str, role: str | None) -> tuple[str, str]:
    """The task's role and assigner: given, or from the task list."""
    if role is not None and fleet.conn.identity is not None:
        return role, fleet.identity
    entry = await fleet.find_task(task_id, role)  # AmbiguousTask: several have this id
    if entry is None:
        if role is not None:
            return role, fleet.identity
        fail(f"task {task_id} is not in the task list: give its --role")
    return entry.role, entry.assigner


@task_app.command("show", hidden=True)
def show(
    ctx: typer.Context,
    task_id: Annotated[str, typer.Argument(metavar="ID")],
    role: Annotated[str | None, _ROLE] = None,
    json_out: Annotated[bool, _JSON] = False,
) -> None:
    """A task's history (P.tasks.ID.>); exit 1 when it failed, was rejected or cancelled."""
    st = state(ctx)

    async def main() -> list[TaskUpdate]:
        async with st.client() as conn:
            return await Fleet.attach(conn, st.fleet()).history(task_id, role=role)

    updates = run_async(main)
    if json_out:
        print_json([asdict(u) for u in updates])
    else:
        if not updates:
            fail(f"no updates for task {task_id} (unknown id, or older than TASKS' max_age)")
        # Ids are the assigner's choice and a role writes its records under any id: when
        # the records are of several tasks, each row says whose (from -> to).
        tasks = sorted({(u.assigner, u.agent) for u in updates})
        several = len(tasks) > 1
        table = Table(title=safe_text(f"task {task_id}"), title_justify="left")
        for column in ("time", *(("task",) if several else ()), "state", "agent", "attempt"):
            table.add_column(column, overflow="fold")
        table.add_column("detail", overflow="fold")
        for u in updates:
            whose = (f"{u.assigner} -> {u.agent}",) if several else ()
            table.add_row(
                *map(safe_text, (_clock(u.time), *whose, u.state, u.worker or u.agent, u.attempt)),
                safe_text(detail(u)),
            )
        console.print(table)
        if several:
            named = ", ".join(f"{agent} (from {assigner})" for assigner, agent in tasks)
            err_console.print(
                safe_text(
                    f"warning: {len(tasks)} tasks have the id {task_id}: {named}; --role shows one"
                ),
                soft_wrap=True,
            )
    last = updates[-1] if updates else None
    if last is not None and last.terminal and last.state != "completed":
        raise typer.Exit(1)


@task_app.command("cancel")
def cancel(
    ctx: typer.Context,
    task_id: Annotated[str, typer.Argument(metavar="ID")],
    reason: Annotated[str, typer.Option(help="Why: stored with the task's outcome.")] = "",
    role: Annotated[str | None, _ROLE] = None,
    sender: Annotated[str | None, _AS] = None,
) -> None:
    """Cancel a task: queued, it never runs; running, its handler is cancelled."""
    st = state(ctx)

    async def main() -> bool:
        async with Fleet.connect(
            spec=st.fleet(), connection=st.connect_settings(role=sender), sender=sender
        ) as fleet:
            assignee, assigner = await _locate(fleet, task_id, role)
            return await fleet.cancel(task_id, assignee, reason, assigner=assigner)

    if run_async(main):
        console.print(f"cancel requested: {task_id}")
    else:
        console.print(f"{task_id} had ended already: nothing changed")


@task_app.command("respond")
def respond(
    ctx: typer.Context,
    task_id: Annotated[str, typer.Argument(metavar="ID")],
    body: Annotated[
        str, typer.Argument(metavar="BODY", help="JSON object, @file.json or - for stdin.")
    ],
    role: Annotated[str | None, _ROLE] = None,
    sender: Annotated[str | None, _AS] = None,
) -> None:
    """Answer a task's input request (state input-required)."""
    from fleetbus.cli.message_cmds import parse_body

    st = state(ctx)
    answer = parse_body(body)

    async def main() -> None:
        async with Fleet.connect(
            spec=st.fleet(), connection=st.connect_settings(role=sender), sender=sender
        ) as fleet:
            assignee, assigner = await _locate(fleet, task_id, role)
            await fleet.respond(task_id, assignee, answer, assigner=assigner)

    run_async(main)
    console.print(f"answered: {task_id}")


def _percent(value: object) -> str:
    """``50% `` for a percentage; nothing for none, or for a role's record holding some other
    type there."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:g}% "
    return ""


def _clock(stamp: object) -> str:
    """The time of day of an ISO 8601 time (``12:03:04.123``), as a record holds it."""
    return stamp[11:23] if isinstance(stamp, str) else str(stamp)


def detail(u: TaskUpdate) -> str:
    """One line saying what an update is about: the record's own text, to be shown with
    :func:`safe_text` (a role wrote it)."""
    if u.state == "completed":
        return json.dumps(u.result)
    if u.state == "progress":
        return f"{_percent(u.percent)}{u.message or ''}"
    if u.state == "failed":
        retry = u.retry_in if isinstance(u.retry_in, int | float) else None
        return f"{u.error} (retry in {retry:g}s)" if retry else str(u.error)
    if u.state == "input-required":
        return f"request {u.request}: {json.dumps(u.data)}"
    if u.state in ("dead_lettered", "rejected"):
        return f"{u.error} — {u.reason}" if u.reason and u.reason != u.error else str(u.error)
    if u.state in ("canceled", "expired"):
        return u.reason or ""
    return ""


def print_update(u: TaskUpdate, json_out: bool) -> None:
    """One update: a line, or (``--json``) one JSON object per line."""
    if json_out:
        data: dict[str, Any] = {k: v for k, v in asdict(u).items() if v is not None}
        print_json_line(data)
    else:
        line = f"{_clock(u.time)} {u.state:<14} {u.agent} #{u.attempt} {detail(u)}"
        console.print(safe_text(line))
