"""``TaskHandle``: a task that was assigned — wait for its result, or follow its updates.

``Fleet.assign`` follows the task's records *before* it publishes the task (a ``Follower``: core
subscriptions on the exact subjects its assignee writes, ``P.tasks.{id}.updates|outcome.{A}.
{R}``), so ``result()`` sees the outcome the moment it is stored, with no consumer per task.
Only the role the task was assigned to can write those subjects (with auth on): a result
someone else wrote never reaches the handle.

A live outcome is only news that one was published: subscribers get a publish even when the
stream refused to store it (a full stream; a late attempt whose outcome lost to the first).
So the handle takes the outcome that is *stored*: the stream holding outcomes sends each one
again once it has stored it (its republish, ``P.outcomes.{id}.{A}.{R}``, which no client may
write), and that is the answer. A live outcome with no such notice soon after (a stream
provisioned without the republish) is read back by direct get; so is the stored outcome now
and then while the handle waits, and at once after a reconnect (a reconnect can drop a live
message, never a stored one).
Once notices come, live outcomes are no longer taken (``TaskRecords.follow``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from fleetbus.errors import FleetbusError, TaskCancelled, TaskError, TaskExpired, TaskTimeout
from fleetbus.tasks import TaskRecords, TaskRef
from fleetbus.wire.updates import TaskUpdate

__all__ = ["Follower", "TaskHandle"]

LIVE_CHECK = 5.0
"""How often a waiting ``result()`` also reads the stored outcome."""
NOTICE_WAIT = 0.05
"""How long a live outcome waits for the server's stored-outcome notice before reading the
stream (the notice follows the store within microseconds on one node, a replication round
trip in a cluster)."""
STORE_PAUSE = 0.002
STORE_PAUSE_MOST = 0.256
"""A live record not stored yet is read again after 2, 4, ... 256 ms (about half a second)."""


async def _read_until(
    read: Callable[[], Awaitable[TaskUpdate | None]],
    done: Callable[[TaskUpdate | None], bool],
) -> TaskUpdate | None:
    """``read()``, and again after ``STORE_PAUSE``, twice that, ... up to ``STORE_PAUSE_MOST``
    while ``done`` says no: subscribers hear a record as the server routes it, and the
    stream stores it a moment later."""
    record = await read()
    pause = STORE_PAUSE
    while not done(record) and pause <= STORE_PAUSE_MOST:
        await asyncio.sleep(pause)
        pause *= 2
        record = await read()
    return record


class Follower:
    """A task's updates as they are published, kept in order, and its stored outcome."""

    def __init__(self) -> None:
        self.seen: list[TaskUpdate] = []
        """Updates (not outcomes) as published, then the stored outcome last."""
        self.outcome: TaskUpdate | None = None
        """The stored outcome, once read back."""
        self.published = False
        """An outcome was published live and not yet checked against the stored one."""
        self.missed = False
        """The connection was down: records may have gone by unheard; read the stored one."""
        self.changed = asyncio.Event()
        self.settled = asyncio.Event()
        self.news: Callable[[], None] | None = None
        """Called once, at the first update or outcome (the assigner's task-list entry is
        then not needed: ``tasks.index.LateEntries``)."""
        self._stop: Callable[[], None] | None = None

    def heard(self) -> bool:
        """Whether any news of the task came: an update, or its outcome."""
        return self.outcome is not None or self.published or bool(self.seen)

    def _news_came(self) -> None:
        news, self.news = self.news, None
        if news is not None:
            news()

    async def start(self, records: TaskRecords, ref: TaskRef) -> None:
        self._stop = await records.follow(ref, self._on_update)

    def _on_update(self, update: TaskUpdate | None, stored: bool) -> None:
        if self.outcome is not None:
            return  # after the outcome nothing counts (a late attempt's lost write, say)
        if update is None:  # back after a reconnect
            self.missed = True
            self.changed.set()
            return
        self._news_came()
        if stored:
            self.settle(update)
            self.stop()
            return
        if update.terminal:
            self.published = True
        else:
            self.seen.append(update)
        self.changed.set()

    def settle(self, outcome: TaskUpdate) -> None:
        """The outcome, as stored."""
        if self.outcome is None:
            self._news_came()
            self.seen.append(outcome)
            self.outcome = outcome
            self.changed.set()
            self.settled.set()

    async def wait(self, records: TaskRecords, ref: TaskRef) -> None:
        """Wait for news; read the stored outcome when one was published, after a
        reconnect, and every ``LIVE_CHECK`` seconds anyway."""
        quiet = False
        if not (self.published or self.missed):
            try:
                async with asyncio.timeout(LIVE_CHECK):
                    await self.changed.wait()
            except TimeoutError:
                quiet = True
        self.changed.clear()
        missed, self.missed = self.missed, False
        if missed and self.outcome is None:
            # Updates published while the connection was down went unheard: the last one
            # stored is where the task stands (an input request it waits on, say). The ones
            # between are not read back (a role may read only a subject's last record).
            last = await records.last(ref, "updates")
            if last is not None and last not in self.seen and self.outcome is None:
                self.seen.append(last)
        if self.outcome is None and self.published and not quiet:
            # The server's notice that it stored the outcome is on its way.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(NOTICE_WAIT):
                    await self.settled.wait()
        if self.outcome is None and (self.published or quiet or missed):
            published, self.published = self.published, False
            # A live outcome not stored yet is read again shortly (and if the stream refused
            # it, the outcome that stands is read within LIVE_CHECK anyway).
            stored = await _read_until(
                lambda: records.last(ref, "outcome"),
                lambda record: record is not None or not published,
            )
            if stored is not None:
                self.settle(stored)
                self.stop()

    def stop(self) -> None:
        stop, self._stop = self._stop, None
        if stop is not None:
            stop()


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
        self.agent_running: bool | None = None
        """At assignment: whether an agent of the role was alive (None: unknown)."""
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
        if outcome.state == "canceled":
            raise TaskCancelled(self.id, outcome.attempt, outcome.reason or "")
        if outcome.state == "expired":
            raise TaskExpired(self.id, outcome.attempt, outcome.reason or "past its deadline")
        raise TaskError(
            self.id, outcome.attempt, outcome.error or outcome.state, outcome.reason or ""
        )

    async def cancel(self, reason: str = "") -> bool:
        """Cancel the task: queued, it never runs; running, its handler is cancelled (a
        coroutine gets ``asyncio.CancelledError``, a plain ``def`` handler sees
        ``task.cancelled``). Either way it ends ``canceled``: acknowledged, not retried, not
        dead-lettered, and ``result()`` raises ``TaskCancelled``. False when the task had
        ended already (nothing changes). Only the assigner (and the admin) may: with auth on,
        the server refuses anyone else's cancel request."""
        return await self.records.cancel(self.ref, reason) is None

    async def respond(self, answer: Mapping[str, Any]) -> None:
        """Answer the task's pending input request (``task.request_input``). Raises
        ``FleetbusError`` when the task is not waiting for input, or the request was
        answered already (the first answer stands)."""
        last = await self._stored_request()
        if last is None or last.state != "input-required" or not last.request:
            state = last.state if last is not None else "not started"
            raise FleetbusError(f"task {self.id} is not waiting for input (it is {state})")
        if not await self.records.respond(self.ref, last.request, answer):
            raise FleetbusError(
                f"input request {last.request} of task {self.id} was answered already"
            )

    async def _stored_request(self) -> TaskUpdate | None:
        """The task's last stored update. When the last update this handle saw live is an
        input request the stream has not stored yet (subscribers hear a record a moment
        before it is stored: ``updates()`` can show it first), read again shortly."""
        follower = self._follower
        seen = follower.seen[-1] if follower is not None and follower.seen else None
        asked = seen.request if seen is not None and seen.state == "input-required" else None
        return await _read_until(
            lambda: self.records.last(self.ref, "updates"),
            lambda record: not asked or (record is not None and record.request == asked),
        )

    async def outcome(self) -> TaskUpdate | None:
        """The task's stored outcome, or None while it has none."""
        return await self.records.last(self.ref, "outcome")

    async def _outcome(self) -> TaskUpdate:
        follower = await self._following()
        while follower.outcome is None:
            await follower.wait(self.records, self.ref)
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
                follower.stop()
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
            if follower.outcome is None:
                await follower.wait(self.records, self.ref)
