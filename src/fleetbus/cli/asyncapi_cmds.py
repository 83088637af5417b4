"""``fleetbus asyncapi``: the fleet as an AsyncAPI 3.0 document, for other languages' tooling."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from fleetbus.cli._common import OutFile, guard, print_or_write, state


def register(app: typer.Typer) -> None:
    app.command("asyncapi")(asyncapi)


def asyncapi(
    ctx: typer.Context,
    out: OutFile = None,
    fmt: Annotated[
        Literal["yaml", "json"], typer.Option("--format", help="yaml or json.")
    ] = "yaml",
) -> None:
    """Print the fleet as an AsyncAPI 3.0 document: servers, a channel per subject family, each
    role's operations, the messages' schemas, and the streams and consumers as
    x-fleetbus-jetstream."""
    from fleetbus.deploy.asyncapi import render

    spec = guard(state(ctx).fleet)
    print_or_write(render(spec, fmt), out, f"AsyncAPI {fmt} of fleet {spec.prefix}")
