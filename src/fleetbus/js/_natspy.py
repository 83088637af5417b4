"""The only module that touches nats-py's internals. Each use says what it buys.

nats-py 2.x has no public API for these; if a release changes them, the functions here fall
back to the public, slower way where there is one; the tests that lean on them (the batch
publisher's, the consume loop's shutdown, ``fleetbus status``'s server version, the replies
to requests) fail so the change is noticed (``tests/js/test_natspy.py`` checks that no
fallback is taken).

One piece: it is where fleetbus reaches into nats-py, and nowhere else does
(``tests/test_architecture.py``), so a new nats-py release is read against this one file and
its one test module. Its parts are short and stand alone.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import ConnectionDrainingError, NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError

from fleetbus._backlog import Backlog
from fleetbus.errors import PayloadError

__all__ = [
    "RawWriter",
    "direct_replies",
    "end_refused_requests",
    "fast_headers",
    "header_block_size",
    "lean_flush_queue",
    "lean_nuid",
    "parse_header_lines",
    "pending_queue",
    "publish_nowait",
    "raw_writer",
    "server_info",
    "subscribe_direct",
    "whole_size_checked",
    "write_pending",
]

log = logging.getLogger("fleetbus.natspy")


def server_info(nc: Client) -> dict[str, Any]:
    """The INFO the server sent on connect (version, cluster, connect_urls, max_payload)."""
    info: dict[str, Any] = getattr(nc, "_server_info", None) or {}
    return info


class RawWriter:
    """Writes protocol lines through nats-py's command buffer (as ``nc.publish`` does), for
    the batch publisher's HPUB fast path: nats-py re-validates and re-encodes every header
    of every message, a third of the client's time per message."""

    def __init__(self, nc: Client) -> None:
        self._nc = nc
        self._send = nc._send_command
        self._stats: dict[str, int] = nc.stats

    @property
    def ready(self) -> bool:
        """Whether a raw write now is safe (connected, not draining)."""
        return bool(self._nc.is_connected and not self._nc.is_draining_pubs)

    async def hpub(self, subject: bytes, header: bytes, payload: bytes) -> None:
        await self._send(
            b"HPUB %b %d %d\r\n%b%b\r\n"
            % (subject, len(header), len(header) + len(payload), header, payload)
        )
        self._stats["out_msgs"] += 1
        self._stats["out_bytes"] += len(payload)


def raw_writer(nc: Client) -> RawWriter | None:
    """A ``RawWriter`` for ``nc``, or None when this nats-py lacks what it needs."""
    if not all(hasattr(nc, a) for a in ("_send_command", "stats", "is_draining_pubs")):
        return None
    return RawWriter(nc)


def pending_queue(sub: Any) -> asyncio.Queue[Msg] | None:
    """The queue of messages delivered to a subscription but not yet passed to its callback
    (or fetched by the caller). Taken before unsubscribing and emptied after, so that on
    shutdown they are naked at once instead of waiting out ack_wait."""
    queue = getattr(sub, "_pending_queue", None) or getattr(
        getattr(sub, "_sub", None), "_pending_queue", None
    )
    return queue if isinstance(queue, asyncio.Queue) else None


class _Handoff:
    """Stands in for a subscription's pending queue: nats-py's read loop puts each message
    here, and it goes to ``deliver`` there and then. A subscription with a callback costs a
    queue and a task (about 4.8 KiB; an idle agent had five such subscriptions) and a hop
    through the event loop per read; this costs neither."""

    __slots__ = ("_deliver", "_sub")

    def __init__(self, sub: Subscription, deliver: Callable[[Msg], None]) -> None:
        self._sub = sub
        self._deliver = deliver

    def put_nowait(self, msg: Msg) -> None:
        self._sub._pending_size -= len(msg.data)  # nats-py counted it as waiting
        try:
            self._deliver(msg)
        except Exception:  # never into nats-py's read loop
            log.exception("%s: unexpected error while taking a message", self._sub.subject)

    def qsize(self) -> int:
        return 0

    def empty(self) -> bool:
        return True

    def task_done(self) -> None:
        return None

    async def join(self) -> None:
        return None


def _queue_replaceable(sub: Subscription) -> bool:
    """Whether ``sub`` has the pending queue and its byte count that ``_Handoff`` stands in
    for."""
    return isinstance(getattr(sub, "_pending_queue", None), asyncio.Queue) and hasattr(
        sub, "_pending_size"
    )


