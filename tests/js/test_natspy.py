"""fleetbus's uses of nats-py internals, against this nats-py and a real server: each holds
(no fallback taken), so a nats-py release that changes them is noticed here."""

from __future__ import annotations

import asyncio

import nats
from nats.aio.msg import Msg

from fleetbus.js._natspy import pending_queue, raw_writer, server_info, subscribe_direct
from fleetbus.testing import eventually


async def test_a_direct_subscription_hands_each_message_over_as_it_is_read(
    nats_url: str,
) -> None:
    nc = await nats.connect(nats_url)
    got: list[bytes] = []

    def deliver(msg: Msg) -> None:
        if msg.data == b"bad":
            raise ValueError("a bug in the receiver")
        got.append(msg.data)

    try:
        tasks = len(asyncio.all_tasks())
        sub = await subscribe_direct(nc, "natspy.direct", deliver)
        direct = pending_queue(sub) is None  # the fallback keeps nats-py's own queue
        assert direct, "this nats-py no longer has the pending queue subscribe_direct replaces"
        assert len(asyncio.all_tasks()) == tasks  # no task of its own
        for data in (b"one", b"bad", b"two"):
            await nc.publish("natspy.direct", data)
        # A receiver's error is logged, the rest still arrive.
        await eventually(lambda: len(got) == 2, 10, "both good messages to arrive")
        assert got == [b"one", b"two"]
        assert nc.is_connected
        await sub.unsubscribe()
        witness = asyncio.Event()

        async def seen(msg: Msg) -> None:
            witness.set()

        await nc.subscribe("natspy.direct", cb=seen)
        await nc.publish("natspy.direct", b"three")
        await asyncio.wait_for(witness.wait(), 10)  # read, and not handed to the one that left
        assert got == [b"one", b"two"]
    finally:
        await nc.close()


async def test_the_other_internals_are_where_fleetbus_looks(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    try:
        assert raw_writer(nc) is not None
        assert server_info(nc).get("version")
    finally:
        await nc.close()
