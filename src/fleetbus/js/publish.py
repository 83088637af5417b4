"""Persisted publishes that survive leader elections and reconnects.

nats-py's ``js.publish`` makes one attempt. During a leader election or a reconnect the
server answers 503 or nothing at all; fleetbus retries with the *same* ``Nats-Msg-Id`` until
a deadline, so the stream stores the message once however many attempts it took.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Mapping

from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError

from fleetbus.errors import FleetbusError, JetStreamError, PayloadError, PermissionDenied
from fleetbus.js.acks import PubAck
from fleetbus.js.backoff import Backoff
from fleetbus.js.connection import Connection
from fleetbus.telemetry import METRICS, tracing
from fleetbus.wire import headers as h
from fleetbus.wire.subjects import check_length

__all__ = ["EXPECTED_LAST_SUBJECT_SEQUENCE", "RETRYABLE", "PubAck", "Publisher"]

EXPECTED_LAST_SUBJECT_SEQUENCE = "Nats-Expected-Last-Subject-Sequence"
"""With "0": store only if the subject holds no message yet (the first write wins; a later one
gets error 10071). What makes an outcome or a dead letter unique, where a ``Nats-Msg-Id``
would not do: any writer of the stream may reuse a message id, not anyone's subject."""

RETRYABLE = (NoRespondersError, NatsTimeoutError, asyncio.TimeoutError)
"""What a request ends with when nobody answered in time: worth another attempt."""


class Publisher:
    """Publishes into streams with retries; every message gets a ``Nats-Msg-Id``."""

    def __init__(
        self,
        conn: Connection,
        *,
        sender: str | None = None,
        attempt_timeout: float = 2.0,
        deadline: float = 30.0,
    ) -> None:
        self.conn = conn
        self.sender = sender
        self.attempt_timeout = attempt_timeout
        self.deadline = deadline

    async def publish(
        self,
        subject: str,
        data: bytes,
        headers: Mapping[str, str] | None = None,
        *,
        msg_id: str | None = None,
        deadline: float | None = None,
        as_sender: bool = True,
    ) -> PubAck:
        """Publish and wait for the stream's ack. ``as_sender=False`` keeps the headers'
        sender as given (a dead letter or a replay speaks for the original sender)."""
        check_length(subject)
        hdrs = dict(headers or {})
        hdrs[h.MSG_ID] = msg_id or hdrs.get(h.MSG_ID) or os.urandom(16).hex()  # uuid4's bytes
        if as_sender and self.sender and h.SENDER not in hdrs:
            hdrs[h.SENDER] = self.sender
        max_payload = self.conn.max_payload
        if max_payload and len(data) > max_payload:
            raise PayloadError(
                f"body is {len(data)} bytes, over the server's max_payload of {max_payload} bytes"
            )
        tracing.inject(hdrs)  # the sender's span, to whoever handles it
        backoff = Backoff(0.05, 1.0, deadline=self.deadline if deadline is None else deadline)
        began = time.perf_counter()
        while True:
            try:
                reply = await self.conn.nc.request(
                    subject, data, timeout=self.attempt_timeout, headers=hdrs
                )
            except RETRYABLE as exc:
                if self.conn.refused(subject):
                    raise PermissionDenied(
                        f"this identity may not publish to {subject}"
                        " (the server refused it: `fleetbus docs security`)"
                    ) from None
                if not await backoff.wait():
                    raise FleetbusError(
                        f"publish to {subject} not confirmed by the server: "
                        f"{type(exc).__name__} until the deadline"
                    ) from None
                continue
            ack = json.loads(reply.data) if reply.data else {}
            error = JetStreamError.from_reply(subject, ack)
            if error is not None:
                if error.transient and await backoff.wait():
                    continue  # no leader yet: same id, try again
                raise error
            if "stream" not in ack:
                raise FleetbusError(
                    f"{subject} is not captured by any stream: the reply was not a PubAck"
                )
            METRICS.published(time.perf_counter() - began)
            return PubAck(ack["stream"], int(ack["seq"]), bool(ack.get("duplicate", False)))
