"""A provisioning plan as people read it (a table) and as programs do (JSON)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from fleetbus.provision.apply import ApplyResult
from fleetbus.provision.plan import Action

__all__ = ["plan_json", "print_plan"]

_STYLE = {
    "create": "green",
    "update": "yellow",
    "migrate": "red",
    "recreate": "red",
    "unchanged": "dim",
    "unmanaged": "blue",
}


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
        "conflicts": list(result.plan.conflicts),
        "needs_force": [a.label for a in result.skipped],
    }


def print_plan(out: Console, result: ApplyResult, *, dry_run: bool) -> None:
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
    for conflict in result.plan.conflicts:
        out.print(f"[red]cannot apply:[/] {conflict}")
    for action in result.skipped:
        if action.op == "migrate":
            out.print(
                f"[red]needs --force:[/] {action.label} changes retention in place; it then"
                f" removes about {action.messages} messages its consumers have already"
                " processed (every unprocessed one stays)"
            )
            continue
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
    if isinstance(value, dict) and set(value) >= {"src", "dest"}:  # a stream's republish
        return f"{value['src']} → {value['dest']}"
    return str(value)
