"""How one delivery ends: the handler runs (with heartbeats, within the task budget), then the
message is acknowledged, retried with a growing delay, or dead-lettered with its reason, and a
task's records say which.

- **Nothing is acknowledged before its record is stored.** A task's outcome is stored first,
  then the message is acked; an outcome that cannot be stored fails the attempt (it is
  retried). A dead letter is stored first, then the message is terminated; a dead letter that
  cannot be stored leaves the message where it is (a nak with a delay) and says so loudly.
- **Attempts are counted here, not by the server.** The fleet file's ``max_deliver`` is the
  number of attempts; the server's is unlimited (provisioning sets -1), so the server never
  drops a message that has run out of deliveries while no dead letter was stored. A delivery
  past the last attempt (the agent died or hung during it) is dead-lettered at once, with its
  body, by whichever agent gets it.
- ``Retry`` or any exception: ``nak`` with a delay (the consumer's ``backoff`` list, else
  ``retry_base`` doubling per attempt). ``Reject``, or a message that cannot be decoded: a dead
  letter at once (a rejected task's outcome is ``rejected``).
- **The lease.** While the handler runs, ``+WPI`` every ``ack_wait / 3`` keeps the message.
  When the heartbeats stopped for longer than the ack wait (an event loop blocked by a
  synchronous call), the server has given the message to another agent: this attempt may
  still store an outcome (the first stored wins), but it never naks or terminates the
  message, which now belongs to the other delivery.
- A task handler running past its role's ``task_budget`` is cancelled (heartbeats would
  otherwise keep a hung handler's task forever) and the attempt counts as failed.
- **``accepted`` is news, written for a task that runs:** once its handler has run for
  ``accepted_after`` (or before its first progress or input request), and stored before
  anything the attempt writes next. A quicker attempt writes only how it ended.
- **Cancel and deadline.** A cancel request (``handle.cancel``) cancels the handler's
  coroutine (a plain ``def`` handler sees ``task.cancelled``); a task past its deadline is
  cancelled the same way. Either ends the task (``canceled``, ``expired``): acknowledged, never
  retried or dead-lettered. A retry that would start after the deadline is not made.

One piece: every way a delivery ends shares the lease, the records and the acknowledgement,
and the rules above only hold when they are read together.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import logging
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nats.aio.msg import Msg

from fleetbus._background import background
from fleetbus.deadletters import REASON_MARK, DeadLetter, write_dead_letter
from fleetbus.errors import FleetbusError
from fleetbus.fleet import FleetSpec, ResolvedConsumer
from fleetbus.fleet.units import format_duration
from fleetbus.js.connection import Connection
from fleetbus.js.consume import Worker, current_worker
from fleetbus.js.publish import Publisher
from fleetbus.runtime.envelope import BadMessage
from fleetbus.runtime.limits import TimeLimit
from fleetbus.runtime.messages import Reject, Retry
from fleetbus.runtime.routes import is_async
from fleetbus.runtime.settings import RuntimeSettings
from fleetbus.runtime.threads import LEFT, in_thread
from fleetbus.tasks import OutcomeWrite, TaskIndex, TaskRecords, TaskRef, TaskSummary
from fleetbus.telemetry import METRICS, pop_log_context, push_log_context, tracing
from fleetbus.wire import headers as h
from fleetbus.wire.updates import TaskState, TaskUpdate, bounded

__all__ = [
    "Delivery",
    "Heartbeats",
    "Settler",
    "TaskBudgetExceeded",
    "error_text",
]

log = logging.getLogger("fleetbus.runtime")

_UNCOUNTED = contextlib.nullcontext()
"""What an async handler run in place counts handler threads with: nothing."""

RUNNING_STATES = frozenset({"progress", "input-required"})
"""The updates of an attempt still running (an ``accepted`` still due is written first)."""

TRACEBACK_LIMIT = 4000
"""The most characters of a traceback stored in an update or a dead letter (the end of it)."""


class TaskBudgetExceeded(Exception):
    """A task handler ran longer than its role's ``task_budget`` and was cancelled."""

    @classmethod
    def of(cls, budget: float) -> TaskBudgetExceeded:
        return cls(f"the handler ran past the role's task_budget of {format_duration(budget)}")


