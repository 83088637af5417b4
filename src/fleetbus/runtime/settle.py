"""How one delivery ends: the handler runs (with heartbeats, within the task budget), then the
message is acknowledged, retried with a growing delay, or dead-lettered with its reason, and a
task's updates say which.

- Success: the caller stores what the success means (a task's ``completed`` update), then acks.
- ``Retry`` or any exception: ``nak`` with a delay (the consumer's ``backoff`` list, else
  ``retry_base`` doubling per attempt); on the consumer's last attempt, a dead letter.
- ``Reject``, or a message that cannot be decoded: a dead letter at once.
- A dead letter is written by whoever holds the message, then the message is terminated with
  a reason marked ``fleetbus:`` so the copier knows it is already written.
- While the handler runs, ``+WPI`` every ``ack_wait / 3`` keeps the message; a task handler
  running past its role's ``task_budget`` is cancelled (heartbeats would otherwise keep a hung
  handler's task forever) and the attempt counts as failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from nats.aio.msg import Msg

from fleetbus.deadletters import REASON_MARK, DeadLetter, write_dead_letter
from fleetbus.fleet import FleetSpec, ResolvedConsumer
from fleetbus.fleet.units import format_duration
from fleetbus.js.connection import Connection
from fleetbus.js.publish import Publisher
from fleetbus.runtime.envelope import BadMessage
from fleetbus.runtime.messages import Reject, Retry
from fleetbus.runtime.settings import RuntimeSettings
from fleetbus.tasks import publish_update
from fleetbus.wire.updates import TaskState, TaskUpdate, update_msg_id

__all__ = ["Settler", "TaskBudgetExceeded"]

log = logging.getLogger("fleetbus.runtime")


class TaskBudgetExceeded(Exception):
    """A task handler ran longer than its role's ``task_budget`` and was cancelled."""


@dataclass(frozen=True, slots=True)
class Settler:
    """Settles the deliveries of one agent (role ``role``, worker ``worker``)."""

    conn: Connection
    spec: FleetSpec
    role: str
    worker: str
    publisher: Publisher
    settings: RuntimeSettings

    async def run(
        self,
        msg: Msg,
        consumer: ResolvedConsumer,
        handler: Callable[[Any], Awaitable[Any]],
        arg: Any,
        attempt: int,
        task_id: str | None,
    ) -> tuple[bool, Any]:
        """Run ``handler(arg)`` with heartbeats. ``(True, value)`` on success; failures are
        settled here and give ``(False, None)``."""
        beat = asyncio.create_task(self.heartbeat(msg, consumer.spec.effective_ack_wait))
        budget = self.spec.roles[self.role].task_budget if consumer.kind == "tasks" else None
        deadline = asyncio.timeout(budget)
        try:
            try:
                async with deadline:
                    value = await handler(arg)
            except TimeoutError:
                if budget is None or not deadline.expired():
                    raise  # the handler's own timeout, not the budget
                raise TaskBudgetExceeded(
                    f"the handler ran past the role's task_budget of {format_duration(budget)}"
                ) from None
        except Reject as exc:
            await self.dead_letter(msg, consumer, f"rejected: {exc.reason}", exc.reason)
            if task_id:
                await self.update(task_id, "dead_lettered", attempt, error=exc.reason)
            return False, None
        except Retry as exc:
            await self.fail(msg, consumer, attempt, exc.reason, exc.delay, task_id)
            return False, None
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            await self.fail(msg, consumer, attempt, error, None, task_id)
            return False, None
        finally:
            beat.cancel()
        return True, value

    async def fail(
        self,
        msg: Msg,
        consumer: ResolvedConsumer,
        attempt: int,
        error: str,
        delay: float | None,
        task_id: str | None,
    ) -> None:
        """A failed attempt: retried after a delay, or dead-lettered on the last one."""
        max_deliver = consumer.spec.max_deliver
        if max_deliver != -1 and attempt >= max_deliver:
            reason = f"failed on all {attempt} attempts (max_deliver {max_deliver})"
            log.warning(
                "%s: %s seq %d: %s; dead-lettered",
                self.worker,
                consumer.name,
                msg.metadata.sequence.stream,
                error,
            )
            await self.dead_letter(msg, consumer, reason, error)
            if task_id:
                await self.update(task_id, "dead_lettered", attempt, error=error, reason=reason)
            return
        if delay is None:
            delay = self.retry_delay(consumer, attempt)
        log.warning(
            "%s: %s attempt %d failed: %s; retry in %.1fs",
            self.worker,
            task_id or consumer.name,
            attempt,
            error,
            delay,
        )
        if task_id:
            await self.update(task_id, "failed", attempt, error=error, retry_in=delay)
        await msg.nak(delay=delay)

    def retry_delay(self, consumer: ResolvedConsumer, attempt: int) -> float:
        """The consumer's backoff list if it has one, else retry_base doubling per attempt."""
        backoff = consumer.spec.backoff
        if backoff:
            return backoff[min(attempt, len(backoff)) - 1]
        return float(min(self.settings.retry_base * 2 ** (attempt - 1), self.settings.retry_max))

    async def heartbeat(self, msg: Msg, ack_wait: float) -> None:
        interval = max(ack_wait / 3, 0.05)
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(Exception):
                await msg.in_progress()

    async def dead_letter(
        self, msg: Msg, consumer: ResolvedConsumer, reason: str, error: str
    ) -> None:
        meta = msg.metadata
        letter = DeadLetter(
            subject=msg.subject,
            stream=consumer.stream,
            seq=meta.sequence.stream,
            consumer=consumer.name,
            deliveries=meta.num_delivered,
            reason=reason,
            error=error,
        )
        log.warning(
            "%s: dead-lettering %s seq %d: %s", self.worker, consumer.name, letter.seq, reason
        )
        await write_dead_letter(self.publisher, self.spec, letter, msg.data, msg.headers)
        # +TERM with a reason (nats-py's term() takes none); the mark tells the copier
        # that this dead letter is already written.
        await self.conn.nc.publish(msg.reply, f"+TERM {REASON_MARK} {reason}".encode())

    async def bad_message(self, msg: Msg, consumer: ResolvedConsumer, bad: BadMessage) -> None:
        await self.dead_letter(msg, consumer, bad.reason, bad.error)

    async def update(
        self,
        task_id: str,
        state: TaskState,
        attempt: int,
        *,
        every_time: bool = False,
        **fields: Any,
    ) -> None:
        """Store a task update. Each state is stored once per attempt (a redelivery that
        repeats it is dropped by the dedupe window), a completion once per task;
        ``every_time``: each call is stored (progress)."""
        update = TaskUpdate(
            task_id=task_id,
            state=state,
            agent=self.role,
            worker=self.worker,
            attempt=attempt,
            time=TaskUpdate.now(),
            **fields,
        )
        msg_id = None if every_time else update_msg_id(task_id, state, attempt)
        await publish_update(self.publisher, self.spec, update, msg_id=msg_id)
