"""``fleetbus asyncapi``: the fleet as an AsyncAPI 3.0 document, for other languages' tooling."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Literal

import typer

from fleetbus.cli._common import console, fail, guard, state


def register(app: typer.Typer) -> None:
    app.command("asyncapi")(asyncapi)


def asyncapi(
    ctx: typer.Context,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write it to FILE instead of stdout.")
    ] = None,
    fmt: Annotated[
        Literal["yaml", "json"], typer.Option("--format", help="yaml or json.")
    ] = "yaml",
) -> None:
    """Print the fleet as an AsyncAPI 3.0 document: servers, a channel per subject family, each
    role's operations, the messages' schemas, and the streams and consumers as
    x-fleetbus-jetstream."""
    from fleetbus.deploy.asyncapi import render

    spec = guard(state(ctx).fleet)
    text = render(spec, fmt)
    if out is None:
        sys.stdout.write(text)
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror}")
    console.print(f"wrote {out}: AsyncAPI {fmt} of fleet {spec.prefix}")
