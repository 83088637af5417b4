"""The seed's ``nats pub`` / ``nats sub`` / ``nats req`` as fleetbus verbs:
``send``, ``msg``, ``emit``, ``ask`` and ``tail`` (``task`` and ``tasks``: ``task_cmds``).

BODY is JSON text, ``@file.json``, or ``-`` for standard input.
"""

from __future__ import annotations

import asyncio
import json
import sys
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Annotated, Any

import typer
from nats.aio.msg import Msg
from rich.text import Text

from fleetbus.cli._common import (
    CliState,
    console,
    err_console,
    fail,
    guard,
    print_json,
    print_json_line,
    run_async,
    safe_text,
    state,
)
from fleetbus.cli.task_cmds import print_update
from fleetbus.client.fleet import Fleet
from fleetbus.js.acks import PubAck
from fleetbus.wire import headers as h
from fleetbus.wire.subjects import validate_subject

_AS = typer.Option("--as", help="Send as this role (its sender token in the subject).")
_BODY = typer.Argument(metavar="BODY", help="JSON object, @file.json or - for stdin.")
_JSON = typer.Option("--json", help="Machine-readable output.")


def register(app: typer.Typer) -> None:
    app.command("send")(send)
    app.command("msg")(msg)
    app.command("emit")(emit)
    app.command("ask")(ask)
    app.command("tail")(tail)


def parse_body(text: str) -> dict[str, Any]:
    """JSON text, @file or - (stdin) → a JSON object; errors say where."""
    source = "BODY"
    if text == "-":
        source, text = "standard input", sys.stdin.read()
    elif text.startswith("@"):
        path = Path(text[1:])
        try:
            source, text = str(path), path.read_text(encoding="utf-8")
        except OSError as exc:
            fail(f"cannot read {path}: {exc.strerror}", 2)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"{source} is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", 2)
    if not isinstance(value, dict):
        fail(f"{source} must be a JSON object ({{...}}), got {type(value).__name__}", 2)
    return value


def _fleet(st: CliState, sender: str | None) -> AbstractAsyncContextManager[Fleet]:
    """A ``Fleet`` for one verb, sending as ``sender`` (checked against the fleet's roles)."""
    return Fleet.connect(spec=st.fleet(), connection=st.connect_settings(), sender=sender)


def send(
    ctx: typer.Context,
    role: Annotated[str, typer.Argument(metavar="ROLE", help="The role that gets the task.")],
    body: Annotated[str, _BODY],
    task_id: Annotated[str | None, typer.Option("--task-id", help="Default: generated.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the task to its end.")] = False,
    timeout: Annotated[float, typer.Option(min=0.001, help="Seconds --wait waits.")] = 600.0,
    sender: Annotated[str | None, _AS] = None,
    json_out: Annotated[bool, _JSON] = False,
    require_live: Annotated[
        bool,
        typer.Option("--require-live", help="Fail (exit 1) when no agent of ROLE is running."),
    ] = False,
) -> None:
    """Assign a task to ROLE (P.agents.ROLE.tasks); print its task id."""
    st = state(ctx)
    data = parse_body(body)

    async def main() -> int:
        async with _fleet(st, sender) as fleet:
            handle = await fleet.assign(role, data, task_id=task_id, require_live=require_live)
            if json_out and not wait:
                print_json(
                    {
                        "task_id": handle.id,
                        "duplicate": handle.duplicate,
                        "agent_running": handle.agent_running,
                    }
                )
            elif not json_out:
                note = " (duplicate: already assigned)" if handle.duplicate else ""
                console.print(f"{handle.id}{note}")
            # (no agent of the role running: fleet.assign's warning says so on stderr)
            if not wait:
                return 0
            if handle.agent_running is False:
                err_console.print(
                    f"waiting for a {role} agent to start and finish it (Ctrl-C stops waiting;"
                    " the task stays queued)",
                    soft_wrap=True,
                )
            try:
                async with asyncio.timeout(timeout):
                    async for update in fleet.watch(handle.id, role=role):
                        print_update(update, json_out)
                        if update.terminal:
                            return 0 if update.state == "completed" else 1
            except TimeoutError:
                fail(f"task {handle.id} did not finish within {timeout:g}s")
            return 1

    raise typer.Exit(run_async(main))


