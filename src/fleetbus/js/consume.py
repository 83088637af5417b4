"""One durable pull consumer, consumed correctly.

- Messages stream in: the loop keeps pull requests open on the server for as many messages
  as it has free handler slots, and each message is handed to its handler the moment it
  arrives (no per-message wait, no fetch that sits on what it already received). So the
  consumer's ``max_ack_pending`` (one task at a time by default) holds across every process
  of a role, and a backlog flows without a round trip per message.
- Handlers run in worker tasks, not a task per message: a worker takes the next waiting
  message when its handler returns, so handlers that finish without waiting run one after
  another in one task; when a handler waits (I/O, a sleep) while messages wait, more workers
  start, up to the loop's limit, so no message waits for another's I/O. The last worker out
  of messages waits, parked, for the next one (a task made per message cost a tenth of a
  task's round trip at 16 tasks at once); the others end, and so does it when a pull request
  that delivered nothing ends (idle for a whole poll: an idle consumer keeps no task; one
  that delivered a message a moment ago is no sign of that).
- Pull requests are written by the loop itself (``$JS.API.CONSUMER.MSG.NEXT``, a reply
  subject in the connection's inbox): a request names a batch and how long it may wait
  (``poll``); the server answers with messages as they become available and ends the
  request with a status (408 when it expired). An idle consumer costs one request per poll,
  asked again as the expiry is read (in the read loop, no task woken: the loop's wait moves
  to the new request's deadline).
  A worker whose message has settled asks for the next itself, in the write that carries
  its ack, and leaves the loop asleep (a turn of the loop per task at one task at a time);
  the loop wakes for what a worker does not do: a stop, a failure, a late request.
- A consumer's new leader (after a crash or a planned stop) ends the open requests with a
  ``409 Leadership Change``, and the loop asks it at once; a reconnect re-asks at once
  (``wake``): the server forgets pull requests across one. A request that nothing ends (a
  partition) is given up ``poll`` plus a second after it was sent, and asked again.
- Never dies on a bad message or a server hiccup: it logs one line and carries on.
- A worker whose handler never ends (it swallowed its cancellation) can be given up by the
  handler's caller (``current_worker().abandon()``): its slot and its place among the
  workers go to the messages behind it, and it exits whenever the handler does.
- On shutdown: stop asking, give running handlers ``grace`` seconds, nak what is left so
  another worker gets it at once, and nak what arrived but never started.

One piece: the open requests, the held messages and the workers are counted together, and
every path above (a delivery, a status, a worker ending or given up, a drain) moves all three.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import ContextVar
from typing import Any

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from fleetbus.js._natspy import pending_queue, publish_nowait, subscribe_direct
from fleetbus.js.backoff import Backoff
from fleetbus.js.connection import Connection, unsubscribe
from fleetbus.js.signal import Signal

__all__ = ["ConsumerLoop", "Worker", "current_worker"]

log = logging.getLogger("fleetbus.consume")

MessageCallback = Callable[[Msg], Awaitable[None]]
BatchCallback = Callable[[list[Msg]], Awaitable[None]]
_PARKED_MOST = 1
"""Workers kept waiting for the next message once they have run out of them."""
_MAX_REQUESTS = 4
"""Pull requests one loop keeps open at most (the server allows 512 waiting per consumer)."""
_LATE = 1.0
"""Seconds past a request's expiry after which it is taken for lost and asked again."""
_CANCEL_WAIT = 1.0
"""How long a drain waits, at least, for cancelled handlers to end (then it stops waiting)."""
_STATUS = "Status"
_STATUS_MEANS = {"503": "no responders: the consumer or its stream is missing (fleetbus provision)"}
_PENDING = "Nats-Pending-Messages"


class Worker:
    """One worker task of a ``ConsumerLoop``, as the handler it runs sees it."""

    __slots__ = ("abandoned", "loop", "task")

    def __init__(self, loop: ConsumerLoop, task: asyncio.Future[Any] | None) -> None:
        self.loop = loop
        self.task = task
        self.abandoned = False

    def abandon(self) -> None:
        """Give this worker up: the message it runs no longer counts against the loop's
        limit (its caller has settled it), and another worker takes the messages waiting."""
        if not self.abandoned:
            self.abandoned = True
            self.loop._abandoned(self)


