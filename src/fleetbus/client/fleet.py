"""``Fleet``: the sending side — assign tasks, message roles, emit events, follow tasks.

    async with Fleet.connect() as fleet:
        handle = await fleet.assign("backend", {"title": "Implement pagination"})
        result = await handle.result(timeout=600)

Everything is checked before anything is sent: an unknown role, an invalid subject token,
a body that is not a JSON object or is over the server's max payload raise at once.

One piece: ``Fleet`` is the one sending API users hold, and each method is short; following a
task lives in ``client.handle`` and ``tasks``, meetings in ``client.meeting``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time
import uuid
import warnings
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import TimeoutError as NatsTimeoutError

from fleetbus.client.handle import Follower, TaskHandle
from fleetbus.client.meeting import Meeting
from fleetbus.environment import resolve_connect_settings, resolve_fleet
from fleetbus.errors import (
    AskTimeout,
    FleetbusError,
    NoConsumerError,
    NoLiveAgent,
    NoResponders,
    PayloadError,
    PermissionDenied,
    RemoteError,
)
from fleetbus.fleet import FleetSpec
from fleetbus.js.acks import PubAck, PublishManyResult
from fleetbus.js.batch import BatchPublisher
from fleetbus.js.connection import Connection, ConnectSettings, connect, unsubscribe
from fleetbus.js.publish import Publisher
from fleetbus.js.reader import StreamReader
from fleetbus.presence import AgentChange, AgentInfo, Presence
from fleetbus.tasks import LateEntries, TaskIndex, TaskRecords, TaskRef, TaskSummary
from fleetbus.telemetry import tracing
from fleetbus.wire import headers as h
from fleetbus.wire.answers import parse_answer
from fleetbus.wire.codec import decode, encode
from fleetbus.wire.subjects import ADMIN, subject_matches, validate_id
from fleetbus.wire.updates import TaskUpdate, bounded

__all__ = ["Fleet", "Observed", "TaskHandle"]

log = logging.getLogger("fleetbus.client")

LIVENESS_CACHE = 1.0
"""Seconds a client trusts what it read of a role's liveness (a sender assigning a thousand
tasks a second asks once a second)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Observed:
    """A message seen by ``Fleet.observe``: a copy, never taken from its owner."""

    subject: str
    body: dict[str, Any] | None
    """The JSON object, or None when the body is not one (``raw`` has the bytes)."""
    raw: bytes
    headers: Mapping[str, str]
    sender: str | None
    stream_seq: int
    sender_verified: bool = False
    """True when ``sender`` comes from the subject (which the server authenticates)."""


