"""What every verb shares: the global options, the fleet file, the connection, error output.

Only the CLI reads environment variables (``FLEETBUS_URL``, ``FLEETBUS_FLEET``, ...); the
library takes everything as arguments.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from fleetbus._files import write_file
from fleetbus._terminal import safe_json, safe_text
from fleetbus.environment import resolve_connect_settings, resolve_fleet, resolve_fleet_path
from fleetbus.errors import FleetbusError, FleetFileError, ServerError
from fleetbus.fleet import FleetSpec
from fleetbus.fleet.units import format_duration
from fleetbus.js.connection import Connection, ConnectSettings, connect
from fleetbus.runtime.eventloop import run
from fleetbus.wire.clock import parse_iso

__all__ = [
    "CliState",
    "OutFile",
    "console",
    "err_console",
    "fail",
    "print_error",
    "print_json",
    "print_json_line",
    "print_or_write",
    "run_async",
    "safe_text",
    "state",
]


def _console(stderr: bool = False) -> Console:
    """A terminal gets rich's layout; a pipe or a file gets lines that are never wrapped
    (a JSON line, a table row, a credential are read by programs)."""
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(stderr=stderr, highlight=False)
    columns = os.environ.get("COLUMNS", "")
    width = int(columns) if columns.isdigit() else 10_000
    return Console(stderr=stderr, highlight=False, width=width, soft_wrap=True)


console = _console()
err_console = _console(stderr=True)
T = TypeVar("T")


@dataclass
class CliState:
    fleet_file: str | None = None
    server_url: str | None = None
    data_dir: str | None = None
    user: str | None = None
    password: str | None = None
    creds: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    json_output: bool = False
    _fleet: FleetSpec | None = None

    @property
    def fleet_path(self) -> Path | None:
        """The fleet file in use: --fleet, FLEETBUS_FLEET, ./fleet.yaml, or None (the seed)."""
        return resolve_fleet_path(self.fleet_file)

    def fleet(self) -> FleetSpec:
        if self._fleet is None:
            self._fleet = resolve_fleet(self.fleet_path)
        return self._fleet

    def data_path(self) -> Path:
        return Path(self.data_dir or self.fleet().server.data_dir)

    def connect_settings(
        self, *, name: str = "fleetbus-cli", role: str | None = None
    ) -> ConnectSettings:
        """--server / FLEETBUS_URL, else the embedded server recorded in the data dir; as
        ``role`` when given (its stored credentials), else as the admin."""
        return resolve_connect_settings(
            self.fleet(),
            url=self.server_url,
            data_dir=self.data_path(),
            user=self.user,
            password=self.password,
            creds=self.creds,
            tls_ca=self.tls_ca,
            tls_cert=self.tls_cert,
            tls_key=self.tls_key,
            name=name,
            role=role,
        )

    @asynccontextmanager
    async def client(self) -> AsyncIterator[Connection]:
        """A connection as the admin (or the identity the options name), drained after."""
        conn = await connect(self.connect_settings())
        try:
            yield conn
        finally:
            await conn.drain()


def state(ctx: typer.Context) -> CliState:
    obj = ctx.find_root().obj
    assert isinstance(obj, CliState)
    return obj


def print_error(message: str) -> None:
    """``error: MESSAGE`` on stderr. The message is shown as text, never as markup: it often
    quotes what a role wrote (an agent's error answer, a record) or what the user typed."""
    error = Text.assemble(("error:", "bold red"), " ", safe_text(message, multiline=True))
    err_console.print(error, soft_wrap=True)


def fail(message: str, code: int = 1) -> NoReturn:
    """:func:`print_error`, then exit ``code``."""
    print_error(message)
    raise typer.Exit(code)


def one_line(exc: ServerError) -> str:
    """A server error on one line: what failed, then what the server said."""
    return "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())


def print_json(data: Any) -> None:
    """One JSON document: indented in a terminal, one line in a pipe; what roles wrote in it
    is exact, with the characters a terminal would obey as JSON escapes (``safe_json``)."""
    indent = 2 if sys.stdout.isatty() else None
    document = json.dumps(data, indent=indent, default=str, ensure_ascii=False)
    sys.stdout.write(safe_json(document) + "\n")


def print_json_line(data: Any) -> None:
    """One JSON object on one line (JSON Lines: what streaming verbs print with --json)."""
    sys.stdout.write(safe_json(json.dumps(data, default=str, ensure_ascii=False)) + "\n")
    sys.stdout.flush()


OutFile = Annotated[
    Path | None, typer.Option("--out", "-o", help="Write it to FILE instead of stdout.")
]
"""The ``--out FILE`` of a verb that prints a document (see :func:`print_or_write`)."""


def print_or_write(text: str, out: Path | None, wrote: str = "") -> None:
    """``text`` on stdout, or into ``out`` with a line saying so (``wrote``: what it holds)."""
    if out is None:
        sys.stdout.write(text)
        return
    try:
        write_file(out, text)
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror}")
    console.print(f"wrote {out}" + (f": {wrote}" if wrote else ""), soft_wrap=True)


def run_async(
    main: Callable[[], Coroutine[Any, Any, T]],
    *,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
) -> T:
    """Run a coroutine (on ``loop_factory``'s loop); turn fleetbus errors into one clear line
    and exit code 1."""
    try:
        return run(main(), loop_factory)  # asyncio.run, but no wait for good at the end
    except FleetFileError as exc:
        fail(str(exc))
    except ServerError as exc:
        fail(one_line(exc))
    except FleetbusError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def guard(func: Callable[[], T]) -> T:
    """Run synchronous CLI work with the same error handling as ``run_async``."""
    try:
        return func()
    except ServerError as exc:
        fail(one_line(exc))
    except FleetbusError as exc:
        fail(str(exc))


def age(stamp: str, now: datetime) -> str:
    """How long before ``now`` the time ``stamp`` was (``3m 20s``); ``-`` for no time (or
    for what a role wrote there that is not one)."""
    try:
        then = parse_iso(stamp)
    except (TypeError, ValueError, AttributeError):
        return "-"
    return format_duration(max(round((now - then).total_seconds()), 0))
