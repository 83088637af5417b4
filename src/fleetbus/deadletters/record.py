"""What a dead letter is on the wire: the original message (body and headers, as it was
stored) plus ``Fleet-Dlq-*`` headers saying where it came from and why it died, stored on
``P.dlq.{stream}.{consumer}.{seq}`` with ``Nats-Expected-Last-Subject-Sequence: 0``: however
many writers race (two copiers, a runtime and a copier), one original is dead-lettered once,
and no other writer can pre-empt it (only the consumer's role and the admin may write that
subject, while a message id is anyone's to reuse in the stream)."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fleetbus.errors import JetStreamError, JsErrorCode
from fleetbus.fleet import FleetSpec
from fleetbus.js.acks import PubAck
from fleetbus.js.publish import EXPECTED_LAST_SUBJECT_SEQUENCE, Publisher
from fleetbus.wire import headers as h
from fleetbus.wire.clock import now_iso

__all__ = ["REASON_MARK", "DeadLetter", "DeadLetterEntry", "write_dead_letter"]

log = logging.getLogger("fleetbus.deadletter")

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
    traceback: str = ""

    def headers(self, original: Mapping[str, str] | None) -> dict[str, str]:
        """The dead letter's headers: the original's (but the server's, ``h.carried``) and
        the facts, within ``h.DEAD_LETTER_ROOM`` bytes however long a reason, error or
        traceback (a handler's ``Reject`` reason is anyone's text)."""
        hdrs = h.carried(original)
        hdrs.update(
            {
                h.DLQ_SUBJECT: self.subject,
                h.DLQ_STREAM: self.stream,
                h.DLQ_SEQUENCE: str(self.seq),
                h.DLQ_CONSUMER: self.consumer,
                h.DLQ_DELIVERIES: str(self.deliveries),
                h.DLQ_REASON: _cut(_one_line(self.reason), _REASON_BYTES),
                h.DLQ_ERROR: _cut(_one_line(self.error), _ERROR_BYTES),
                h.DLQ_TIME: self.time or now_iso(),
            }
        )
        if self.traceback:
            hdrs[h.DLQ_TRACEBACK] = _escaped_end(self.traceback, _TRACEBACK_BYTES)
        return hdrs


async def write_dead_letter(
    publisher: Publisher,
    spec: FleetSpec,
    letter: DeadLetter,
    data: bytes,
    headers: Mapping[str, str] | None,
) -> PubAck | None:
    """Store ``data`` with its original headers and the facts of ``letter``; once per
    original (a dead letter already stored for it counts as stored: None is returned)."""
    if spec.dead_letter_stream is None:
        log.error(
            "no dead-letter stream in the fleet: %s seq %d (%s) is dropped",
            letter.stream,
            letter.seq,
            letter.reason,
        )
        return None
    subject = spec.subjects.dead_letter(letter.stream, letter.consumer, letter.seq)
    hdrs = letter.headers(headers)
    hdrs[EXPECTED_LAST_SUBJECT_SEQUENCE] = "0"
    try:
        return await publisher.publish(subject, data, hdrs, as_sender=False)
    except JetStreamError as exc:
        if exc.err_code == JsErrorCode.WRONG_LAST_SEQUENCE:
            return None  # already dead-lettered (by a racing copier, or before a crash)
        raise


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetterEntry:
    """A stored dead letter, as ``fleetbus dlq`` shows it. ``id`` is its sequence in the
    dead-letter stream."""

    id: int
    original_subject: str
    stream: str
    seq: int
    consumer: str
    deliveries: int
    reason: str
    error: str
    time: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    """The original message's headers (without the dead-letter ones)."""
    traceback: str = ""
    """The handler's traceback (its end), when a handler raised."""

    @classmethod
    def from_message(cls, dlq_seq: int, data: bytes, hdrs: Mapping[str, str]) -> DeadLetterEntry:
        return cls(
            id=dlq_seq,
            original_subject=hdrs.get(h.DLQ_SUBJECT, ""),
            stream=hdrs.get(h.DLQ_STREAM, ""),
            seq=_int(hdrs.get(h.DLQ_SEQUENCE)),
            consumer=hdrs.get(h.DLQ_CONSUMER, ""),
            deliveries=_int(hdrs.get(h.DLQ_DELIVERIES)),
            reason=hdrs.get(h.DLQ_REASON, ""),
            error=hdrs.get(h.DLQ_ERROR, ""),
            time=hdrs.get(h.DLQ_TIME, ""),
            body=data,
            headers={k: v for k, v in hdrs.items() if k not in h.DLQ_HEADERS},
            traceback=_unescape(hdrs.get(h.DLQ_TRACEBACK, "")),
        )

    def to_json(self) -> dict[str, Any]:
        try:
            body: Any = self.body.decode()
        except UnicodeDecodeError:
            body = base64.b64encode(self.body).decode()
        return {
            "id": self.id,
            "original_subject": self.original_subject,
            "stream": self.stream,
            "seq": self.seq,
            "consumer": self.consumer,
            "deliveries": self.deliveries,
            "reason": self.reason,
            "error": self.error,
            "time": self.time,
            "body": body,
            "headers": dict(self.headers),
            "traceback": self.traceback,
        }


def _unescape(value: str) -> str:
    try:
        text = json.loads(f'"{value}"')
    except ValueError:
        return value
    return text if isinstance(text, str) else value


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def _one_line(text: str) -> str:
    return " ".join(text.split())


_REASON_BYTES = 1000
_ERROR_BYTES = 4000
_TRACEBACK_BYTES = 6000
"""With a subject (at most 2,048), stream and consumer names (256 each), the other headers
and their names: within ``h.DEAD_LETTER_ROOM``."""


def _cut(text: str, limit: int) -> str:
    """``text``, or as much of its start as fits in ``limit`` bytes of UTF-8 and an ellipsis
    (what cannot be UTF-8, a lone surrogate from a file name say, as ``?``)."""
    raw = text.encode(errors="replace")
    if len(raw) <= limit:
        return raw.decode()
    return raw[: limit - 3].decode(errors="ignore") + "..."


def _escaped_end(text: str, limit: int) -> str:
    """``text`` JSON-escaped onto one line (ASCII), or its last lines that fit in ``limit``
    bytes (a traceback's end says where it failed)."""
    escaped = json.dumps(text)[1:-1]
    if len(escaped) <= limit:
        return escaped
    kept: list[str] = []
    size = len("...")
    for line in reversed(text.split("\n")):
        line_escaped = json.dumps(line)[1:-1]
        size += len(line_escaped) + len("\\n")
        if size > limit:
            break
        kept.append(line_escaped)
    return "\\n".join(["...", *reversed(kept)])
