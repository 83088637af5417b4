"""Answering asks: the ``on_request`` handler's value (or its error) goes back to the asker.

- Fast asks arrive over core NATS on ``P.rpc.{role}`` (queue group ``{role}``: one process of
  the role answers); each is answered in its own task so a slow answer does not hold others.
- Durable asks arrive through the role's inbox consumer with ``Fleet-Reply-To``; the answer
  is published there, then the ask is acknowledged. A durable ask past its ``Fleet-Deadline``
  is dropped (nobody waits for it any more).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from nats.aio.msg import Msg

from fleetbus.errors import PayloadError
from fleetbus.fleet import ResolvedConsumer
from fleetbus.runtime.envelope import BadMessage, envelope_of
from fleetbus.runtime.messages import Request
from fleetbus.runtime.routes import Routes
from fleetbus.runtime.settle import Settler
from fleetbus.wire import headers as h
from fleetbus.wire.answers import encode_answer, encode_error
from fleetbus.wire.codec import decode

__all__ = ["Responder"]

log = logging.getLogger("fleetbus.runtime")


class Responder:
    def __init__(self, routes: Routes, settler: Settler) -> None:
        self.routes = routes
        self.settler = settler
        self.conn = settler.conn
        self.spec = settler.spec
        self.role = settler.role
        self.worker = settler.worker
        self._sub: Any = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._open = False

    async def listen(self) -> None:
        """Subscribe to fast asks (only when there is an ``on_request`` handler)."""
        if self.routes.request is None:
            return
        self._open = True
        self._sub = await self.conn.nc.subscribe(
            self.spec.subjects.rpc(self.role), queue=self.role, cb=self._on_rpc
        )
        await self.conn.nc.flush()

    async def close(self, grace: float) -> None:
        """Stop taking fast asks; let the ones being answered finish within ``grace``."""
        self._open = False
        sub, self._sub = self._sub, None
        if sub is not None:
            try:
                await sub.unsubscribe()
            except Exception:
                log.debug("%s: unsubscribing from fast asks failed", self.worker, exc_info=True)
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace)
        for task in self._tasks:
            task.cancel()

    async def _on_rpc(self, msg: Msg) -> None:
        if not self._open or not msg.reply:
            return
        task = asyncio.ensure_future(self._answer_rpc(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer_rpc(self, msg: Msg) -> None:
        headers = dict(msg.headers or {})
        try:
            body = decode(msg.data)
        except PayloadError as exc:
            data, hdrs = encode_error(f"bad request: {exc}")
            await self.conn.nc.publish(msg.reply, data, headers=hdrs)
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
        data, hdrs = await self.answer(request)
        await self.conn.nc.publish(msg.reply, data, headers=hdrs)

    async def durable(self, msg: Msg, consumer: ResolvedConsumer) -> None:
        """A durable ask from the inbox: answer, then ack (settled like any inbox message)."""
        settler = self.settler
        reply_to = (msg.headers or {})[h.REPLY_TO]
        try:
            env = envelope_of(msg, self.spec)
        except BadMessage as bad:
            # The asker waits on its reply address: tell it now, then dead-letter.
            data, hdrs = encode_error(f"bad request: {bad.error}")
            await self.conn.nc.publish(reply_to, data, headers=hdrs)
            await settler.bad_message(msg, consumer, bad)
            return
        deadline = _float(env.headers.get(h.DEADLINE))
        if deadline is not None and time.time() > deadline:
            log.info(
                "%s: ask %s expired before it was answered; dropped",
                self.worker,
                env.headers.get(h.ASK_ID, f"seq {env.stream_seq}"),
            )
            await msg.ack_sync()
            return
        request = env.make(Request, durable=True, deadline=deadline)
        beat = asyncio.create_task(settler.heartbeat(msg, consumer.spec.effective_ack_wait))
        try:
            data, hdrs = await self.answer(request)
        finally:
            beat.cancel()
        await self.conn.nc.publish(reply_to, data, headers=hdrs)
        await msg.ack_sync()

    async def answer(self, request: Request) -> tuple[bytes, dict[str, str]]:
        """Run the request handler; its value, or its error, as an answer."""
        handler = self.routes.request
        if handler is None:
            return encode_error(f"agent {self.role} does not answer requests (no on_request)")
        try:
            value = await handler(request)
            return encode_answer(value)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("%s: request handler failed: %s: %s", self.worker, type(exc).__name__, exc)
            return encode_error(f"{type(exc).__name__}: {exc}")


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None
