"""``TaskHandle``: a task that was assigned — wait for its result, or follow its updates.

``Fleet.assign`` subscribes to the task's updates *before* it publishes the task (a ``Follower``
on core NATS), so ``result()`` sees the terminal update the moment it is published, with no
consumer per task; now and then it also looks at the stored updates, since a reconnect can
drop a live message while the stored ones stay.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from fleetbus.errors import PayloadError, TaskError, TaskTimeout
from fleetbus.fleet import FleetSpec
from fleetbus.js.acks import PubAck
from fleetbus.js.connection import Connection
from fleetbus.tasks.updates import stored_updates, watch_updates
from fleetbus.wire.updates import TaskUpdate

__all__ = ["Follower", "TaskHandle"]

LIVE_CHECK = 5.0
"""How often a waiting ``result()`` also looks at the stored updates."""


class Follower:
    """A task's updates as they are published (a core subscription made before the task is
    assigned, so none is missed); it ends itself at the first terminal update."""

    def __init__(self) -> None:
        self.terminal: TaskUpdate | None = None
        self.done = asyncio.Event()
        self.sub: Subscription | None = None

    async def start(self, nc: Client, subject: str) -> None:
        self.sub = await nc.subscribe(subject, cb=self._on_update)

    async def _on_update(self, msg: Msg) -> None:
        try:
            update = TaskUpdate.decode(msg.data)
        except PayloadError:
            return
        if update.terminal and self.terminal is None:
            self.terminal = update
            self.done.set()
            await self.stop()

    async def stop(self) -> None:
        sub, self.sub = self.sub, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()


class TaskHandle:
    """A task that was assigned: follow its updates, or wait for its result."""

    def __init__(
        self,
        conn: Connection,
        spec: FleetSpec,
        task_id: str,
        role: str,
        ack: PubAck,
        follower: Follower | None = None,
    ) -> None:
        self.conn = conn
        self.spec = spec
        self.id = task_id
        self.role = role
        self.stream_seq = ack.seq
        self.duplicate = ack.duplicate
        """True when this task id was already assigned within the dedupe window."""
        self._follower = follower if not ack.duplicate else None

    def __repr__(self) -> str:
        return f"<TaskHandle {self.id} -> {self.role}>"

    async def result(self, timeout: float | None = None) -> Any:
        """The handler's return value; ``TaskError`` if the task was dead-lettered,
        ``TaskTimeout`` if it did not finish within ``timeout`` seconds."""
        try:
            async with asyncio.timeout(timeout):
                update = await self._terminal()
        except TimeoutError:
            raise TaskTimeout(self.id, timeout or 0.0) from None
        if update.state == "completed":
            return update.result
        raise TaskError(self.id, update.attempt, update.error or "", update.reason or "")

    async def _terminal(self) -> TaskUpdate:
        """The completed or dead-lettered update: live when this handle assigned the task,
        checked against the stored history now and then (a reconnect can drop live ones)."""
        follower = self._follower
        while follower is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(LIVE_CHECK):
                    await follower.done.wait()
            if follower.terminal is not None:
                return follower.terminal
            stored = [u for u in await stored_updates(self.conn, self.spec, self.id) if u.terminal]
            if stored:
                await follower.stop()
                return stored[0]
        async for update in watch_updates(self.conn, self.spec, self.id):
            if update.terminal:
                return update
        raise TaskError(self.id, 0, "the updates stream ended")  # pragma: no cover

    async def updates(self) -> AsyncIterator[TaskUpdate]:
        """Every update of the task from the first, then live ones as they come."""
        async for update in watch_updates(self.conn, self.spec, self.id):
            yield update
