"""Dead-letter tools: list, show, replay and purge what landed in the dead-letter stream.

A dead letter's id is its sequence in the dead-letter stream. Replay republishes the
original body and headers to the original subject with a fresh message id, so the message
starts again at attempt 1, then removes the dead letter.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from fleetbus.deadletters.record import DeadLetterEntry
from fleetbus.errors import FleetbusError
from fleetbus.fleet import FleetSpec
from fleetbus.js.api import JsApi
from fleetbus.js.connection import Connection
from fleetbus.js.publish import PubAck, Publisher
from fleetbus.js.reader import StreamReader
from fleetbus.wire import headers as h

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

    async def replay(self, dead_letter_id: int) -> PubAck:
        """Republish to the original subject (fresh attempts), then delete the dead letter."""
        entry = await self.get(dead_letter_id)
        if not entry.original_subject:
            raise FleetbusError(
                f"dead letter {dead_letter_id} has no original subject (its original was"
                " removed by limits before it was copied): nothing to replay"
            )
        headers = {k: v for k, v in entry.headers.items() if k != h.MSG_ID}
        ack = await Publisher(self.conn).publish(
            entry.original_subject,
            entry.body,
            headers,
            msg_id=f"replay-{entry.stream}-{entry.seq}-{dead_letter_id}",
        )
        await self.api.delete_message(self.stream, dead_letter_id)
        return ack

    async def purge(self) -> int:
        """Delete every dead letter; return how many were removed."""
        return await self.api.purge(self.stream, filter_subject=self.filter)
