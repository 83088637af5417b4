"""Persisted publishes that survive leader elections and reconnects.

nats-py's ``js.publish`` makes one attempt. During a leader election or a reconnect the
server answers 503 or nothing at all; fleetbus retries with the *same* ``Nats-Msg-Id`` until
a deadline, so the stream stores the message once however many attempts it took.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError

from fleetbus.connection import denied
from fleetbus.errors import FleetbusError, JetStreamError, PayloadError, PermissionDenied
from fleetbus.wire import headers as h

__all__ = ["PubAck", "Publisher"]

_RETRYABLE = (NoRespondersError, NatsTimeoutError, asyncio.TimeoutError)


@dataclass(frozen=True, slots=True)
class PubAck:
    stream: str
    seq: int
    duplicate: bool


class Publisher:
    """Publishes into streams with retries; every message gets a ``Nats-Msg-Id``."""

    def __init__(
        self,
        nc: Client,
        *,
        sender: str | None = None,
        attempt_timeout: float = 2.0,
        deadline: float = 30.0,
    ) -> None:
        self.nc = nc
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
        hdrs = dict(headers or {})
        hdrs[h.MSG_ID] = msg_id or hdrs.get(h.MSG_ID) or uuid.uuid4().hex
        if as_sender and self.sender and h.SENDER not in hdrs:
            hdrs[h.SENDER] = self.sender
        max_payload = self.nc.max_payload
        if max_payload and len(data) > max_payload:
            raise PayloadError(
                f"body is {len(data)} bytes, over the server's max_payload of {max_payload} bytes"
            )
        loop = asyncio.get_running_loop()
        give_up = loop.time() + (self.deadline if deadline is None else deadline)
        wait = 0.05
        while True:
            try:
                reply = await self.nc.request(
                    subject, data, timeout=self.attempt_timeout, headers=hdrs
                )
            except _RETRYABLE as exc:
                if denied(self.nc, subject):
                    raise PermissionDenied(
                        f"this identity may not publish to {subject}"
                        " (the server refused it: see docs/security.md)"
                    ) from None
                if loop.time() + wait >= give_up:
                    raise FleetbusError(
                        f"publish to {subject} not confirmed by the server: "
                        f"{type(exc).__name__} until the deadline"
                    ) from None
                await asyncio.sleep(wait)
                wait = min(wait * 2, 1.0)
                continue
            ack = json.loads(reply.data) if reply.data else {}
            error = ack.get("error")
            if error:
                err = JetStreamError(
                    subject,
                    int(error.get("code", 0)),
                    int(error.get("err_code", 0)),
                    str(error.get("description", "")),
                )
                if err.code == 503 and err.err_code != 10077 and loop.time() + wait < give_up:
                    await asyncio.sleep(wait)  # no leader yet: same id, try again
                    wait = min(wait * 2, 1.0)
                    continue
                raise err
            if "stream" not in ack:
                raise FleetbusError(
                    f"{subject} is not captured by any stream: the reply was not a PubAck"
                )
            return PubAck(ack["stream"], int(ack["seq"]), bool(ack.get("duplicate", False)))
