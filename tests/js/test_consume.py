"""The pull loop against a real server, where what answers its requests is a test's client."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import AckPolicy

from fleetbus.js.connection import ConnectSettings, connect
from fleetbus.js.consume import ConsumerLoop, MessageCallback
from fleetbus.testing import eventually


@dataclass
class _Silent:
    """What the "server" of ``_silent_server`` saw, and how to answer as one."""

    client: Client
    asked: list[float] = field(default_factory=list)
    """When each pull request came."""
    replies: list[str] = field(default_factory=list)
    """Where each is answered."""

    async def deliver(self, n: int) -> None:
        await self.client.publish(self.replies[n], b"work", reply="fake.ack")

    async def end(self, n: int, status: str = "408") -> None:
        """End request ``n`` as the server does (a status, no body)."""
        await self.client.publish(self.replies[n], b"", headers={"Status": status})


@contextlib.asynccontextmanager
async def _silent_server(
    nats_url: str,
    handle: MessageCallback,
    *,
    deliver_first: bool = False,
    limit: int = 1,
    poll: float = 0.2,
) -> AsyncIterator[_Silent]:
    """A consumer loop (poll 0.2 s by default) whose "server" is a client that takes its
    pull requests, running until the block ends. It answers none of them by itself, but
    with ``deliver_first`` the first with one message."""
    silent = _Silent(await nats.connect(nats_url))

    async def take(msg: Msg) -> None:
        silent.asked.append(time.monotonic())
        silent.replies.append(msg.reply)
        if deliver_first and len(silent.asked) == 1:
            await silent.deliver(0)

    await silent.client.subscribe("SILENT.CONSUMER.MSG.NEXT.S.C", cb=take)
    await silent.client.flush()
    conn = await connect(ConnectSettings(servers=(nats_url,)))
    loop = ConsumerLoop(conn, "S", "C", handle, poll=poll, limit=limit, api_prefix="SILENT")
    await loop.bind()
    running = asyncio.ensure_future(loop.run())
    try:
        yield silent
    finally:
        loop.stop_fetching()
        await asyncio.wait_for(running, 5)
        await conn.close()
        await silent.client.close()


async def test_a_pull_request_never_answered_is_asked_again(nats_url: str) -> None:
    """A request the server never answers (its leader crashed, the connection dropped it) is
    taken for lost one second past its expiry, and the loop asks again: a consumer whose
    request went unanswered would otherwise wait for good."""

    async def handle(msg: Msg) -> None:
        raise AssertionError("nothing is delivered")

    async with _silent_server(nats_url, handle) as silent:
        await eventually(lambda: len(silent.asked) >= 3, 10, "three requests")
    asked = silent.asked
    # not before the one before is late (expiry 0.2 s, then a second's margin): a loop
    # that asked at once would flood the server with requests
    gaps = [b - a for a, b in itertools.pairwise(asked)]
    assert all(gap > 1.0 for gap in gaps), gaps


async def test_an_expired_poll_is_asked_again_at_once_and_the_new_one_can_still_be_lost(
    nats_url: str,
) -> None:
    """An idle consumer's poll that expires is asked again at once, from the read loop,
    while the loop's task sleeps on (a thousand expiries a second at 10,000 idle agents);
    the loop's wait moves to the new request's deadline, so a new request that nothing
    answers is still taken for lost, and asked again, a poll and a second after it left."""

    async def handle(msg: Msg) -> None:
        raise AssertionError("nothing is delivered")

    async with _silent_server(nats_url, handle, poll=0.5) as silent:
        await eventually(lambda: len(silent.asked) == 1, 10, "the first request")
        await silent.end(0)
        await eventually(lambda: len(silent.asked) == 2, 10, "asked again at once")
        await eventually(lambda: len(silent.asked) == 3, 10, "the unanswered one asked again")
    asked = silent.asked
    # not before the second was late (0.5 s, then a second's margin): a loop that woke at
    # the first request's old deadline would not find the second lost yet
    assert asked[2] - asked[1] > 1.5, asked


async def test_a_request_a_worker_sends_is_taken_for_lost_too(nats_url: str) -> None:
    """A worker asks for the next message itself when its handler returns, without waking
    the loop. If the loop then slept with no request open (the last one delivered while
    the handler ran past its expiry), it must still learn of the worker's request, and ask
    again when that one goes unanswered."""
    handled: list[float] = []

    async def handle(msg: Msg) -> None:
        await asyncio.sleep(1.5)  # past the first request's expiry and margin (1.2 s)
        handled.append(time.monotonic())

    async with _silent_server(nats_url, handle, deliver_first=True) as silent:
        await eventually(lambda: len(silent.asked) >= 3, 15, "a request after the worker's")
    asked = silent.asked
    assert len(handled) == 1
    # the second request is the worker's, as its handler returned; the third is the loop's,
    # once that one was late (a loop that never learned of it would not have asked again)
    assert asked[1] >= handled[0]
    assert asked[2] - asked[1] > 1.0, asked


async def test_a_waiting_worker_outlives_the_end_of_a_request_that_delivered(
    nats_url: str,
) -> None:
    """The worker that waits for the next message ends when a pull request that delivered
    nothing ends (the consumer was idle for a whole poll), not when one that delivered a
    message a moment ago does: at a trickle that would end it after almost every message.
    Here the "server" ends each request when the test says."""
    seen: list[bytes] = []

    async def handle(msg: Msg) -> None:
        seen.append(msg.data)

    async with _silent_server(nats_url, handle, limit=4, poll=10.0) as silent:
        await eventually(lambda: len(silent.asked) == 1, 10, "the first request")
        await silent.deliver(0)  # one of its four
        await eventually(lambda: len(silent.asked) == 2, 10, "the worker's request for one")
        assert (seen, _workers()) == ([b"work"], 1)  # it waits for the next
        await silent.end(0)  # the request that delivered it expires
        await silent.client.flush()
        await asyncio.sleep(0.2)
        assert _workers() == 1
        await silent.end(1)  # the request that delivered nothing expires
        await eventually(lambda: _workers() == 0, 10, "the idle consumer's worker ended")


def _workers() -> int:
    """The consumer loops' worker tasks running now."""
    return sum(
        1
        for task in asyncio.all_tasks()
        if not task.done() and getattr(task.get_coro(), "__qualname__", "") == "ConsumerLoop._work"
    )


