"""``Agent``: one object per role; handlers registered with decorators; ``run()`` to serve.

backend = Agent("backend")

@backend.on_task
async def implement(task):
    await task.progress("running tests", percent=40)
    return {"pr": 143}

backend.run()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, overload

from nats.aio.client import Client
from nats.aio.msg import Msg
from pydantic import BaseModel, ValidationError

from fleetbus.client.fleet import Fleet, Observed
from fleetbus.connection import ConnectSettings, connect
from fleetbus.errors import FleetbusError, JetStreamError, PayloadError
from fleetbus.fleet.model import ConsumerKind, FleetSpec, ResolvedConsumer
from fleetbus.fleet.units import format_duration
from fleetbus.jsapi import JsApi
from fleetbus.publisher import Publisher
from fleetbus.runtime.deadletter import (
    REASON_MARK,
    AdvisoryCopier,
    DeadLetter,
    publish_update,
    write_dead_letter,
)
from fleetbus.runtime.loop import ConsumerLoop
from fleetbus.runtime.messages import Event, Message, Reject, Request, Retry, Task
from fleetbus.wire import headers as h
from fleetbus.wire.answers import encode_answer, encode_error
from fleetbus.wire.codec import decode, encode
from fleetbus.wire.subjects import filter_within, subject_matches, validate_token
from fleetbus.wire.updates import TaskUpdate, task_id_of, update_msg_id

__all__ = ["Agent", "RuntimeSettings"]

log = logging.getLogger("fleetbus.runtime")

TaskHandler = Callable[[Task], Awaitable[Any]]
MessageHandler = Callable[[Message], Awaitable[Any]]
EventHandler = Callable[[Event], Awaitable[Any]]
ObserveHandler = Callable[[Observed], Awaitable[Any]]
UpdateHandler = Callable[[TaskUpdate], Awaitable[Any]]
RequestHandler = Callable[[Request], Awaitable[Any]]
H = TypeVar("H", bound=Callable[..., Awaitable[Any]])


@dataclass(frozen=True, kw_only=True, slots=True)
class RuntimeSettings:
    """How the runtime consumes. The defaults suit agents that run for weeks."""

    poll: float = 10.0
    """Length of one long poll (a fetch that waits for work). A crashed consumer leader in a
    cluster takes the open poll with it: the next one goes to the new leader after at most
    this long. Idle cost: one pull request per consumer per poll."""
    grace: float = 30.0
    """On shutdown, how long running handlers may finish before they are naked."""
    retry_base: float = 2.0
    """Delay before the first retry; doubles per attempt (unless the consumer has backoff)."""
    retry_max: float = 300.0
    max_concurrency: int = 64
    """Upper bound on handlers run at once per consumer (max_ack_pending is the usual bound)."""
    dead_letter_copier: bool = True
    """Run the copier that turns max-deliveries advisories into dead letters."""


class Agent:
    """The receiving side of one role. Handlers are async functions; see ``messages``."""

    def __init__(
        self,
        role: str,
        *,
        fleet: FleetSpec | str | Path | None = None,
        connection: ConnectSettings | None = None,
        settings: RuntimeSettings | None = None,
    ) -> None:
        validate_token(role, "role")
        self.role = role
        self._fleet_arg = fleet
        self._fleet: FleetSpec | None = fleet if isinstance(fleet, FleetSpec) else None
        self._connection = connection
        self.settings = settings or RuntimeSettings()
        self.worker = f"{role}-{uuid.uuid4().hex[:8]}"
        self._task_handler: TaskHandler | None = None
        self._task_model: type[BaseModel] | None = None
        self._message_handler: MessageHandler | None = None
        self._invitation_handler: MessageHandler | None = None
        self._update_handler: UpdateHandler | None = None
        self._request_handler: RequestHandler | None = None
        self._rpc_sub: Any = None
        self._rpc_tasks: set[asyncio.Task[None]] = set()
        self._event_handlers: list[tuple[str, EventHandler]] = []
        self._observers: list[tuple[str, ObserveHandler]] = []
        self._background: list[asyncio.Task[None]] = []
        self._client: Fleet | None = None
        self._loops: list[ConsumerLoop] = []
        self._nc: Client | None = None
        self._owns_nc = False
        self._resolved: dict[ConsumerKind, ResolvedConsumer] = {}
        self._event_routes: list[tuple[str, EventHandler]] | None = None
        self._identity: str | None = connection.identity if connection is not None else None
        self._publisher: Publisher | None = None
        self._runner: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._state = "new"

    # -- registration --------------------------------------------------------------------

    @overload
    def on_task(
        self, handler: TaskHandler, *, model: type[BaseModel] | None = None
    ) -> TaskHandler: ...

    @overload
    def on_task(
        self, handler: None = None, *, model: type[BaseModel] | None = None
    ) -> Callable[[TaskHandler], TaskHandler]: ...

    def on_task(
        self, handler: TaskHandler | None = None, *, model: type[BaseModel] | None = None
    ) -> TaskHandler | Callable[[TaskHandler], TaskHandler]:
        """Register the task handler. With ``model``, a body that does not validate against
        it is dead-lettered at once (a poison task) and never reaches the handler."""

        def register(func: TaskHandler) -> TaskHandler:
            self._check_new()
            self._task_handler = func
            self._task_model = model
            return func

        return register(handler) if handler is not None else register

    def on_message(self, handler: MessageHandler) -> MessageHandler:
        """Register the inbox handler (``P.agents.{role}.inbox``)."""
        self._check_new()
        self._message_handler = handler
        return handler

    def on_request(self, handler: RequestHandler) -> RequestHandler:
        """Register the handler that answers ``Fleet.ask``: its return value is the answer.

        Fast asks arrive over core NATS on ``P.rpc.{role}`` (every process of the role shares
        them, one answers); durable asks arrive through the role's inbox consumer."""
        self._check_new()
        self._request_handler = handler
        return handler

    def on_update(self, handler: UpdateHandler) -> UpdateHandler:
        """Register a handler for every task's updates (``P.tasks.*.updates``), through the
        role's ``updates`` consumer (the seed's CTO following all tasks)."""
        self._check_new()
        self._update_handler = handler
        return handler

    def on_invitation(self, handler: MessageHandler) -> MessageHandler:
        """Register the meeting-invitation handler (``P.agents.{role}.meetings``)."""
        self._check_new()
        self._invitation_handler = handler
        return handler

    def on_event(self, pattern: str) -> Callable[[EventHandler], EventHandler]:
        """Register an event handler for ``pattern`` under ``P.events`` (``deployment.>``)."""

        def register(func: EventHandler) -> EventHandler:
            self._check_new()
            self._event_handlers.append((pattern, func))
            return func

        return register

    def on_observe(self, pattern: str) -> Callable[[ObserveHandler], ObserveHandler]:
        """Watch stored messages on ``pattern`` (``agents.*.inbox``) without consuming them.

        Only for roles with ``oversight: true`` (the seed's CEO). Each observed message is
        a copy: its owner's consumer still receives and acknowledges it. Observation starts
        with messages published after the agent starts."""

        def register(func: ObserveHandler) -> ObserveHandler:
            self._check_new()
            self._observers.append((pattern, func))
            return func

        return register

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def spec(self) -> FleetSpec:
        """The fleet file this agent serves (resolved from the environment if not given)."""
        if self._fleet is None:
            from fleetbus.environment import resolve_fleet

            self._fleet = resolve_fleet(self._fleet_arg)
        return self._fleet

    @property
    def fleet(self) -> Fleet:
        """A ``Fleet`` on this agent's connection, sending as this role: use it in handlers
        to assign, message and emit (``await cto.fleet.assign("backend", {...})``)."""
        if self._client is None:
            self._client = Fleet.attach(self.nc, self.spec, sender=self.role)
        return self._client

    @property
    def nc(self) -> Client:
        if self._nc is None:
            raise FleetbusError(f"agent {self.role} is not started")
        return self._nc

    async def start(self, nc: Client | None = None) -> None:
        """Connect (or use ``nc``), bind every consumer, and return once they are ready.

        If that fails (the fleet is not provisioned, say), nothing is left behind: the
        connection the agent opened is closed, and ``start()`` may be called again."""
        self._check_new()
        try:
            await self._start(nc)
        except BaseException:
            await self._undo_start()
            raise

    async def _undo_start(self) -> None:
        for loop in self._loops:
            with contextlib.suppress(Exception):
                await loop.drain(0)
        self._loops.clear()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(BaseException):
                await self._runner
            self._runner = None
        if self._owns_nc and self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.close()
        self._nc = None
        self._owns_nc = False
        self._publisher = None
        self._state = "new"

    async def _start(self, nc: Client | None) -> None:
        self._state = "starting"
        spec = self.spec
        spec.role(self.role)
        loops = self._plan_loops(spec)
        if nc is None:
            from fleetbus.environment import resolve_connect_settings

            settings = self._connection or resolve_connect_settings(
                spec, name=self.worker, role=self.role
            )
            self._identity = settings.identity
            nc = await connect(settings, on_reconnect=self._on_reconnect)
            self._owns_nc = True
        self._nc = nc
        self._publisher = Publisher(nc, sender=self.role)
        api = JsApi(nc)
        for consumer, handle in loops:
            try:
                info = await api.consumer_info(consumer.stream, consumer.name, ride_out=30.0)
            except JetStreamError as exc:
                if exc.err_code != 10059:  # stream not found: not provisioned either
                    raise
                info = None
            if info is None:
                raise FleetbusError(
                    f"consumer {consumer.name} does not exist on stream {consumer.stream}:"
                    " run `fleetbus provision` (or `fleetbus up`) first"
                )
            loop = ConsumerLoop(
                nc,
                consumer,
                handle,
                poll=self.settings.poll,
                max_concurrency=self.settings.max_concurrency,
            )
            await loop.bind()
            self._loops.append(loop)
        if self._request_handler is not None:
            self._rpc_sub = await nc.subscribe(
                spec.subjects.rpc(self.role), queue=self.role, cb=self._on_rpc
            )
            await nc.flush()
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._runner = asyncio.create_task(self._serve(ready), name=f"agent-{self.role}")
        await asyncio.wait({ready, self._runner}, return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():  # serving failed before it was ready (an observer, say)
            await self._runner
            raise FleetbusError(f"agent {self.role} stopped while starting")
        self._state = "running"
        log.info("%s: serving %s", self.worker, ", ".join(c.name for c, _ in loops))

    async def stop(self, grace: float | None = None) -> None:
        """Stop fetching, let running handlers finish within ``grace``, nak the rest, close."""
        if self._state not in ("running", "starting"):
            return
        self._state = "stopping"
        self._stopping.set()
        grace = self.settings.grace if grace is None else grace
        if self._rpc_sub is not None:
            with contextlib.suppress(Exception):
                await self._rpc_sub.unsubscribe()
        drains: list[Awaitable[Any]] = [loop.drain(grace) for loop in self._loops]
        if self._rpc_tasks:
            drains.append(asyncio.wait(set(self._rpc_tasks), timeout=grace))
        await asyncio.gather(*drains)
        for task in self._rpc_tasks:
            task.cancel()
        for task in self._background:
            task.cancel()
        if self._runner is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        if self._owns_nc and self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.drain()
        self._state = "stopped"
        log.info("%s: stopped", self.worker)

    async def serve_forever(self) -> None:
        """Start, then serve until ``stop()`` (or the process is signalled)."""
        if self._state == "new":
            await self.start()
        await self._stopping.wait()
        await self.stop()

    def run(self) -> None:
        """Serve until SIGINT or SIGTERM; then shut down gracefully and return.

        The process's main: a fleetbus error that stops it before it serves (no server, an
        unprovisioned fleet, an unknown role) is one line on stderr and exit status 1."""
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
        try:
            asyncio.run(self._run_with_signals())
        except FleetbusError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(1) from None

    async def _run_with_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stopping.set)
        await self.serve_forever()

    async def __aenter__(self) -> Agent:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _check_new(self) -> None:
        if self._state != "new":
            raise FleetbusError(f"agent {self.role} is {self._state}; register handlers first")

    def wake(self) -> None:
        """Re-issue every pending poll now: call after a reconnect on a shared connection
        (the server forgets pull requests across a reconnect)."""
        for loop in self._loops:
            loop.wake.set()

    async def _on_reconnect(self) -> None:
        self.wake()

    async def _serve(self, ready: asyncio.Future[None]) -> None:
        async with asyncio.TaskGroup() as tg:
            for loop in self._loops:
                tg.create_task(loop.run())
            spec = self.spec
            # A role identity may not read other roles' messages, which the copier must:
            # with auth on, `fleetbus up` (the admin) copies dead letters instead.
            if self._identity is not None:
                log.debug("%s: dead-letter copier left to the admin identity", self.worker)
            elif self.settings.dead_letter_copier and spec.dead_letter_stream:
                assert self._publisher is not None
                copier = AdvisoryCopier(self.nc, spec, self._publisher)
                self._background.append(tg.create_task(copier.run(self._stopping)))
            observing: list[asyncio.Future[None]] = []
            for pattern, handler in self._observers:
                placed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                observing.append(placed)
                self._background.append(tg.create_task(self._observe(pattern, handler, placed)))
            # start() returns once every observer is in place: nothing published after is missed
            if observing:
                await asyncio.gather(*observing)
            ready.set_result(None)

    async def _observe(
        self, pattern: str, handler: ObserveHandler, placed: asyncio.Future[None]
    ) -> None:
        try:
            async with self.fleet.observer(pattern) as observed:
                placed.set_result(None)
                async for item in observed:
                    try:
                        await handler(item)
                    except Exception:
                        log.exception(
                            "%s: observer of %s failed on seq %d",
                            self.worker,
                            pattern,
                            item.stream_seq,
                        )
        except BaseException as exc:
            if not placed.done():
                placed.set_exception(exc)
            raise

    # -- dispatch ------------------------------------------------------------------------

    def _plan_loops(
        self, spec: FleetSpec
    ) -> list[tuple[ResolvedConsumer, Callable[[Msg], Awaitable[None]]]]:
        wanted: list[tuple[ConsumerKind, Callable[[Msg], Awaitable[None]]]] = []
        if self._task_handler is not None:
            wanted.append(("tasks", self._handle_task))
        if self._message_handler is not None or self._request_handler is not None:
            wanted.append(("inbox", self._handle_inbox))
        if self._invitation_handler is not None:
            wanted.append(("meetings", self._handle_invitation))
        if self._event_handlers:
            wanted.append(("events", self._handle_event))
        if self._update_handler is not None:
            wanted.append(("updates", self._handle_update))
        if self._observers and not spec.role(self.role).oversight:
            raise FleetbusError(
                f"role {self.role} has no oversight: set roles.{self.role}.oversight: true"
                " to observe other roles' messages"
            )
        if not wanted and not self._observers:
            raise FleetbusError(f"agent {self.role} has no handlers: nothing to serve")
        out = []
        for kind, handle in wanted:
            consumer = spec.consumer(self.role, kind)
            if consumer is None:
                raise FleetbusError(
                    f"role {self.role} has no {kind} consumer in the fleet file:"
                    f" add roles.{self.role}.{kind}"
                )
            out.append((consumer, handle))
        events = spec.consumer(self.role, "events")
        for pattern, _ in self._event_handlers:
            full = spec.subjects.events_filter(pattern)
            assert events is not None
            if not any(_covers(f, full) for f in events.filters):
                raise FleetbusError(
                    f"role {self.role}'s events consumer does not receive {full} (its filters:"
                    f" {', '.join(events.filters)}); add {pattern!r} to"
                    f" roles.{self.role}.events.filters"
                )
        return out

    async def _handle_task(self, msg: Msg) -> None:
        consumer = self._consumer("tasks")
        common = await self._decode(msg, consumer)
        if common is None:
            return
        body, headers, attempt = common["body"], common["headers"], common["attempt"]
        task_id = task_id_of(headers, body, self.role, common["stream_seq"])
        try:
            validate_token(str(task_id), "task id")
        except FleetbusError as exc:
            await self._dead_letter(msg, consumer, f"bad task id: {exc}", str(exc))
            return
        task_id = str(task_id)
        if self._task_model is not None:
            try:
                self._task_model.model_validate(body)
            except ValidationError as exc:
                error = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                    for e in exc.errors()
                )
                await self._dead_letter(msg, consumer, f"bad payload: {error}", error)
                await self._update(task_id, "dead_lettered", attempt, error=error)
                return

        async def progress(
            message: str, percent: float | None, data: Mapping[str, Any] | None
        ) -> None:
            await msg.in_progress()
            await self._update(
                task_id,
                "progress",
                attempt,
                message=message,
                percent=percent,
                data=dict(data) if data else None,
                msg_id=None,
            )

        task = Task(**common, id=task_id, _progress=progress)
        await self._update(task_id, "accepted", attempt)
        assert self._task_handler is not None
        outcome = await self._run_handler(msg, consumer, self._task_handler, task, task_id)
        if outcome is None:
            return
        ok, value = outcome
        if not ok:
            return
        try:
            encode({"result": value})
        except PayloadError as exc:
            await self._fail(msg, consumer, attempt, f"handler result: {exc}", None, task_id)
            return
        await self._update(task_id, "completed", attempt, result=value)
        await msg.ack_sync()

    async def _handle_inbox(self, msg: Msg) -> None:
        consumer = self._consumer("inbox")
        headers = msg.headers or {}
        if h.REPLY_TO in headers:
            await self._handle_durable_request(msg, consumer)
        elif self._message_handler is None:
            await self._dead_letter(
                msg,
                consumer,
                f"agent {self.role} has no inbox handler (on_message)",
                "no inbox handler",
            )
        else:
            await self._handle_plain(msg, consumer, self._message_handler)

    # -- requests ------------------------------------------------------------------------

    async def _on_rpc(self, msg: Msg) -> None:
        """A fast ask: answer it in its own task so one slow answer does not block others."""
        if self._state != "running" or not msg.reply:
            return
        task = asyncio.ensure_future(self._answer_rpc(msg))
        self._rpc_tasks.add(task)
        task.add_done_callback(self._rpc_tasks.discard)

    async def _answer_rpc(self, msg: Msg) -> None:
        headers = dict(msg.headers or {})
        try:
            body = decode(msg.data)
        except PayloadError as exc:
            data, hdrs = encode_error(f"bad request: {exc}")
            await self.nc.publish(msg.reply, data, headers=hdrs)
            return
        request = Request(
            body=body,
            headers=headers,
            subject=msg.subject,
            sender=headers.get(h.SENDER),
            attempt=1,
            stream_seq=0,
            durable=False,
        )
        data, hdrs = await self._answer(request)
        await self.nc.publish(msg.reply, data, headers=hdrs)

    async def _handle_durable_request(self, msg: Msg, consumer: ResolvedConsumer) -> None:
        try:
            decode(msg.data)
        except PayloadError as exc:
            # The asker waits on its reply address: tell it now, then dead-letter below.
            data, hdrs = encode_error(f"bad request: {exc}")
            await self.nc.publish((msg.headers or {})[h.REPLY_TO], data, headers=hdrs)
        common = await self._decode(msg, consumer)
        if common is None:
            return
        headers = common["headers"]
        reply_to = headers[h.REPLY_TO]
        deadline = _float(headers.get(h.DEADLINE))
        if deadline is not None and time.time() > deadline:
            log.info(
                "%s: ask %s expired before it was answered; dropped",
                self.worker,
                headers.get(h.ASK_ID, f"seq {common['stream_seq']}"),
            )
            await msg.ack_sync()
            return
        request = Request(**common, durable=True, deadline=deadline)
        beat = asyncio.create_task(self._heartbeat(msg, consumer.spec.effective_ack_wait))
        try:
            data, hdrs = await self._answer(request)
        finally:
            beat.cancel()
        await self.nc.publish(reply_to, data, headers=hdrs)
        await msg.ack_sync()

    async def _answer(self, request: Request) -> tuple[bytes, dict[str, str]]:
        """Run the request handler; its value, or its error, as an answer."""
        if self._request_handler is None:
            return encode_error(f"agent {self.role} does not answer requests (no on_request)")
        try:
            value = await self._request_handler(request)
            return encode_answer(value)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("%s: request handler failed: %s: %s", self.worker, type(exc).__name__, exc)
            return encode_error(f"{type(exc).__name__}: {exc}")

    async def _handle_invitation(self, msg: Msg) -> None:
        await self._handle_plain(msg, self._consumer("meetings"), self._invitation_handler)

    async def _handle_plain(
        self, msg: Msg, consumer: ResolvedConsumer, handler: MessageHandler | None
    ) -> None:
        common = await self._decode(msg, consumer)
        if common is None or handler is None:
            return
        message = Message(**common)
        outcome = await self._run_handler(msg, consumer, handler, message, None)
        if outcome is not None and outcome[0]:
            await msg.ack_sync()

    async def _handle_event(self, msg: Msg) -> None:
        consumer = self._consumer("events")
        common = await self._decode(msg, consumer)
        if common is None:
            return
        tokens = msg.subject.split(".")
        depth = len(self.spec.prefix.split(".")) + 1
        domain = tokens[depth] if len(tokens) > depth else ""
        type_ = ".".join(tokens[depth + 1 :])
        event = Event(**common, domain=domain, type=type_)
        if self._event_routes is None:  # once, not per message
            events = self.spec.subjects
            self._event_routes = [(events.events_filter(p), f) for p, f in self._event_handlers]
        handlers = [func for full, func in self._event_routes if subject_matches(full, msg.subject)]

        async def all_handlers(ev: Event) -> None:
            for func in handlers:
                await func(ev)

        outcome = await self._run_handler(msg, consumer, all_handlers, event, None)
        if outcome is not None and outcome[0]:
            await msg.ack_sync()

    async def _handle_update(self, msg: Msg) -> None:
        consumer = self._consumer("updates")
        try:
            update = TaskUpdate.decode(msg.data)
        except PayloadError as exc:
            await self._dead_letter(msg, consumer, f"bad payload: {exc}", str(exc))
            return
        assert self._update_handler is not None
        handler = self._update_handler

        async def call(_: Any) -> None:
            await handler(update)

        carrier = _Attempt(msg.metadata.num_delivered)
        outcome = await self._run_handler(msg, consumer, call, carrier, None)
        if outcome is not None and outcome[0]:
            await msg.ack_sync()

    # -- the outcome of one handler call -------------------------------------------------

    async def _run_handler(
        self,
        msg: Msg,
        consumer: ResolvedConsumer,
        handler: Callable[[Any], Awaitable[Any]],
        arg: Any,
        task_id: str | None,
    ) -> tuple[bool, Any] | None:
        """Run with heartbeats. (True, value) on success; failures are settled here.

        A task handler gets the role's ``task_budget``: past it the heartbeats would keep a
        hung handler's task forever, so it is cancelled and the attempt counts as failed."""
        attempt = arg.attempt
        beat = asyncio.create_task(self._heartbeat(msg, consumer.spec.effective_ack_wait))
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
            await self._dead_letter(msg, consumer, f"rejected: {exc.reason}", exc.reason)
            if task_id:
                await self._update(task_id, "dead_lettered", attempt, error=exc.reason)
            return None
        except Retry as exc:
            await self._fail(msg, consumer, attempt, exc.reason, exc.delay, task_id)
            return None
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            await self._fail(msg, consumer, attempt, error, None, task_id)
            return None
        finally:
            beat.cancel()
        return True, value

    async def _fail(
        self,
        msg: Msg,
        consumer: ResolvedConsumer,
        attempt: int,
        error: str,
        delay: float | None,
        task_id: str | None,
    ) -> None:
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
            await self._dead_letter(msg, consumer, reason, error)
            if task_id:
                await self._update(task_id, "dead_lettered", attempt, error=error, reason=reason)
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
            await self._update(task_id, "failed", attempt, error=error, retry_in=delay)
        await msg.nak(delay=delay)

    def retry_delay(self, consumer: ResolvedConsumer, attempt: int) -> float:
        """The consumer's backoff list if it has one, else retry_base doubling per attempt."""
        backoff = consumer.spec.backoff
        if backoff:
            return backoff[min(attempt, len(backoff)) - 1]
        return float(min(self.settings.retry_base * 2 ** (attempt - 1), self.settings.retry_max))

    async def _heartbeat(self, msg: Msg, ack_wait: float) -> None:
        interval = max(ack_wait / 3, 0.05)
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(Exception):
                await msg.in_progress()

    # -- helpers -------------------------------------------------------------------------

    async def _decode(self, msg: Msg, consumer: ResolvedConsumer) -> dict[str, Any] | None:
        """What every handler argument shares (body, headers, subject, sender, attempt,
        stream sequence) as keyword arguments; a bad body is dead-lettered here instead."""
        headers = dict(msg.headers or {})
        meta = msg.metadata
        try:
            body = decode(msg.data)
        except PayloadError as exc:
            await self._dead_letter(msg, consumer, f"bad payload: {exc}", str(exc))
            return None
        return {
            "body": body,
            "headers": headers,
            "subject": msg.subject,
            **self._sender(msg.subject, headers),
            "attempt": meta.num_delivered,
            "stream_seq": meta.sequence.stream,
        }

    async def _dead_letter(
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
        await write_dead_letter(self._pub, self.spec, letter, msg.data, msg.headers)
        # +TERM with a reason (nats-py's term() takes none); the mark tells the copier
        # that this dead letter is already written.
        await self.nc.publish(msg.reply, f"+TERM {REASON_MARK} {reason}".encode())

    async def _update(
        self,
        task_id: str,
        state: str,
        attempt: int,
        *,
        msg_id: str | None = "",
        **fields: Any,
    ) -> None:
        update = TaskUpdate(
            task_id=task_id,
            state=state,  # type: ignore[arg-type]
            agent=self.role,
            worker=self.worker,
            attempt=attempt,
            time=TaskUpdate.now(),
            **fields,
        )
        if msg_id == "":
            msg_id = update_msg_id(task_id, state, attempt)
        await publish_update(self._pub, self.spec, update, msg_id=msg_id)

    @property
    def _pub(self) -> Publisher:
        if self._publisher is None:
            raise FleetbusError(f"agent {self.role} is not started")
        return self._publisher

    def _sender(self, subject: str, headers: Mapping[str, str]) -> dict[str, Any]:
        """The sender from the subject's sender token (verified), else the header (a claim)."""
        token = self.spec.subjects.sender_of(subject)
        if token is not None:
            return {"sender": token, "sender_verified": True}
        return {"sender": headers.get(h.SENDER), "sender_verified": False}

    def _consumer(self, kind: ConsumerKind) -> ResolvedConsumer:
        # Resolving walks the whole fleet file: once per kind, not once per message.
        consumer = self._resolved.get(kind)
        if consumer is None:
            consumer = self.spec.consumer(self.role, kind)
            assert consumer is not None
            self._resolved[kind] = consumer
        return consumer


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


class TaskBudgetExceeded(Exception):
    """A task handler ran longer than its role's ``task_budget`` and was cancelled."""


@dataclass(frozen=True, slots=True)
class _Attempt:
    attempt: int


def _covers(outer: str, inner: str) -> bool:
    return filter_within(inner, outer) or outer == inner