@dataclass(slots=True, eq=False)
class Delivery:
    """One delivery being handled: the message, its consumer, the attempt, and the task it
    is (if it is one)."""

    msg: Msg
    consumer: ResolvedConsumer
    attempt: int
    stream_seq: int = 0
    stored_ns: int = 0
    """When the stream stored it (nanoseconds since the epoch; all three from its ack
    subject, read once: ``envelope.delivered_of``)."""
    task: TaskRef | None = None
    handler: str = ""
    last_beat: float = field(default_factory=time.monotonic)
    lease_lost: bool = False
    """The heartbeats stopped for longer than the ack wait: another delivery owns it now."""
    deadline: float | None = None
    """Unix time past which the task must not run (``Fleet-Deadline``)."""
    canceled: str | None = None
    """The reason, once a cancel request reached this delivery (what a plain ``def``
    handler, in its thread, sees as ``task.cancelled``)."""
    summary: TaskSummary | None = None
    """The task list's entry for this task, as this delivery last wrote it."""
    requests: int = 0
    """Input requests made by this attempt so far (their numbers repeat across attempts)."""
    since: str = ""
    """When this process received it (tasks only: what the presence record shows)."""
    accept_timer: asyncio.TimerHandle | None = None
    """Writes the task's ``accepted`` once the handler has run for ``accepted_after``."""
    accepting: asyncio.Future[Any] | None = None
    """The ``accepted`` being written (what the attempt writes next waits for it)."""
    worker: Worker | None = None
    """The consumer's worker an ``async def`` handler runs in, in place, while it runs."""
    given_up_at: float | None = None
    """When (monotonic) that handler is given up if it still runs: one ack wait past its
    time limit, where its cancellation has had that long to end it."""
    abandoned: bool = False
    """Given up: settled as failed while its handler went on; what it does next is nobody's."""
    limit: tuple[TimeLimit | None, float] | None = None
    """The handler's time limit and when it falls due (the loop's clock), until its first
    heartbeat sets it (``Heartbeats.start``); None for an ``async def`` handler run in
    place, whose limit that heartbeat makes (``late``)."""
    late: TimeLimit | None = None
    """The time limit of a handler run in place, made at its first heartbeat if it still
    runs then (most end before: they make none)."""
    interrupt: TimeLimit | None = None
    """A cancel request's cancellation of a task's handler run in place (due at once)."""

    def drop_accept_timer(self) -> bool:
        """Cancel the ``accepted`` not yet due; whether there was one."""
        timer, self.accept_timer = self.accept_timer, None
        if timer is None:
            return False
        timer.cancel()
        return True

    def cancel(self, reason: str) -> None:
        """Cancel the running handler (once)."""
        if self.canceled is not None:
            return
        self.canceled = reason
        self.interrupt = _around_worker(self)  # an async def handler, running in its worker
        if self.interrupt is not None:
            self.interrupt.expire()

    @property
    def ack_wait(self) -> float:
        return self.consumer.spec.effective_ack_wait

    @property
    def last_attempt(self) -> bool:
        limit = self.consumer.spec.max_deliver
        return limit != -1 and self.attempt >= limit

    @property
    def past_last_attempt(self) -> bool:
        limit = self.consumer.spec.max_deliver
        return limit != -1 and self.attempt > limit


