"""``fleetbus provision``: plan the fleet file against the server and apply it."""

from __future__ import annotations

from typing import Annotated

import typer

from fleetbus.cli._common import console, err_console, guard, print_json, run_async, state
from fleetbus.cli.server_cmds import reload_permissions
from fleetbus.provision import ApplyResult, provision
from fleetbus.provision.report import plan_json, print_plan


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
        print_plan(console, result, dry_run=dry_run)
    if not dry_run and reload_permissions(guard(st.fleet), st.data_path()):
        (err_console if json_out else console).print(
            "reloaded: the embedded server now holds the fleet file's identities and"
            " permissions (a role added, a send_to or publish changed)",
            soft_wrap=True,
        )
    if result.skipped or result.plan.conflicts:
        raise typer.Exit(1)