async def subscribe_direct(
    nc: Client, subject: str, deliver: Callable[[Msg], None]
) -> Subscription:
    """Subscribe ``subject`` with ``deliver`` (a plain function: it must not block) called
    for each message as nats-py reads it. On a nats-py without the pending queue this
    relies on, an ordinary subscription with a callback (a queue and a task; its
    ``pending_queue`` is then that queue)."""
    sub = await nc.subscribe(subject)
    if _queue_replaceable(sub):
        sub._pending_queue = _Handoff(sub, deliver)  # type: ignore[assignment]
        # The iterator nats-py made for a subscription without a callback holds the queue
        # replaced above (and a future): unused here, and most of what it would keep alive.
        sub._message_iterator = None
        return sub
    await sub.unsubscribe()

    async def callback(msg: Msg) -> None:
        deliver(msg)

    return await nc.subscribe(subject, cb=callback, pending_bytes_limit=0)


async def direct_replies(nc: Client) -> bool:
    """Hand each reply to ``nc.request`` (an awaited JetStream publish's PubAck, an API
    answer) to its waiter as nats-py reads it. nats-py's one subscription for replies has a
    callback: a queue and a task, so a reply took two turns of the event loop to reach the
    request, one now. False, and nothing changed, on a nats-py without what this needs."""
    if not all(hasattr(nc, a) for a in ("_init_request_sub", "_resp_sub_prefix", "_resp_map")):
        return False
    if not nc._resp_sub_prefix:
        await nc._init_request_sub()
    prefix = bytes(nc._resp_sub_prefix or b"").decode()
    subject = prefix + "*"
    subs: dict[int, Subscription] = getattr(nc, "_subs", {})
    sub = next((s for s in subs.values() if s.subject == subject), None)
    if sub is None or not _queue_replaceable(sub) or not hasattr(sub, "_wait_for_msgs_task"):
        return False
    skip = len(prefix)

    def deliver(msg: Msg) -> None:
        future = nc._resp_map.get(msg.subject[skip:])  # the token after the prefix
        if future is not None and not future.done():
            future.set_result(msg)

    sub._pending_queue = _Handoff(sub, deliver)  # type: ignore[assignment]
    callback_task = sub._wait_for_msgs_task  # nats-py's, to take from the queue replaced
    if callback_task is not None:
        callback_task.cancel()
    if hasattr(nc, "_nuid"):
        nc.request = _Requests(nc, prefix).request  # type: ignore[method-assign]
    return True


class _Requests:
    """``nc.request`` with one timer for its timeout. nats-py's waits in ``asyncio.wait_for``
    (on Python 3.11 a second future, a timer and two callbacks per request): about a tenth of
    the client's CPU per awaited JetStream publish. The same errors: ``TimeoutError``,
    ``NoRespondersError``, ``ConnectionDrainingError``, and nats-py's subject checks."""

    __slots__ = ("_nc", "_nuid", "_old", "_prefix", "_subjects", "_waiting")

    def __init__(self, nc: Client, prefix: str) -> None:
        self._nc = nc
        self._nuid = nc._nuid
        self._waiting: dict[str, asyncio.Future[Msg]] = nc._resp_map
        self._subjects: dict[str, str] = {}
        """Each waiting request's subject, by its reply token (``refused``)."""
        self._prefix = prefix
        self._old = nc.request  # for the old-style requests nothing here uses

    def refused(self, subject: str) -> int:
        """The server refused a publish to ``subject``: every request waiting on it ends now
        as it would at its timeout, instead of waiting that long for a reply that will not
        come (the caller then finds the refusal noted: ``Connection.refused``). How many."""
        # nats-py lowercases the server's error: the refused subject's case is lost, so a
        # request to a subject that differs from it only in case ends too.
        wanted = subject.lower()
        ended = 0
        for token, sent_to in list(self._subjects.items()):
            reply = self._waiting.get(token)
            if sent_to.lower() == wanted and reply is not None and not reply.done():
                reply.set_exception(NatsTimeoutError())
                ended += 1
        return ended

    async def request(
        self,
        subject: str,
        payload: bytes = b"",
        timeout: float = 0.5,
        old_style: bool = False,
        headers: dict[str, Any] | None = None,
    ) -> Msg:
        if old_style:
            return await self._old(subject, payload, timeout, old_style, headers)
        nc = self._nc
        if nc.is_draining_pubs:
            raise ConnectionDrainingError
        token = self._nuid.next().decode()
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[Msg] = loop.create_future()
        self._waiting[token] = reply
        self._subjects[token] = subject
        timer = loop.call_at(loop.time() + timeout, _expire, reply)
        try:
            await nc.publish(subject, payload, reply=self._prefix + token, headers=headers)
            msg = await reply
        finally:
            timer.cancel()
            self._waiting.pop(token, None)
            del self._subjects[token]
        if msg.headers and msg.headers.get("Status") == "503":  # no responders
            raise NoRespondersError
        return msg


