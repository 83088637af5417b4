"""From a delivered message to a handler call, one pipeline per consumer kind.

Each delivery is decoded once into an ``Envelope`` (body, headers, subject, the sender and
whether the subject vouches for it, attempt, stream sequence); a kind's decoder turns it into
the handler's argument (``Task``, ``Message``, ``Event``, ``TaskUpdate``) or refuses it
(``BadMessage``: dead-lettered at once, never retried). The ``Settler`` runs the handler and
settles the outcome; durable asks in the inbox go to the ``Responder``.

A task, before its handler runs: a delivery past the last attempt is dead-lettered at once
(the attempt before it never answered); a redelivered task whose outcome is already stored
(another attempt finished it) is acknowledged without running again; a task cancelled before
it started, or past its deadline, ends (``canceled``, ``expired``) without running.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from nats.aio.msg import Msg
from pydantic import ValidationError

from fleetbus.errors import FleetbusError, PayloadError
from fleetbus.fleet import ConsumerKind, FleetSpec, ResolvedConsumer
from fleetbus.runtime.batches import run_batch
from fleetbus.runtime.cancels import LiveCancels
from fleetbus.runtime.envelope import BadMessage, Envelope, delivered_of, envelope_of
from fleetbus.runtime.messages import Event, Message, Task
from fleetbus.runtime.requests import Responder
from fleetbus.runtime.routes import BatchHandler, Routes, invoke, is_async
from fleetbus.runtime.settle import Delivery, Settler
from fleetbus.runtime.work import RunningTask
from fleetbus.tasks import StepMemo, TaskRef, TaskSummary
from fleetbus.wire import headers as h
from fleetbus.wire.clock import iso_of_ns, now_iso
from fleetbus.wire.subjects import ADMIN, validate_id
from fleetbus.wire.updates import TaskUpdate, task_id_of

__all__ = ["Dispatcher"]

Handle = Callable[[Msg], Awaitable[None]]
HandleBatch = Callable[[list[Msg]], Awaitable[None]]


class Dispatcher:
    """The per-kind pipelines of one agent."""

    def __init__(
        self,
        spec: FleetSpec,
        role: str,
        routes: Routes,
        settler: Settler,
        responder: Responder,
        memo: StepMemo | None = None,
    ) -> None:
        self.memo = memo
        self.spec = spec
        self.role = role
        self.routes = routes
        self.settler = settler
        self.responder = responder
        self._consumers: dict[ConsumerKind, ResolvedConsumer] = {}
        self._batch_routes: list[tuple[str, BatchHandler, int]] | None = None
        self.cancels = LiveCancels()

    def handle(self, consumer: ResolvedConsumer) -> Handle:
        """The message callback for ``consumer`` (one of this role's)."""
        self._consumers[consumer.kind] = consumer
        pipelines: dict[ConsumerKind, Handle] = {
            "tasks": self._task,
            "inbox": self._inbox,
            "meetings": self._invitation,
            "events": self._event,
            "updates": self._update,
        }
        return pipelines[consumer.kind]

    def handle_batch(self, consumer: ResolvedConsumer) -> HandleBatch:
        """The callback for lists of ``consumer``'s messages (the events consumer of an agent
        with ``on_events`` handlers)."""
        self._consumers[consumer.kind] = consumer
        return self._event_batch

    async def _event_batch(self, msgs: list[Msg]) -> None:
        ready: list[tuple[Delivery, Event]] = []
        for msg in msgs:
            found = await self._ready_event(msg)
            if found is not None:
                ready.append(found)
        if self._batch_routes is None:
            self._batch_routes = self.routes.batch_routes(self.spec)
        await run_batch(self.settler, self._batch_routes, ready)

    def _event_of(self, env: Envelope, subject: str) -> Event:
        domain, type_ = self.spec.subjects.parse_event(subject)
        return env.make(Event, domain=domain, type=type_)

    def _delivery(self, msg: Msg, kind: ConsumerKind) -> Delivery:
        seen = delivered_of(msg)
        return Delivery(
            msg,
            self._consumers[kind],
            seen.attempt,
            stream_seq=seen.stream_seq,
            stored_ns=seen.stored_ns,
        )

    async def _task(self, msg: Msg) -> None:
        settler = self.settler
        d = self._delivery(msg, "tasks")
        d.since = now_iso()
        try:
            env = envelope_of(msg, self.spec, d.attempt, d.stream_seq)
            d.task = TaskRef(self._task_id(env), self._assigner(env), self.role)
            self._validate(env)
        except BadMessage as bad:
            await settler.bad_message(d, bad)
            return
        d.deadline = env.deadline
        stored = iso_of_ns(d.stored_ns)  # the task's creation, for the task list
        d.summary = TaskSummary(
            task_id=d.task.task_id,
            role=self.role,
            assigner=d.task.assigner,
            state="accepted",
            created=stored,
            updated=stored,
            attempt=d.attempt,
            worker=settler.worker,
            deadline=d.deadline,
        )
        if d.past_last_attempt:
            previous = d.attempt - 1
            await settler.give_up(
                d,
                f"no attempt left: attempt {previous} of {previous} ended without a stored"
                " outcome (the agent stopped, its heartbeats did, or the outcome could not be"
                " stored)",
                f"attempt {previous} did not finish",
            )
            return
        if await self._settled_before(d):
            return
        work = RunningTask(settler, d, self.memo)
        task = env.make(
            Task, id=d.task.task_id, assigner=d.task.assigner, deadline=d.deadline, _work=work
        )
        # A request that came live, before or while the stream was read; from here on to the
        # handler's start nothing waits, so a later one finds it running.
        early = self.cancels.take(d.task.task_id, d.task.assigner)
        if early is not None:
            await settler.complete(d, "canceled", reason=f"cancelled before it ran: {early}")
            return
        settler.accept_later(d)
        assert self.routes.task is not None
        ok, value = await settler.run(d, self.routes.task, task)
        if not ok:
            return
        # A result that cannot be stored (not JSON, too large) fails the attempt there.
        await settler.complete(d, "completed", result=value)

    async def _settled_before(self, d: Delivery) -> bool:
        """A task that must not run: ended by another attempt (acknowledged), cancelled before
        it started, or past its deadline (each ends it)."""
        settler, records, task = self.settler, self.settler.records, d.task
        assert task is not None
        if records is not None:
            if d.attempt > 1:  # both questions at once
                cancelled, standing = await asyncio.gather(
                    records.last(task, "cancel"), records.last(task, "outcome")
                )
            elif self.cancels.complete_for(datetime.fromtimestamp(d.stored_ns / 1e9, UTC)):
                cancelled, standing = None, None  # any request was seen live (taken below)
            else:  # a first attempt has no outcome to find
                cancelled, standing = await records.last(task, "cancel"), None
            if standing is not None:  # another attempt finished it
                await settler.ack(d)
                return True
            if cancelled is not None:
                reason = cancelled.reason or "cancelled"
                await settler.complete(d, "canceled", reason=f"cancelled before it ran: {reason}")
                return True
        if d.deadline is not None and time.time() >= d.deadline:
            await settler.complete(d, "expired", reason="not started before its deadline")
            return True
        return False

    def _task_id(self, env: Envelope) -> str:
        task_id = task_id_of(env.headers, env.body, self.role, env.stream_seq)
        try:
            return validate_id(task_id)
        except FleetbusError as exc:
            raise BadMessage(f"bad task id: {exc}", str(exc)) from None

    def _assigner(self, env: Envelope) -> str:
        """Who assigned a task: the verified sender token, else the admin (with auth on, only
        the admin may publish a task without one). A token that names no role of the fleet
        (only possible without auth) is refused: it goes into the task's record subjects."""
        if not (env.sender_verified and env.sender):
            return ADMIN
        if env.sender not in self.spec.roles:
            shown = env.sender if len(env.sender) <= 40 else env.sender[:40] + "..."
            raise BadMessage(
                f"bad sender: {shown!r} is not a role of the fleet",
                f"the sender token of {env.subject[:120]} names no role",
            )
        return env.sender

    def _validate(self, env: Envelope) -> None:
        model = self.routes.task_model
        if model is None:
            return
        try:
            model.model_validate(env.body)
        except ValidationError as exc:
            error = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
            )
            raise BadMessage(f"bad payload: {error}", error) from None

    async def _inbox(self, msg: Msg) -> None:
        d = self._delivery(msg, "inbox")
        if h.REPLY_TO in (msg.headers or {}):
            await self.responder.durable(d)
        elif self.routes.message is None:
            await self.settler.give_up(
                d, f"agent {self.role} has no inbox handler (on_message)", "no inbox handler"
            )
        else:
            await self._plain(d, self.routes.message)

    async def _invitation(self, msg: Msg) -> None:
        assert self.routes.invitation is not None
        await self._plain(self._delivery(msg, "meetings"), self.routes.invitation)

    async def _plain(self, d: Delivery, handler: Callable[[Message], Any]) -> None:
        try:
            env = envelope_of(d.msg, self.spec, d.attempt, d.stream_seq)
        except BadMessage as bad:
            await self.settler.bad_message(d, bad)
            return
        if await self._exhausted(d):
            return
        ok, _ = await self.settler.run(d, handler, env.make(Message))
        if ok:
            await self.settler.ack(d)

    async def _exhausted(self, d: Delivery) -> bool:
        """A delivery past the last attempt: dead-lettered at once."""
        if not d.past_last_attempt:
            return False
        previous = d.attempt - 1
        await self.settler.give_up(
            d,
            f"no attempt left: attempt {previous} ended without an answer",
            f"attempt {previous} did not finish",
        )
        return True

    async def _ready_event(self, msg: Msg) -> tuple[Delivery, Event] | None:
        """The delivery and its event, or None when it was settled here already (a bad
        message, or no attempt left)."""
        d = self._delivery(msg, "events")
        try:
            env = envelope_of(msg, self.spec, d.attempt, d.stream_seq)
        except BadMessage as bad:
            await self.settler.bad_message(d, bad)
            return None
        if await self._exhausted(d):
            return None
        return d, self._event_of(env, msg.subject)

    async def _event(self, msg: Msg) -> None:
        found = await self._ready_event(msg)
        if found is None:
            return
        d, event = found
        handlers = self.routes.event_handlers(self.spec, msg.subject)
        handler = handlers[0] if len(handlers) == 1 else EventHandlers(handlers)
        ok, _ = await self.settler.run(d, handler, event)
        if ok:
            await self.settler.ack(d)

    async def _update(self, msg: Msg) -> None:
        d = self._delivery(msg, "updates")
        parts = self.spec.subjects.parse_task(msg.subject)
        try:
            update = TaskUpdate.decode(msg.data)
        except PayloadError as exc:
            await self.settler.bad_message(d, BadMessage(f"bad payload: {exc}", str(exc)))
            return
        if parts is not None:  # who wrote it is the subject's word, not the body's
            update = update.written_by(parts.assigner, parts.assignee)
        if await self._exhausted(d):
            return
        assert self.routes.update is not None
        ok, _ = await self.settler.run(d, self.routes.update, update)
        if ok:
            await self.settler.ack(d)


class EventHandlers:
    """Every handler an event matches, one after the other (one call for the settler)."""

    __slots__ = ("__qualname__", "handlers", "in_threads")

    def __init__(self, handlers: list[Callable[[Event], Any]]) -> None:
        self.handlers = handlers
        self.__qualname__ = ", ".join(getattr(f, "__qualname__", repr(f)) for f in handlers)
        self.in_threads = not all(map(is_async, handlers))
        """Whether a plain ``def`` among them runs in a handler thread (``Settler.run``)."""

    async def __call__(self, event: Event) -> None:
        for func in self.handlers:
            await invoke(func, event)
