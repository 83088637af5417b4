"""A task's records in the TASKS stream, written and read by the identities the server lets.

One task ``id``, assigned by ``A`` (a role, or ``admin``) to role ``R``, has (``wire.subjects``):

- ``P.tasks.{id}.updates.{A}.{R}``: its state changes (accepted, progress, failed attempts,
  input requests), written by ``R``'s agents;
- ``P.tasks.{id}.outcome.{A}.{R}``: its one terminal record, written by ``R``'s agents (or the
  admin's dead-letter copier) with ``Nats-Expected-Last-Subject-Sequence: 0``, so the first
  outcome stored wins: an attempt that lost its lease (a blocked handler, a partition) can
  never store a second, different result over the one that won, however late it comes;
- ``P.tasks.{id}.cancel.{A}.{R}`` and ``P.tasks.{id}.answer.{A}.{R}.{n}``: written by ``A``.

With auth on the server holds each role to its own token in those positions, so a reader that
knows ``A`` and ``R`` reads records nobody else could have written. A role reads the last
record of a subject by direct get (no consumer: roles may not create any) and follows live
ones with a core subscription; the admin reads whole histories with a consumer.

The first format, ``P.tasks.{id}.updates`` (no writer in the subject), is still read by the
admin tools, with the body's ``agent`` as a claim; nothing writes it any more.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from fleetbus._background import background
from fleetbus.errors import FleetbusError, JetStreamError, JsErrorCode, PayloadError
from fleetbus.fleet import FleetSpec
from fleetbus.js._natspy import subscribe_direct
from fleetbus.js.api import JsApi, StoredMessage
from fleetbus.js.connection import Connection, unsubscribe
from fleetbus.js.publish import EXPECTED_LAST_SUBJECT_SEQUENCE, Publisher
from fleetbus.js.reader import StreamReader
from fleetbus.wire import headers as h
from fleetbus.wire.codec import decode, encode
from fleetbus.wire.subjects import TaskKind, TaskSubject, validate_id
from fleetbus.wire.updates import TaskUpdate

__all__ = ["OutcomeWrite", "TaskRecords", "TaskRef"]

log = logging.getLogger("fleetbus.tasks")

_OnUpdate = Callable[[TaskUpdate | None, bool], None]
"""Called with each record as heard (``stored``: the server's notice), and with None after a
reconnect: records may have gone by unheard, so read what is stored."""
_Routes = dict[tuple[str, str], list[_OnUpdate]]
"""Who follows which task of one assigner: (task id, assignee) -> callbacks."""


@dataclass(frozen=True, slots=True)
class TaskRef:
    """Which task: its id, who assigned it (a role, or ``admin``), and the role working it."""

    task_id: str
    assigner: str
    assignee: str


class OutcomeWrite(enum.Enum):
    STORED = "stored"
    """This write is the task's outcome."""
    REPEATED = "repeated"
    """An earlier try of this same write was stored (its acknowledgement was lost)."""
    LOST = "lost"
    """Another outcome was stored first: it stands, this one is not stored."""


class TaskRecords:
    """Reads and writes task records as the identity of ``conn``."""

    def __init__(self, conn: Connection, spec: FleetSpec, publisher: Publisher) -> None:
        self.conn = conn
        self.spec = spec
        self.publisher = publisher
        self.api = JsApi(conn)
        self._stream = spec.stream_for(spec.subjects.task_records())
        self._followed: dict[str, asyncio.Future[_Routes]] = {}
        self._hooked = False

    @property
    def stream(self) -> str:
        """The stream that stores task records (the seed's ``TASKS``)."""
        if not self._stream:
            raise FleetbusError(
                f"no stream of the fleet stores {self.spec.prefix}.tasks.>: add one to the"
                " fleet file (the seed's TASKS)"
            )
        return self._stream

    def subject(self, ref: TaskRef, kind: TaskKind, extra: str = "") -> str:
        return self.spec.subjects.task(ref.task_id, kind, ref.assigner, ref.assignee, extra)

    # -- writing (the assignee) ----------------------------------------------------------

    async def update(self, ref: TaskRef, update: TaskUpdate) -> bool:
        """Store a state change. It informs followers and does not decide anything: a failure
        is logged and returned as False, never raised."""
        try:
            await self.publisher.publish(
                self.subject(ref, "updates"), update.encode(), {h.TASK_ID: ref.task_id}
            )
        except FleetbusError as exc:
            log.warning("task %s: %s update not stored: %s", ref.task_id, update.state, exc)
            return False
        return True

    async def outcome(self, ref: TaskRef, update: TaskUpdate) -> tuple[OutcomeWrite, TaskUpdate]:
        """Store the task's outcome unless one is stored already: what happened, and the
        outcome that stands. Raises ``FleetbusError`` when it cannot be stored (a full
        stream, no server): the caller must not acknowledge the task then.

        Its message id is random (the same across this write's retries): a guessable one could
        be used first by any writer of the stream, and the real outcome dropped as a duplicate.
        """
        subject = self.subject(ref, "outcome")
        msg_id = f"outcome-{os.urandom(16).hex()}"
        headers = {h.TASK_ID: ref.task_id, EXPECTED_LAST_SUBJECT_SEQUENCE: "0"}
        try:
            ack = await self.publisher.publish(subject, update.encode(), headers, msg_id=msg_id)
        except JetStreamError as exc:
            if exc.err_code != JsErrorCode.WRONG_LAST_SEQUENCE:
                raise
            stored = await self.api.last_for(self.stream, subject)
            if stored is None:  # pragma: no cover - removed between the two requests
                raise
            standing = _decode(stored, ref)
            if stored.headers.get(h.MSG_ID) == msg_id:
                return OutcomeWrite.REPEATED, standing
            return OutcomeWrite.LOST, standing
        return (OutcomeWrite.REPEATED if ack.duplicate else OutcomeWrite.STORED), update

    # -- writing (the assigner) ----------------------------------------------------------

    async def cancel(self, ref: TaskRef, reason: str) -> TaskUpdate | None:
        """Ask for the task to be cancelled; the stored outcome instead when it has ended
        (nothing changes then). The request is stored: an agent that fetches the task later
        skips it, one running it cancels its handler. Repeating it changes nothing."""
        standing = await self.last(ref, "outcome")
        if standing is not None:
            return standing
        record = TaskUpdate(
            task_id=ref.task_id,
            state="canceled",
            agent=ref.assignee,
            assigner=ref.assigner,
            attempt=0,
            time=TaskUpdate.now(),
            reason=reason,
        )
        headers = {h.TASK_ID: ref.task_id, EXPECTED_LAST_SUBJECT_SEQUENCE: "0"}
        try:
            await self.publisher.publish(self.subject(ref, "cancel"), record.encode(), headers)
        except JetStreamError as exc:
            if exc.err_code != JsErrorCode.WRONG_LAST_SEQUENCE:
                raise  # else: cancelled before; the first request stands
        return None

    async def respond(self, ref: TaskRef, request: str, answer: Mapping[str, Any]) -> bool:
        """Answer input request ``request``; False when it was answered before (the first
        answer stands)."""
        body = encode({"request": request, "answer": dict(answer), "time": TaskUpdate.now()})
        headers = {h.TASK_ID: ref.task_id, EXPECTED_LAST_SUBJECT_SEQUENCE: "0"}
        try:
            await self.publisher.publish(self.subject(ref, "answer", request), body, headers)
        except JetStreamError as exc:
            if exc.err_code != JsErrorCode.WRONG_LAST_SEQUENCE:
                raise
            return False
        return True

    async def answer(self, ref: TaskRef, request: str) -> dict[str, Any] | None:
        """The stored answer to input request ``request``, or None."""
        stored = await self.api.last_for(self.stream, self.subject(ref, "answer", request))
        if stored is None:
            return None
        try:
            answer = decode(stored.data).get("answer")
        except PayloadError:
            return None
        return answer if isinstance(answer, dict) else None

    # -- reading (anyone the subject lets) -----------------------------------------------

    async def last(self, ref: TaskRef, kind: TaskKind, extra: str = "") -> TaskUpdate | None:
        """The last record of ``kind`` (None if there is none, or none that decodes)."""
        stored = await self.api.last_for(self.stream, self.subject(ref, kind, extra))
        if stored is None:
            return None
        try:
            return _decode(stored, ref)
        except PayloadError:
            return None

    async def follow(self, ref: TaskRef, on_update: _OnUpdate) -> Callable[[], None]:
        """Call ``on_update(update, stored)`` with each update and outcome of the task as it
        is published (``stored`` False: a core subscription, so subscribe before anything
        happens to miss nothing), and with its outcome again once the stream has stored it
        (``stored`` True: the server's republish to ``P.outcomes.{id}.{A}.{R}``). Returns the
        function that stops following.

        Three subscriptions serve every task this identity follows as ``assigner``:
        ``P.tasks.*.updates.{A}.*``, ``P.tasks.*.outcome.{A}.*`` and ``P.outcomes.*.{A}.*``,
        exactly what a role may subscribe to. Following a task is then an entry in a table,
        not a SUB and an UNSUB per task. (A role whose tasks are assigned from several
        processes hears the others' records too, and drops them.) The live outcomes are
        dropped once the first notice arrives: from then on they would only cost a message
        per task. (A stream provisioned without the republish sends no notice, so its
        outcomes keep coming live and are read back.) ``on_update`` is called as the client
        reads each message, so it must not block; nor does it wait in a queue."""
        routes = await self._routes_for(ref.assigner)
        key = (ref.task_id, ref.assignee)
        routes.setdefault(key, []).append(on_update)

        def stop() -> None:
            callbacks = routes.get(key)
            if callbacks is not None and on_update in callbacks:
                callbacks.remove(on_update)
                if not callbacks:
                    del routes[key]

        return stop

    async def _routes_for(self, assigner: str) -> _Routes:
        placing = self._followed.get(assigner)
        if _subscribed(placing):  # the usual case: nothing to wait for
            return placing.result()
        if placing is None:  # the first task of this assigner: subscribe (others wait)
            placing = self._followed[assigner] = asyncio.ensure_future(self._subscribe(assigner))
        try:
            return await asyncio.shield(placing)
        except BaseException:
            if placing.done() and self._followed.get(assigner) is placing:
                del self._followed[assigner]
            raise

    async def _reconnected(self) -> None:
        """Whatever was published while the connection was down went unheard: every
        follower is told to read what is stored."""
        for placing in list(self._followed.values()):
            if not _subscribed(placing):
                continue
            for callbacks in list(placing.result().values()):
                for callback in list(callbacks):
                    callback(None, False)

    async def _subscribe(self, assigner: str) -> _Routes:
        if not self._hooked:
            self._hooked = True
            self.conn.on_reconnect(self._reconnected)
        routes: _Routes = {}
        subjects = self.spec.subjects

        def delivering(
            parse: Callable[[str], TaskSubject | None], stored: bool
        ) -> Callable[[Msg], None]:
            def deliver(msg: Msg) -> None:
                parts = parse(msg.subject)
                if parts is None or parts.assigner != assigner:
                    return
                if not subjects.heard_as_sent(msg.subject, msg.headers):
                    return
                callbacks = routes.get((parts.task_id, parts.assignee))
                if not callbacks:
                    return  # a task someone else of this identity follows
                try:
                    update = TaskUpdate.decode(msg.data).written_by(parts.assigner, parts.assignee)
                except PayloadError:
                    return
                if stored and not update.terminal:
                    return
                for callback in list(callbacks):
                    callback(update, stored)

            return deliver

        nc, tasks = self.conn.nc, f"{subjects.prefix}.tasks.*"
        live = delivering(subjects.parse_task, stored=False)
        await subscribe_direct(nc, f"{tasks}.updates.{assigner}.*", live)
        live_outcomes: Subscription | None = await subscribe_direct(
            nc, f"{tasks}.outcome.{assigner}.*", live
        )
        told = delivering(subjects.parse_stored_outcome, stored=True)

        def notices(msg: Msg) -> None:
            nonlocal live_outcomes
            if live_outcomes is not None:
                # The stream sends notices: a live outcome adds nothing but a message per task.
                background(unsubscribe(live_outcomes))
                live_outcomes = None
            told(msg)

        await subscribe_direct(nc, subjects.stored_outcomes(assigner), notices)
        return routes

    async def history(
        self,
        task_id: str,
        *,
        assignee: str | None = None,
        assigner: str | None = None,
        live: bool = False,
    ) -> AsyncIterator[tuple[TaskUpdate, int]]:
        """Every stored update and outcome of ``task_id`` in order, with how many more are
        stored after each (then, with ``live``, new ones as they come): a consumer, so the
        admin's. ``assignee``, ``assigner``: only the records of the task that role was
        given by that identity (the first format's updates, which name no writer, are taken
        at their body's word)."""
        subject = f"{self.spec.prefix}.tasks.{validate_id(task_id)}.>"  # never "*": every task
        async with StreamReader(self.conn, self.stream, subject, deliver="all") as reader:
            async for msg in reader:
                pending = msg.metadata.num_pending
                update = self._stored_update(msg, task_id)
                if (
                    update is not None
                    and (assignee is None or update.agent == assignee)
                    and (assigner is None or update.assigner == assigner)
                ):
                    yield update, pending
                if not live and pending == 0:
                    return

    def _stored_update(self, msg: Msg, task_id: str) -> TaskUpdate | None:
        """An update or outcome as stored, with the identities its subject vouches for."""
        subjects = self.spec.subjects
        parts = subjects.parse_task(msg.subject)
        if parts is None and msg.subject != subjects.task_updates(task_id):
            return None
        if parts is not None and parts.kind not in ("updates", "outcome"):
            return None
        try:
            update = TaskUpdate.decode(msg.data)
        except PayloadError:
            return None
        return update if parts is None else update.written_by(parts.assigner, parts.assignee)

    async def stored(
        self,
        task_id: str,
        *,
        assignee: str | None = None,
        assigner: str | None = None,
        wait: float = 1.0,
    ) -> list[TaskUpdate]:
        """The updates stored so far for ``task_id`` (empty if none arrive within ``wait``)."""
        out: list[TaskUpdate] = []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                history = self.history(task_id, assignee=assignee, assigner=assigner)
                async for update, _ in history:
                    out.append(update)
        return out


def _subscribed(placing: asyncio.Future[_Routes] | None) -> TypeGuard[asyncio.Future[_Routes]]:
    return (
        placing is not None
        and placing.done()
        and not placing.cancelled()
        and placing.exception() is None
    )


def _decode(stored: StoredMessage, ref: TaskRef) -> TaskUpdate:
    return TaskUpdate.decode(stored.data).written_by(ref.assigner, ref.assignee)
