"""The pull loop against a real server, where what answers its requests is a test's client."""

from __future__ import annotations

import asyncio
import itertools
import time

import nats
from nats.aio.msg import Msg

from fleetbus.js.connection import ConnectSettings, connect
from fleetbus.js.consume import ConsumerLoop
from fleetbus.testing import eventually


async def test_a_pull_request_never_answered_is_asked_again(nats_url: str) -> None:
    """A request the server never answers (its leader crashed, the connection dropped it) is
    taken for lost one second past its expiry, and the loop asks again: a consumer whose
    request went unanswered would otherwise wait for good. Here the "server" is a client
    that takes the requests and answers none."""
    asked: list[float] = []
    silent = await nats.connect(nats_url)

    async def take(msg: Msg) -> None:
        asked.append(time.monotonic())

    await silent.subscribe("SILENT.CONSUMER.MSG.NEXT.S.C", cb=take)
    await silent.flush()
    conn = await connect(ConnectSettings(servers=(nats_url,)))

    async def handle(msg: Msg) -> None:
        raise AssertionError("nothing is delivered")

    loop = ConsumerLoop(conn, "S", "C", handle, poll=0.2, limit=1, api_prefix="SILENT")
    await loop.bind()
    running = asyncio.ensure_future(loop.run())
    try:
        await eventually(lambda: len(asked) >= 3, 10, "three requests")
    finally:
        loop.stop_fetching()
        await asyncio.wait_for(running, 5)
        await conn.close()
        await silent.close()
    # not before the one before is late (expiry 0.2 s, then a second's margin): a loop
    # that asked at once would flood the server with requests
    gaps = [b - a for a, b in itertools.pairwise(asked)]
    assert all(gap > 1.0 for gap in gaps), gaps
