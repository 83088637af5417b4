"""``fleetbus init``, ``fleetbus check`` and ``fleetbus schema``: write, lint and describe the
fleet file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from fleetbus._files import write_file
from fleetbus.cli._common import OutFile, console, fail, guard, print_json, print_or_write, state
from fleetbus.errors import FleetFileError
from fleetbus.fleet import DEFAULT_FLEET_FILE, seed_fleet
from fleetbus.fleet.check import lint
from fleetbus.fleet.jsonschema import SCHEMA_FILE, fleet_schema_text
from fleetbus.fleet.template import SEED_FLEET_YAML


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("check")(check)
    app.command("schema")(schema)


def init(
    path: Annotated[Path, typer.Argument(metavar="PATH", help="Where to write it.")] = Path(
        DEFAULT_FLEET_FILE
    ),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a fleet file with the seed's topology (and its fixes, each explained), and the
    fleet file's JSON Schema beside it for editors."""
    if path.exists() and not force:
        fail(f"{path} already exists; use --force to overwrite it")
    # Generated, never edited by hand: refreshed on every init, like `fleetbus schema --out`.
    schema_path = path.parent / SCHEMA_FILE
    try:
        write_file(path, SEED_FLEET_YAML)
        write_file(schema_path, fleet_schema_text())
    except OSError as exc:
        fail(f"cannot write {exc.filename or path}: {exc.strerror}")
    seed = seed_fleet()
    console.print(
        f"wrote {path}: prefix {seed.prefix}, {len(seed.streams)} streams, {len(seed.roles)} roles"
    )
    console.print(f"wrote {schema_path}: its JSON Schema, for editors (first line of {path.name})")
    # `check` and `up` read ./fleet.yaml (or FLEETBUS_FLEET): name any other file
    named = "" if path == Path(DEFAULT_FLEET_FILE) else f"--fleet {path} "
    console.print(f"next: `fleetbus {named}check`, then `fleetbus {named}up`", soft_wrap=True)


def _invalid(where: str, problem: str) -> dict[str, str]:
    """A problem that keeps the file from loading, as ``check --json`` lists findings."""
    where = where or "(top level)"
    return {"code": "invalid", "severity": "error", "where": where, "problem": problem, "fix": ""}


def check(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help="Findings as JSON.")] = False,
) -> None:
    """Validate the fleet file and lint it for the traps that break JetStream setups."""
    st = state(ctx)
    source = str(st.fleet_path or "<built-in seed fleet>")
    if json_out:
        try:
            spec = st.fleet()
        except FleetFileError as exc:  # a file that does not load: its problems, as JSON too
            print_json(
                {
                    "file": source,
                    "valid": False,
                    "findings": [_invalid(where, problem) for where, problem in exc.problems],
                }
            )
            raise typer.Exit(1) from None
    else:
        spec = guard(st.fleet)
    findings = lint(spec)
    errors = [f for f in findings if f.severity == "error"]
    if json_out:
        print_json(
            {
                "file": source,
                "valid": not errors,
                "findings": [
                    {
                        "code": f.code,
                        "severity": f.severity,
                        "where": f.where,
                        "problem": f.problem,
                        "fix": f.fix,
                    }
                    for f in findings
                ],
            }
        )
    else:
        console.print(
            f"{source}: {len(spec.streams)} streams, {len(spec.roles)} roles,"
            f" {len(spec.consumers())} consumers"
        )
        if findings:
            table = Table(show_lines=True)
            for column in ("", "where", "problem", "fix"):
                table.add_column(column, overflow="fold")
            for f in findings:
                mark = "[red]error[/]" if f.severity == "error" else "[yellow]warning[/]"
                table.add_row(mark, f.where, f.problem, f.fix)
            console.print(table)
        console.print(
            f"[red]{len(errors)} error(s)[/]" if errors else "[green]no errors[/]",
            f"{len(findings) - len(errors)} warning(s)",
        )
    if errors:
        raise typer.Exit(1)


def schema(
    out: OutFile = None,
) -> None:
    """Print the fleet file's JSON Schema (for editors: completion and checks as you type).

    `fleetbus init` writes it as fleet.schema.json beside fleet.yaml, whose first line points
    the YAML language server at it."""
    print_or_write(fleet_schema_text(), out)