def end_refused_requests(nc: Client, subject: str) -> int:
    """Requests of ``nc`` waiting on ``subject``, which the server refused, end now (as at
    their timeout); 0 on a connection whose requests ``direct_replies`` does not answer."""
    requests = getattr(nc.request, "__self__", None)
    return requests.refused(subject) if isinstance(requests, _Requests) else 0


def _expire(reply: asyncio.Future[Msg]) -> None:
    if not reply.done():
        reply.set_exception(NatsTimeoutError())


_WHITESPACE = re.compile(r"\s")  # what str.isspace() is true for, every code point


def parse_header_lines(raw: bytes) -> dict[str, str]:
    """nats-py's ``Client._parse_header_lines``, the same result for every input (a property
    test holds them together), faster: nats-py tests each character of each header name
    with a generator expression, a tenth of the client's time per message with fleetbus's
    headers; one compiled search does it here."""
    out: dict[str, str] = {}
    for line in raw.split(b"\r\n"):
        name, sep, value = line.partition(b":")
        if not sep:
            continue
        try:
            key = name.strip().decode("ascii")
        except UnicodeDecodeError:
            continue
        if _WHITESPACE.search(key) is None:
            out[key] = value.strip().decode("utf-8", "replace")
    return out


def fast_headers(nc: Client) -> bool:
    """Have ``nc`` parse the headers of the messages it reads with ``parse_header_lines``.
    False, and nothing changed, on a nats-py that parses them some other way."""
    if not callable(getattr(type(nc), "_parse_header_lines", None)):
        return False
    nc._parse_header_lines = parse_header_lines  # type: ignore[method-assign]
    return True


_NUID_RANDOM = random.Random(secrets.randbits(64))
"""The one source of every connection's inbox id sequence (see ``lean_nuid``)."""


def lean_nuid(nc: Client) -> bool:
    """Have ``nc``'s inbox ids draw their sequence from one ``Random`` that every connection
    of the process shares. nats-py gives each connection a Mersenne Twister of its own, 2.5
    KiB of state, and a fleet with auth gives each agent a connection of its own (10,000
    agents: 25 MiB). The sequence is a counter's start and step, redrawn when it runs out;
    what makes the ids unguessable, their prefix, nats-py draws from ``secrets``, and the
    shared ``Random`` is seeded from there too. False, and nothing changed, on a nats-py
    that makes its ids some other way."""
    nuid = getattr(nc, "_nuid", None)
    if not isinstance(getattr(nuid, "_prand", None), random.Random):
        return False
    nuid._prand = _NUID_RANDOM  # type: ignore[union-attr]
    return True


def write_pending(nc: Client) -> bool:
    """Write now what ``nc`` holds for its flusher task (the commands since its last write),
    as that task would; whether there was a place to write it. Before a ``flush``: nats-py
    writes the flush's PING straight to the socket, ahead of the commands still waiting for
    the flusher (a SUB just made, a publish), so its PONG did not mean the server had them.
    Measured on nats-server 2.15.1 with raw nats-py: a subscription flushed on one connection
    missed the message another connection published right after, 0 to 30 times in 1,000
    (five runs); with this first, never."""
    pending, transport = getattr(nc, "_pending", None), getattr(nc, "_transport", None)
    if not isinstance(pending, list) or transport is None or not nc.is_connected:
        return False
    if pending:
        transport.writelines(pending[:])
        nc._pending = []
        nc._pending_data_size = 0
    return True


