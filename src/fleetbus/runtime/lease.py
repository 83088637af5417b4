"""An agent's presence lease and its control subject.

While the agent serves, ``Lease`` renews the instance's presence record
(``fleetbus.presence``) every ``presence_interval`` seconds with what it holds, and answers
control requests on ``P.control.{role}.{instance}``: ``ping`` (the record), ``drain`` (stop
fetching, finish what it holds, stop: ``run()`` then exits 0) and ``cancel`` (the tasks it
holds, or one of them). Requests come from the admin and the roles with oversight (the server
lets no one else publish there); answers go only to a reply subject in a control namespace,
``_INBOX_{asker}.control.{role}.*``, never to a subject a request names at will.

Renewals are per connection, not per agent: every lease on one connection (a ``fleetbus run``
serving many roles, a process of a thousand agents) with the same interval is renewed by one
timer, all records in one write to the server, and a record whose content has not changed
since the last renewal (an idle agent's) is sent as the same bytes, not encoded again. The
records, their subjects and when they are renewed relative to the interval are as before:
only the work per renewal is less (measured in docs/performance.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Callable
from typing import Any

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from fleetbus._background import background
from fleetbus._version import __version__
from fleetbus.errors import PayloadError
from fleetbus.fleet import FleetSpec
from fleetbus.js._natspy import subscribe_direct
from fleetbus.js.connection import Connection, unsubscribe
from fleetbus.presence import AgentInfo, HeldTask, Liveness, Presence, local_identity
from fleetbus.runtime.routes import Routes
from fleetbus.runtime.settings import RuntimeSettings
from fleetbus.runtime.settle import Settler
from fleetbus.wire.clock import now_iso
from fleetbus.wire.codec import decode, encode

__all__ = ["Lease"]

log = logging.getLogger("fleetbus.runtime")


class Lease:
    """One agent process's presence and control."""

    def __init__(
        self,
        conn: Connection,
        spec: FleetSpec,
        role: str,
        worker: str,
        routes: Routes,
        settler: Settler,
        settings: RuntimeSettings,
        on_drain: Callable[[], None],
    ) -> None:
        self.conn = conn
        self.spec = spec
        self.role = role
        self.worker = worker
        self.routes = routes
        self.settler = settler
        self.settings = settings
        self.on_drain = on_drain
        self.presence = Presence(conn, spec)
        self.state = Liveness.RUNNING
        self.started = now_iso()
        self._renewals: Renewals | None = None
        self._control: Subscription | None = None
        self.subject = spec.subjects.presence(role, worker) if self.presence.stream else ""
        self._written: tuple[Any, ...] = ()
        self._record = b""

    def info(self) -> AgentInfo:
        host, pid = local_identity()
        held = tuple(
            HeldTask(
                task_id=d.task.task_id, attempt=d.attempt, since=d.since, assigner=d.task.assigner
            )
            for d in list(self.settler.running)
            if d.task is not None
        )
        return AgentInfo(
            role=self.role,
            instance=self.worker,
            host=host,
            pid=pid,
            version=__version__,
            started=self.started,
            renewed="",
            state=self.state,
            interval=self.settings.presence_interval,
            grace=self.settings.presence_grace,
            handlers=self.routes.summary(),
            tasks=held,
            handled=dict(self.settler.handled),
        )

    async def start(self) -> None:
        # Rare requests: a task each when one comes, rather than a subscription task and
        # queue kept for every agent.
        self._control = await subscribe_direct(
            self.conn.nc,
            self.spec.subjects.control(self.role, self.worker),
            self._control_message,
        )
        await self.presence.renew(self.info())
        if self.subject:
            self._renewals = Renewals.of(self.conn, self.settings.presence_interval)
            self._renewals.add(self)

    def _control_message(self, msg: Msg) -> None:
        background(self._on_control(msg))

    def record(self) -> bytes:
        """This instance's presence record now: encoded again only when what it says
        changed (its state, the tasks it holds, its counts)."""
        running = self.settler.running
        held = tuple((d.task.task_id, d.attempt) for d in running if d.task is not None)
        written = (self.state, held, tuple(self.settler.handled.items()))
        if written != self._written:
            self._written = written
            self._record = self.info().record()
        return self._record

    def draining(self) -> None:
        self.state = Liveness.DRAINING

    async def stop(self) -> None:
        """Stop renewing; say ``stopped`` (the record is not listed any more)."""
        renewals, self._renewals = self._renewals, None
        if renewals is not None:
            renewals.remove(self)
        control, self._control = self._control, None
        await unsubscribe(control)
        self.state = Liveness.STOPPED
        await self.presence.renew(self.info())

    async def _on_control(self, msg: Msg) -> None:
        if not self.spec.subjects.control_reply_allowed(msg.reply or "", self.role):
            # Not a client's request: JetStream answers a direct get or a pull on whatever
            # subject the requester names, without a reply (docs/security.md, "the server's
            # answers"). Nothing is done for it, a drain or a cancel least of all.
            log.warning(
                "%s: control request with reply %r not taken", self.worker, (msg.reply or "")[:80]
            )
            return
        try:
            request = decode(msg.data)
        except PayloadError as exc:
            await self._answer(msg, {"error": f"bad request: {exc}"})
            return
        op = request.get("op")
        if op == "ping":
            await self._answer(msg, {"ok": True, "agent": self.info().to_json()})
        elif op == "drain":
            log.info("%s: drain requested: finishing what it holds, then stopping", self.worker)
            self.draining()
            await self.presence.renew(self.info())
            await self._answer(msg, {"ok": True, "held": len(self.info().tasks)})
            self.on_drain()
        elif op == "cancel":
            wanted = request.get("task_id")
            reason = str(request.get("reason") or "cancelled by an operator")
            cancelled: list[str] = []
            for d in list(self.settler.running):
                if d.task is not None and (wanted is None or d.task.task_id == wanted):
                    d.cancel(reason)
                    cancelled.append(d.task.task_id)
            await self._answer(msg, {"ok": True, "cancelled": cancelled})
        else:
            await self._answer(msg, {"error": f"unknown op {op!r}: ping, drain or cancel"})

    async def _answer(self, msg: Msg, body: dict[str, Any]) -> None:
        with contextlib.suppress(Exception):
            await self.conn.nc.publish(msg.reply, encode(body))


