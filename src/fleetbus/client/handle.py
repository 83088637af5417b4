"""``TaskHandle``: a task that was assigned — wait for its result, or follow its updates.

``Fleet.assign`` follows the task's records *before* it publishes the task (a ``Follower``: core
subscriptions on the exact subjects its assignee writes, ``P.tasks.{id}.updates|outcome.{A}.
{R}``), so ``result()`` sees the outcome the moment it is stored, with no consumer per task.
Now and then it also reads the stored outcome by direct get, since a reconnect can drop a live
message while the stored one stays. Only the role the task was assigned to can write those
subjects (with auth on): a result someone else wrote never reaches the handle.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fleetbus.errors import TaskError, TaskTimeout
from fleetbus.tasks import TaskRecords, TaskRef
from fleetbus.wire.updates import TaskUpdate

__all__ = ["Follower", "TaskHandle"]

LIVE_CHECK = 5.0
"""How often a waiting ``result()`` also reads the stored outcome."""


class Follower:
    """A task's updates and outcome as they are published, kept in order."""

    def __init__(self) -> None:
        self.seen: list[TaskUpdate] = []
        self.outcome: TaskUpdate | None = None
        self.changed = asyncio.Event()
        self._stop: Callable[[], Awaitable[None]] | None = None

    async def start(self, records: TaskRecords, ref: TaskRef) -> None:
        self._stop = await records.follow(ref, self._on_update)

    async def _on_update(self, update: TaskUpdate) -> None:
        if self.outcome is not None:
            return  # after the outcome nothing counts (a late attempt's lost write, say)
        self.seen.append(update)
        if update.terminal:
            self.outcome = update
            await self.stop()
        self.changed.set()

    def settle(self, outcome: TaskUpdate) -> None:
        """The outcome, learnt from the stored record (a reconnect dropped the live one)."""
        if self.outcome is None:
            self.seen.append(outcome)
            self.outcome = outcome
            self.changed.set()

    async def stop(self) -> None:
        stop, self._stop = self._stop, None
        if stop is not None:
            await stop()


class TaskHandle:
    """A task that was assigned: follow its updates, or wait for its result."""

    def __init__(
        self,
        records: TaskRecords,
        ref: TaskRef,
        *,
        stream_seq: int = 0,
        duplicate: bool = False,
        follower: Follower | None = None,
    ) -> None:
        self.records = records
        self.ref = ref
        self.id = ref.task_id
        self.role = ref.assignee
        """The role it was assigned to: the only one whose records count."""
        self.assigner = ref.assigner
        self.stream_seq = stream_seq
        self.duplicate = duplicate
        """True when this task id was already assigned within the dedupe window."""
        self._follower = follower

    def __repr__(self) -> str:
        return f"<TaskHandle {self.id} -> {self.role}>"

    async def result(self, timeout: float | None = None) -> Any:
        """The handler's return value; ``TaskError`` if the task failed for good (dead-
        lettered, rejected), ``TaskTimeout`` if it did not end within ``timeout`` seconds."""
        try:
            async with asyncio.timeout(timeout):
                outcome = await self._outcome()
        except TimeoutError:
            raise TaskTimeout(self.id, timeout or 0.0) from None
        if outcome.state == "completed":
            return outcome.result
        raise TaskError(
            self.id, outcome.attempt, outcome.error or outcome.state, outcome.reason or ""
        )

    async def outcome(self) -> TaskUpdate | None:
        """The task's stored outcome, or None while it has none."""
        return await self.records.last(self.ref, "outcome")

    async def _outcome(self) -> TaskUpdate:
        follower = await self._following()
        while follower.outcome is None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(LIVE_CHECK):
                    await follower.changed.wait()
            follower.changed.clear()
            if follower.outcome is None:
                stored = await self.outcome()
                if stored is not None:
                    follower.settle(stored)
                    await follower.stop()
        return follower.outcome

    async def _following(self) -> Follower:
        """The live follower (started now, for a handle made after the task was assigned:
        then what happened before comes from the stored records)."""
        if self._follower is None:
            follower = Follower()
            await follower.start(self.records, self.ref)
            self._follower = follower
            stored = await self.outcome()
            if stored is not None:
                follower.settle(stored)
                await follower.stop()
        return self._follower

    async def updates(self) -> AsyncIterator[TaskUpdate]:
        """Every update of the task as it happens, ending with its outcome. A handle made by
        ``assign`` sees them all; one made later starts with the last stored state."""
        fresh = self._follower is None
        follower = await self._following()
        if fresh and not follower.seen:
            last = await self.records.last(self.ref, "updates")
            if last is not None:
                follower.seen.insert(0, last)
        index = 0
        while True:
            while index < len(follower.seen):
                update = follower.seen[index]
                index += 1
                yield update
                if update.terminal:
                    return
            follower.changed.clear()
            if follower.outcome is None:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(LIVE_CHECK):
                        await follower.changed.wait()
                if follower.outcome is None and index == len(follower.seen):
                    stored = await self.outcome()
                    if stored is not None:
                        follower.settle(stored)
