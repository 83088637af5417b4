"""Storing a task's updates (``P.tasks.{task_id}.updates``): one JSON object per change."""

from __future__ import annotations

import logging

from fleetbus.errors import FleetbusError
from fleetbus.fleet import FleetSpec
from fleetbus.js.publish import Publisher
from fleetbus.wire import headers as h
from fleetbus.wire.updates import TaskUpdate

__all__ = ["publish_update"]

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
