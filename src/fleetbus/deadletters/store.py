"""Dead-letter tools: list, show, replay and purge what landed in the dead-letter stream.

A dead letter's id is its sequence in the dead-letter stream. Replay sends the message back
to the consumer that gave up on it, as the admin, with a fresh random message id, so it starts
again at attempt 1; then it removes the dead letter and clears the task's outcome.

**A dead letter is data, not instructions.** With auth on a role may write dead letters for
its own consumers, with any headers and body. So replay trusts only what the server vouches
for: the consumer (the dead letter's subject ``P.dlq.{stream}.{consumer}``, which only that
consumer's role and the admin may write) and the original as the stream still stores it
(re-read by stream and sequence). It republishes only to a subject inside that consumer's
filters, never to a ``$`` subject or one with a wildcard. When the original is gone (the
stream that holds tasks keeps one only until it is settled; a limit may have removed it), the
copy's body goes to the subject the dead letter names if that is one of the consumer's own
(``P.agents.{role}.{kind}.{sender}``) and its sender may send to the role, so the assigner
gets its task's records; else to the plain subject ``P.agents.{role}.{kind}``. Only that
role reads there, and a role may write its own task's records under any assigner anyway.
An event is replayed only as stored; a task record (an ``updates`` consumer's) never: records
are stored for everyone, not sent to one consumer.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping

from fleetbus.deadletters.record import DeadLetterEntry
from fleetbus.errors import FleetbusError, PayloadError
from fleetbus.fleet import FleetSpec, ResolvedConsumer
from fleetbus.js.api import JsApi
from fleetbus.js.connection import Connection
from fleetbus.js.publish import PubAck, Publisher
from fleetbus.js.reader import StreamReader
from fleetbus.security.permissions import senders_to
from fleetbus.wire import headers as h
from fleetbus.wire.codec import decode
from fleetbus.wire.subjects import ADMIN, is_valid_subject, subject_matches, validate_id
from fleetbus.wire.updates import task_id_of

__all__ = ["DeadLetters"]


class DeadLetters:
    """The dead-letter stream of one fleet."""

    def __init__(self, conn: Connection, spec: FleetSpec) -> None:
        stream = spec.dead_letter_stream
        if stream is None:
            raise FleetbusError("the fleet has no dead-letter stream (a stream with dead_letters)")
        self.conn = conn
        self.spec = spec
        self.stream = stream
        self.api = JsApi(conn)
        self.filter = f"{spec.prefix}.dlq.>"

    async def count(self) -> int:
        info = await self.api.stream_info(self.stream, {"subjects_filter": self.filter})
        subjects: Mapping[str, int] = (info or {}).get("state", {}).get("subjects") or {}
        return sum(subjects.values())

    async def list(self, *, limit: int = 1000) -> list[DeadLetterEntry]:
        """The stored dead letters, oldest first (at most ``limit``)."""
        if await self.count() == 0:
            return []
        out: list[DeadLetterEntry] = []
        async with asyncio.timeout(10), StreamReader(self.conn, self.stream, self.filter) as reader:
            async for msg in reader:
                meta = msg.metadata
                out.append(
                    DeadLetterEntry.from_message(
                        meta.sequence.stream, msg.data, dict(msg.headers or {})
                    )
                )
                if meta.num_pending == 0 or len(out) >= limit:
                    break
        return out

    async def get(self, dead_letter_id: int) -> DeadLetterEntry:
        message = await self.api.get_message(self.stream, dead_letter_id)
        if message is None or not message.subject.startswith(self.filter[:-1]):
            raise FleetbusError(f"no dead letter {dead_letter_id} in {self.stream}")
        return DeadLetterEntry.from_message(dead_letter_id, message.data, message.headers)

    async def replay(self, dead_letter_id: int) -> tuple[str, PubAck]:
        """Send the message back to its consumer (fresh attempts), clear a task's outcome,
        then delete the dead letter. Returns the subject it went to and its PubAck."""
        stored = await self.api.get_message(self.stream, dead_letter_id)
        if stored is None or not stored.subject.startswith(self.filter[:-1]):
            raise FleetbusError(f"no dead letter {dead_letter_id} in {self.stream}")
        consumer = self._consumer_of(stored.subject, dead_letter_id)
        if consumer.kind not in _REPLAYED:
            raise FleetbusError(
                f"dead letter {dead_letter_id} is from {consumer.name}, which reads task records:"
                " a record is stored for everyone, not sent to one consumer, so it is not"
                " replayed (`fleetbus task ID` shows it; `fleetbus dlq purge` removes the letter)"
            )
        entry = DeadLetterEntry.from_message(dead_letter_id, stored.data, stored.headers)
        original = await self.api.get_message(consumer.stream, entry.seq) if entry.seq else None
        if original is not None and _within(original.subject, consumer.filters):
            subject, data = original.subject, original.data
            headers = h.carried(original.headers)
        elif consumer.kind in _ADDRESSED:
            # Gone (an interest-retention stream removes what was terminated; a limit may
            # have), or not this consumer's: the copy, to the subject it names if that is
            # this consumer's, from someone who may send to its role; else the plain one.
            subject = self._addressed(entry.original_subject, consumer)
            data = stored.data
            headers = {k: v for k, v in entry.headers.items() if k in _KEPT_FROM_COPY}
        else:
            raise FleetbusError(
                f"dead letter {dead_letter_id}: its original is no longer stored in"
                f" {consumer.stream}; an event is replayed only as it was stored"
            )
        if subject.startswith("$") or not _literal_within(subject, consumer.filters):
            raise FleetbusError(  # pragma: no cover - checked above, kept as the last word
                f"dead letter {dead_letter_id}: {subject} is not a subject of {consumer.name}"
            )
        if consumer.kind == "tasks":
            await self._clear_outcome(subject, data, headers, consumer.role, entry.seq)
        # A message id nobody can know beforehand: a role that may write the stream could
        # otherwise store a message under the replay's id first, and the replay would be
        # dropped as a duplicate.
        ack = await Publisher(self.conn).publish(
            subject, data, headers, msg_id=f"replay-{os.urandom(8).hex()}", as_sender=False
        )
        if ack.duplicate:  # pragma: no cover - 64 random bits
            raise FleetbusError(f"dead letter {dead_letter_id}: the replay was not stored")
        await self.api.delete_message(self.stream, dead_letter_id)
        return subject, ack

    def _addressed(self, claimed: str, consumer: ResolvedConsumer) -> str:
        """Where a copy goes: the original subject its dead letter names, when that is one of
        this consumer's and its sender token is someone who may send to the consumer's role
        (the assigner then gets its task's records); else the consumer's plain subject."""
        subjects = self.spec.subjects
        plain = subjects.agent(consumer.role, consumer.kind)
        if not _literal_within(claimed, consumer.filters):
            return plain
        sender = subjects.sender_of(claimed)
        if sender is None or sender == ADMIN or sender in senders_to(self.spec, consumer.role):
            return claimed
        return plain

    def _consumer_of(self, dlq_subject: str, dead_letter_id: int) -> ResolvedConsumer:
        """The consumer a dead letter belongs to, from its subject (the server's word)."""
        # P.dlq.{stream}.{consumer}.{seq} (before: without the .{seq})
        tokens = dlq_subject[len(self.filter) - 1 :].split(".")
        stream, name = [*tokens, ""][:2]
        for consumer in self.spec.consumers():
            if (consumer.stream, consumer.name) == (stream, name) and consumer.role:
                return consumer
        raise FleetbusError(
            f"dead letter {dead_letter_id} is from {stream} > {name}, which is not a consumer of"
            " the fleet: nothing to replay it to"
        )

    async def _clear_outcome(
        self, subject: str, data: bytes, headers: Mapping[str, str], role: str, seq: int
    ) -> None:
        """A replayed task starts over: its stored outcome goes (the next one stands)."""
        try:
            body = decode(data)
        except PayloadError:
            body = {}
        try:
            task_id = validate_id(task_id_of(headers, body, role, seq))
        except FleetbusError:
            return
        assigner = self.spec.subjects.sender_of(subject) or ADMIN
        outcome = self.spec.subjects.task(task_id, "outcome", assigner, role)
        tasks = self.spec.stream_for(outcome)
        if tasks:
            await self.api.purge(tasks, filter_subject=outcome)

    async def purge(self) -> int:
        """Delete every dead letter; return how many were removed."""
        return await self.api.purge(self.stream, filter_subject=self.filter)


_KEPT_FROM_COPY = frozenset({h.TASK_ID, h.TRACEPARENT})
"""The only headers a replay takes from a dead letter's copy: what names the work, nothing
that steers it (no reply address, no sender)."""


_REPLAYED = frozenset({"tasks", "inbox", "meetings", "events"})
_ADDRESSED = frozenset({"tasks", "inbox", "meetings"})
"""Consumers of one role's own subjects (``P.agents.{role}.{kind}``): only that role reads what
a replay sends there."""


def _within(subject: str, filters: list[str]) -> bool:
    return any(subject_matches(f, subject) for f in filters)


def _literal_within(subject: str, filters: list[str]) -> bool:
    """Within ``filters``, and a subject one can publish to (no wildcard token)."""
    return is_valid_subject(subject, wildcards=False) and _within(subject, filters)
