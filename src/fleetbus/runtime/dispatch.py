"""From a delivered message to a handler call, one pipeline per consumer kind.

Each delivery is decoded once into an ``Envelope`` (body, headers, subject, the sender and
whether the subject vouches for it, attempt, stream sequence); a kind's decoder turns it into
the handler's argument (``Task``, ``Message``, ``Event``, ``TaskUpdate``) or refuses it
(``BadMessage``: dead-lettered at once, never retried). The ``Settler`` runs the handler and
settles the outcome; durable asks in the inbox go to the ``Responder``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from nats.aio.msg import Msg
from pydantic import ValidationError

from fleetbus.errors import FleetbusError, PayloadError
from fleetbus.fleet import ConsumerKind, FleetSpec, ResolvedConsumer
from fleetbus.runtime.envelope import BadMessage, Envelope, envelope_of
from fleetbus.runtime.messages import Event, Message, Task
from fleetbus.runtime.requests import Responder
from fleetbus.runtime.routes import MessageHandler, Routes
from fleetbus.runtime.settle import Settler
from fleetbus.wire import headers as h
from fleetbus.wire.codec import encode
from fleetbus.wire.subjects import validate_token
from fleetbus.wire.updates import TaskUpdate, task_id_of

__all__ = ["Dispatcher"]

Handle = Callable[[Msg], Awaitable[None]]


class Dispatcher:
    """The per-kind pipelines of one agent."""

    def __init__(
        self, spec: FleetSpec, role: str, routes: Routes, settler: Settler, responder: Responder
    ) -> None:
        self.spec = spec
        self.role = role
        self.routes = routes
        self.settler = settler
        self.responder = responder
        self._consumers: dict[ConsumerKind, ResolvedConsumer] = {}

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

    async def _task(self, msg: Msg) -> None:
        consumer = self._consumers["tasks"]
        settler = self.settler
        try:
            env = envelope_of(msg, self.spec)
            task_id = self._task_id(env)
            self._validate(env)
        except BadMessage as bad:
            await settler.bad_message(msg, consumer, bad)
            if bad.task_id is not None:
                attempt = msg.metadata.num_delivered
                await settler.update(bad.task_id, "dead_lettered", attempt, error=bad.error)
            return
        attempt = env.attempt

        async def progress(
            message: str, percent: float | None, data: Mapping[str, Any] | None
        ) -> None:
            await msg.in_progress()
            await settler.update(
                task_id,
                "progress",
                attempt,
                message=message,
                percent=percent,
                data=dict(data) if data else None,
                every_time=True,
            )

        task = env.make(Task, id=task_id, _progress=progress)
        await settler.update(task_id, "accepted", attempt)
        assert self.routes.task is not None
        ok, value = await settler.run(msg, consumer, self.routes.task, task, attempt, task_id)
        if not ok:
            return
        try:
            encode({"result": value})
        except PayloadError as exc:
            await settler.fail(msg, consumer, attempt, f"handler result: {exc}", None, task_id)
            return
        await settler.update(task_id, "completed", attempt, result=value)
        await msg.ack_sync()

    def _task_id(self, env: Envelope) -> str:
        task_id = task_id_of(env.headers, env.body, self.role, env.stream_seq)
        try:
            validate_token(str(task_id), "task id")
        except FleetbusError as exc:
            raise BadMessage(f"bad task id: {exc}", str(exc)) from None
        return str(task_id)

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
            raise BadMessage(f"bad payload: {error}", error, self._task_id(env)) from None

    async def _inbox(self, msg: Msg) -> None:
        consumer = self._consumers["inbox"]
        if h.REPLY_TO in (msg.headers or {}):
            await self.responder.durable(msg, consumer)
        elif self.routes.message is None:
            await self.settler.dead_letter(
                msg,
                consumer,
                f"agent {self.role} has no inbox handler (on_message)",
                "no inbox handler",
            )
        else:
            await self._plain(msg, consumer, self.routes.message)

    async def _invitation(self, msg: Msg) -> None:
        assert self.routes.invitation is not None
        await self._plain(msg, self._consumers["meetings"], self.routes.invitation)

    async def _plain(self, msg: Msg, consumer: ResolvedConsumer, handler: MessageHandler) -> None:
        try:
            env = envelope_of(msg, self.spec)
        except BadMessage as bad:
            await self.settler.bad_message(msg, consumer, bad)
            return
        ok, _ = await self.settler.run(msg, consumer, handler, env.make(Message), env.attempt, None)
        if ok:
            await msg.ack_sync()

    async def _event(self, msg: Msg) -> None:
        consumer = self._consumers["events"]
        try:
            env = envelope_of(msg, self.spec)
        except BadMessage as bad:
            await self.settler.bad_message(msg, consumer, bad)
            return
        tokens = msg.subject.split(".")
        depth = len(self.spec.prefix.split(".")) + 1
        domain = tokens[depth] if len(tokens) > depth else ""
        event = env.make(Event, domain=domain, type=".".join(tokens[depth + 1 :]))
        handlers = self.routes.event_handlers(self.spec, msg.subject)

        async def all_handlers(ev: Event) -> None:
            for func in handlers:
                await func(ev)

        ok, _ = await self.settler.run(msg, consumer, all_handlers, event, env.attempt, None)
        if ok:
            await msg.ack_sync()

    async def _update(self, msg: Msg) -> None:
        consumer = self._consumers["updates"]
        try:
            update = TaskUpdate.decode(msg.data)
        except PayloadError as exc:
            await self.settler.dead_letter(msg, consumer, f"bad payload: {exc}", str(exc))
            return
        assert self.routes.update is not None
        ok, _ = await self.settler.run(
            msg, consumer, self.routes.update, update, msg.metadata.num_delivered, None
        )
        if ok:
            await msg.ack_sync()
