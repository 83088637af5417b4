"""An agent's presence lease and its control subject.

While the agent serves, ``Lease`` renews the instance's presence record
(``fleetbus.presence``) every ``presence_interval`` seconds with what it holds, and answers
control requests on ``P.control.{role}.{instance}``: ``ping`` (the record), ``drain`` (stop
fetching, finish what it holds, stop: ``run()`` then exits 0) and ``cancel`` (the tasks it
holds, or one of them). Requests come from the admin and the roles with oversight (the server
lets no one else publish there); answers go only to a reply subject in a control namespace,
``_INBOX_{asker}.control.{role}.*``, never to a subject a request names at will.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from fleetbus._version import __version__
from fleetbus.errors import PayloadError
from fleetbus.fleet import FleetSpec
from fleetbus.js.connection import Connection
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
        self._loop: asyncio.Task[None] | None = None
        self._control: Subscription | None = None

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
        self._control = await self.conn.nc.subscribe(
            self.spec.subjects.control(self.role, self.worker), cb=self._on_control
        )
        await self.presence.renew(self.info())
        self._loop = asyncio.create_task(self._renew(), name=f"lease-{self.worker}")

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.settings.presence_interval)
            await self.presence.renew(self.info())

    def draining(self) -> None:
        self.state = Liveness.DRAINING

    async def stop(self) -> None:
        """Stop renewing; say ``stopped`` (the record is not listed any more)."""
        loop, self._loop = self._loop, None
        if loop is not None:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        control, self._control = self._control, None
        if control is not None:
            with contextlib.suppress(Exception):
                await control.unsubscribe()
        self.state = Liveness.STOPPED
        await self.presence.renew(self.info())

    async def _on_control(self, msg: Msg) -> None:
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
        """Answer only into a control namespace (``_INBOX_{asker}.control.{role}.*``): a
        request naming any other reply subject gets no answer from this agent's identity."""
        reply = msg.reply or ""
        parts = reply.split(".")
        if not (
            len(parts) == 4
            and parts[0].startswith("_INBOX_")
            and parts[1:3] == ["control", self.role]
        ):
            log.warning("%s: control request with reply %r not answered", self.worker, reply[:80])
            return
        with contextlib.suppress(Exception):
            await self.conn.nc.publish(reply, encode(body))