_RENEWALS: weakref.WeakKeyDictionary[Connection, dict[float, Renewals]] = (
    weakref.WeakKeyDictionary()
)


class Renewals:
    """The presence leases of one connection with one interval, renewed together: one timer,
    every record in one write (nats-py's flusher sends what one loop step published)."""

    def __init__(self, conn: Connection, interval: float) -> None:
        self.conn = conn
        self.interval = interval
        self.leases: dict[Lease, None] = {}
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def of(cls, conn: Connection, interval: float) -> Renewals:
        by_interval = _RENEWALS.setdefault(conn, {})
        found = by_interval.get(interval)
        if found is None:
            found = by_interval[interval] = cls(conn, interval)
        return found

    def add(self, lease: Lease) -> None:
        self.leases[lease] = None
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"presence-{self.interval:g}s")

    def remove(self, lease: Lease) -> None:
        self.leases.pop(lease, None)
        if not self.leases:
            if self._task is not None:
                self._task.cancel()
                self._task = None
            by_interval = _RENEWALS.get(self.conn, {})
            if by_interval.get(self.interval) is self:
                del by_interval[self.interval]

    async def _run(self) -> None:
        nc = self.conn.nc
        while self.leases:
            await asyncio.sleep(self.interval)
            for lease in list(self.leases):
                try:
                    await nc.publish(lease.subject, lease.record())
                except Exception:  # a closed connection: nothing to renew
                    log.debug("presence of %s not renewed", lease.worker, exc_info=True)
