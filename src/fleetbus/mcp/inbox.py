"""A role's inbox read on behalf of an MCP host: at least once, acknowledged late.

A batch that ``read`` returns is **held**, not acknowledged: the host may never see it (its
process dies, the transport drops the response, the call is cancelled). Calling ``read``
again is the host's proof that the previous batch arrived, so that is when it is
acknowledged, and only then is the next batch fetched. Until then:

- the held messages' leases are renewed (``+WPI`` every ``ack_wait / 3``), so the server does
  not give them to anyone else while the host thinks about them;
- after ``hold`` seconds with no new ``read``, or when the server stops, they are given back
  (``nak``): the next ``read`` — of this server, a restarted one, or an agent of the role
  sharing the consumer — receives them again, with the attempt counted;
- if the process dies without a word, the leases lapse after ``ack_wait`` and the NATS server
  redelivers them by itself.

A message is never lost between the stream and the host; it can be seen twice (after a
restart, say): the attempt number tells.

The consumer is the role's durable ``ROLE_INBOX``, bound, never created (roles may not create
consumers). Its ``max_ack_pending`` counts the held messages too, which is why a batch is at
most that many.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError

from fleetbus.fleet import ResolvedConsumer
from fleetbus.js.api import JsApi
from fleetbus.js.connection import Connection, unsubscribe

__all__ = ["HOLD", "Inbox"]

log = logging.getLogger("fleetbus.mcp")

HOLD = 300.0
"""How long a batch the host did not confirm (by reading again) is held before it is given
back for redelivery."""
_FIRST_POLL = 0.5
_MORE_POLL = 0.05


class Inbox:
    """The durable inbox consumer of one role, read in batches for a host."""

    def __init__(self, conn: Connection, consumer: ResolvedConsumer, *, hold: float = HOLD) -> None:
        self.conn = conn
        self.consumer = consumer
        self.hold = hold
        self.held: list[Msg] = []
        self._held_since = 0.0
        self._sub: Any = None
        self._lock = asyncio.Lock()
        self._keeper: asyncio.Task[None] | None = None

    async def open(self) -> None:
        js = self.conn.nc.jetstream()
        self._sub = await js.pull_subscribe_bind(
            self.consumer.name, self.consumer.stream, pending_msgs_limit=256
        )
        self._keeper = asyncio.create_task(self._keep(), name=f"{self.consumer.name} leases")

    async def read(self, count: int, wait: float) -> tuple[int, list[Msg]]:
        """Acknowledge the batch held since the last read, then fetch up to ``count``
        messages (waiting up to ``wait`` seconds for the first) and hold them. Returns how
        many were acknowledged, and the new batch."""
        assert self._sub is not None, "open() first"
        async with self._lock:
            acked = await self._ack_held()
            fetched: list[Msg] = []
            try:
                fetched = await self._fetch(count, wait)
            except BaseException:
                await _nak(fetched)  # cancelled with messages in hand: give them back now
                raise
            self.held = fetched
            self._held_since = time.monotonic()
            return acked, fetched

    async def pending(self) -> dict[str, int]:
        """The consumer's counts from the server: waiting, held by anyone, polls waiting."""
        info = await JsApi(self.conn).consumer_info(self.consumer.stream, self.consumer.name)
        info = info or {}
        return {
            "waiting": int(info.get("num_pending", 0)),
            "unacknowledged": int(info.get("num_ack_pending", 0)),
            "held_here": len(self.held),
            "readers_polling": int(info.get("num_waiting", 0)),
        }

    async def close(self) -> None:
        """Give back what is held (the host may not have seen it), stop renewing leases."""
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
        async with self._lock:
            held, self.held = self.held, []
            await _nak(held)
        sub, self._sub = self._sub, None
        await unsubscribe(sub)

    async def _ack_held(self) -> int:
        held, self.held = self.held, []
        for msg in held:
            try:
                await msg.ack()
            except Exception as exc:  # the connection is gone: the lease lapses, it comes back
                log.warning("%s: ack failed (%s); it will be redelivered", self.consumer.name, exc)
        return len(held)

    async def _fetch(self, count: int, wait: float) -> list[Msg]:
        # nats-py's fetch(n > 1) can sit on a message already received until its poll ends:
        # one message with the long poll, then the rest with a short one. (Not only what
        # num_pending says is left: it leaves out messages due for redelivery.)
        try:
            first: list[Msg] = await self._sub.fetch(1, timeout=max(wait, _FIRST_POLL))
        except (TimeoutError, NatsTimeoutError):
            return []
        out = list(first)
        if count > len(out):
            try:
                out += await self._sub.fetch(count - len(out), timeout=_MORE_POLL)
            except (TimeoutError, NatsTimeoutError):
                pass
            except BaseException:
                await _nak(out)
                raise
        return out

    async def _keep(self) -> None:
        every = self.consumer.spec.effective_ack_wait / 3
        while True:
            await asyncio.sleep(every)
            async with self._lock:
                if not self.held:
                    continue
                if time.monotonic() - self._held_since > self.hold:
                    held, self.held = self.held, []
                    log.warning(
                        "%s: %d message(s) not confirmed within %.0fs; given back",
                        self.consumer.name,
                        len(held),
                        self.hold,
                    )
                    await _nak(held)
                    continue
                for msg in self.held:
                    with contextlib.suppress(Exception):
                        await msg.in_progress()


async def _nak(msgs: list[Msg]) -> None:
    for msg in msgs:
        with contextlib.suppress(Exception):
            await msg.nak()
