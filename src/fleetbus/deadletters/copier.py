"""Dead letters: NATS has no dead-letter queue, so fleetbus builds one.

Two paths lead into the dead-letter stream (``AGENT_DLQ``, subjects ``P.dlq.{stream}.{consumer}``):

1. The runtime holds the message when it gives up (a ``Reject``, a bad payload, the last
   attempt failed): it writes the dead letter itself, with the error text, then terminates
   the message with a reason that starts with ``fleetbus:``.
2. Nobody holds it: an agent crashed or hung on the last attempt. The server then publishes a
   MAX_DELIVERIES advisory, which the dead-letter stream captures (so none is lost while no
   copier runs). The copier — ``fleetbus up`` runs it as the admin, and so does every agent
   that connects as the admin — consumes those advisories through one shared durable
   consumer (``DLQ_COPIER``), fetches the original by stream sequence and writes the dead
   letter. Terminations by other clients are copied the same way.

An advisory is acknowledged only once its dead letter is stored; a failure leaves it for a
later attempt (after the consumer's ack wait), so none is lost to a hiccup.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping

from nats.aio.msg import Msg

from fleetbus.deadletters.record import REASON_MARK, DeadLetter, write_dead_letter
from fleetbus.errors import FleetbusError, PayloadError
from fleetbus.fleet import DEAD_LETTER_COPIER, FleetSpec
from fleetbus.js.api import JsApi
from fleetbus.js.connection import Connection
from fleetbus.js.consume import ConsumerLoop
from fleetbus.js.publish import Publisher
from fleetbus.tasks import TaskRecords, TaskRef
from fleetbus.wire.codec import decode
from fleetbus.wire.subjects import (
    ADMIN,
    ADVISORY_MAX_DELIVERIES,
    ADVISORY_TERMINATED,
    validate_id,
)
from fleetbus.wire.updates import TaskUpdate, task_id_of

__all__ = ["COPIER_CONSUMER", "AdvisoryCopier"]

log = logging.getLogger("fleetbus.deadletter")

COPIER_CONSUMER = DEAD_LETTER_COPIER
_CONCURRENCY = 32


class AdvisoryCopier:
    """Turns captured advisories into dead letters. Safe to run in many processes at once."""

    def __init__(
        self, conn: Connection, spec: FleetSpec, publisher: Publisher, *, poll: float = 5.0
    ) -> None:
        self.conn = conn
        self.spec = spec
        self.publisher = publisher
        self.api = JsApi(conn)
        self.records = TaskRecords(conn, spec, publisher)
        self.poll = poll

    async def run(self, stopping: asyncio.Event, *, grace: float = 5.0) -> None:
        """Copy advisories until ``stopping`` is set.

        A copier beside an agent is an extra: its failures (the consumer missing, a server
        hiccup, a dead letter that cannot be stored) are logged and retried by the consume
        loop, never raised into the agent."""
        dlq = self.spec.dead_letter_stream
        if dlq is None:
            return
        loop = ConsumerLoop(
            self.conn, dlq, COPIER_CONSUMER, self.handle, poll=self.poll, limit=_CONCURRENCY
        )
        await loop.bind()
        serving = asyncio.create_task(loop.run(), name="dead-letter-copier")
        stop = asyncio.create_task(stopping.wait())
        try:
            await asyncio.wait({serving, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            await loop.drain(grace)
            await serving

    async def handle(self, msg: Msg) -> None:
        """Copy one advisory; ack it only once its dead letter is stored."""
        try:
            advisory = json.loads(msg.data)
            stream = str(advisory["stream"])
            consumer = str(advisory["consumer"])
            seq = int(advisory["stream_seq"])
        except (ValueError, KeyError, TypeError, RecursionError):
            log.warning("ignoring a malformed advisory on %s", msg.subject)
            await msg.ack()
            return
        if msg.subject.startswith(ADVISORY_TERMINATED):
            reason = str(advisory.get("reason") or "terminated")
            if reason.startswith(REASON_MARK):
                await msg.ack()  # the runtime wrote this one itself
                return
            reason = f"terminated: {reason}"
            deliveries = int(advisory.get("deliveries", 0))
        elif msg.subject.startswith(ADVISORY_MAX_DELIVERIES):
            deliveries = int(advisory.get("deliveries", 0))
            reason = (
                f"max deliveries ({deliveries}) reached: the agent crashed or did not finish"
                " in time on the last attempt"
            )
        else:
            await msg.ack()
            return
        original = await self.api.get_message(stream, seq)
        if original is None:
            data = b""
            headers: dict[str, str] = {}
            subject = ""
            reason += "; the original was already removed by the stream's limits"
        else:
            data, headers, subject = original.data, original.headers, original.subject
        letter = DeadLetter(
            subject=subject,
            stream=stream,
            seq=seq,
            consumer=consumer,
            deliveries=deliveries,
            reason=reason,
            time=str(advisory.get("timestamp") or ""),
        )
        try:
            await write_dead_letter(self.publisher, self.spec, letter, data, headers)
        except FleetbusError as exc:
            log.warning("dead-letter copier: advisory %s not copied yet: %s", msg.subject, exc)
            return  # not acked: the advisory comes back after the ack wait
        await self._task_dead_lettered(letter, data, headers)
        await msg.ack()

    async def _task_dead_lettered(
        self, letter: DeadLetter, data: bytes, headers: Mapping[str, str]
    ) -> None:
        """A dead task gets its ``dead_lettered`` outcome (unless it has one), so
        ``result()`` raises TaskError."""
        parsed = self.spec.subjects.parse_agent(letter.subject)
        if parsed is None or parsed[1] != "tasks":
            return
        role = parsed[0]
        try:
            body = decode(data)
        except PayloadError:
            body = {}
        task_id = task_id_of(headers, body, role, letter.seq)
        try:
            validate_id(task_id)
        except FleetbusError:
            return
        ref = TaskRef(task_id, self.spec.subjects.sender_of(letter.subject) or ADMIN, role)
        update = TaskUpdate(
            task_id=task_id,
            state="dead_lettered",
            agent=role,
            assigner=ref.assigner,
            attempt=letter.deliveries,
            time=TaskUpdate.now(),
            error=letter.reason,
            reason=letter.reason,
        )
        try:
            await self.records.outcome(ref, update)
        except FleetbusError as exc:  # the dead letter is stored: that is what counts
            log.warning("task %s: its dead_lettered outcome was not stored: %s", task_id, exc)