@dataclass(frozen=True, slots=True)
class Settler:
    """Settles the deliveries of one agent (role ``role``, worker ``worker``)."""

    conn: Connection
    spec: FleetSpec
    role: str
    worker: str
    publisher: Publisher
    settings: RuntimeSettings
    records: TaskRecords | None
    index: TaskIndex | None = None
    running: set[Delivery] = field(default_factory=set, compare=False, hash=False)
    handled: Counter[str] = field(default_factory=Counter, compare=False, hash=False)
    """Deliveries ended since the agent started, by consumer kind (and ``failed``)."""
    beats: Heartbeats = field(init=False, compare=False, hash=False)
    """``+WPI`` for every delivery whose handler runs (``beats.start(d)`` / ``stop(d)``)."""
    left_behind: LeftBehind = field(init=False, compare=False, hash=False)
    """Handlers left running after they were cancelled (the agent sets ``stuck``)."""
    budget: float | None = field(init=False, compare=False, hash=False)
    """The role's ``task_budget``: how long any of its handlers may run (None: no limit)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "beats", Heartbeats(self.beat_due))
        object.__setattr__(self, "left_behind", LeftBehind(self.settings.left_behind_limit))
        object.__setattr__(self, "budget", self.spec.roles[self.role].task_budget)

    async def run(self, d: Delivery, handler: Callable[[Any], Any], arg: Any) -> tuple[bool, Any]:
        """Run ``handler(arg)`` (a plain ``def`` in a worker thread) with heartbeats.
        ``(True, value)`` on success; failures are settled here and give ``(False, None)``.

        The handler runs in a trace span whose parent is the sender's (``traceparent``), and
        with its role, task and attempt on every log record it makes."""
        kind = d.consumer.kind
        task_id = d.task.task_id if d.task is not None else None
        metrics = METRICS.enabled
        if metrics:
            METRICS.running(self.role, kind, 1)
        began = time.perf_counter()
        context = push_log_context(
            role=self.role,
            worker=self.worker,
            task_id=task_id,
            attempt=d.attempt,
            consumer=d.consumer.name,
        )
        try:
            with self._counting_threads(d, handler):
                if not tracing.active():  # the usual case: no span to open
                    return await self._run(d, handler, arg)
                headers = d.msg.headers or {}
                with tracing.consumer(
                    headers,
                    d.consumer.name,
                    message_id=headers.get(h.MSG_ID),
                    conversation_id=task_id,
                ):
                    return await self._run(d, handler, arg)
        finally:
            pop_log_context(context)
            if metrics:
                METRICS.running(self.role, kind, -1)
                METRICS.handler_ran(self.role, kind, time.perf_counter() - began)

    def _counting_threads(
        self, d: Delivery, handler: Callable[[Any], Any]
    ) -> contextlib.AbstractContextManager[None]:
        """Only where a thread may run the handler's code (a plain def, a task's steps,
        events with a plain def among their handlers) is a call given up there counted: an
        async handler run in place pays nothing for it."""
        threads = getattr(handler, "in_threads", None)  # EventHandlers say
        if d.task is not None or (not is_async(handler) if threads is None else threads):
            return self.left_behind.counting_threads(d.ack_wait)
        return _UNCOUNTED

    async def end_or_leave(
        self, running: asyncio.Future[Any], wait: float, handler: str, what: str
    ) -> None:
        """Cancel ``running`` (a handler's own task) and give it ``wait`` seconds to end; one
        that goes on regardless (a loop that catches ``CancelledError``) is left running, said
        as an error, so that it holds nothing (``what``: its task, its events, its ask) for
        good, and counted in ``left_behind``."""
        if running.done():
            return
        running.cancel()
        await asyncio.wait((running,), timeout=wait)
        if not running.done():
            running.add_done_callback(_retrieved)
            log.error(
                "%s: %s went on %gs after it was cancelled: left running, its %s released"
                " (a handler must let CancelledError through)",
                self.worker,
                handler,
                wait,
                what,
            )
            self.left_behind.add(running)

    def time_limit(self, deadline: float | None) -> tuple[float | None, bool]:
        """How long a handler of the role may run (None: no limit), and whether that is set
        by ``deadline`` (a unix time) rather than the role's ``task_budget``. Every handler's,
        not only a task's: a message's or an invitation's would otherwise hold its delivery
        (and at max_ack_pending its queue) for as long as it ran."""
        limit = self.budget
        if deadline is not None:
            left = max(deadline - time.time(), 0.0)
            if limit is None or left < limit:
                return left, True
        return limit, False

    async def _run(self, d: Delivery, handler: Callable[[Any], Any], arg: Any) -> tuple[bool, Any]:
        d.handler = getattr(handler, "__qualname__", None) or repr(handler)
        limit, by_deadline = (
            (self.budget, False) if d.deadline is None else self.time_limit(d.deadline)
        )
        timer_for = limit or 0.0
        in_place = is_async(handler)  # its limit is made late, if at all
        call = self._in_place if in_place else self._call
        timer = TimeLimit() if limit is not None and not in_place else None
        due_now = self.beats.start(d, limit, timer)
        if due_now is not None and timer is None:
            timer = TimeLimit()  # in place, but the limit may fall due before any heartbeat
        if limit is not None:
            d.given_up_at = time.monotonic() + limit + d.ack_wait
        self.running.add(d)
        try:
            try:
                if timer is None:
                    value = await call(d, handler, arg)
                else:
                    with timer:
                        if due_now is not None:
                            timer.set(due_now)
                        value = await call(d, handler, arg)
            except TimeoutError:
                budget = timer if timer is not None else d.late
                if budget is None or not budget.expired():
                    raise  # the handler's own timeout, not the budget
                if by_deadline:
                    await self.complete(
                        d, "expired", reason="the deadline passed while the handler ran"
                    )
                    return False, None
                raise TaskBudgetExceeded.of(timer_for) from None
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if d.canceled is None or (current is not None and current.cancelling()):
                    raise  # the agent is stopping: not a cancel request
            if d.canceled is not None:  # a cancelled coroutine, or a def handler that returned
                await self.complete(d, "canceled", reason=d.canceled)
                return False, None
        except _Abandoned:
            return False, None  # settled when it was given up
        except Reject as exc:
            reason = bounded(exc.reason)
            await self.give_up(d, f"rejected: {reason}", reason, state="rejected")
            return False, None
        except Retry as exc:
            await self.fail(d, bounded(exc.reason), exc.delay)
            return False, None
        except Exception as exc:
            if d.canceled is not None:  # the handler raised on its way out of a cancel
                await self.complete(d, "canceled", reason=d.canceled)
                return False, None
            log.error(
                "%s: %s attempt %d: %s raised",
                self.worker,
                d.task.task_id if d.task else d.consumer.name,
                d.attempt,
                d.handler,
                exc_info=exc,
            )
            await self.fail(d, error_text(exc), None, trace_text(exc))
            return False, None
        finally:
            self.beats.stop(d)
            self.running.discard(d)
            d.drop_accept_timer()  # the attempt ends before it was due
        return True, value

    async def _in_place(self, d: Delivery, handler: Callable[[Any], Any], arg: Any) -> Any:
        """The value of an ``async def`` handler, awaited in its consumer's worker: a task of
        its own per delivery (and a shield to wait on it) cost the task round trip 7 % of
        its CPU. What cancels it: a stop, its time limit (``late``, made at its first
        heartbeat), and for a task a cancel request (``interrupt``); the last two cancel the
        worker's task, and only that cancellation of theirs is taken back here (as
        ``asyncio.timeout`` does), so a stop's goes on as a stop."""
        d.worker = current_worker()
        try:
            if d.canceled is not None:  # cancelled before it started: it never does
                raise asyncio.CancelledError
            value = await handler(arg)
        except BaseException as exc:
            limited = d.late is not None and d.late.leave(exc)
            if d.interrupt is not None:
                d.interrupt.leave(exc)  # a cancel request's: _run says "canceled"
            if d.abandoned:
                raise _Abandoned from None
            if limited:
                raise TimeoutError from exc
            raise
        finally:
            d.worker = None  # it ended: nothing for the sweep to give up
        if d.late is not None:
            d.late.leave(None)
        if d.interrupt is not None:
            d.interrupt.leave(None)
        if d.abandoned:
            raise _Abandoned
        return value

    async def _call(self, d: Delivery, handler: Callable[[Any], Any], arg: Any) -> Any:
        """The value of a plain ``def`` handler, run in a handler thread (a task's sees a
        cancel request as ``task.cancelled``)."""
        value = await in_thread(handler, arg)
        if inspect.isawaitable(value):
            value = await value
        return value

    def cancel_running(self, task_id: str, assigner: str, reason: str) -> bool:
        """A cancel request arrived live: cancel the handler running that task, if any."""
        for d in list(self.running):
            if d.task is not None and (d.task.task_id, d.task.assigner) == (task_id, assigner):
                log.info("%s: task %s cancelled: %s", self.worker, task_id, reason)
                d.cancel(reason)
                return True
        return False

    def beat_due(self, d: Delivery) -> None:
        """A heartbeat is due: note a stall past the lease, then send ``+WPI`` (or give up
        a handler that went on past its cancellation)."""
        now = time.monotonic()
        if d.worker is not None and d.given_up_at is not None and now >= d.given_up_at:
            self._give_up_handler(d)
            return
        if now - d.last_beat > d.ack_wait and not d.lease_lost:
            d.lease_lost = True
            log.warning(
                "%s: %s held %s without a heartbeat for %.1fs (ack wait %gs): the server"
                " has given it to another delivery",
                self.worker,
                d.handler,
                d.task.task_id if d.task else f"seq {d.stream_seq}",
                now - d.last_beat,
                d.ack_wait,
            )
        background(self._beat(d, now))

    def _give_up_handler(self, d: Delivery) -> None:
        """An ``async def`` handler that runs in its consumer's worker went on an ack wait
        after its time limit cancelled it (it caught ``CancelledError``): without this its
        heartbeats would hold the message, and its slot the role's queue, for good. The
        message is failed (retried, or dead-lettered on its last attempt; a cancelled task
        ends ``canceled``), the worker's place goes to the messages behind it, and the
        handler is left running."""
        d.abandoned = True
        self.beats.stop(d)
        self.running.discard(d)
        worker, d.worker = d.worker, None
        log.error(
            "%s: %s went on %gs after it was cancelled: left running, its message released"
            " (a handler must let CancelledError through)",
            self.worker,
            d.handler,
            d.ack_wait,
        )
        if worker is not None:
            worker.abandon()
            if worker.task is not None:
                self.left_behind.add(worker.task)
        background(self._fail_given_up(d))

    async def _fail_given_up(self, d: Delivery) -> None:
        # The lease holds while the failure (a dead letter, maybe) is written, as in _run.
        self.beats.start(d)
        try:
            if d.canceled is not None:  # a cancelled task is never retried
                await self.complete(d, "canceled", reason=d.canceled)
                return
            went_on = f"{d.handler} went on after it was cancelled"
            if d.deadline is not None and time.time() >= d.deadline:
                error = f"{went_on} at its deadline: given up"
            elif self.budget is not None:
                error = f"{TaskBudgetExceeded.of(self.budget)}, and {went_on}: given up"
            else:  # pragma: no cover - a limit is the budget or the deadline
                error = f"{went_on} at its time limit: given up"
            await self.fail(d, error, None)  # past the deadline: ends it "expired"
        finally:
            self.beats.stop(d)

    async def _beat(self, d: Delivery, now: float) -> None:
        with contextlib.suppress(Exception):
            await d.msg.in_progress()
            # While the connection is down nats-py keeps the +WPI for later and returns:
            # that renews nothing, and an outage past the ack wait loses the lease.
            if self.conn.nc.is_connected:
                d.last_beat = now
                METRICS.heartbeat(self.role)

    def renew_leases(self) -> None:
        """A heartbeat for every running delivery now (after a reconnect: the server may be
        about to hand out what it has not heard of for a while)."""
        for d in list(self.running):
            self.beat_due(d)

    # -- the ways a delivery ends --------------------------------------------------------

    async def complete(self, d: Delivery, state: TaskState = "completed", **fields: Any) -> bool:
        """Store the task's outcome, then ack. False when it could not be stored (the attempt
        is then failed and retried): nothing is acked without its record."""
        if d.task is not None:
            try:
                written, standing = await self.outcome(d, state, **fields)
            except FleetbusError as exc:
                await self.fail(d, f"the {state} outcome could not be stored: {exc}", None)
                return False
            METRICS.task_ended(self.role, state)
            if written is OutcomeWrite.LOST:
                log.info(
                    "%s: task %s already ended (%s by attempt %d): this attempt's %s is not stored",
                    self.worker,
                    d.task.task_id,
                    standing.state,
                    standing.attempt,
                    state,
                )
        await self.ack(d)
        return True

    async def ack(self, d: Delivery) -> None:
        """Acknowledge (also when the lease was lost: the work is done, whoever holds it)."""
        self.handled[d.consumer.kind] += 1
        METRICS.acked(self.role, d.consumer.kind)
        # Not waited for: what it protects is stored already (a task's outcome), so a lost
        # ack costs a redelivery that finds the outcome, never a second run of a task.
        try:
            await d.msg.ack()
        except Exception as exc:  # it comes back after the ack wait; its outcome is stored
            log.warning("%s: ack of seq %d failed: %s", self.worker, d.stream_seq, exc)

    async def fail(
        self, d: Delivery, error: str, delay: float | None, trace: str | None = None
    ) -> None:
        """A failed attempt: retried after a delay, or dead-lettered on the last one."""
        if d.last_attempt:
            limit = d.consumer.spec.max_deliver
            reason = f"failed on all {d.attempt} attempts (max_deliver {limit})"
            await self.give_up(d, reason, error, trace=trace)
            return
        if delay is None:
            delay = self.retry_delay(d.consumer, d.attempt)
        if d.deadline is not None and time.time() + delay >= d.deadline:
            await self.complete(
                d, "expired", error=error, reason="the deadline passes before another attempt"
            )
            return
        log.warning(
            "%s: %s attempt %d failed: %s; retry in %.1fs",
            self.worker,
            d.task.task_id if d.task else d.consumer.name,
            d.attempt,
            error,
            delay,
        )
        METRICS.retried(self.role, d.consumer.kind)
        if d.task is not None:
            await self.update(d, "failed", error=error, retry_in=delay, traceback=trace)
        await self.nak(d, delay)

    async def nak(self, d: Delivery, delay: float) -> None:
        if d.lease_lost:
            return  # the message belongs to another delivery now: never hand it out again
        try:
            await d.msg.nak(delay=delay)
        except Exception as exc:  # it comes back after the ack wait anyway
            log.warning("%s: nak of seq %d failed: %s", self.worker, d.stream_seq, exc)

    async def give_up(
        self,
        d: Delivery,
        reason: str,
        error: str,
        *,
        state: TaskState = "dead_lettered",
        trace: str | None = None,
    ) -> bool:
        """No further attempt: store the dead letter, then the task's outcome, then
        terminate. A dead letter or an outcome that cannot be stored leaves the message where
        it is (tried again after ``dead_letter_retry``: its dead letter is stored once): a
        task terminated without its outcome would leave its assigner waiting forever."""
        if not await self.dead_letter(d, reason, error, trace):
            return False
        if d.task is not None:
            try:
                await self.outcome(d, state, error=error, reason=reason, traceback=trace)
            except FleetbusError as exc:
                delay = self.settings.dead_letter_retry
                log.error(
                    "%s: task %s is dead-lettered but its %s outcome could not be stored (%s):"
                    " the message stays and is tried again in %gs; `fleetbus status` shows"
                    " the stream",
                    self.worker,
                    d.task.task_id,
                    state,
                    exc,
                    delay,
                )
                await self.nak(d, delay)
                return False
            METRICS.task_ended(self.role, state)
        self.handled["failed"] += 1
        METRICS.dead_lettered(self.role, d.consumer.kind)
        await self.terminate(d, reason)
        return True

    async def bad_message(self, d: Delivery, bad: BadMessage) -> None:
        """A delivery no attempt can handle: dead-lettered at once, with the reason."""
        await self.give_up(d, bad.reason, bad.error)

    async def dead_letter(
        self, d: Delivery, reason: str, error: str, trace: str | None = None
    ) -> bool:
        """Store the dead letter; False (after a nak with a delay) when it cannot be."""
        letter = DeadLetter(
            subject=d.msg.subject,
            stream=d.consumer.stream,
            seq=d.stream_seq,
            consumer=d.consumer.name,
            deliveries=d.attempt,
            reason=reason,
            error=error,
            traceback=trace or "",
        )
        log.warning(
            "%s: dead-lettering %s seq %d: %s", self.worker, d.consumer.name, letter.seq, reason
        )
        try:
            await write_dead_letter(self.publisher, self.spec, letter, d.msg.data, d.msg.headers)
        except FleetbusError as exc:
            delay = self.settings.dead_letter_retry
            log.error(
                "%s: the dead letter of %s seq %d could not be stored (%s): the message stays"
                " and is tried again in %gs; `fleetbus status` shows the dead-letter stream",
                self.worker,
                d.consumer.name,
                letter.seq,
                exc,
                delay,
            )
            await self.nak(d, delay)
            return False
        return True

    async def terminate(self, d: Delivery, reason: str) -> None:
        """+TERM with a reason (nats-py's term() takes none); the mark tells the copier that
        this dead letter is already written."""
        if d.lease_lost:
            return
        with contextlib.suppress(Exception):
            await self.conn.nc.publish(d.msg.reply, f"+TERM {REASON_MARK} {reason}".encode())

    def retry_delay(self, consumer: ResolvedConsumer, attempt: int) -> float:
        """The consumer's backoff list if it has one, else retry_base doubling per attempt."""
        backoff = consumer.spec.backoff
        if backoff:
            return backoff[min(attempt, len(backoff)) - 1]
        return float(min(self.settings.retry_base * 2 ** (attempt - 1), self.settings.retry_max))

    # -- task records --------------------------------------------------------------------

    def _update(self, d: Delivery, state: TaskState, fields: dict[str, Any]) -> TaskUpdate:
        assert d.task is not None
        for key in ("error", "reason"):
            if isinstance(fields.get(key), str):
                fields[key] = bounded(fields[key])
        return TaskUpdate(
            task_id=d.task.task_id,
            state=state,
            agent=self.role,
            assigner=d.task.assigner,
            worker=self.worker,
            attempt=d.attempt,
            **{"time": TaskUpdate.now(), **fields},  # a time given in the fields stands
        )

    def accept_later(self, d: Delivery) -> None:
        """The task's ``accepted``, for a handler about to run: written once it has run for
        ``accepted_after`` seconds, or before the attempt's first running state (progress,
        an input request), whichever comes first; at once when ``accepted_after`` is 0. An
        attempt that ends sooner writes only its end (its outcome, a failed attempt), which
        names the worker and the attempt as ``accepted`` would have: a quick task costs two
        messages fewer (the record and its task-list entry) and its assigner one fewer."""
        if d.task is None or self.records is None:
            return
        after = self.settings.accepted_after
        if after > 0:
            d.accept_timer = asyncio.get_running_loop().call_later(after, self._accept, d)
        else:
            self._accept(d)

    def _accept(self, d: Delivery) -> None:
        d.accept_timer = None
        # Not waited for: its PubAck would only delay the handler. The attempt's next record
        # waits for it (``_after_accepted``), so it is stored first.
        taken = {"time": d.since} if d.since else {}  # when the agent took it
        d.accepting = background(self._write(d, "accepted", taken))

    async def _after_accepted(self, d: Delivery, *, running: bool) -> None:
        """Before the attempt writes a record: a running state writes an ``accepted`` still
        due first, an end drops it; either waits for an ``accepted`` being written."""
        if d.drop_accept_timer() and running:
            self._accept(d)
        if d.accepting is not None and not d.accepting.done():
            await asyncio.wait((d.accepting,))

    async def update(self, d: Delivery, state: TaskState, **fields: Any) -> None:
        """Store a state change of the task (informational: a failure is logged)."""
        if d.task is None or self.records is None:
            return
        await self._after_accepted(d, running=state in RUNNING_STATES)
        await self._write(d, state, fields)

    async def _write(self, d: Delivery, state: TaskState, fields: dict[str, Any]) -> None:
        assert d.task is not None and self.records is not None
        update = self._update(d, state, fields)
        await self._index(d, update)
        await self.records.update(d.task, update)

    async def outcome(
        self, d: Delivery, state: TaskState, **fields: Any
    ) -> tuple[OutcomeWrite, TaskUpdate]:
        assert d.task is not None and self.records is not None
        # The lease holds until the outcome is stored: a write that waits (a stream electing
        # its leader is retried for up to 30 s) would otherwise hand the task to another
        # agent once the ack wait passed, and it would run again.
        self.beats.start(d)
        try:
            await self._after_accepted(d, running=False)
            written, standing = await self.records.outcome(d.task, self._update(d, state, fields))
        finally:
            self.beats.stop(d)
        await self._index(d, standing)
        return written, standing

    async def _index(self, d: Delivery, update: TaskUpdate) -> None:
        """The task list's entry follows the task's state (a view: never waited for)."""
        if self.index is None or d.summary is None:
            return
        d.summary = d.summary.after(update)
        await self.index.write(d.summary)


