"""Dead letters: NATS has no dead-letter queue, so fleetbus builds one.

Two paths lead into the dead-letter stream (``AGENT_DLQ``, subjects ``P.dlq.{stream}.{consumer}``):

1. The runtime holds the message when it gives up (a ``Reject``, a bad payload, the last
   attempt failed): it writes the dead letter itself, with the error text, then terminates
   the message with a reason that starts with ``fleetbus:``.
2. Nobody holds it: an agent crashed or hung on the last attempt. The server then publishes a
   MAX_DELIVERIES advisory, which the dead-letter stream captures (so none is lost while no
   agent runs). A copier — in every agent process and in ``fleetbus up`` — consumes those
   advisories through one shared durable consumer, fetches the original by stream sequence
   and writes the dead letter. Terminations by other clients are copied the same way.

Each dead letter's ``Nats-Msg-Id`` is ``dlq-{stream}-{seq}``: however many copiers race, the
original sequence is stored once within the duplicate window.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeoutError

from fleetbus.connection import denied
from fleetbus.errors import FleetbusError, PayloadError
from fleetbus.fleet.model import DEAD_LETTER_COPIER, FleetSpec
from fleetbus.jsapi import JsApi
from fleetbus.publisher import PubAck, Publisher
from fleetbus.wire import headers as h
from fleetbus.wire.codec import decode
from fleetbus.wire.subjects import ADVISORY_MAX_DELIVERIES, ADVISORY_TERMINATED, validate_token
from fleetbus.wire.updates import TaskUpdate, task_id_of, update_msg_id

__all__ = [
    "COPIER_CONSUMER",
    "REASON_MARK",
    "AdvisoryCopier",
    "DeadLetter",
    "parse_headers",
    "publish_update",
    "write_dead_letter",
]

log = logging.getLogger("fleetbus.deadletter")

COPIER_CONSUMER = DEAD_LETTER_COPIER
_FETCH_QUIET = (NatsTimeoutError, asyncio.TimeoutError)
REASON_MARK = "fleetbus:"
"""Terminations the runtime made start with this: it already wrote their dead letter."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetter:
    """Where a dead message came from and why it died."""

    subject: str
    stream: str
    seq: int
    consumer: str
    deliveries: int
    reason: str
    error: str = ""
    time: str = ""


async def write_dead_letter(
    publisher: Publisher,
    spec: FleetSpec,
    letter: DeadLetter,
    data: bytes,
    headers: Mapping[str, str] | None,
) -> PubAck | None:
    """Store ``data`` with its original headers and the facts of ``letter``; once per seq."""
    dlq = spec.dead_letter_stream
    if dlq is None:
        log.error(
            "no dead-letter stream in the fleet: %s seq %d (%s) is dropped",
            letter.stream,
            letter.seq,
            letter.reason,
        )
        return None
    hdrs = {k: v for k, v in (headers or {}).items() if k != h.MSG_ID}
    hdrs.update(
        {
            h.DLQ_SUBJECT: letter.subject,
            h.DLQ_STREAM: letter.stream,
            h.DLQ_SEQUENCE: str(letter.seq),
            h.DLQ_CONSUMER: letter.consumer,
            h.DLQ_DELIVERIES: str(letter.deliveries),
            h.DLQ_REASON: _one_line(letter.reason),
            h.DLQ_ERROR: _one_line(letter.error)[:2000],
            h.DLQ_TIME: letter.time or _now(),
        }
    )
    subject = spec.subjects.dead_letter(letter.stream, letter.consumer)
    return await publisher.publish(
        subject, data, hdrs, msg_id=f"dlq-{letter.stream}-{letter.seq}", as_sender=False
    )


async def publish_update(
    publisher: Publisher, spec: FleetSpec, update: TaskUpdate, *, msg_id: str | None
) -> None:
    """Store a task update; a failure is logged, never raised (it must not fail the task)."""
    try:
        await publisher.publish(
            spec.subjects.task_updates(update.task_id),
            update.encode(),
            {h.TASK_ID: update.task_id},
            msg_id=msg_id,
        )
    except FleetbusError as exc:
        log.warning("task %s: %s update not stored: %s", update.task_id, update.state, exc)


