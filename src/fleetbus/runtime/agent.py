"""``Agent``: one object per role; handlers registered with decorators; ``run()`` to serve.

    backend = Agent("backend")

    @backend.on_task
    async def implement(task):
        await task.progress("running tests", percent=40)
        return {"pr": 143}

    backend.run()

The agent owns its lifecycle (new → starting → running → stopping → stopped) and wires the
parts: ``Routes`` (the handlers), one ``ConsumerLoop`` per consumer the handlers need, the
``Dispatcher`` that turns a delivery into a handler call, the ``Settler`` that ends it, the
``Responder`` for asks, and the observers and dead-letter copier beside them.

One piece: the decorators and the lifecycle are the one object a user holds; everything it
does beyond registering and wiring lives in the modules named above.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import overload

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import BaseModel

from fleetbus.client.fleet import Fleet
from fleetbus.deadletters import AdvisoryCopier
from fleetbus.environment import resolve_connect_settings, resolve_fleet
from fleetbus.errors import FleetbusError, JetStreamError, JsErrorCode, PayloadError
from fleetbus.fleet import FleetSpec, ResolvedConsumer
from fleetbus.js._natspy import subscribe_direct
from fleetbus.js.api import JsApi
from fleetbus.js.connection import Connection, ConnectSettings, connect, unsubscribe
from fleetbus.js.consume import ConsumerLoop
from fleetbus.js.publish import Publisher
from fleetbus.runtime.dispatch import Dispatcher
from fleetbus.runtime.eventloop import serve
from fleetbus.runtime.lease import Lease
from fleetbus.runtime.requests import Responder
from fleetbus.runtime.routes import (
    BatchHandler,
    EventHandler,
    MessageHandler,
    ObserveHandler,
    RequestHandler,
    Routes,
    TaskHandler,
    UpdateHandler,
    invoke,
)
from fleetbus.runtime.settings import RuntimeSettings
from fleetbus.runtime.settle import Settler
from fleetbus.runtime.watchdog import LoopWatchdog
from fleetbus.tasks import StepMemo, TaskIndex, TaskRecords
from fleetbus.telemetry import METRICS, configure_logging
from fleetbus.wire.subjects import validate_token
from fleetbus.wire.updates import TaskUpdate, bounded

__all__ = ["Agent", "RuntimeSettings"]

log = logging.getLogger("fleetbus.runtime")

_UNSET: object = object()


class Agent:
    """The receiving side of one role. Handlers are async functions; see ``messages``."""

    def __init__(
        self,
        role: str,
        *,
        spec: FleetSpec | str | Path | None = None,
        connection: ConnectSettings | None = None,
        settings: RuntimeSettings | None = None,
        metrics_port: int | None = None,
        fleet: FleetSpec | str | Path | object | None = _UNSET,
    ) -> None:
        """``spec``: the fleet file (a ``FleetSpec`` or a path); default: from the environment
        (``FLEETBUS_FLEET``, ``./fleet.yaml``, the built-in seed) when the agent starts.
        ``connection``: where and as whom to connect; default: from the environment.
        ``metrics_port``: serve this process's Prometheus metrics on 127.0.0.1:PORT
        (``/metrics``) once the agent starts (0: a free port, see ``metrics_port``)."""
        validate_token(role, "role")
        if fleet is not _UNSET:
            warnings.warn(
                "Agent(fleet=...) is now Agent(spec=...): `agent.fleet` is the client",
                DeprecationWarning,
                stacklevel=2,
            )
            spec = fleet  # type: ignore[assignment]
        self.role = role
        self.settings = settings or RuntimeSettings()
        self.worker = f"{role}-{uuid.uuid4().hex[:8]}"
        self.routes = Routes()
        self.metrics_port = metrics_port
        self._spec_arg = spec
        self._spec: FleetSpec | None = spec if isinstance(spec, FleetSpec) else None
        self._connection = connection
        self._conn: Connection | None = None
        self._owns_conn = False
        self._client: Fleet | None = None
        self._loops: list[ConsumerLoop] = []
        self._responder: Responder | None = None
        self._background: list[asyncio.Task[None]] = []
        self._cancel_watch: tuple[Dispatcher, ResolvedConsumer] | None = None
        self._relive: asyncio.Task[None] | None = None
        self._forget_reconnect: Callable[[], None] | None = None
        self._forget_lost: Callable[[], None] | None = None
        self._unwatch: Callable[[], None] | None = None
        self._cancels: Subscription | None = None
        self._lease: Lease | None = None
        self._drained = False
        self._stop_task: asyncio.Task[None] | None = None
        self._settler: Settler | None = None
        self.failure: str | None = None
        """Why the agent stopped serving on its own (its connection closed for good, a
        consume loop died); None while it serves, or when it was stopped."""
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
            self.routes.task = func
            self.routes.task_model = model
            return func

        return register(handler) if handler is not None else register

    def on_message(self, handler: MessageHandler) -> MessageHandler:
        """Register the inbox handler (``P.agents.{role}.inbox``)."""
        self._check_new()
        self.routes.message = handler
        return handler

    def on_request(self, handler: RequestHandler) -> RequestHandler:
        """Register the handler that answers ``Fleet.ask``: its return value is the answer.

        Fast asks arrive over core NATS on ``P.rpc.{role}`` (every process of the role shares
        them, one answers); durable asks arrive through the role's inbox consumer."""
        self._check_new()
        self.routes.request = handler
        return handler

    def on_update(self, handler: UpdateHandler) -> UpdateHandler:
        """Register a handler for every task's updates (``P.tasks.*.updates``), through the
        role's ``updates`` consumer (the seed's CTO following all tasks)."""
        self._check_new()
        self.routes.update = handler
        return handler

    def on_invitation(self, handler: MessageHandler) -> MessageHandler:
        """Register the meeting-invitation handler (``P.agents.{role}.meetings``)."""
        self._check_new()
        self.routes.invitation = handler
        return handler

    def on_event(self, pattern: str) -> Callable[[EventHandler], EventHandler]:
        """Register an event handler for ``pattern`` under ``P.events`` (``deployment.>``)."""

        def register(func: EventHandler) -> EventHandler:
            self._check_new()
            self.routes.events.append((pattern, func))
            return func

        return register

    def on_events(
        self, pattern: str, *, batch: int = 100
    ) -> Callable[[BatchHandler], BatchHandler]:
        """Register a handler for lists of events matching ``pattern`` (up to ``batch`` at
        once: what arrived together). It returns: every event of the list is acknowledged. It
        raises: each event is retried (or dead-lettered on its last attempt) on its own
        count; ``Retry`` and ``Reject`` apply to the whole list. An agent has ``on_event``
        handlers or ``on_events`` handlers, not both."""
        if batch < 1:
            raise FleetbusError(f"on_events(batch={batch}): a batch holds at least one event")

        def register(func: BatchHandler) -> BatchHandler:
            self._check_new()
            self.routes.batches.append((pattern, func, batch))
            return func

        return register

    def on_observe(self, pattern: str) -> Callable[[ObserveHandler], ObserveHandler]:
        """Watch stored messages on ``pattern`` (``agents.*.inbox``) without consuming them.

        Only for roles with ``oversight: true`` (the seed's CEO). Each observed message is
        a copy: its owner's consumer still receives and acknowledges it. Observation starts
        with messages published after the agent starts."""

        def register(func: ObserveHandler) -> ObserveHandler:
            self._check_new()
            self.routes.observers.append((pattern, func))
            return func

        return register

    def _check_new(self) -> None:
        if self._state != "new":
            raise FleetbusError(f"agent {self.role} is {self._state}; register handlers first")

    # -- what it runs with ---------------------------------------------------------------

    @property
    def spec(self) -> FleetSpec:
        """The fleet file this agent serves (resolved from the environment if not given)."""
        if self._spec is None:
            self._spec = resolve_fleet(self._spec_arg)
        return self._spec

    @property
    def fleet(self) -> Fleet:
        """A ``Fleet`` on this agent's connection, sending as this role: use it in handlers
        to assign, message and emit (``await cto.fleet.assign("backend", {...})``)."""
        if self._client is None:
            self._client = Fleet.attach(self.conn, self.spec, sender=self.role)
        return self._client

    @property
    def state(self) -> str:
        """``new``, ``starting``, ``running``, ``stopping`` or ``stopped``."""
        return self._state

    @property
    def conn(self) -> Connection:
        if self._conn is None:
            raise FleetbusError(f"agent {self.role} is not started")
        return self._conn

    @property
    def nc(self) -> Client:
        """The nats-py client this agent runs on (once started)."""
        return self.conn.nc

    # -- lifecycle -----------------------------------------------------------------------

    async def start(
        self, connection: Connection | None = None, *, spec: FleetSpec | None = None
    ) -> None:
        """Connect (or use ``connection``), bind every consumer, and return once they are
        ready. ``spec`` overrides the fleet file (``fleetbus run -f`` passes its own).

        If that fails (the fleet is not provisioned, say), nothing is left behind: the
        connection the agent opened is closed, and ``start()`` may be called again."""
        self._check_new()
        if spec is not None:
            self._spec = spec
        try:
            await self._start(connection)
        except BaseException:
            await self._undo_start()
            raise

    async def _start(self, connection: Connection | None) -> None:
        self._state = "starting"
        spec = self.spec
        spec.role(self.role)
        consumers = self.routes.plan(spec, self.role)
        if connection is None:
            settings = self._connection or resolve_connect_settings(
                spec, name=self.worker, role=self.role
            )
            connection = await connect(settings)
            self._owns_conn = True
        self._conn = conn = connection
        self._forget_reconnect = conn.on_reconnect(self._on_reconnect)
        self._forget_lost = conn.on_lost(self._on_lost)
        publisher = Publisher(conn, sender=self.role)
        settler = Settler(
            conn,
            spec,
            self.role,
            self.worker,
            publisher,
            self.settings,
            TaskRecords(conn, spec, publisher),
            TaskIndex(conn, spec),
        )
        self._settler = settler
        settler.left_behind.stuck = self._stuck
        self._responder = responder = Responder(self.routes, settler)
        memo = StepMemo(conn, spec, publisher) if self.routes.task is not None else None
        dispatcher = Dispatcher(spec, self.role, self.routes, settler, responder, memo)
        if self.routes.task is not None:
            # Before any task is fetched: a cancel request published from now on reaches a
            # running handler live; one published before is read when the task is fetched.
            self._cancels = await subscribe_direct(
                conn.nc, spec.subjects.cancels(self.role), self._on_cancel
            )
        api = JsApi(conn)
        for consumer in consumers:
            try:
                info = await api.consumer_info(consumer.stream, consumer.name, ride_out=30.0)
            except JetStreamError as exc:
                if exc.err_code != JsErrorCode.STREAM_NOT_FOUND:
                    raise
                info = None
            if info is None:
                raise FleetbusError(
                    f"consumer {consumer.name} does not exist on stream {consumer.stream}:"
                    " run `fleetbus provision` (or `fleetbus up`) first"
                )
            if consumer.kind == "tasks" and self._cancels is not None:
                dispatcher.cancels.listening(conn, info)
                self._cancel_watch = (dispatcher, consumer)
            pending = consumer.spec.max_ack_pending
            limit = self.settings.max_concurrency
            batch = self.routes.batch_size if consumer.kind == "events" else 0
            loop = ConsumerLoop(
                conn,
                consumer.stream,
                consumer.name,
                dispatcher.handle(consumer),
                poll=self.settings.poll,
                limit=min(max(limit, batch), pending) if pending > 0 else max(limit, batch),
                handle_batch=dispatcher.handle_batch(consumer) if batch else None,
                batch=batch,
            )
            await loop.bind()
            self._loops.append(loop)
        await responder.listen()
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._runner = asyncio.create_task(self._serve(ready), name=f"agent-{self.role}")
        self._runner.add_done_callback(self._runner_done)
        await asyncio.wait({ready, self._runner}, return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():  # serving failed before it was ready (an observer, say)
            await self._runner
            raise FleetbusError(f"agent {self.role} stopped while starting")
        self._state = "running"
        if self.metrics_port is not None:
            self.metrics_port = METRICS.serve(self.metrics_port)
        self._lease = Lease(
            conn, spec, self.role, self.worker, self.routes, settler, self.settings, self.drain
        )
        await self._lease.start()
        self._unwatch = LoopWatchdog.watch(
            self.settings.blocked_loop_warning,
            lambda: [f"{self.role}: {d.handler}" for d in list(settler.running)],
        )
        log.info("%s: serving %s", self.worker, ", ".join(c.name for c in consumers))

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
        self._forget_hooks()
        await self._unsubscribe_cancels()
        if self._owns_conn and self._conn is not None:
            await self._conn.close()
        self._conn = None
        self._owns_conn = False
        self._state = "new"

    async def _serve(self, ready: asyncio.Future[None]) -> None:
        async with asyncio.TaskGroup() as tg:
            for loop in self._loops:
                tg.create_task(loop.run())
            spec = self.spec
            # A role identity may not read other roles' messages, which the copier must:
            # with auth on, `fleetbus up` (the admin) copies dead letters instead.
            if self.conn.identity is not None:
                log.debug("%s: dead-letter copier left to the admin identity", self.worker)
            elif self.settings.dead_letter_copier and spec.dead_letter_stream:
                copier = AdvisoryCopier(self.conn, spec, Publisher(self.conn, sender=self.role))
                self._background.append(tg.create_task(self._copy(copier)))
            observing: list[asyncio.Future[None]] = []
            for pattern, handler in self.routes.observers:
                placed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                observing.append(placed)
                self._background.append(tg.create_task(self._observe(pattern, handler, placed)))
            # start() returns once every observer is in place: nothing published after is missed
            if observing:
                await asyncio.gather(*observing)
            ready.set_result(None)

    async def _copy(self, copier: AdvisoryCopier) -> None:
        try:
            await copier.run(self._stopping)
        except Exception:  # an extra in every agent: it must not take the agent down
            log.warning("%s: the dead-letter copier stopped", self.worker, exc_info=True)

    async def _observe(
        self, pattern: str, handler: ObserveHandler, placed: asyncio.Future[None]
    ) -> None:
        try:
            async with self.fleet.observer(pattern) as observed:
                placed.set_result(None)
                async for item in observed:
                    try:
                        await invoke(handler, item)
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

    async def stop(self, grace: float | None = None) -> None:
        """Stop fetching, let running handlers finish within ``grace``, nak the rest, close.
        A stop already under way (a drain) is waited for."""
        if self._stop_task is None:
            if self._state not in ("running", "starting"):
                return
            self._stop_task = asyncio.create_task(self._stop(grace), name=f"stop-{self.worker}")
        await asyncio.shield(self._stop_task)

    async def _stop(self, grace: float | None) -> None:
        self._state = "stopping"
        self._stopping.set()
        grace = self.settings.grace if grace is None else grace
        if self._lease is not None:
            self._lease.draining()
        drains = [loop.drain(grace) for loop in self._loops]
        if self._responder is not None:
            drains.append(self._responder.close(grace))
        await asyncio.gather(*drains)
        for task in self._background:
            task.cancel()
        if self._runner is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        self._forget_hooks()
        await self._unsubscribe_cancels()
        if self._lease is not None:
            await self._lease.stop()
            self._lease = None
        if self._client is not None:  # what its handlers assigned is listed
            await self._client.close()
        if self._owns_conn and self._conn is not None:
            await self._conn.drain()
        self._state = "stopped"
        log.info("%s: stopped", self.worker)

    def _on_cancel(self, msg: Msg) -> None:
        parts = self.spec.subjects.parse_task(msg.subject)
        if parts is None or self._settler is None:
            return
        try:  # the assigner's words, kept (up to 1024) until the task is fetched: bounded
            reason = bounded(TaskUpdate.decode(msg.data).reason or "cancelled")
        except PayloadError:
            reason = "cancelled"
        running = self._settler.cancel_running(parts.task_id, parts.assigner, reason)
        if not running and self._cancel_watch is not None:  # kept for when it is fetched
            self._cancel_watch[0].cancels.arrived(parts.task_id, parts.assigner, reason)

    def _forget_hooks(self) -> None:
        for forget in (self._forget_reconnect, self._forget_lost, self._unwatch):
            if forget is not None:
                forget()
        self._forget_reconnect = self._forget_lost = self._unwatch = None

    def _on_lost(self, reason: str) -> None:
        self._fail(f"its NATS connection closed for good ({reason})")

    def _runner_done(self, runner: asyncio.Task[None]) -> None:
        if self._state in ("stopping", "stopped") or runner.cancelled():
            return
        exc = runner.exception()
        what = f"{type(exc).__name__}: {exc}" if exc is not None else "it returned"
        self._fail(f"its serving loop ended ({what})")

    def _fail(self, why: str) -> None:
        """Stop serving on our own, and say why: ``serve_forever`` (and ``run``) then raise."""
        if self.failure is None:
            self.failure = f"agent {self.role} ({self.worker}) stopped serving: {why}"
            log.error("%s", self.failure)
        self._stopping.set()

    def _stuck(self, why: str) -> None:
        """Too many handlers left behind: a fresh process has none (while stopping, the
        process ends anyway)."""
        if self._state == "running":
            self._fail(why)

    async def _unsubscribe_cancels(self) -> None:
        sub, self._cancels = self._cancels, None
        await unsubscribe(sub)

    def drain(self) -> None:
        """Stop fetching, let what it holds finish (up to the role's ``task_budget``), then
        stop: ``serve_forever`` and ``run`` return normally (exit 0). What ``fleetbus agents
        drain INSTANCE`` asks for."""
        if self._state != "running" or self._drained:
            return
        self._drained = True
        grace = max(self.settings.grace, self.spec.roles[self.role].task_budget)
        self._stop_task = asyncio.create_task(self._stop(grace), name=f"drain-{self.worker}")

    async def stopped(self) -> None:
        """Return when the agent stops serving: ``stop()`` was called, the process was
        signalled, or it failed (``failure`` then says why)."""
        await self._stopping.wait()

    async def serve_forever(self) -> None:
        """Start, then serve until ``stop()`` (or the process is signalled). Raises
        ``FleetbusError`` when serving ended on its own: its connection closed for good, a
        consume loop died. A supervisor (systemd, Kubernetes) then starts a fresh process."""
        if self._state == "new":
            await self.start()
        await self._stopping.wait()
        await self.stop(0.0 if self.failure else None)
        if self.failure is not None:
            raise FleetbusError(self.failure)

    def run(self) -> None:
        """Serve until SIGINT or SIGTERM; then shut down gracefully and return. On uvloop's
        event loop when it is installed (``fleetbus[speed]``; ``FLEETBUS_LOOP=asyncio`` not).

        The process's main: a fleetbus error that stops it before it serves (no server, an
        unprovisioned fleet, an unknown role) is one line on stderr and exit status 1."""
        configure_logging()
        try:
            serve(self._run_with_signals())
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

    def wake(self) -> None:
        """Re-issue every pending poll now (the server forgets pull requests across a
        reconnect); done by itself on reconnects of the agent's connection."""
        for loop in self._loops:
            loop.wake.set()

    async def _on_reconnect(self) -> None:
        if self._settler is not None:
            self._settler.renew_leases()
        self.wake()
        if self._cancel_watch is not None:  # not awaited: other hooks need not wait for it
            self._relive = asyncio.create_task(self._cancels_live_again())

    async def _cancels_live_again(self) -> None:
        """After a reconnect: from when on cancel requests reach the agent live again (the
        client re-subscribed before this; a reply sent after it carries the server's time)."""
        if self._cancel_watch is None or self._conn is None:
            return
        dispatcher, consumer = self._cancel_watch
        try:
            info = await JsApi(self._conn).consumer_info(consumer.stream, consumer.name)
        except Exception:  # until the next reconnect, each first attempt reads the stream
            log.debug("%s: cancel requests not known live again", self.worker, exc_info=True)
            return
        dispatcher.cancels.listening(self._conn, info)