class Heartbeats:
    """``+WPI`` every ack_wait / 3 for each delivery whose handler runs.

    One timer per agent sweeps the deliveries that are due, rather than a timer per
    delivery: most handlers end within the interval, and then a delivery's heartbeats cost
    a dict entry added and removed. The sweep runs every half interval while anything is
    beating and stops when nothing is, so a delivery's first ``+WPI`` goes out between
    one and one and a half intervals after it started (at most half the ack wait)."""

    __slots__ = ("_at", "_beat", "_beating", "_handle")

    def __init__(self, beat: Callable[[Delivery], None]) -> None:
        self._beat = beat
        self._beating: dict[Delivery, float] = {}
        """Each running delivery, and when its next heartbeat is due (the loop's clock)."""
        self._handle: asyncio.TimerHandle | None = None
        self._at = 0.0

    @staticmethod
    def interval(d: Delivery) -> float:
        return max(d.ack_wait / 3, 0.05)

    def start(
        self, d: Delivery, seconds: float | None = None, limit: TimeLimit | None = None
    ) -> float | None:
        """Beat for ``d`` from now on. With a handler's time limit of ``seconds``: set by
        the delivery's first heartbeat (``limit``, or one made then around the task running
        an ``async def`` handler in place), or, when it may fall due sooner, returned (when
        it falls due, the loop's clock) to be set at once on a limit entered around it
        (``fleetbus.runtime.limits``: most handlers end before that heartbeat, and need no
        timer, in place no object either)."""
        loop = asyncio.get_running_loop()
        interval = self.interval(d)
        now = loop.time()
        due_now = None
        if seconds is not None:
            if seconds <= 1.5 * interval:  # the first beat comes 1 to 1.5 intervals in
                due_now = now + seconds
            else:
                d.limit = (limit, now + seconds)
        self._beating[d] = now + interval
        tick = now + interval / 2
        if self._handle is None or tick < self._at:  # none running, or a shorter interval
            if self._handle is not None:
                self._handle.cancel()
            self._at = tick
            self._handle = loop.call_at(tick, self._sweep)
        return due_now

    def stop(self, d: Delivery) -> None:
        self._beating.pop(d, None)

    @staticmethod
    def _set_limit(d: Delivery, limit: TimeLimit | None, when: float) -> None:
        d.limit = None
        if limit is None:  # an async def handler in place, still running: its worker's task
            limit = d.late = _around_worker(d)
        if limit is not None:
            limit.set(when)

    @property
    def next_sweep(self) -> float | None:
        """When the sweep runs next (the loop's clock); None while nothing beats."""
        return self._at if self._handle is not None else None

    def _sweep(self) -> None:
        self._handle = None
        if not self._beating:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        tick = None
        for d, due in list(self._beating.items()):
            interval = self.interval(d)
            if now >= due:
                self._beating[d] = now + interval
                if d.limit is not None:
                    self._set_limit(d, *d.limit)
                self._beat(d)
            tick = interval / 2 if tick is None else min(tick, interval / 2)
        assert tick is not None
        self._at = now + tick
        self._handle = loop.call_at(self._at, self._sweep)


