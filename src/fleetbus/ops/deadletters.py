"""Dead-letter tools: list, show, replay and purge what landed in the dead-letter stream.

A dead letter's id is its sequence in the dead-letter stream. Replay republishes the
original body and headers to the original subject with a fresh message id, so the message
starts again at attempt 1, then removes the dead letter.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nats.aio.client import Client
from nats.js.api import DeliverPolicy

from fleetbus.errors import FleetbusError
from fleetbus.fleet.model import FleetSpec
from fleetbus.jsapi import JsApi
from fleetbus.publisher import PubAck, Publisher
from fleetbus.runtime.deadletter import parse_headers
from fleetbus.wire import headers as h

__all__ = ["DeadLetterEntry", "DeadLetters"]


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetterEntry:
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

    @classmethod
    def from_message(cls, dlq_seq: int, data: bytes, hdrs: Mapping[str, str]) -> DeadLetterEntry:
        return cls(
            id=dlq_seq,
            original_subject=hdrs.get(h.DLQ_SUBJECT, ""),
            stream=hdrs.get(h.DLQ_STREAM, ""),
            seq=int(hdrs.get(h.DLQ_SEQUENCE, "0") or 0),
            consumer=hdrs.get(h.DLQ_CONSUMER, ""),
            deliveries=int(hdrs.get(h.DLQ_DELIVERIES, "0") or 0),
            reason=hdrs.get(h.DLQ_REASON, ""),
            error=hdrs.get(h.DLQ_ERROR, ""),
            time=hdrs.get(h.DLQ_TIME, ""),
            body=data,
            headers={k: v for k, v in hdrs.items() if k not in h.DLQ_HEADERS},
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
        }


class DeadLetters:
    """The dead-letter stream of one fleet."""

    def __init__(self, nc: Client, spec: FleetSpec) -> None:
        stream = spec.dead_letter_stream
        if stream is None:
            raise FleetbusError("the fleet has no dead-letter stream (a stream with dead_letters)")
        self.nc = nc
        self.spec = spec
        self.stream = stream
        self.api = JsApi(nc)
        self.filter = f"{spec.prefix}.dlq.>"

    async def count(self) -> int:
        info = await self.api.request(
            f"STREAM.INFO.{self.stream}", {"subjects_filter": self.filter}
        )
        subjects: Mapping[str, int] = info.get("state", {}).get("subjects") or {}
        return sum(subjects.values())

    async def list(self, *, limit: int = 1000) -> list[DeadLetterEntry]:
        """The stored dead letters, oldest first (at most ``limit``)."""
        if await self.count() == 0:
            return []
        js = self.nc.jetstream()
        sub = await js.subscribe(
            self.filter,
            stream=self.stream,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.ALL,
        )
        out: list[DeadLetterEntry] = []
        try:
            async with asyncio.timeout(10):
                async for msg in sub.messages:
                    meta = msg.metadata
                    out.append(
                        DeadLetterEntry.from_message(
                            meta.sequence.stream, msg.data, dict(msg.headers or {})
                        )
                    )
                    if meta.num_pending == 0 or len(out) >= limit:
                        break
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        return out

    async def get(self, dead_letter_id: int) -> DeadLetterEntry:
        message = await self.api.get_message(self.stream, dead_letter_id)
        if message is None or not str(message.get("subject", "")).startswith(self.filter[:-1]):
            raise FleetbusError(f"no dead letter {dead_letter_id} in {self.stream}")
        data = base64.b64decode(message.get("data") or b"")
        return DeadLetterEntry.from_message(dead_letter_id, data, parse_headers(message))

    async def replay(self, dead_letter_id: int) -> PubAck:
        """Republish to the original subject (fresh attempts), then delete the dead letter."""
        entry = await self.get(dead_letter_id)
        if not entry.original_subject:
            raise FleetbusError(
                f"dead letter {dead_letter_id} has no original subject (its original was"
                " removed by limits before it was copied): nothing to replay"
            )
        headers = {k: v for k, v in entry.headers.items() if k != h.MSG_ID}
        ack = await Publisher(self.nc).publish(
            entry.original_subject,
            entry.body,
            headers,
            msg_id=f"replay-{entry.stream}-{entry.seq}-{dead_letter_id}",
        )
        await self.api.request(f"STREAM.MSG.DELETE.{self.stream}", {"seq": dead_letter_id})
        return ack

    async def purge(self) -> int:
        """Delete every dead letter; return how many were removed."""
        reply = await self.api.request(f"STREAM.PURGE.{self.stream}", {"filter": self.filter})
        return int(reply.get("purged", 0))
