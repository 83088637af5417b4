"""Answering asks: the ``on_request`` handler's value (or its error) goes back to the asker.

- Fast asks arrive over core NATS on ``P.rpc.{role}.{asker}`` (queue group ``{role}``: one
  process of the role answers); each is answered in its own task so a slow answer does not
  hold others.
- Durable asks arrive through the role's inbox consumer with ``Fleet-Reply-To``; the answer
  is published there, then the ask is acknowledged. A durable ask past its ``Fleet-Deadline``
  is dropped (nobody waits for it any more).

**An answer goes only to the asker's answer namespace**, ``_INBOX_{asker}.rpc.{role}.{id}``
(``Subjects.answer_allowed``), where ``asker`` is the token the server vouches for. An agent
never publishes to a reply subject an asker chose otherwise: that would make it a confused
deputy (an answer stored as a task from this role, say). A fast ask with another reply is
dropped with a warning; a durable one is dead-lettered as a bad message.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from nats.aio.msg import Msg

from fleetbus.errors import PayloadError
from fleetbus.fleet import FleetSpec
from fleetbus.fleet.units import format_duration
from fleetbus.js.connection import unsubscribe
from fleetbus.runtime.envelope import BadMessage, envelope_of, timeout_of
from fleetbus.runtime.messages import Request
from fleetbus.runtime.routes import Routes, invoke
from fleetbus.runtime.settle import Delivery, Settler, error_text
from fleetbus.telemetry import log_context, tracing
from fleetbus.wire import headers as h
from fleetbus.wire.answers import encode_answer, encode_error
from fleetbus.wire.codec import decode
from fleetbus.wire.subjects import ADMIN

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
        self._subs: list[Any] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._open = False

    async def listen(self) -> None:
        """Subscribe to fast asks (only when there is an ``on_request`` handler)."""
        if self.routes.request is None:
            return
        self._open = True
        nc = self.conn.nc
        subjects = self.spec.subjects
        self._subs = [
            await nc.subscribe(subjects.rpc(self.role), queue=self.role, cb=self._on_rpc),
            await nc.subscribe(f"{subjects.rpc(self.role)}.*", queue=self.role, cb=self._on_rpc),
        ]
        await self.conn.flush()

    async def close(self, grace: float) -> None:
        """Stop taking fast asks; let the ones being answered finish within ``grace``."""
        self._open = False
        subs, self._subs = self._subs, []
        await unsubscribe(*subs)
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace)
        for task in self._tasks:
            task.cancel()

    async def _on_rpc(self, msg: Msg) -> None:
        if not self._open or not msg.reply:
            return
        busy = self.settler.settings.max_concurrency
        if len(self._tasks) >= busy:
            # As many handlers as any consumer runs at once: any role that may ask this one
            # could otherwise start handlers (and hold their bodies) without end.
            asker = self.spec.subjects.rpc_asker(msg.subject)
            if self.spec.subjects.answer_allowed(msg.reply, asker, self.role):
                data, hdrs = encode_error(
                    f"busy: {self.role} is answering {busy} asks already; ask again later"
                )
                await self._publish(msg.reply, data, hdrs)
            return
        task = asyncio.ensure_future(self._answer_rpc(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer_rpc(self, msg: Msg) -> None:
        asker = self.spec.subjects.rpc_asker(msg.subject)
        if not self.spec.subjects.answer_allowed(msg.reply, asker, self.role):
            log.warning(
                "%s: a fast ask from %s wants its answer on %r, outside %s.*: not answered",
                self.worker,
                asker,
                msg.reply[:200],
                self.spec.subjects.answer_to(asker, self.role),
            )
            return
        headers = dict(msg.headers or {})
        try:
            body = decode(msg.data)
        except PayloadError as exc:
            data, hdrs = encode_error(f"bad request: {exc}")
            await self._publish(msg.reply, data, hdrs)
            return
        deadline = timeout_of(headers)
        request = Request(
            body=body,
            headers=headers,
            subject=msg.subject,
            sender=asker,
            sender_verified=asker != ADMIN,
            attempt=1,
            stream_seq=0,
            durable=False,
            deadline=deadline,
        )
        answer = await self._answer_within(request, deadline)
        if answer is not None:
            await self._publish(msg.reply, *answer)

    async def _publish(self, reply: str, data: bytes, headers: dict[str, str]) -> None:
        try:
            try:
                await self.conn.nc.publish(reply, data, headers=headers)
            except PayloadError as exc:  # over max_payload: the asker is told, not left waiting
                data, headers = encode_error(f"the answer could not be sent: {exc}")
                await self.conn.nc.publish(reply, data, headers=headers)
        except Exception as exc:  # the asker times out; the agent carries on
            log.warning("%s: the answer to %s was not sent: %s", self.worker, reply[:200], exc)

    async def durable(self, d: Delivery) -> None:
        """A durable ask from the inbox: answer, then ack (settled like any inbox message)."""
        settler = self.settler
        msg = d.msg
        try:
            env = envelope_of(msg, self.spec, d.attempt, d.stream_seq)
        except BadMessage as bad:
            reply = (msg.headers or {}).get(h.REPLY_TO, "")
            if self.spec.subjects.answer_allowed(reply, _asker_of(msg, self.spec), self.role):
                # The asker waits on its reply address: tell it now, then dead-letter.
                data, hdrs = encode_error(f"bad request: {bad.error}")
                await self._publish(reply, data, hdrs)
            await settler.bad_message(d, bad)
            return
        asker = env.sender if env.sender_verified and env.sender else ADMIN
        reply_to = env.headers.get(h.REPLY_TO, "")
        if not self.spec.subjects.answer_allowed(reply_to, asker, self.role):
            where = self.spec.subjects.answer_to(asker, self.role)
            await settler.bad_message(
                d,
                BadMessage(
                    f"bad reply subject: an answer to {asker} goes under {where}",
                    f"Fleet-Reply-To {reply_to[:200]!r} is not under {where}",
                ),
            )
            return
        deadline = env.deadline
        if deadline is not None and time.time() > deadline:
            log.info(
                "%s: ask %s expired before it was answered; dropped",
                self.worker,
                env.headers.get(h.ASK_ID, f"seq {env.stream_seq}"),
            )
            await settler.ack(d)
            return
        request = env.make(Request, durable=True, deadline=deadline)
        settler.beats.start(d)
        try:
            answer = await self._answer_within(request, deadline)
        finally:
            settler.beats.stop(d)
        if answer is not None:
            await self._publish(reply_to, *answer)
        await settler.ack(d)

    async def _answer_within(
        self, request: Request, deadline: float | None
    ) -> tuple[bytes, dict[str, str]] | None:
        """The answer, within the role's budget and no longer than the asker waits: a handler
        that went on would answer nobody, and hold a durable ask's inbox message (at
        max_ack_pending, the inbox) or one of the fast asks' ``max_concurrency`` places.
        None at the asker's deadline: it has stopped waiting (``AskTimeout``)."""
        limit, by_deadline = self.settler.time_limit(deadline)
        # A task of its own: a handler that catches its cancellation and goes on is left
        # behind, not waited for (its place, or its inbox message, is free all the same).
        # (a plain def handler's thread, left running past its time, is counted too)
        with self.settler.left_behind.counting_threads(_LEFT_AFTER):
            running = asyncio.ensure_future(self.answer(request))
        try:
            async with asyncio.timeout(limit):
                return await asyncio.shield(running)
        except TimeoutError:
            await self.settler.end_or_leave(running, _LEFT_AFTER, _HANDLER, "ask")
            if by_deadline:
                return None
            budget = format_duration(limit or 0.0)
            return encode_error(f"the answer took longer than the role's task_budget of {budget}")
        except asyncio.CancelledError:  # the agent stops: the handler ends first (or is left)
            await self.settler.end_or_leave(running, _LEFT_AFTER, _HANDLER, "ask")
            raise

    async def answer(self, request: Request) -> tuple[bytes, dict[str, str]]:
        """Run the request handler; its value, or its error, as an answer."""
        handler = self.routes.request
        if handler is None:
            return encode_error(f"agent {self.role} does not answer requests (no on_request)")
        try:
            with (
                log_context(role=self.role, worker=self.worker),
                tracing.consumer(request.headers, self.spec.subjects.rpc(self.role)),
            ):
                value = await invoke(handler, request)
            return encode_answer(value)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = error_text(exc)  # the asker gets it: an answer too large is never sent
            log.warning("%s: request handler failed: %s", self.worker, error)
            return encode_error(error)


_LEFT_AFTER = 1.0
"""How long a request handler that was cancelled gets to end before it is left behind."""
_HANDLER = "a request handler"


def _asker_of(msg: Msg, spec: FleetSpec) -> str:
    return spec.subjects.sender_of(msg.subject) or ADMIN
