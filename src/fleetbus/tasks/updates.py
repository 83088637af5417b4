"""A task's updates (``P.tasks.{task_id}.updates``): one JSON object per change, stored by the
agent that works the task, read by whoever follows it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fleetbus.errors import FleetbusError, PayloadError
from fleetbus.fleet import FleetSpec
from fleetbus.js.connection import Connection
from fleetbus.js.publish import Publisher
from fleetbus.js.reader import StreamReader
from fleetbus.wire import headers as h
from fleetbus.wire.updates import TaskUpdate

__all__ = ["publish_update", "stored_updates", "watch_updates"]

log = logging.getLogger("fleetbus.tasks")


async def publish_update(
    publisher: Publisher, spec: FleetSpec, update: TaskUpdate, *, msg_id: str | None
) -> None:
    """Store a task update; a failure is logged, never raised (it must not fail the task)."""
    try:
        await publisher.publish(
            spec.subjects.task_updates(update.task_id),
            update.encode(),
            {h.TASK_ID: update.task_id},
            msg_id=msg_id,
        )
    except FleetbusError as exc:
        log.warning("task %s: %s update not stored: %s", update.task_id, update.state, exc)


async def watch_updates(
    conn: Connection, spec: FleetSpec, task_id: str
) -> AsyncIterator[TaskUpdate]:
    """Every update of ``task_id`` from the first, then live ones as they come."""
    async for update, _ in _read(conn, spec, task_id):
        yield update


async def stored_updates(
    conn: Connection, spec: FleetSpec, task_id: str, *, wait: float = 1.0
) -> list[TaskUpdate]:
    """The updates stored so far for ``task_id`` (empty if none arrive within ``wait``)."""
    out: list[TaskUpdate] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(wait):
            async for update, pending in _read(conn, spec, task_id):
                out.append(update)
                if pending == 0:
                    break
    return out


async def _read(
    conn: Connection, spec: FleetSpec, task_id: str
) -> AsyncIterator[tuple[TaskUpdate, int]]:
    subject = spec.subjects.task_updates(task_id)
    stream = spec.stream_for(subject)
    if not stream:
        raise FleetbusError(f"no stream of the fleet stores {subject}: nothing to watch")
    async with StreamReader(conn, stream, subject, deliver="all") as reader:
        async for msg in reader:
            try:
                update = TaskUpdate.decode(msg.data)
            except PayloadError:
                continue  # not a fleetbus update: someone else published here
            yield update, msg.metadata.num_pending