def msg(
    ctx: typer.Context,
    role: Annotated[str, typer.Argument(metavar="ROLE")],
    body: Annotated[str, _BODY],
    sender: Annotated[str | None, _AS] = None,
    json_out: Annotated[bool, _JSON] = False,
) -> None:
    """Send a direct message to ROLE's inbox (P.agents.ROLE.inbox)."""
    st = state(ctx)
    data = parse_body(body)

    async def main() -> PubAck:
        async with _fleet(st, sender) as fleet:
            return await fleet.message(role, data)

    ack = run_async(main)
    if json_out:
        print_json({"role": role, "stream": ack.stream, "seq": ack.seq})
    else:
        console.print(f"stored as message {ack.seq} of {role}'s inbox")


def emit(
    ctx: typer.Context,
    domain: Annotated[str, typer.Argument(metavar="DOMAIN", help="Event domain, e.g. deployment.")],
    event_type: Annotated[str, typer.Argument(metavar="TYPE", help="e.g. completed.")],
    body: Annotated[str, _BODY],
    sender: Annotated[str | None, _AS] = None,
    json_out: Annotated[bool, _JSON] = False,
) -> None:
    """Publish an event on P.events.DOMAIN.TYPE: every subscribing role gets it."""
    st = state(ctx)
    data = parse_body(body)

    async def main() -> PubAck:
        async with _fleet(st, sender) as fleet:
            return await fleet.emit(domain, event_type, data)

    ack = run_async(main)
    if json_out:
        subject = st.fleet().subjects.event(domain, event_type)
        print_json({"subject": subject, "stream": ack.stream, "seq": ack.seq})
    else:
        console.print(f"stored as event {ack.seq}")


def ask(
    ctx: typer.Context,
    role: Annotated[str, typer.Argument(metavar="ROLE")],
    body: Annotated[str, _BODY],
    timeout: Annotated[
        float, typer.Option(min=0.001, help="Seconds to wait for the answer.")
    ] = 30.0,
    durable: Annotated[
        bool,
        typer.Option(
            "--durable",
            help="Store the question: answered even by an agent "
            "that starts later (within the timeout).",
        ),
    ] = False,
    sender: Annotated[str | None, _AS] = None,
) -> None:
    """Ask ROLE a question; print the answer its agent returns (as JSON)."""
    st = state(ctx)
    data = parse_body(body)

    async def main() -> Any:
        async with _fleet(st, sender) as fleet:
            return await fleet.ask(role, data, timeout=timeout, durable=durable)

    print_json(run_async(main))


def _body(raw: bytes) -> Any:
    """A body as JSON when it is JSON, else as text."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return raw.decode("utf-8", "replace")


def tail(
    ctx: typer.Context,
    pattern: Annotated[
        str,
        typer.Argument(
            metavar="PATTERN", help="Subject pattern, absolute or relative to the prefix."
        ),
    ] = ">",
    json_out: Annotated[bool, _JSON] = False,
) -> None:
    """Print live messages on PATTERN, one line each, without consuming anything."""
    st = state(ctx)
    spec = st.fleet()
    subject = spec.subjects.absolute_pattern(pattern)
    guard(lambda: validate_subject(subject))
    filters = guard(lambda: spec.subjects.tail_filters(pattern))

    async def main() -> None:
        async with st.client() as conn:
            nc = conn.nc
            queue: asyncio.Queue[Msg] = asyncio.Queue()

            async def put(m: Msg) -> None:
                if spec.subjects.heard_as_sent(m.subject, m.headers, filters):
                    queue.put_nowait(m)  # not what a role had the server send here

            for each in filters:
                await nc.subscribe(each, cb=put)
            await conn.flush()  # the server has the subscription before we say so
            err_console.print(f"[dim]tailing {subject} (Ctrl-C stops)[/]", highlight=False)
            while True:
                m = await queue.get()
                headers = m.headers or {}
                token = spec.subjects.sender_of(m.subject)
                sender = token or headers.get(h.SENDER, "-")
                if json_out:
                    print_json_line(
                        {
                            "subject": m.subject,
                            "sender": sender,
                            "sender_verified": token is not None,
                            "headers": dict(headers),
                            "body": _body(m.data),
                        }
                    )
                    continue
                text = m.data.decode("utf-8", "replace").replace("\n", " ")
                shown = (safe_text(m.subject), (" from ", "dim"), safe_text(sender), ": ")
                console.print(Text.assemble(*shown, safe_text(text[:300])), highlight=False)

    run_async(main)
