"""``Connection`` against a real server: what nats-py leaves to its callers."""

from __future__ import annotations

import asyncio

from fleetbus.js.api import JsApi
from fleetbus.js.connection import ConnectSettings, connect


async def test_a_cancelled_flush_leaves_the_connection_working(nats_url: str) -> None:
    # A cancelled nats-py flush makes the client's read loop stop for good when its PONG
    # arrives: every later request then times out on a connection that says it is up.
    conn = await connect(ConnectSettings.from_url(nats_url))
    try:
        for _ in range(3):
            flushing = asyncio.create_task(conn.flush())
            await asyncio.sleep(0)
            flushing.cancel()
        await asyncio.sleep(0.1)  # the PONGs arrive
        assert (await JsApi(conn).request("INFO")).get(
            "type"
        ) == "io.nats.jetstream.api.v1.account_info_response"
        await conn.flush()
    finally:
        await conn.close()