class Fleet:
    """A connection to the fleet for sending. Use ``async with Fleet.connect() as fleet``."""

    def __init__(
        self, conn: Connection, spec: FleetSpec, *, sender: str | None, owns: bool = False
    ) -> None:
        """Use ``Fleet.connect`` (its own connection) or ``Fleet.attach`` (an existing one)."""
        self.conn = conn
        self.spec = spec
        self.sender = sender
        self._owns = owns
        self._publisher = Publisher(conn, sender=sender)
        self.records = TaskRecords(conn, spec, self._publisher)
        self.index = TaskIndex(conn, spec)
        self._late = LateEntries(self.index)
        """``submitted`` entries of tasks assigned moments ago (``tasks.index``)."""
        self.presence = Presence(conn, spec)
        self._liveness: dict[str, tuple[float, bool | None]] = {}
        self._destinations: dict[tuple[str, str], str] = {}
        """``_to``'s subject per role and kind: the same for every send (one lookup where
        each task would otherwise check the role, the tokens and the stream again)."""
        self._batches: BatchPublisher | None = None
        self._closed = False

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(
        cls,
        url: str | None = None,
        *,
        spec: FleetSpec | str | Path | None = None,
        connection: ConnectSettings | None = None,
        sender: str | None = None,
        fleet: FleetSpec | str | Path | None = None,
    ) -> AsyncIterator[Fleet]:
        """Connect to the embedded server by default, or to ``url`` / ``connection``.

        ``spec``: the fleet file (a ``FleetSpec`` or a path); default: from the environment
        (``FLEETBUS_FLEET``, ``./fleet.yaml``, the built-in seed). ``sender``: the role this
        client sends as (its credentials, and the sender token in what it sends)."""
        if fleet is not None:
            warnings.warn(
                "Fleet.connect(fleet=...) is now Fleet.connect(spec=...)",
                DeprecationWarning,
                stacklevel=3,
            )
            spec = fleet
        resolved = resolve_fleet(spec)
        if sender is not None:
            resolved.role(sender)
        settings = connection or resolve_connect_settings(
            resolved, url=url, name="fleetbus-client", role=sender
        )
        conn = await connect(settings)
        client = cls(conn, resolved, sender=sender, owns=True)
        try:
            yield client
        finally:
            await client.close()

    @classmethod
    def attach(cls, conn: Connection, spec: FleetSpec, *, sender: str | None = None) -> Fleet:
        """A ``Fleet`` over an existing connection (the agent runtime's, say)."""
        return cls(conn, spec, sender=sender, owns=False)

    @property
    def nc(self) -> Client:
        """The nats-py client underneath, for what fleetbus does not cover."""
        return self.conn.nc

    async def close(self) -> None:
        """Write what the task list still lacks of the tasks assigned here (a task left
        queued is listed as ``submitted``), then close the connection if it is this
        client's own."""
        await self._late.flush()  # every time: an attached client goes on being used
        if self._closed:
            return
        self._closed = True
        if self._owns:
            await self.conn.drain()

    # -- sending -------------------------------------------------------------------------

    async def assign(
        self,
        role: str,
        body: Mapping[str, Any],
        *,
        task_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        deadline: float | timedelta | datetime | None = None,
        require_live: bool = False,
    ) -> TaskHandle:
        """Send a task to ``role``. The same ``task_id`` within the dedupe window is stored
        once (the handle then says ``duplicate``).

        ``deadline``: seconds from now, a ``timedelta``, or an aware ``datetime``. A task not
        started by then is not run; one running then is cancelled; either ends ``expired``
        (``result()`` raises ``TaskExpired``), and no retry starts after it.

        When no agent of ``role`` is running (no live presence record) the task is kept for
        the first one that starts, and a warning says so (``handle.agent_running`` is
        False); with ``require_live=True`` it is not sent and ``NoLiveAgent`` is raised."""
        subject = self._to(role, "tasks")  # an unknown role, a role without tasks: first
        task_id = task_id or _body_task_id(body) or f"task-{os.urandom(8).hex()}"
        validate_id(task_id)
        data = self._encode(body)
        hdrs = {**h.checked(headers), h.TASK_ID: task_id}
        until = _deadline(deadline)
        if until is not None:
            hdrs[h.DEADLINE] = f"{until:.3f}"
        ref = TaskRef(task_id, self.identity, role)
        running = await self._agent_running(role) if require_live else None
        if running is False:
            raise NoLiveAgent(role)
        # Following before the task exists, so its every update is seen as it happens
        # (the SUBs reach the server ahead of the publish on this connection).
        follower = Follower()
        await follower.start(self.records, ref)
        now = TaskUpdate.now()
        entry = TaskSummary(
            task_id=task_id,
            role=role,
            assigner=self.identity,
            state="submitted",
            created=now,
            updated=now,
            deadline=until,
        )
        try:
            with tracing.producer(subject, message_id=task_id, conversation_id=task_id):
                ack = await self._publisher.publish(subject, data, hdrs, msg_id=task_id)
        except BaseException as exc:
            follower.stop()
            if isinstance(exc, Exception):  # not stored: the list must not show it queued
                # Only where the list has no entry for this id: one it has is another
                # assignment's under the same id, which stands (a failed resend of a task
                # whose dedupe window had passed, say).
                rejected = entry.moved("rejected", error=bounded(str(exc)))
                await self.index.write(rejected, first=True)
            raise
        if running is None:
            running = await self._agent_running(role)
        if not ack.duplicate:
            # The task list's entry, kept only as the task's first: an agent that has it
            # already may have written its own, which stands. Written once the task has
            # waited a moment with no news (an agent that takes it writes its own), at once
            # when no agent is alive to take it.
            if running is False:
                await self.index.write(entry, first=True)
            elif not follower.heard():
                key = f"{role}.{task_id}"
                self._late.add(key, entry)
                follower.news = functools.partial(self._late.heard, key)
        if running is False:
            log.warning(
                "no %s agent is running; the task is queued for the first one (%s)", role, task_id
            )
        if ack.duplicate:  # assigned before: follow it afresh, from what is stored
            follower.stop()
            handle = TaskHandle(self.records, ref, stream_seq=ack.seq, duplicate=True)
        else:
            handle = TaskHandle(self.records, ref, stream_seq=ack.seq, follower=follower)
        handle.agent_running = running
        return handle

    async def _agent_running(self, role: str) -> bool | None:
        """Whether an agent of ``role`` is alive (its latest presence record), remembered for
        a second per role; None when this client cannot tell (no presence stream, or no
        right to read it)."""
        now = time.monotonic()
        cached = self._liveness.get(role)
        if cached is not None and now - cached[0] < LIVENESS_CACHE:
            return cached[1]
        try:
            alive: bool | None = await self.presence.any_alive(role)
        except FleetbusError:
            alive = None
        self._liveness[role] = (now, alive)
        return alive

    async def agents(self, role: str | None = None) -> list[AgentInfo]:
        """The agent processes of the fleet (of ``role``), with what each holds:
        ``running``, ``draining``, ``suspect`` (renewals missed) or ``offline``. Reading them
        all takes a consumer: the admin's."""
        return await self.presence.agents(role)

    def watch_agents(
        self, role: str | None = None, every: float = 1.0
    ) -> AsyncIterator[AgentChange]:
        """Agents as they join, turn suspect, come back, go offline or leave."""
        return self.presence.watch(role, every)

    async def control(
        self, instance: str, op: Literal["ping", "drain", "cancel"], **fields: Any
    ) -> dict[str, Any]:
        """Send a control request to one agent process (``ping``, ``drain``, ``cancel``) and
        return its answer. The admin's, and the roles with oversight."""
        role = instance.rsplit("-", 1)[0]
        self.spec.role(role)
        reply = f"{self.spec.subjects.control_reply(self.identity, role)}.{uuid.uuid4().hex}"
        sub = await self.nc.subscribe(reply, max_msgs=1)
        try:
            subject = self.spec.subjects.control(role, instance)
            await self.nc.publish(subject, encode({"op": op, **fields}), reply=reply)
            try:
                answer = await sub.next_msg(timeout=5.0)
            except (NatsTimeoutError, TimeoutError):
                if self.conn.refused(subject):
                    raise PermissionDenied(
                        f"this identity may not control {role}'s agents"
                    ) from None
                raise FleetbusError(
                    f"agent {instance} did not answer within 5s (not running, or offline)"
                ) from None
        finally:
            await unsubscribe(sub)
        if (answer.headers or {}).get("Status") == "503":  # no one listens there
            raise FleetbusError(f"agent {instance} did not answer: it is not running")
        body = decode(answer.data)
        if "error" in body:
            raise FleetbusError(f"agent {instance}: {body['error']}")
        return body

    def task(self, task_id: str, role: str, *, assigner: str | None = None) -> TaskHandle:
        """A handle on a task this client's identity assigned to ``role`` earlier (the
        assigner and the role name the subjects its records are on). ``assigner``: another
        identity's task, for the admin (a role may act only on the tasks it assigned)."""
        self.spec.role(role)
        ref = TaskRef(validate_id(task_id), assigner or self.identity, role)
        return TaskHandle(self.records, ref)

    def _to(self, role: str, kind: Literal["tasks", "inbox", "meetings"]) -> str:
        """The subject this client sends ``role``'s ``kind`` on; ``NoConsumerError`` where
        the stream would drop it unread (a role without that consumer)."""
        known = self._destinations.get((role, kind))
        if known is not None:
            return known
        self.spec.role(role)
        subject = self.spec.subjects.agent(role, kind, self.sender)
        stream = self.spec.dropped_unread(subject)
        if stream:
            raise NoConsumerError(role, kind, stream)
        self._destinations[(role, kind)] = subject  # a fleet role's: bounded by the fleet
        return subject

    async def tasks(
        self,
        *,
        role: str | None = None,
        state: str | None = None,
        since: float | timedelta | None = None,
        limit: int | None = 100,
    ) -> list[TaskSummary]:
        """The task list, the most recently changed first: tasks of ``role`` (every role by
        default), in ``state`` (``submitted``, an update state like ``accepted`` or
        ``dead_lettered``, or an A2A state like ``working`` or ``failed``), changed within
        ``since`` seconds, at most ``limit``. Reading it takes a consumer: the admin's."""
        return await self.index.tasks(role=role, state=state, since=since, limit=limit)

    async def cancel(
        self, task_id: str, role: str, reason: str = "", *, assigner: str | None = None
    ) -> bool:
        """Cancel a task this identity assigned to ``role`` (the admin: any task, naming its
        ``assigner``): see ``TaskHandle.cancel``."""
        return await self.task(task_id, role, assigner=assigner).cancel(reason)

    async def respond(
        self,
        task_id: str,
        role: str,
        answer: Mapping[str, Any],
        *,
        assigner: str | None = None,
    ) -> None:
        """Answer the input request of a task this identity assigned to ``role`` (the admin:
        any task, naming its ``assigner``): see ``TaskHandle.respond``."""
        await self.task(task_id, role, assigner=assigner).respond(answer)

    async def find_task(self, task_id: str, role: str | None = None) -> TaskSummary | None:
        """The task list's entry of ``task_id`` (its role, assigner and state) assigned to
        ``role`` (None: any), or None; ``AmbiguousTask`` when several tasks have the id. The
        admin's: it reads the whole list."""
        return await self.index.find(validate_id(task_id), role)

    @property
    def identity(self) -> str:
        """Who this client is in subjects: its sender role, else ``admin``."""
        return self.sender or ADMIN

    async def message(
        self, role: str, body: Mapping[str, Any], *, headers: Mapping[str, str] | None = None
    ) -> PubAck:
        """Send a direct message to ``role``'s inbox."""
        subject = self._to(role, "inbox")
        with tracing.producer(subject):
            return await self._publisher.publish(subject, self._encode(body), h.checked(headers))

    async def invite(
        self, role: str, body: Mapping[str, Any], *, headers: Mapping[str, str] | None = None
    ) -> PubAck:
        """Send a meeting invitation to ``role`` (stored: an offline invitee sees it later)."""
        subject = self._to(role, "meetings")
        with tracing.producer(subject):
            return await self._publisher.publish(subject, self._encode(body), h.checked(headers))

    async def emit(
        self,
        domain: str,
        type_: str,
        body: Mapping[str, Any],
        *,
        headers: Mapping[str, str] | None = None,
        msg_id: str | None = None,
    ) -> PubAck:
        """Publish an event on ``P.events.{domain}.{type}``; every subscribing role gets it."""
        subject = self.spec.subjects.event(domain, type_)
        with tracing.producer(subject, message_id=msg_id):
            return await self._publisher.publish(
                subject, self._encode(body), h.checked(headers), msg_id=msg_id
            )

    async def emit_many(
        self,
        domain: str,
        type_: str,
        bodies: Iterable[Mapping[str, Any]],
        *,
        headers: Mapping[str, str] | None = None,
        msg_ids: Sequence[str] | None = None,
    ) -> PublishManyResult:
        """``emit`` for many events at once: see ``publish_many``."""
        subject = self.spec.subjects.event(domain, type_)
        return await self.publish_many(subject, bodies, headers=headers, msg_ids=msg_ids)

    async def publish_many(
        self,
        subject_or_items: str | Iterable[tuple[str, Mapping[str, Any]]],
        bodies: Iterable[Mapping[str, Any]] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        msg_ids: Sequence[str] | None = None,
    ) -> PublishManyResult:
        """Store many messages, fast: ``publish_many(subject, bodies)`` or
        ``publish_many([(subject, body), ...])``, with absolute subjects the fleet's streams
        capture (``genbrain.events.deployment.started``).

        Where the stream has ``allow_atomic_publish`` (the seed's ``EVENTS``), messages go in
        atomic batches of up to 1000, each confirmed stored, whole or not at all, by one
        PubAck; elsewhere (or when the live stream refuses atomic publishes) they go
        pipelined, one PubAck each. Each message gets a ``Nats-Msg-Id`` (``msg_ids[i]``, or
        a generated one) so re-sent batches are stored once. Returns the PubAcks by input
        position; raises ``BatchPublishError`` naming the positions not stored and why.
        """
        if isinstance(subject_or_items, str):
            if bodies is None:
                raise FleetbusError("publish_many(subject, bodies): bodies missing")
            payloads = [self._encode(b) for b in bodies]
            subjects: list[str] = [subject_or_items] * len(payloads)
        else:
            if bodies is not None:
                raise FleetbusError("publish_many(items): pass (subject, body) pairs, no bodies")
            pairs = list(subject_or_items)
            subjects = [s for s, _ in pairs]
            payloads = [self._encode(b) for _, b in pairs]
        known: dict[str, str] = {}
        for subject in subjects:
            if subject not in known:
                stream = self.spec.stream_for(subject)
                if not stream:
                    raise FleetbusError(
                        f"publish_many: no stream of the fleet captures {subject} (subjects are"
                        f" absolute, like {self.spec.subjects.event('domain', 'type')});"
                        " nothing was sent"
                    )
                known[subject] = stream
        if self._batches is None:
            self._batches = BatchPublisher(self.conn, sender=self.sender)
        streams = self.spec.streams
        return await self._batches.publish(
            subjects,
            payloads,
            [known[s] for s in subjects],
            atomic=lambda name: name in streams and streams[name].allow_atomic_publish,
            msg_ids=msg_ids,
            headers=h.checked(headers),
        )

    # -- meetings ------------------------------------------------------------------------

    def meeting(self, meeting_id: str, *, as_role: str | None = None) -> Meeting:
        """A meeting room (``async with``) as ``as_role`` (default: this client's sender)."""
        role = as_role or self.sender
        if role is None:
            raise FleetbusError("a meeting needs a role: pass as_role= or connect with sender=")
        return Meeting(self, meeting_id, role)

    # -- questions -----------------------------------------------------------------------

    async def ask(
        self,
        role: str,
        body: Mapping[str, Any],
        *,
        timeout: float = 30.0,
        durable: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Ask ``role`` and return the answer its ``on_request`` handler returns.

        Fast (default): a core NATS request on ``P.rpc.{role}``; raises ``NoResponders`` at
        once when no agent of the role is up. Durable: the question is stored in the role's
        inbox with a reply address, so it is answered even if the agent starts (or restarts)
        within ``timeout``. Either way the answer comes from the agent, never from a stream's
        PubAck; ``AskTimeout`` after ``timeout``, ``RemoteError`` when the handler raised.
        A late answer goes to a reply subject nobody listens on any more: it is dropped.
        """
        self.spec.role(role)
        data = self._encode(body)
        hdrs = h.checked(headers)
        if self.sender:
            hdrs[h.SENDER] = self.sender
        ask_id = f"ask-{uuid.uuid4().hex}"
        # The answer's only possible place: this identity's inbox, in the namespace of the
        # role asked. With auth on, that role may publish there and nowhere else of ours.
        reply = f"{self.spec.subjects.answer_to(self.identity, role)}.{ask_id}"
        # How long the asker waits: the handler is stopped then (it would answer nobody). A
        # durable ask may wait in the stream, so it says when; a fast one is heard at once.
        if durable:
            hdrs[h.DEADLINE] = f"{time.time() + timeout:.3f}"
        else:
            hdrs[h.TIMEOUT] = f"{timeout:.3f}"
        sub = await self.nc.subscribe(reply, max_msgs=1)
        try:
            if durable:
                hdrs.update({h.REPLY_TO: reply, h.ASK_ID: ask_id})
                subject = self._to(role, "inbox")
                with tracing.producer(subject, message_id=ask_id):
                    await self._publisher.publish(subject, data, hdrs, msg_id=ask_id)
            else:
                subject = self.spec.subjects.rpc(role, self.sender)
                with tracing.producer(subject, message_id=ask_id):
                    tracing.inject(hdrs)
                    await self.nc.publish(subject, data, reply=reply, headers=hdrs or None)
            try:
                answer = await sub.next_msg(timeout=timeout)
            except (NatsTimeoutError, TimeoutError):
                if not durable and self.conn.refused(self.spec.subjects.rpc(role, self.sender)):
                    raise PermissionDenied(f"this identity may not ask {role}") from None
                raise AskTimeout(role, timeout) from None
        finally:
            await unsubscribe(sub)
        if (answer.headers or {}).get("Status") == "503":
            raise NoResponders(role)  # the server: nobody subscribes to the ask subject
        return _answer(role, answer.data, answer.headers)

    # -- following tasks -----------------------------------------------------------------

    async def watch(self, task_id: str, *, role: str | None = None) -> AsyncIterator[TaskUpdate]:
        """Every update of ``task_id`` from the first, then live ones as they come.

        ``role``: the role it was assigned to; only what that role wrote counts. The admin may
        leave it out (and sees every writer, each update's ``agent`` saying which); a role's
        client follows the tasks it assigned and needs it."""
        if self.conn.identity is not None:
            async for update in self.task(task_id, self._assignee(role)).updates():
                yield update
            return
        async for update, _ in self.records.history(task_id, assignee=role, live=True):
            yield update

    async def history(
        self,
        task_id: str,
        *,
        role: str | None = None,
        assigner: str | None = None,
        wait: float = 1.0,
    ) -> list[TaskUpdate]:
        """The updates stored so far for ``task_id`` (empty if none arrive within ``wait``).

        The admin reads them all (of the task ``role`` was given by ``assigner``, when
        named: a role writes its own records under any id). A role reads by direct get,
        which gives the last state change and the outcome of a task it assigned to
        ``role``."""
        if self.conn.identity is not None:
            handle = self.task(task_id, self._assignee(role))
            found = [await self.records.last(handle.ref, kind) for kind in ("updates", "outcome")]
            return [u for u in found if u is not None]
        return await self.records.stored(task_id, assignee=role, assigner=assigner, wait=wait)

    def _assignee(self, role: str | None) -> str:
        if role is None:
            raise FleetbusError(
                "a role reads the records of tasks it assigned, by the role it assigned them"
                " to: pass role="
            )
        return role

    # -- oversight -----------------------------------------------------------------------

    async def observe(
        self, pattern: str, *, deliver: Literal["new", "all"] = "new"
    ) -> AsyncIterator[Observed]:
        """Watch every stored message on ``pattern`` (relative to the prefix, like
        ``agents.*.inbox``) without consuming it: the owners' durable consumers still get
        and ack each one. Uses an unacknowledged consumer that the server removes after exit.

        ``agents.*.inbox`` also sees ``agents.*.inbox.{sender}``: messages a role sent."""
        async with self.observer(pattern, deliver=deliver) as observed:
            async for item in observed:
                yield item

    @contextlib.asynccontextmanager
    async def observer(
        self, pattern: str, *, deliver: Literal["new", "all"] = "new"
    ) -> AsyncIterator[AsyncIterator[Observed]]:
        """``observe`` in two steps: on entry the observer is in place (nothing published
        afterwards is missed); iterate what it yields for the messages.

        The admin reads the stream (``deliver="all"`` starts from its first message). A role
        with ``oversight`` may not create consumers: it watches live traffic on a core
        subscription (``deliver="new"`` only; ``stream_seq`` is then 0)."""
        subject = self.spec.subjects.absolute(pattern)
        stream = self.spec.stream_for(subject)
        if not stream:
            raise FleetbusError(f"no stream of the fleet stores {subject}: nothing to observe")
        tokens = subject.split(".")
        # One filter per consumer (the narrow create API takes one): an agents pattern is
        # widened by a token, then what matches it, or it plus a sender token, is kept.
        agents = subject.startswith(f"{self.spec.prefix}.agents.") and tokens[-1] != ">"
        wide = ".".join([*tokens[:-1], ">"]) if agents else subject
        if self.conn.identity is None:
            async with StreamReader(self.conn, stream, wide, deliver=deliver) as reader:
                yield self._observed(reader, subject if agents else None)
            return
        if deliver != "new":
            raise FleetbusError("a role observes live traffic only: deliver='new'")
        sub = await self.nc.subscribe(wide)
        try:
            await self.conn.settle()  # a refused subscription is known after this
            if self.conn.refused(wide, "subscribe"):
                raise PermissionDenied(
                    f"this identity may not observe {wide}: only roles with oversight may"
                )
            yield self._observed(_live(sub), subject if agents else None)
        finally:
            await unsubscribe(sub)

    async def _observed(
        self, messages: AsyncIterable[Msg], agents: str | None
    ) -> AsyncIterator[Observed]:
        async for msg in messages:
            if agents is not None and not (
                subject_matches(agents, msg.subject) or subject_matches(f"{agents}.*", msg.subject)
            ):
                continue
            headers = dict(msg.headers or {})
            try:
                body: dict[str, Any] | None = decode(msg.data)
            except PayloadError:
                body = None
            sender = self.spec.subjects.sender_of(msg.subject)
            try:
                seq = int(msg.metadata.sequence.stream)
            except Exception:  # a live message, not a stored one
                seq = 0
            yield Observed(
                subject=msg.subject,
                body=body,
                raw=msg.data,
                headers=headers,
                sender=sender or headers.get(h.SENDER),
                sender_verified=sender is not None,
                stream_seq=seq,
            )

    def _encode(self, body: Mapping[str, Any]) -> bytes:
        return encode(body, max_payload=self.conn.max_payload or None)


def _answer(role: str, data: bytes, headers: Mapping[str, str] | None) -> Any:
    try:
        ok, value = parse_answer(data, headers)
    except PayloadError as exc:
        raise RemoteError(role, str(exc)) from None
    if not ok:
        raise RemoteError(role, str(value))
    return value


def _body_task_id(body: Mapping[str, Any]) -> str | None:
    if not isinstance(body, Mapping):
        raise PayloadError(f"a body must be a JSON object (a dict), got {type(body).__name__}")
    value = body.get("task_id")
    if value is None:
        return None
    if not isinstance(value, str):
        raise FleetbusError(f"the body's task_id must be a string, got {value!r}")
    return value


async def _live(sub: Subscription) -> AsyncIterator[Msg]:
    async for msg in sub.messages:
        yield msg


def _deadline(value: float | timedelta | datetime | None) -> float | None:
    """A deadline as Unix time: from seconds from now, a ``timedelta`` or an aware
    ``datetime``."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise FleetbusError("deadline: give an aware datetime (with a tzinfo), or seconds")
        return value.timestamp()
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds <= 0:
        raise FleetbusError(f"deadline: {seconds:g}s from now has passed already")
    return time.time() + seconds