def parse_headers(message: Mapping[str, Any]) -> dict[str, str]:
    """Headers of a message fetched with STREAM.MSG.GET (base64 ``NATS/1.0`` block)."""
    raw = message.get("hdrs")
    if not raw:
        return {}
    text = base64.b64decode(raw).decode("utf-8", "replace")
    out: dict[str, str] = {}
    for line in text.split("\r\n")[1:]:
        if ":" in line:
            key, _, value = line.partition(":")
            out[key.strip()] = value.strip()
    return out


class AdvisoryCopier:
    """Turns captured advisories into dead letters. Safe to run in many processes at once."""

    def __init__(self, nc: Client, spec: FleetSpec, publisher: Publisher) -> None:
        self.nc = nc
        self.spec = spec
        self.publisher = publisher
        self.api = JsApi(nc)

    async def run(self, stopping: asyncio.Event, *, poll: float = 5.0) -> None:
        """Copy advisories until ``stopping`` is set (which also ends a long poll at once).

        The copier is an extra in every agent: a failure here (the copier consumer missing,
        a server hiccup, a dead letter that cannot be stored) is logged and retried, never
        raised, so it cannot take the agent's consume loops down with it.
        """
        dlq = self.spec.dead_letter_stream
        if dlq is None:
            return
        js = self.nc.jetstream()
        sub = await js.pull_subscribe_bind(COPIER_CONSUMER, dlq)
        stop = asyncio.ensure_future(stopping.wait())
        fetch: asyncio.Future[list[Msg]] | None = None
        failures = 0
        try:
            while not stopping.is_set():
                fetch = asyncio.ensure_future(sub.fetch(32, timeout=poll))
                await asyncio.wait({fetch, stop}, return_when=asyncio.FIRST_COMPLETED)
                if not fetch.done():
                    break
                try:
                    msgs = fetch.result()
                except _FETCH_QUIET:
                    if denied(self.nc, f"$JS.API.CONSUMER.MSG.NEXT.{dlq}.{COPIER_CONSUMER}"):
                        log.info("dead-letter copier: this identity may not run it; stopped")
                        return
                    failures = 0
                    continue
                except (NatsError, OSError) as exc:
                    failures += 1
                    delay = min(0.5 * 2**failures, 30.0)
                    log.warning(
                        "dead-letter copier: fetch from %s %s failed (%s); retrying in %.1fs",
                        dlq,
                        COPIER_CONSUMER,
                        type(exc).__name__ if not str(exc) else exc,
                        delay,
                    )
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(delay):
                            await stopping.wait()
                    continue
                failures = 0
                for msg in msgs:
                    try:
                        await self.handle(msg)
                    except Exception as exc:  # not acked: the advisory comes back later
                        log.warning(
                            "dead-letter copier: advisory %s not copied yet: %s", msg.subject, exc
                        )
        finally:
            for future in (fetch, stop):
                if future is not None and not future.done():
                    future.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await future
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def handle(self, msg: Msg) -> None:
        """Copy one advisory; ack it only once its dead letter is stored."""
        try:
            advisory = json.loads(msg.data)
            stream = str(advisory["stream"])
            consumer = str(advisory["consumer"])
            seq = int(advisory["stream_seq"])
        except (ValueError, KeyError, TypeError):
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
            data = base64.b64decode(original.get("data") or b"")
            headers = parse_headers(original)
            subject = str(original.get("subject", ""))
        letter = DeadLetter(
            subject=subject,
            stream=stream,
            seq=seq,
            consumer=consumer,
            deliveries=deliveries,
            reason=reason,
            time=str(advisory.get("timestamp") or _now()),
        )
        await write_dead_letter(self.publisher, self.spec, letter, data, headers)
        await self._task_dead_lettered(letter, data, headers)
        await msg.ack()

    async def _task_dead_lettered(
        self, letter: DeadLetter, data: bytes, headers: Mapping[str, str]
    ) -> None:
        """A dead task gets its ``dead_lettered`` update, so ``result()`` raises TaskError."""
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
            validate_token(task_id, "task id")
        except FleetbusError:
            return
        update = TaskUpdate(
            task_id=task_id,
            state="dead_lettered",
            agent=role,
            attempt=letter.deliveries,
            time=TaskUpdate.now(),
            error=letter.reason,
            reason=letter.reason,
        )
        await publish_update(
            self.publisher,
            self.spec,
            update,
            msg_id=update_msg_id(task_id, "dead_lettered", letter.deliveries),
        )


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