_WORKER: ContextVar[Worker | None] = ContextVar("fleetbus_consumer_worker", default=None)


def current_worker() -> Worker | None:
    """The ``ConsumerLoop`` worker running the calling handler (None outside one, or in a
    batch)."""
    return _WORKER.get()


class ConsumerLoop:
    """Runs ``handle`` for each message of the durable pull consumer ``stream > name``, at
    most ``limit`` at once (the consumer's max_ack_pending, capped).

    With ``handle_batch`` (and ``batch`` > 1) messages go by lists instead: up to ``batch``
    that arrived together (what one read of the connection brought), each list counted as
    that many of the ``limit``."""

    def __init__(
        self,
        conn: Connection,
        stream: str,
        name: str,
        handle: MessageCallback,
        *,
        poll: float,
        limit: int,
        api_prefix: str = "$JS.API",
        handle_batch: BatchCallback | None = None,
        batch: int = 1,
    ) -> None:
        self.conn = conn
        self.stream = stream
        self.name = name
        self.handle = handle
        self.poll = poll
        self.limit = max(1, limit)
        self.handle_batch = handle_batch
        self.batch = max(1, batch) if handle_batch is not None else 1
        self._gathered: list[Msg] = []
        self._held = 0
        """Messages started and not finished (a batch holds as many as it has)."""
        self._changed = Signal()
        self.wake: Signal = _Wake(self._changed)
        """Set to ask again at once (after a reconnect, the server forgot every request)."""
        self._next = f"{api_prefix}.CONSUMER.MSG.NEXT.{stream}.{name}"
        self._stopping = False
        self._running: set[asyncio.Future[None]] = set()
        self._waiting: list[Msg] = []
        """Delivered, held, and not yet taken by a worker (a list: an empty deque is 600
        bytes, and a consumer of a fleet of thousands of idle agents holds none)."""
        self._workers = 0
        self._unstarted = 0
        """Workers created, or woken from parked, that have not taken a message yet."""
        self._parked: list[asyncio.Future[bool]] | None = None
        """Workers waiting for the next message: True wakes one to take it, False ends it
        (None until one waits: most consumers of a large fleet never see a message)."""
        self._check_due = False
        self._sub: Subscription | None = None
        self._inbox = ""
        self._ids = itertools.count(1)
        self._requests: dict[str, tuple[int, float, bool]] = {}
        """Open pull requests: reply token -> (messages still expected, when it is lost,
        whether it has delivered any)."""
        self._requested = 0
        self._asleep_until = 0.0
        """While the loop waits: when it wakes to look for lost requests (inf: it does not)."""
        self._failure: str | None = None
        self._failures = Backoff(0.4, 5.0)
        """The pause before asking again after a failed request, doubling while they fail."""
        # Top up once this many slots are free (fewer, larger requests under a backlog).
        self._threshold = max(1, self.limit // 4)

    @property
    def in_flight(self) -> int:
        return self._held

    async def bind(self) -> None:
        """Subscribe the loop's reply inbox (the consumer must exist: ``fleetbus provision``
        makes it, and the agent checks it before binding)."""
        nc = self.conn.nc
        self._inbox = nc.new_inbox()
        self._sub = await subscribe_direct(nc, f"{self._inbox}.*", self._on_msg)

    async def run(self) -> None:
        assert self._sub is not None, "bind() first"
        failures = self._failures
        while not self._stopping:
            self._changed.clear()
            if self.wake.is_set():
                self.wake.clear()
                self._forget_requests()
            now = time.monotonic()
            for token, (_, lost_at, _) in list(self._requests.items()):
                if now >= lost_at:  # never answered: a crashed leader, a lost connection
                    self._end_request(token, None)
            if self._failure is not None:
                log.warning(
                    "%s: pull request failed (%s); asking again in %.1fs",
                    self.name,
                    self._failure,
                    failures.next_delay,
                )
                self._failure = None
                await failures.wait(self.wake)
                continue
            # A request sent is not yet a success: the server may refuse it (a 503 while the
            # consumer is missing). A delivery, or a request's normal end, resets the delays.
            if not await self._top_up() and self._failure is not None:
                continue
            await self._wait_for_change()

    async def _top_up(self) -> bool:
        """Ask for as many messages as there are free slots, when enough are free (fewer,
        larger requests under a backlog); whether a request was sent (when one could not
        be, ``_failure`` says why and the loop asks again after a pause)."""
        free = self._to_ask()
        if not free:
            return False
        try:
            await self._ask(free)
        except Exception as exc:  # a closed or reconnecting connection
            self._failure = str(exc) or type(exc).__name__
            self._changed.set()
            return False
        return True

    def _to_ask(self) -> int:
        """The free slots, when enough are free to ask for (fewer, larger requests under a
        backlog) and fewer than ``_MAX_REQUESTS`` are open; else 0."""
        free = self.limit - self._held - len(self._gathered) - self._requested
        if free < self._threshold or len(self._requests) >= _MAX_REQUESTS:
            return 0
        return free

    def _open_request(self, batch: int) -> tuple[str, float]:
        """Count a request for ``batch`` messages as open (before it is sent: what it
        delivers may come back at once); its reply token and when it is taken for lost."""
        token = str(next(self._ids))
        lost_at = time.monotonic() + self.poll + _LATE
        self._requests[token] = (batch, lost_at, False)
        self._requested += batch
        return token, lost_at

    async def _ask(self, batch: int) -> None:
        token, lost_at = self._open_request(batch)
        if lost_at < self._asleep_until:  # the loop would not look for it to be lost
            self._changed.set()
        body, reply = _request_body(batch, self.poll), f"{self._inbox}.{token}"
        try:
            await self.conn.nc.publish(self._next, body, reply=reply)
        except BaseException:
            self._end_request(token, None)  # never sent: nothing will answer it
            raise

    async def _wait_for_change(self) -> None:
        """Until a request ends, a wake-up, a slot that a worker left to the loop (a stop, a
        failed request), or the oldest request is late (also one a worker sent meanwhile:
        ``_asleep_until``)."""
        if self._changed.is_set():
            return
        deadline = min((lost for _, lost, _ in self._requests.values()), default=None)
        timeout = None if deadline is None else max(deadline - time.monotonic(), 0.0)
        self._asleep_until = math.inf if deadline is None else deadline
        try:
            await self._changed.wait(timeout)
        finally:
            self._asleep_until = 0.0

    def _forget_requests(self) -> None:
        self._requests.clear()
        self._requested = 0

    def _end_request(self, token: str, remaining: int | None) -> None:
        """The server ended request ``token`` with ``remaining`` messages undelivered (or it
        is taken for lost): the loop looks at what to ask next."""
        if self._close_request(token, remaining) is not None:
            self._changed.set()

    def _close_request(self, token: str, remaining: int | None) -> tuple[int, float, bool] | None:
        """Forget request ``token`` and the messages it would still deliver; its entry."""
        entry = self._requests.pop(token, None)
        if entry is not None:
            expected = entry[0] if remaining is None else min(remaining, entry[0])
            self._requested = max(self._requested - expected, 0)
        return entry

    def _ask_at_once(self) -> bool:
        """Ask again now, from the read loop, for a request that ended as usual while the
        loop waits with nothing else to do (an idle consumer's poll expired): whether it was
        asked. The loop sleeps on, until the next request could be late."""
        if (
            self._asleep_until == 0.0
            or self._stopping
            or self._failure is not None
            or self.wake.is_set()
            or self._changed.is_set()
        ):
            return False
        free = self._to_ask()
        if not free:
            return False
        token, _ = self._open_request(free)
        reply = f"{self._inbox}.{token}"
        if not publish_nowait(self.conn.nc, self._next, _request_body(free, self.poll), reply):
            self._close_request(token, None)  # not sent: the loop, woken, asks
            return False
        deadline = min(lost for _, lost, _ in self._requests.values())
        if deadline != self._asleep_until:  # as the loop would, woken to ask
            self._asleep_until = deadline
            self._changed.rearm(max(deadline - time.monotonic(), 0.0))
        return True

    def _on_msg(self, msg: Msg) -> None:
        """Each message as the connection reads it (it must not wait): a delivery, or the
        status that ends a pull request."""
        if msg.reply:
            self._delivered(msg)
            return
        headers = msg.headers or {}
        status = headers.get(_STATUS, "")
        token = msg.subject.rsplit(".", 1)[-1]
        if status == "100":  # an idle heartbeat
            return
        entry = self._close_request(token, _int(headers.get(_PENDING)))
        if entry is None:
            return
        if status in ("408", "404"):  # expired, or nothing to deliver: the usual end
            self._failures.reset()
            if not entry[2]:  # idle for a whole poll: its worker need not wait
                self._unpark()
            if self._ask_at_once():
                return
        else:
            # nats-py leaves the next header line in a status line's description when it
            # has none ("503\r\nNats-Subject: ..."): its first line is the description
            description = headers.get("Description", "").split("\n", 1)[0].strip()
            if "Leadership" not in description:
                # 409 (consumer deleted, a limit), 503 (nothing answers: no consumer/stream)
                self._failure = f"{status} {description or _STATUS_MEANS.get(status, '')}"
                self._failure = self._failure.strip()
        self._changed.set()

    def _delivered(self, msg: Msg) -> None:
        self._failures.reset()
        # Messages arrive for the oldest open request first: count them off there.
        for token, (expected, lost_at, _) in self._requests.items():
            if expected <= 1:
                del self._requests[token]
            else:
                self._requests[token] = (expected - 1, lost_at, True)
            self._requested = max(self._requested - 1, 0)
            break
        if self._stopping:  # never started: given back at once
            self._start(_nak(msg), 0)
        elif self.handle_batch is None:
            self._held += 1
            self._waiting.append(msg)
            if self._parked:
                self._unstarted += 1
                self._parked.pop().set_result(True)
            elif self._unstarted == 0:
                self._add_workers(1)
        else:
            self._gathered.append(msg)
            if len(self._gathered) >= self.batch:
                self._start_batch()
            elif len(self._gathered) == 1:  # the rest of this read joins it, then it starts
                asyncio.get_running_loop().call_soon(self._start_batch)

    def _start_batch(self) -> None:
        msgs, self._gathered = self._gathered, []
        if msgs:
            self._start(self._guarded_batch(msgs), len(msgs))

    def _add_workers(self, count: int) -> None:
        for _ in range(min(count, self.limit - self._workers)):
            self._workers += 1
            self._unstarted += 1
            self._start(self._work(), 0)

    async def _work(self) -> None:
        """Handle waiting messages one after another until none is left; then wait, parked,
        for the next one, unless enough workers wait already."""
        worker = Worker(self, asyncio.current_task())
        _WORKER.set(worker)  # this task's own context
        try:
            while True:
                self._unstarted -= 1
                await self._take_waiting(worker)
                if worker.abandoned or self._stopping or len(self._parked or ()) >= _PARKED_MOST:
                    return
                parked: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
                self._parked = self._parked or []
                self._parked.append(parked)
                try:
                    if not await parked:
                        return
                except asyncio.CancelledError:  # not by a delivery: one must not wake it
                    if self._parked and parked in self._parked:
                        self._parked.remove(parked)
                    raise
        finally:
            if not worker.abandoned:
                self._workers -= 1

    async def _take_waiting(self, worker: Worker) -> None:
        while self._waiting and not self._stopping:
            msg = self._waiting.pop(0)
            if self._waiting and not self._check_due:
                # If this handler waits, the messages behind it get workers of their own.
                self._check_due = True
                asyncio.get_running_loop().call_soon(self._check_waiting)
            try:
                await self._guarded(msg)
            finally:
                if not worker.abandoned:
                    self._held -= 1
            if worker.abandoned:
                return
            if self._stopping or self.wake.is_set() or self._failure is not None:
                self._changed.set()  # a slot is free: the loop decides what comes next
            else:
                # Ask for the next message now: the request leaves in one write with this
                # one's ack (the loop would ask a turn later, in a write of its own), and
                # the loop is not woken to find what was done already.
                await self._top_up()

    def _unpark(self) -> None:
        """End the parked workers (a stop; a consumer gone idle)."""
        parked, self._parked = self._parked or [], None
        for future in parked:
            if not future.done():
                future.set_result(False)

    def _abandoned(self, worker: Worker) -> None:
        """``worker``'s handler is given up: its message and its place are free."""
        self._held -= 1
        self._workers -= 1
        if worker.task is not None:
            self._running.discard(worker.task)  # a drain does not wait for it
        self._changed.set()
        if self._waiting and not self._stopping:
            self._add_workers(len(self._waiting) - self._unstarted)

    def _check_waiting(self) -> None:
        """A worker's handler waited with messages behind it: start workers for them."""
        self._check_due = False
        if self._waiting and not self._stopping:
            self._add_workers(len(self._waiting) - self._unstarted)

    def _start(self, work: Coroutine[Any, Any, None], holds: int) -> None:
        task = asyncio.ensure_future(work)
        self._held += holds
        self._running.add(task)
        task.add_done_callback(functools.partial(self._finished, holds))

    def _finished(self, holds: int, task: asyncio.Future[None]) -> None:
        self._running.discard(task)
        self._held -= holds
        self._changed.set()

    async def _guarded_batch(self, msgs: list[Msg]) -> None:
        assert self.handle_batch is not None
        try:
            await self.handle_batch(msgs)
        except asyncio.CancelledError:
            for msg in msgs:
                await _nak(msg)
            raise
        except Exception:
            log.exception("%s: unexpected error while handling a batch", self.name)

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
        self._unpark()
        self.wake.set()
        self._changed.set()

    async def drain(self, grace: float) -> None:
        """Wait up to ``grace`` for running handlers, cancel (nak) the rest, release the queue."""
        self.stop_fetching()
        gathered, self._gathered = self._gathered, []
        waiting, self._waiting = self._waiting, []
        self._held -= len(waiting)
        for msg in (*gathered, *waiting):  # arrived, never started
            await _nak(msg)
        # Withdraw the subscription first: a pull request still open on the server must not
        # catch the messages naked below (they would sit in a dead queue until ack_wait).
        await self._release_queue()
        if self._running:
            _, late = await asyncio.wait(set(self._running), timeout=grace)
            late = {task for task in late if task in self._running}  # not those given up
            for task in late:
                task.cancel()
            if late:
                log.warning(
                    "%s: %d handler(s) still running after %.0fs grace; returned for redelivery",
                    self.name,
                    len(late),
                    grace,
                )
                _, stuck = await asyncio.wait(late, timeout=max(grace, _CANCEL_WAIT))
                if stuck:  # a handler that catches CancelledError and goes on
                    log.error(
                        "%s: %d handler(s) went on after they were cancelled: left running;"
                        " their messages go to another worker after the ack wait",
                        self.name,
                        len(stuck),
                    )

    async def _release_queue(self) -> None:
        """Unsubscribe, then nak messages that arrived but never started."""
        sub, self._sub = self._sub, None
        if sub is None:
            return
        queue = pending_queue(sub)
        await unsubscribe(sub)
        while queue is not None and not queue.empty():
            msg = queue.get_nowait()
            if msg.reply and msg.reply.startswith("$JS.ACK"):
                await _nak(msg)


class _Wake(Signal):
    """A signal that also wakes the loop that waits for ``changed``."""

    __slots__ = ("_changed",)

    def __init__(self, changed: Signal) -> None:
        super().__init__()
        self._changed = changed

    def set(self) -> None:
        super().set()
        self._changed.set()


async def _nak(msg: Msg) -> None:
    with contextlib.suppress(Exception):
        await msg.nak()


@functools.lru_cache(maxsize=64)
def _request_body(batch: int, poll: float) -> bytes:
    """A pull request's body (the same few for every loop of a process)."""
    return json.dumps({"batch": batch, "expires": int(poll * 1e9)}).encode()


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None