async def test_one_worker_serves_a_trickle_and_an_idle_consumer_keeps_none(
    nats_url: str,
) -> None:
    """Messages one at a time: the worker that handled one waits for the next, rather than a
    task being made for each. Once a pull request that delivered nothing expires, it
    ends (an idle consumer keeps no task), and a drain ends a waiting one without waiting
    out its grace."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await js.add_stream(name="TRICKLE", subjects=["trickle.>"])
    await js.add_consumer("TRICKLE", durable_name="C", ack_policy=AckPolicy.EXPLICIT)
    conn = await connect(ConnectSettings(servers=(nats_url,)))
    seen: list[bytes] = []
    handled_in: set[asyncio.Task[object] | None] = set()

    async def handle(msg: Msg) -> None:
        seen.append(msg.data)
        handled_in.add(asyncio.current_task())
        await msg.ack()

    loop = ConsumerLoop(conn, "TRICKLE", "C", handle, poll=2.0, limit=4)
    await loop.bind()
    running = asyncio.ensure_future(loop.run())
    try:
        for n in range(10):
            await js.publish("trickle.x", str(n).encode())
            await eventually(lambda n=n: len(seen) == n + 1, 10, f"message {n}")
        assert len(handled_in) == 1, handled_in  # one worker, waiting between messages
        await eventually(lambda: _workers() == 0, 10, "the idle consumer's worker ended")
        await js.publish("trickle.x", b"again")
        await eventually(lambda: len(seen) == 11, 10, "a message after the idle time")
        assert _workers() == 1
        await asyncio.wait_for(loop.drain(60), 15)  # the waiting worker ends at once
        assert _workers() == 0
        await asyncio.wait_for(running, 5)
    finally:
        loop.stop_fetching()
        await conn.close()
        await js.delete_stream("TRICKLE")
        await nc.close()


async def test_a_waiting_worker_cancelled_from_outside_leaves_the_loop_working(
    nats_url: str,
) -> None:
    """Something cancels the worker that waits for the next message (a task-group teardown,
    say): the next message still finds a worker, and the read loop that hands it over does
    not fail on the cancelled wait."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await js.add_stream(name="CANCELLED", subjects=["cancelled.>"])
    await js.add_consumer("CANCELLED", durable_name="C", ack_policy=AckPolicy.EXPLICIT)
    conn = await connect(ConnectSettings(servers=(nats_url,)))
    seen: list[bytes] = []

    async def handle(msg: Msg) -> None:
        seen.append(msg.data)
        await msg.ack()

    loop = ConsumerLoop(conn, "CANCELLED", "C", handle, poll=30.0, limit=4)
    await loop.bind()
    running = asyncio.ensure_future(loop.run())
    try:
        await js.publish("cancelled.x", b"first")
        await eventually(lambda: len(seen) == 1, 10, "the first message")
        waiting = [
            t
            for t in asyncio.all_tasks()
            if getattr(t.get_coro(), "__qualname__", "") == "ConsumerLoop._work"
        ]
        assert len(waiting) == 1
        waiting[0].cancel()
        await asyncio.wait(waiting, timeout=5)
        await js.publish("cancelled.x", b"second")
        await eventually(lambda: len(seen) == 2, 10, "the message after the cancel")
        assert conn.nc.is_connected
    finally:
        loop.stop_fetching()
        await asyncio.wait_for(running, 5)
        await conn.close()
        await js.delete_stream("CANCELLED")
        await nc.close()
