"""NATS header names that carry fleetbus metadata. Bodies stay the user's JSON, as-is.

A message with none of these (a plain ``nats pub``) is valid: the task id then comes from
the body's ``task_id`` and the sender is unknown.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from fleetbus.errors import PayloadError

__all__ = [
    "ASK_ID",
    "ATTEMPT",
    "DEADLINE",
    "DEAD_LETTER_ROOM",
    "DLQ_CONSUMER",
    "DLQ_DELIVERIES",
    "DLQ_ERROR",
    "DLQ_HEADERS",
    "DLQ_REASON",
    "DLQ_SEQUENCE",
    "DLQ_STREAM",
    "DLQ_SUBJECT",
    "DLQ_TIME",
    "DLQ_TRACEBACK",
    "ERROR",
    "MSG_ID",
    "NAME",
    "REPLY_TO",
    "SENDER",
    "STATUS",
    "STORED_SUBJECT",
    "TASK_ID",
    "TIMEOUT",
    "TRACEPARENT",
    "carried",
    "checked",
    "parse_block",
]

MSG_ID = "Nats-Msg-Id"  # the server's dedupe key
STORED_SUBJECT = "Nats-Subject"  # the server's: where a republished or read record is stored
TASK_ID = "Fleet-Task-Id"
SENDER = "Fleet-Sender"
ATTEMPT = "Fleet-Attempt"
REPLY_TO = "Fleet-Reply-To"
TRACEPARENT = "traceparent"
ASK_ID = "Fleet-Ask-Id"
STATUS = "Fleet-Status"  # on answers: "ok" or "error"
ERROR = "Fleet-Error"  # on error answers: the handler's error text
DEADLINE = "Fleet-Deadline"
"""Unix time: a durable ask nobody waits for any more, a task not to run (or to stop) after."""
TIMEOUT = "Fleet-Timeout"
"""Seconds a fast ask's asker waits from sending it: relative, so the agent's own clock counts
it from receipt (core NATS delivers at once) and two hosts' clocks need not agree."""

# Dead letters carry where the message came from and why it died.
DLQ_SUBJECT = "Fleet-Dlq-Subject"
DLQ_STREAM = "Fleet-Dlq-Stream"
DLQ_SEQUENCE = "Fleet-Dlq-Sequence"
DLQ_CONSUMER = "Fleet-Dlq-Consumer"
DLQ_DELIVERIES = "Fleet-Dlq-Deliveries"
DLQ_REASON = "Fleet-Dlq-Reason"
DLQ_ERROR = "Fleet-Dlq-Error"
DLQ_TIME = "Fleet-Dlq-Time"
DLQ_TRACEBACK = "Fleet-Dlq-Traceback"  # the handler's traceback, JSON-escaped onto one line

DLQ_HEADERS = (
    DLQ_SUBJECT,
    DLQ_STREAM,
    DLQ_SEQUENCE,
    DLQ_CONSUMER,
    DLQ_DELIVERIES,
    DLQ_REASON,
    DLQ_ERROR,
    DLQ_TIME,
    DLQ_TRACEBACK,
)
"""Every header a dead letter adds to the original's."""

DEAD_LETTER_ROOM = 16 * 1024
"""Bytes of header block a dead letter may add to its original message (each value it adds
is cut to fit). A message and its headers may be at most the server's ``max_payload`` in
all, and one over it makes the server close the connection that sent it; so every stream
fleetbus provisions, but the dead-letter stream, keeps this much of ``max_payload`` free in
each message it stores (its ``max_msg_size``): whatever a sender got stored can be
dead-lettered whole."""


NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
"""A header name as nats-py writes one (an HTTP token; it raises ``BadHeaderError`` on any
other)."""


def checked(headers: Mapping[str, str] | None) -> dict[str, str]:
    """A sender's own headers as they can go on the wire, or ``PayloadError`` naming the
    first one that cannot (checked before anything is sent: nats-py would raise its own
    error for some, and write others into the header block as they are)."""
    out: dict[str, str] = {}
    for name, value in (headers or {}).items():
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise PayloadError(f"header name {name!r}: letters, digits and !#$%&'*+-.^_`|~ only")
        if not isinstance(value, str) or "\r" in value or "\n" in value:
            shown = type(value).__name__ if not isinstance(value, str) else "text on two lines"
            raise PayloadError(f"header {name}: its value must be text on one line, not {shown}")
        out[name] = value
    return out


def carried(headers: Mapping[str, str] | None) -> dict[str, str]:
    """The headers a copy of a message carries (a dead letter, a replay): all but the
    server's, ``Nats-*``. Those are directives to the stream that stored the original
    (``Nats-Expected-Stream``, ``Nats-Expected-Last-Sequence``, ``Nats-Msg-Id``, ``Nats-TTL``,
    ``Nats-Rollup``...), which would refuse or steer the copy: a sender's
    ``Nats-Expected-Stream: AGENT_COMMS`` made its message's dead letter unstorable, and the
    message, never terminated, held its role's task queue for good. Or they are what the
    server says of a stored message (``Nats-Stream``, ``Nats-Sequence``), which the copy's own
    headers say better."""
    return {k: v for k, v in (headers or {}).items() if not k.lower().startswith("nats-")}


def parse_block(raw: bytes) -> dict[str, str]:
    """Headers from a ``NATS/1.0`` block, as the JetStream API returns a stored message's
    (``STREAM.MSG.GET``): one ``Key: value`` per line after the status line."""
    out: dict[str, str] = {}
    for line in raw.decode("utf-8", "replace").split("\r\n")[1:]:
        if ":" in line:
            key, _, value = line.partition(":")
            out[key.strip()] = value.strip()
    return out
