"""Read a stream without consuming it: a short-lived push consumer with one narrow filter.

nats-py's ordered consumer creates its ephemeral consumer on ``$JS.API.CONSUMER.CREATE.<stream>``,
whose payload may name any filter: granting that subject would let a role read every inbox
in the stream. fleetbus creates the consumer on the filtered form
``$JS.API.CONSUMER.CREATE.<stream>.<name>.<filter>`` (server 2.10+), where the server refuses a
config whose filter differs from the subject's (10131) or has several filters (10137), so a
permission on that subject is a permission to read exactly that filter. The consumer is
acknowledgement-free, in memory, delivers to ``READER_DELIVERY.{its name}`` and is removed by the
server a few seconds after the reader leaves (``inactive_threshold``): readers never need
the right to delete consumers.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Any, Literal

from nats.aio.msg import Msg

from fleetbus.js.api import JsApi
from fleetbus.js.connection import Connection, unsubscribe
from fleetbus.wire.subjects import READER_DELIVERY

__all__ = ["INACTIVE_THRESHOLD", "Deliver", "StreamReader", "read_stream"]

Deliver = Literal["all", "new", "last_per_subject"]

INACTIVE_THRESHOLD = 5.0
"""Seconds after the reader unsubscribes before the server removes its consumer."""


class StreamReader:
    """``async with StreamReader(...) as reader``: on entry the consumer exists (so nothing
    published afterwards is missed); iterate for the messages (or have them passed to
    ``on_message``); on exit it is released."""

    def __init__(
        self,
        conn: Connection,
        stream: str,
        filter_subject: str,
        *,
        deliver: Deliver = "all",
        since: str | None = None,
        on_message: Callable[[Msg], Awaitable[None]] | None = None,
    ) -> None:
        """``deliver``: from the first message, new ones only, or the last of each subject;
        ``since`` (an RFC 3339 time) instead: every message stored from then on."""
        self.conn = conn
        self.stream = stream
        self.filter_subject = filter_subject
        self.deliver = deliver
        self.since = since
        self.pending = 0
        """How many stored messages the reader starts with (known once entered)."""
        self._on_message = on_message
        self._sub: Any = None

    async def __aenter__(self) -> StreamReader:
        name = f"R{uuid.uuid4().hex[:16]}"
        inbox = f"{READER_DELIVERY}.{name}"
        deliver = self._deliver if self._on_message is not None else None
        self._sub = await self.conn.nc.subscribe(inbox, cb=deliver)
        config = {
            "name": name,
            "filter_subject": self.filter_subject,
            "deliver_policy": "by_start_time" if self.since else self.deliver,
            "ack_policy": "none",
            "replay_policy": "instant",
            "deliver_subject": inbox,
            "inactive_threshold": int(INACTIVE_THRESHOLD * 1e9),
            "mem_storage": True,
            "num_replicas": 1,
        }
        if self.since:
            config["opt_start_time"] = self.since
        try:
            created = await JsApi(self.conn).request(
                f"CONSUMER.CREATE.{self.stream}.{name}.{self.filter_subject}",
                {"stream_name": self.stream, "config": config, "action": "create"},
            )
        except BaseException:
            await self.close()
            raise
        self.pending = int(created.get("num_pending", 0))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        sub, self._sub = self._sub, None
        await unsubscribe(sub)

    async def __aiter__(self) -> AsyncIterator[Msg]:
        if self._sub is None or self._on_message is not None:
            raise RuntimeError("use `async with StreamReader(...)` (with no on_message) to iterate")
        async for msg in self._sub.messages:
            if _stored(msg):
                yield msg

    async def _deliver(self, msg: Msg) -> None:
        if self._on_message is not None and _stored(msg):
            await self._on_message(msg)


def _stored(msg: Msg) -> bool:
    """A stored message (not one of the server's status messages to the reader)."""
    return bool(msg.reply and msg.reply.startswith("$JS.ACK."))


async def read_stream(
    conn: Connection,
    stream: str,
    filter_subject: str,
    *,
    deliver: Deliver = "all",
) -> AsyncIterator[Msg]:
    """Every message of ``stream`` on ``filter_subject`` (from the first, or new ones only)."""
    async with StreamReader(conn, stream, filter_subject, deliver=deliver) as reader:
        async for msg in reader:
            yield msg
