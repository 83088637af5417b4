"""One durable pull consumer, consumed correctly.

- Fetches only as many messages as there are free handler slots, so the consumer's
  ``max_ack_pending`` (one task at a time by default) holds across every process of a role.
- While a handler runs, sends ``+WPI`` (in progress) every ``ack_wait / 3``: a task may run
  for 30 minutes under a 30 s ack wait, and a crashed worker's task comes back within one.
- Long polls, woken early by shutdown or a reconnect (the server forgets pull requests
  across a reconnect, so a poll would otherwise sit out its full length).
- Never dies on a bad message or a server hiccup: it logs one line and carries on.
- On shutdown: stop fetching, give running handlers ``grace`` seconds, nak what is left so
  another worker gets it at once, and nak what was fetched but never started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError

from fleetbus.js._natspy import pending_queue
from fleetbus.js.backoff import Backoff
from fleetbus.js.connection import Connection

__all__ = ["ConsumerLoop"]

log = logging.getLogger("fleetbus.consume")

MessageCallback = Callable[[Msg], Awaitable[None]]
_FETCH_QUIET = (NatsTimeoutError, asyncio.TimeoutError)
_BACKLOG_POLL = 0.025


class ConsumerLoop:
    """Runs ``handle`` for each message of the durable pull consumer ``stream > name``, at
    most ``limit`` at once (the consumer's max_ack_pending, capped)."""

    def __init__(
        self,
        conn: Connection,
        stream: str,
        name: str,
        handle: MessageCallback,
        *,
        poll: float,
        limit: int,
    ) -> None:
        self.conn = conn
        self.stream = stream
        self.name = name
        self.handle = handle
        self.poll = poll
        self.limit = max(1, limit)
        self.wake = asyncio.Event()
        self._stopping = False
        self._running: set[asyncio.Task[None]] = set()
        self._slot_free = asyncio.Event()
        self._slot_free.set()
        self._sub: Any = None

    @property
    def in_flight(self) -> int:
        return len(self._running)

    async def bind(self) -> None:
        """Bind to the durable consumer; it must exist (``fleetbus provision`` makes it)."""
        js = self.conn.nc.jetstream()
        self._sub = await js.pull_subscribe_bind(
            self.name, self.stream, pending_msgs_limit=self.limit * 4 + 16
        )

    async def run(self) -> None:
        assert self._sub is not None, "bind() first"
        failures = Backoff(0.4, 5.0)
        backlog = 0
        while not self._stopping:
            await self._slot_free.wait()
            if self._stopping:
                break
            want = self.limit - len(self._running)
            if want <= 0:
                self._slot_free.clear()
                continue
            self.wake.clear()
            # nats-py's fetch(n > 1) can sit on a message it already received until the
            # poll ends (measured: 2 s with a 2 s poll, with 4 workers on one consumer).
            # So long polls ask for one message, which returns the moment it arrives; only
            # while the server reports a backlog (num_pending) ask for as many as it holds,
            # which it can send at once, with a short poll in case another worker took them.
            batch = min(want, backlog) if backlog > 0 else 1
            poll = self.poll if batch == 1 else min(self.poll, _BACKLOG_POLL)
            fetch = asyncio.ensure_future(self._sub.fetch(batch, timeout=poll))
            woken = asyncio.ensure_future(self.wake.wait())
            try:
                done, _ = await asyncio.wait({fetch, woken}, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                # Cancelled from outside (an agent that failed to start): the fetch is ours
                # to end, or its error would surface as "never retrieved".
                for pending in (fetch, woken):
                    pending.cancel()
                await asyncio.gather(fetch, woken, return_exceptions=True)
                raise
            woken.cancel()
            if fetch not in done:
                # Shutdown or reconnect: messages already on their way stay in the
                # subscription's queue, and the next fetch (or the shutdown nak) takes them.
                # Whatever the abandoned fetch ended with (a 503 during an election, a
                # closed connection) is the loop's to swallow, never the caller's.
                fetch.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await fetch
                continue
            try:
                msgs = fetch.result()
            except _FETCH_QUIET:
                failures.reset()
                backlog = 0
                continue
            except Exception as exc:  # 503s in elections, reconnects, a closed connection
                log.warning(
                    "%s: fetch failed (%s); retrying in %.1fs",
                    self.name,
                    exc or type(exc).__name__,
                    failures.next_delay,
                )
                await failures.wait(self.wake)
                continue
            failures.reset()
            backlog = _pending(msgs)
            for msg in msgs:
                self._start(msg)

    def _start(self, msg: Msg) -> None:
        task = asyncio.ensure_future(self._guarded(msg))
        self._running.add(task)
        if len(self._running) >= self.limit:
            self._slot_free.clear()
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._slot_free.set()

    async def _guarded(self, msg: Msg) -> None:
        try:
            await self.handle(msg)
        except asyncio.CancelledError:
            # Shutdown ran out of grace: give the message back at once.
            with contextlib.suppress(Exception):
                await msg.nak()
            raise
        except Exception:
            # The handler wrapper deals with handler errors; this is a bug or a lost
            # connection. The message is not acked: it comes back after ack_wait.
            log.exception("%s: unexpected error while handling a message", self.name)

    def stop_fetching(self) -> None:
        self._stopping = True
        self.wake.set()
        self._slot_free.set()

    async def drain(self, grace: float) -> None:
        """Wait up to ``grace`` for running handlers, cancel (nak) the rest, release the queue."""
        self.stop_fetching()
        # Withdraw the subscription first: a pull request still open on the server must not
        # catch the messages naked below (they would sit in a dead queue until ack_wait).
        await self._release_queue()
        if self._running:
            _, late = await asyncio.wait(set(self._running), timeout=grace)
            for task in late:
                task.cancel()
            if late:
                log.warning(
                    "%s: %d handler(s) still running after %.0fs grace; returned for redelivery",
                    self.name,
                    len(late),
                    grace,
                )
                await asyncio.wait(late)

    async def _release_queue(self) -> None:
        """Nak messages fetched but never started, then unsubscribe."""
        sub, self._sub = self._sub, None
        if sub is None:
            return
        queue = pending_queue(sub)
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
        while queue is not None and not queue.empty():
            msg = queue.get_nowait()
            if msg.reply and msg.reply.startswith("$JS.ACK"):
                with contextlib.suppress(Exception):
                    await msg.nak()


def _pending(msgs: list[Msg]) -> int:
    """How many messages the consumer still held when the last of ``msgs`` was sent."""
    try:
        return int(msgs[-1].metadata.num_pending) if msgs else 0
    except Exception:  # not a JetStream message: assume none
        return 0
