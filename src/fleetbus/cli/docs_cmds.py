"""``fleetbus docs [TOPIC]``: the documentation that ships with fleetbus, in the terminal."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markdown import Markdown

from fleetbus.cli._common import console, fail

__all__ = ["docs_dir", "register"]


def register(app: typer.Typer) -> None:
    app.command("docs")(docs)


def docs_dir() -> Path | None:
    """Where the documentation is: inside the installed package, or the source checkout."""
    here = Path(__file__).resolve().parent.parent  # the fleetbus package
    for candidate in (here / "docs", here.parent.parent / "docs"):
        if (candidate / "runtime.md").is_file():
            return candidate
    return None


def docs(
    topic: Annotated[
        str | None, typer.Argument(metavar="TOPIC", help="e.g. runtime, security, cli.")
    ] = None,
    path: Annotated[bool, typer.Option("--path", help="Print the file's path only.")] = False,
) -> None:
    """Read fleetbus's documentation: the topics, or one of them (TOPIC: runtime, cli, ...)."""
    where = docs_dir()
    if where is None:
        fail("the documentation is not installed with this fleetbus")
    topics = sorted(p.stem for p in where.glob("*.md"))
    if topic is None:
        console.print("fleetbus docs TOPIC, where TOPIC is one of:")
        for name in topics:
            console.print(f"  {name}")
        console.print(f"(files in {where})")
        return
    if topic not in topics:
        fail(f"no topic {topic!r}: the topics are {', '.join(topics)}", 2)
    file = where / f"{topic}.md"
    if path:
        print(file)
        return
    console.print(Markdown(file.read_text(encoding="utf-8")))
