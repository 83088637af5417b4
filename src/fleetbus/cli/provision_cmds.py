"""``fleetbus provision``: plan the fleet file against the server and apply it."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from fleetbus.cli._common import console, print_json, run_async, state
from fleetbus.fleet import FleetSpec
from fleetbus.provision import Action, ApplyResult, provision

_STYLE = {
    "create": "green",
    "update": "yellow",
    "recreate": "red",
    "unchanged": "dim",
    "unmanaged": "blue",
}


def register(app: typer.Typer) -> None:
    app.command("provision")(provision_cmd)


def provision_cmd(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan only.")] = False,
    force: Annotated[
        bool,
        typer.Option("--force", help="Recreate what cannot change in place (drops its data)."),
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="The plan as JSON.")] = False,
    server: Annotated[
        str | None,
        typer.Option("--server", "-s", help="NATS URL(s); the same as the global --server."),
    ] = None,
) -> None:
    """Create or update the fleet's streams and consumers on the server. Idempotent."""
    st = state(ctx)
    if server is not None:
        st.server_url = server

    async def main() -> ApplyResult:
        spec = st.fleet()
        async with st.client() as conn:
            return await provision(conn, spec, dry_run=dry_run, force=force)

    result = run_async(main)
    if json_out:
        print_json(plan_json(result))
    else:
        print_plan(console, st.fleet(), result, dry_run=dry_run)
    if result.skipped:
        raise typer.Exit(1)


def plan_json(result: ApplyResult) -> dict[str, Any]:
    return {
        "actions": [
            {
                "kind": a.kind,
                "stream": a.stream,
                "name": a.name,
                "op": a.op,
                "changes": [
                    {"field": c.field, "live": c.live, "desired": c.desired} for c in a.changes
                ],
                "messages": a.messages,
                "applied": a in result.applied,
            }
            for a in result.plan.actions
        ],
        "warnings": list(result.plan.warnings),
        "needs_force": [a.label for a in result.skipped],
    }


def print_plan(out: Console, spec: FleetSpec, result: ApplyResult, *, dry_run: bool) -> None:
    table = Table(title="plan" if dry_run else "provisioned", title_justify="left")
    table.add_column("kind")
    table.add_column("name")
    table.add_column("action")
    table.add_column("detail", overflow="fold")
    for action in result.plan.actions:
        style = _STYLE[action.op]
        table.add_row(action.kind, action.label, f"[{style}]{action.op}[/]", _detail(action))
    out.print(table)
    for warning in result.plan.warnings:
        out.print(f"[yellow]warning:[/] {warning}")
    for action in result.skipped:
        what = "stored messages" if action.kind == "stream" else "unacknowledged messages"
        out.print(
            f"[red]needs --force:[/] {action.label} cannot change "
            f"{', '.join(c.field for c in action.changes)} in place; recreating it drops "
            f"{action.messages} {what}"
        )
    counts = result.plan.counts()
    summary = ", ".join(f"{n} {op}" for op, n in counts.items())
    out.print(f"{'would apply' if dry_run else 'applied'}: {summary}")


def _detail(action: Action) -> str:
    if action.op == "create" and action.kind == "stream":
        return ", ".join(action.config.get("subjects", [])[:2])
    if action.op == "create":
        config = action.config
        filters = config.get("filter_subject") or ", ".join(config.get("filter_subjects", []))
        return str(filters)
    if action.op == "unmanaged":
        return "not in the fleet file; left alone"
    return "; ".join(f"{c.field}: {_show(c.live)} → {_show(c.desired)}" for c in action.changes)


def _show(value: Any) -> str:
    if isinstance(value, list) and len(value) > 3:
        return f"[{len(value)} items]"
    return str(value)