def _around_worker(d: Delivery) -> TimeLimit | None:
    """A limit around the worker task running ``d``'s handler in place (the late time limit,
    a cancel request's interrupt); None when no worker runs it now, or a stop is pending."""
    task = d.worker.task if d.worker is not None else None
    return TimeLimit.around(task) if isinstance(task, asyncio.Task) else None


class _Abandoned(BaseException):
    """A handler given up (``_give_up_handler``) ended after all: nothing more to settle."""


class _Counting:
    __slots__ = ("_later", "_token")

    def __init__(self, later: Callable[[asyncio.Future[Any]], None]) -> None:
        self._later = later
        self._token: contextvars.Token[Any] | None = None

    def __enter__(self) -> None:
        self._token = LEFT.set(self._later)

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            LEFT.reset(self._token)


class LeftBehind:
    """The handlers of one agent left running after they were cancelled. Each holds what it
    holds (memory, a thread, a connection of its own) for as long as it runs; at ``limit`` of
    them ``stuck(why)`` is called, once: the agent stops serving, and the fresh process its
    supervisor starts has none."""

    def __init__(self, limit: int, stuck: Callable[[str], None] | None = None) -> None:
        self.limit = limit
        self.stuck = stuck
        self.running: set[asyncio.Future[Any]] = set()
        self._later: dict[float, Callable[[asyncio.Future[Any]], None]] = {}

    def counting_threads(self, wait: float) -> contextlib.AbstractContextManager[None]:
        """While it holds (and in the tasks made meanwhile, which copy the context), a
        handler call given up in its thread (``threads.LEFT``) is counted if it still runs
        ``wait`` seconds later. Entered for every task's delivery: a plain class, not a
        generator's context manager."""
        later = self._later.get(wait)
        if later is None:
            later = self._later[wait] = functools.partial(self.later, wait=wait)
        return _Counting(later)

    def later(self, running: asyncio.Future[Any], wait: float) -> None:
        """``running`` is counted if it still runs ``wait`` seconds from now (a plain ``def``
        handler given up: its thread runs it on)."""
        asyncio.get_running_loop().call_later(wait, self.add, running)

    def add(self, running: asyncio.Future[Any]) -> None:
        if running.done():
            return
        self.running.add(running)
        running.add_done_callback(self.running.discard)
        if len(self.running) >= self.limit and self.stuck is not None:
            stuck, self.stuck = self.stuck, None
            stuck(
                f"{len(self.running)} handlers went on after they were cancelled and still"
                " run (left_behind_limit): a handler must let CancelledError through"
            )


def _retrieved(task: asyncio.Future[Any]) -> None:
    """A handler left behind ended: its outcome is nobody's (said so when it was left)."""
    if not task.cancelled():
        task.exception()


def error_text(exc: BaseException) -> str:
    """What a handler's exception says, as records and answers carry it: ``Type: message``."""
    return bounded(f"{type(exc).__name__}: {exc}")


def trace_text(exc: BaseException) -> str:
    text = "".join(traceback.format_exception(exc))
    return text if len(text) <= TRACEBACK_LIMIT else "...\n" + text[-TRACEBACK_LIMIT:]