def publish_nowait(nc: Client, subject: str, payload: bytes, reply: str) -> bool:
    """Publish as ``nc.publish`` does, from code that cannot wait (a message's handoff in
    the read loop); whether it was, and when not (not connected, draining, its buffer full,
    a nats-py without these parts) nothing is sent and the caller publishes the usual way.
    A consumer loop's long poll that expires is asked again here: waking the loop's task to
    ask was two thirds of an idle agent's CPU (a thousand polls a second at 10,000 agents).
    Subjects are fleetbus's own (no validation, as ``nc.publish`` skips it when told)."""
    pending, queue = getattr(nc, "_pending", None), getattr(nc, "_flush_queue", None)
    limit, size = getattr(nc, "_max_pending_size", None), getattr(nc, "_pending_data_size", None)
    if not isinstance(pending, list) or queue is None or limit is None or size is None:
        return False
    if not nc.is_connected or nc.is_draining_pubs:
        return False
    command = b"PUB %b %b %d\r\n%b\r\n" % (subject.encode(), reply.encode(), len(payload), payload)
    if 0 < limit < size + len(command):
        return False  # nats-py would flush first, waiting for it
    pending.append(command)
    nc._pending_data_size = size + len(command)
    nc.stats["out_msgs"] += 1
    nc.stats["out_bytes"] += len(payload)
    if queue.empty():  # the flusher writes what is pending when it takes this
        queue.put_nowait(asyncio.get_running_loop().create_future())
    return True


class _FlushQueue:
    """Stands in for nats-py's flush queue: a publish that finds it empty puts a future here,
    and the connection's flusher task takes it, writes what is pending and resolves it. It
    holds one or two futures at a time (a publish puts one only when it is empty), in a
    ``Backlog``: nats-py's ``asyncio.Queue`` took 3.5 KiB of every connection."""

    __slots__ = ("_backlog",)

    def __init__(self, waiting: list[asyncio.Future[Any]]) -> None:
        self._backlog: Backlog[asyncio.Future[Any]] = Backlog()
        for future in waiting:
            self._backlog.put(future)

    def empty(self) -> bool:
        return not self._backlog

    def qsize(self) -> int:
        return len(self._backlog)

    def put_nowait(self, item: asyncio.Future[Any]) -> None:
        self._backlog.put(item)

    async def put(self, item: asyncio.Future[Any]) -> None:
        self._backlog.put(item)

    async def get(self) -> asyncio.Future[Any]:
        return await self._backlog.get()


def lean_flush_queue(nc: Client) -> bool:
    """Have ``nc``'s flusher wait on a ``_FlushQueue`` instead of an ``asyncio.Queue``
    (connected: nats-py makes its queue once, when it connects). False, and nothing
    changed, on a nats-py that flushes some other way."""
    queue = getattr(nc, "_flush_queue", None)
    if not isinstance(queue, asyncio.Queue):
        return False
    waiting: list[asyncio.Future[Any]] = []
    while not queue.empty():
        waiting.append(queue.get_nowait())
    nc._flush_queue = _FlushQueue(waiting)  # type: ignore[assignment]
    # The flusher waits on the old queue: one last item there sends it to the new one.
    queue.put_nowait(asyncio.get_running_loop().create_future())
    return True


def header_block_size(headers: Mapping[str, str]) -> int:
    """The bytes of the header block written for ``headers`` (the ``NATS/1.0`` line, a
    ``Key: value`` line each, the blank line): what the server counts, with the payload,
    against ``max_payload``. At most a few bytes over (nats-py strips each key and value)."""
    size = 12  # b"NATS/1.0\r\n" and the closing b"\r\n"
    for key, value in headers.items():
        size += len(key.encode()) + len(value.encode()) + 4  # b": " and b"\r\n"
    return size


def whole_size_checked(nc: Client) -> None:
    """Have ``nc`` refuse, before sending, a message whose headers and payload together are
    over the server's ``max_payload`` (``PayloadError``). nats-py checks the payload alone;
    the server closes the connection on such a message, and nats-py then closes for good: an
    agent dead-lettering a message a sender made just small enough to be stored would stop
    serving, and so would the next agent it was redelivered to. Every publish of ``nc``
    (requests, replies, acks) goes through ``nc.publish``."""
    publish = nc.publish

    def checked(
        subject: str,
        payload: bytes = b"",
        reply: str = "",
        headers: dict[str, str] | None = None,
    ) -> Awaitable[None]:
        if headers:
            size = len(payload) + header_block_size(headers)
            if size > nc.max_payload:
                raise PayloadError(
                    f"the message to {subject[:200]} is {size} bytes with its headers, over"
                    f" the server's max_payload of {nc.max_payload} bytes: nothing was sent"
                )
        return publish(subject, payload, reply, headers)

    nc.publish = checked  # type: ignore[method-assign,assignment]
