"""``fleetbus agents``: the agent processes of the fleet, like ``ps`` — and ``agents ping``,
``agents drain`` and ``agents cancel`` for one of them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from fleetbus.cli._common import (
    CliState,
    age,
    console,
    print_json,
    print_json_line,
    run_async,
    safe_text,
    state,
)
from fleetbus.client.fleet import Fleet
from fleetbus.presence import AgentInfo

__all__ = ["register"]

agents_app = typer.Typer(
    help="The agent processes: `agents` lists them; `agents ping|drain|cancel INSTANCE`.",
    invoke_without_command=True,
)

_STYLE = {"running": "green", "draining": "yellow", "suspect": "yellow", "offline": "red"}


def register(app: typer.Typer) -> None:
    app.add_typer(agents_app, name="agents")


@agents_app.callback()
def agents(
    ctx: typer.Context,
    role: Annotated[str | None, typer.Option(help="Only this role's agents.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    watch: Annotated[
        bool, typer.Option("--watch", help="Print agents as they join, turn suspect or leave.")
    ] = False,
) -> None:
    """The agent processes of the fleet: role, instance, host, pid, state, task, age."""
    if ctx.invoked_subcommand is not None:
        return
    st = state(ctx)
    if watch:
        run_async(lambda: _watch(st, role, json_out))
        return

    async def main() -> list[AgentInfo]:
        async with st.client() as conn:
            return await Fleet.attach(conn, st.fleet()).agents(role)

    found = run_async(main)
    if json_out:
        print_json([a.to_json() for a in found])
        return
    table = Table(title=f"{len(found)} agent(s)", title_justify="left")
    for column in ("role", "instance", "host", "pid", "state", "task", "age", "handled"):
        table.add_column(column, overflow="fold")
    now = datetime.now(UTC)
    for a in found:
        held = ", ".join(f"{t.task_id} #{t.attempt}" for t in a.tasks) or "-"
        style = _STYLE.get(a.state, "white")
        table.add_row(
            *map(safe_text, (a.role, a.instance, a.host, a.pid)),
            safe_text(a.state, style=style),
            safe_text(held),
            age(a.started, now),
            safe_text(_handled(a)),
        )
    console.print(table)
    if not found:
        console.print("no agent is running (`fleetbus run module:agent` starts one)")


def _handled(agent: AgentInfo) -> str:
    """How many messages the agent says it handled (``-`` when its record's counts are not
    numbers: a role writes its own record)."""
    counts = [v for k, v in agent.handled.items() if k != "failed"]
    if all(isinstance(v, int) and not isinstance(v, bool) for v in counts):
        return str(sum(counts))
    return "-"


async def _watch(st: CliState, role: str | None, json_out: bool) -> None:
    async with st.client() as conn:
        async for change in Fleet.attach(conn, st.fleet()).watch_agents(role):
            if json_out:
                print_json_line({"change": change.change, "agent": change.agent.to_json()})
            else:
                a = change.agent
                line = f"{a.renewed[11:19]} {change.change:<8} {a.instance} on {a.host}"
                console.print(safe_text(line))


def _control(ctx: typer.Context, instance: str, op: str, **fields: Any) -> dict[str, Any]:
    st = state(ctx)

    async def main() -> dict[str, Any]:
        async with st.client() as conn:
            fleet = Fleet.attach(conn, st.fleet())
            return await fleet.control(instance, op, **fields)  # type: ignore[arg-type]

    return run_async(main)


@agents_app.command("ping")
def ping(
    ctx: typer.Context,
    instance: Annotated[str, typer.Argument(metavar="INSTANCE", help="e.g. backend-1a2b3c4d")],
) -> None:
    """Ask one agent process how it is: its state, what it holds."""
    answer = _control(ctx, instance, "ping")
    agent = answer.get("agent")
    agent = agent if isinstance(agent, dict) else {}  # the agent's own answer: any shape
    tasks = agent.get("tasks")
    tasks = tasks if isinstance(tasks, list) else []
    ids = [t.get("task_id") if isinstance(t, dict) else t for t in tasks]
    held = ", ".join(map(str, ids)) or "nothing"
    console.print(safe_text(f"{instance}: {agent.get('state')}, holding {held}"))


@agents_app.command("drain")
def drain(
    ctx: typer.Context,
    instance: Annotated[str, typer.Argument(metavar="INSTANCE")],
) -> None:
    """Stop one agent process fetching; it finishes what it holds, then exits 0."""
    answer = _control(ctx, instance, "drain")
    console.print(safe_text(f"{instance}: draining, finishing {answer.get('held', 0)} task(s)"))


@agents_app.command("cancel")
def cancel(
    ctx: typer.Context,
    instance: Annotated[str, typer.Argument(metavar="INSTANCE")],
    reason: Annotated[str, typer.Option(help="Stored with each task's outcome.")] = "",
) -> None:
    """Cancel the task(s) one agent process holds."""
    answer = _control(ctx, instance, "cancel", reason=reason or "cancelled by an operator")
    cancelled = answer.get("cancelled")
    cancelled = cancelled if isinstance(cancelled, list) else []
    shown = ", ".join(map(str, cancelled)) or "nothing (it held none)"
    console.print(safe_text(f"{instance}: cancelled {shown}"))
