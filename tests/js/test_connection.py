"""``Connection`` against a real server: what nats-py leaves to its callers."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from nats.aio.msg import Msg

from fleetbus.errors import ConnectError
from fleetbus.js.api import JsApi
from fleetbus.js.connection import ConnectSettings, connect
from fleetbus.server.cluster import free_port
from fleetbus.testing import eventually


async def test_nothing_listening_is_said_at_once_not_after_the_connect_timeout() -> None:
    """Every server listed refuses the TCP connection: nats-py would try them again until
    the connect timeout (a minute here). The error comes at once, says what the sockets
    said and what to check, and leaves no client of the attempt running."""
    servers = tuple(f"nats://127.0.0.1:{free_port()}" for _ in range(2))
    before = {t for t in asyncio.all_tasks() if not t.done()}
    async with asyncio.timeout(15):
        with pytest.raises(ConnectError, match="no server took the connection") as info:
            await connect(ConnectSettings(servers=servers, connect_timeout=60.0))
    assert "Connect call failed" in str(info.value)
    assert "is `fleetbus up` running" in str(info.value)
    left = {t for t in asyncio.all_tasks() if not t.done()} - before - {asyncio.current_task()}
    assert not left, left


async def test_one_server_down_of_two_is_passed_over(nats_url: str) -> None:
    conn = await connect(ConnectSettings(servers=(f"nats://127.0.0.1:{free_port()}", nats_url)))
    try:
        assert conn.nc.is_connected
    finally:
        await conn.close()


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


async def test_a_flushed_subscription_hears_what_another_connection_publishes_right_after(
    nats_url: str,
) -> None:
    # nats-py writes a flush's PING ahead of the commands its flusher task has yet to write
    # (the SUB just made): a bare nats-py flush here missed 0 to 6 messages in 1,000.
    listener = await connect(ConnectSettings.from_url(nats_url))
    speaker = await connect(ConnectSettings.from_url(nats_url))
    heard: list[str] = []

    async def hear(msg: Msg) -> None:
        heard.append(msg.subject)

    try:
        for n in range(1000):
            await listener.nc.subscribe(f"flushed.{n}", cb=hear)
            await listener.flush()
            await speaker.nc.publish(f"flushed.{n}", b"")
        await speaker.flush()
        everything = {f"flushed.{n}" for n in range(1000)}
        with contextlib.suppress(AssertionError):  # a message missed never comes
            await eventually(lambda: set(heard) == everything, timeout=5)
        missed = sorted(everything - set(heard))
        assert not missed, f"{len(missed)} of 1000 missed, {missed[:3]} first"
    finally:
        await listener.close()
        await speaker.close()
