"""Helpers for the runtime tests: modified seed fleets, raw clients, dead letters, waiting."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import nats
import yaml
from nats.aio.client import Client

from fleetbus.fleet import FleetSpec
from fleetbus.fleet.template import SEED_FLEET_YAML
from fleetbus.js.api import JsApi
from fleetbus.js.connection import Connection
from fleetbus.testing import eventually
from fleetbus.testing.fleets import FleetUnderTest
from fleetbus.wire.updates import TaskUpdate


def api_of(nc: Client) -> JsApi:
    """The JetStream API over a plain nats-py client."""
    return JsApi(Connection.wrap(nc))


def seed_spec(
    *,
    streams: dict[str, dict[str, Any]] | None = None,
    budgets: dict[str, str] | None = None,
    **consumers: dict[str, Any],
) -> FleetSpec:
    """The seed fleet with consumer settings changed: ``seed_spec(backend_tasks={...})``,
    stream settings: ``streams={"TASKS": {"max_msgs": 4}}``, roles' task budgets:
    ``budgets={"backend": "1s"}``."""
    data = yaml.safe_load(SEED_FLEET_YAML)
    for name, fields in (streams or {}).items():
        data["streams"][name].update(fields)
    for role, budget in (budgets or {}).items():
        data["roles"][role]["task_budget"] = budget
    for key, fields in consumers.items():
        role, kind = key.split("_", 1)
        data["roles"][role].setdefault(kind, {}).update(fields)
    return FleetSpec.model_validate(data)


@contextlib.asynccontextmanager
async def raw_client(fleet: FleetUnderTest) -> AsyncIterator[Client]:
    """A plain nats-py connection: what a non-fleetbus publisher or consumer uses."""
    nc = await nats.connect(fleet.url)
    try:
        yield nc
    finally:
        await nc.close()


@dataclass(frozen=True)
class Stored:
    subject: str
    seq: int
    headers: dict[str, str]
    data: bytes


async def stored(nc: Client, stream: str) -> list[Stored]:
    """Every message in ``stream``, read by sequence (no consumer involved)."""
    api = api_of(nc)
    info = await api.stream_info(stream)
    assert info is not None, stream
    state = info["state"]
    out: list[Stored] = []
    if not state["messages"]:
        return out
    for seq in range(int(state["first_seq"]), int(state["last_seq"]) + 1):
        message = await api.get_message(stream, seq)
        if message is None:
            continue
        out.append(Stored(message.subject, seq, message.headers, message.data))
    return out


def stream_name(fleet: FleetUnderTest, base: str) -> str:
    """The isolated name of one of the seed's streams (``AGENT_DLQ`` -> ``AGENT_DLQ_tag``)."""
    (name,) = [n for n in fleet.spec.streams if n.startswith(f"{base}_")]
    return name


async def dead_letters(nc: Client, fleet: FleetUnderTest) -> list[Stored]:
    """The dead letters written so far (the captured advisories left out)."""
    dlq = fleet.spec.dead_letter_stream
    assert dlq is not None
    prefix = f"{fleet.spec.prefix}.dlq."
    return [m for m in await stored(nc, dlq) if m.subject.startswith(prefix)]


async def wait_dead_letters(
    nc: Client, fleet: FleetUnderTest, count: int, timeout: float = 15.0
) -> list[Stored]:
    letters: list[Stored] = []

    async def enough() -> bool:
        nonlocal letters
        letters = await dead_letters(nc, fleet)
        return len(letters) >= count

    await eventually(enough, timeout, f"{count} dead letter(s)")
    return letters


async def updates(nc: Client, fleet: FleetUnderTest, task_id: str) -> list[TaskUpdate]:
    """The stored updates and the outcome of ``task_id``, in order, once its outcome is stored.

    ``result()`` answers from the live outcome, which subscribers can get a moment before the
    stream has stored it: the history is read when it is complete (or after 10 s)."""
    subjects = fleet.spec.subjects
    found: list[TaskUpdate] = []

    async def complete() -> bool:
        found[:] = []
        for m in await stored(nc, stream_name(fleet, "TASKS")):
            parts = subjects.parse_task(m.subject)
            if (
                parts is not None
                and parts.task_id == task_id
                and parts.kind in ("updates", "outcome")
            ):
                found.append(TaskUpdate.decode(m.data).written_by(parts.assigner, parts.assignee))
        return bool(found) and found[-1].terminal

    with contextlib.suppress(AssertionError):
        await eventually(complete, timeout=10.0, what=f"the outcome of {task_id}")
    return found


async def consumer_info(nc: Client, fleet: FleetUnderTest, role: str, kind: str) -> dict[str, Any]:
    consumer = fleet.spec.consumer(role, kind)  # type: ignore[arg-type]
    assert consumer is not None
    info = await api_of(nc).consumer_info(consumer.stream, consumer.name)
    assert info is not None
    return info


def carry_on(
    register: Callable[[Callable[[Any], Any]], Any], *, plain: bool = False
) -> tuple[list[Any], asyncio.Event]:
    """Register, with ``register`` (an agent's ``on_task``, ``on_message``), a handler that
    catches its cancellation and carries on until the returned event is set (``plain``: a
    plain ``def``, which cannot be interrupted at all). The list gets what each call was
    given, as it starts."""
    calls: list[Any] = []
    done = asyncio.Event()

    async def stubborn(arg: Any) -> None:
        calls.append(arg)
        while not done.is_set():
            with contextlib.suppress(asyncio.CancelledError):  # and carries on
                await asyncio.sleep(0.2)

    def blocking(arg: Any) -> None:
        calls.append(arg)
        while not done.is_set():  # a thread reading a flag the loop sets
            time.sleep(0.2)

    register(blocking if plain else stubborn)
    return calls, done
