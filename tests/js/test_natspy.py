"""fleetbus's uses of nats-py internals, against this nats-py and a real server: each holds
(no fallback taken), so a nats-py release that changes them is noticed here."""

from __future__ import annotations

import asyncio

import nats
import pytest
from hypothesis import given
from hypothesis import strategies as st
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.nuid import MAX_SEQ

from fleetbus.errors import PayloadError
from fleetbus.js._natspy import (
    _FlushQueue,
    direct_replies,
    header_block_size,
    lean_flush_queue,
    lean_nuid,
    parse_header_lines,
    pending_queue,
    publish_nowait,
    raw_writer,
    server_info,
    subscribe_direct,
    write_pending,
)
from fleetbus.js.connection import ConnectSettings, connect
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


async def test_replies_reach_their_request_without_a_task_of_their_own(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    try:

        async def echo(msg: Msg) -> None:
            await msg.respond(b"re: " + msg.data)

        await nc.subscribe("natspy.echo", cb=echo)
        assert await direct_replies(nc), "this nats-py no longer has the reply subscription"
        answers = await asyncio.gather(*(nc.request("natspy.echo", b"%d" % n) for n in range(50)))
        assert [a.data for a in answers] == [b"re: %d" % n for n in range(50)]
        callback_task = _reply_subscription(nc)._wait_for_msgs_task
        assert callback_task is not None and callback_task.cancelled()  # nats-py's, unused
        with pytest.raises(nats.errors.NoRespondersError):  # its status reply still counts
            await nc.request("natspy.nobody", b"", timeout=5)

        async def ignore(msg: Msg) -> None:
            return None  # a responder that never answers

        await nc.subscribe("natspy.silent", cb=ignore)
        with pytest.raises(nats.errors.TimeoutError):
            await nc.request("natspy.silent", b"", timeout=0.2)
        waiting = asyncio.create_task(nc.request("natspy.silent", b"", timeout=30))
        await eventually(lambda: len(nc._resp_map) == 1, 10, "the request to be sent")
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert nc._resp_map == {}  # every waiter let go of its token
        await nc.drain()
        with pytest.raises(nats.errors.ConnectionClosedError):
            await nc.request("natspy.echo", b"late")
    finally:
        await nc.close()


async def test_a_request_waits_on_one_timer_not_in_wait_for(
    nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    nc = await nats.connect(nats_url)
    try:

        async def echo(msg: Msg) -> None:
            await msg.respond(msg.data)

        await nc.subscribe("natspy.timer", cb=echo)
        assert await direct_replies(nc)

        def nats_py_way(*args: object, **kwargs: object) -> None:
            raise AssertionError("nats-py's request (asyncio.wait_for) was used")

        with monkeypatch.context() as patched:  # undone before the close below
            patched.setattr(nats.aio.client.asyncio, "wait_for", nats_py_way)
            assert (await nc.request("natspy.timer", b"one", timeout=5)).data == b"one"
    finally:
        await nc.close()


async def test_fleetbus_connections_take_replies_directly(nats_url: str) -> None:
    conn = await connect(ConnectSettings.from_url(nats_url))
    try:
        assert pending_queue(_reply_subscription(conn.nc)) is None  # not nats-py's queue
        assert isinstance(conn.nc._flush_queue, _FlushQueue)
    finally:
        await conn.close()


async def test_connections_share_one_random_for_their_inbox_ids_and_the_ids_stay_unique(
    nats_url: str,
) -> None:
    first = await connect(ConnectSettings.from_url(nats_url))
    second = await connect(ConnectSettings.from_url(nats_url))
    try:
        assert first.nc._nuid._prand is second.nc._nuid._prand
        # One connection's sequence runs out: a new prefix, and a sequence drawn again.
        prefix = bytes(first.nc._nuid._prefix)
        first.nc._nuid._seq = MAX_SEQ - 1
        inboxes = [conn.nc.new_inbox() for conn in (first, second) for _ in range(500)]
        assert bytes(first.nc._nuid._prefix) != prefix
        assert len(set(inboxes)) == len(inboxes)

        # Requests still find their replies (on one connection: its subscription is
        # written before its request).
        async def pong(msg: Msg) -> None:
            await msg.respond(b"pong")

        await first.nc.subscribe("natspy.nuid", cb=pong)
        assert (await first.nc.request("natspy.nuid", b"ping", timeout=5)).data == b"pong"
    finally:
        await first.close()
        await second.close()


def _reply_subscription(nc: nats.NATS) -> Subscription:
    prefix = bytes(nc._resp_sub_prefix or b"").decode()
    (sub,) = [s for s in nc._subs.values() if prefix and s.subject == prefix + "*"]
    return sub


async def test_the_other_internals_are_where_fleetbus_looks(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    try:
        assert raw_writer(nc) is not None
        assert lean_nuid(nc)
        assert write_pending(nc)
        # Taken over while the flusher waits on nats-py's queue: it moves to the new one.
        assert lean_flush_queue(nc)
        sub = await nc.subscribe("natspy.flush")
        for n in range(3):
            await nc.publish("natspy.flush", str(n).encode())
            assert (await sub.next_msg(timeout=5)).data == str(n).encode()
        assert server_info(nc).get("version")
    finally:
        await nc.close()


async def test_a_publish_from_code_that_cannot_wait_is_sent_or_refused_whole(
    nats_url: str,
) -> None:
    """``publish_nowait`` (a consumer loop asking again from the read loop) sends what
    ``publish`` sends, reply subject included; on a closed connection it sends nothing and
    says so, and the caller publishes the usual way."""
    nc = await nats.connect(nats_url)
    sub = await nc.subscribe("natspy.nowait")
    for n in range(3):
        assert publish_nowait(nc, "natspy.nowait", str(n).encode(), f"natspy.reply.{n}")
        msg = await sub.next_msg(timeout=5)
        assert (msg.data, msg.reply) == (str(n).encode(), f"natspy.reply.{n}")
    await nc.close()
    assert not publish_nowait(nc, "natspy.nowait", b"late", "natspy.reply")


_HEADER_BYTES = st.sampled_from(
    [b"Nats-Msg-Id", b"a", b":", b" ", b"\t", b"\x0b", b"\x1c", b"\x85", b"\xc3\xa9", b"\r", b"\n"]
)


@given(
    st.lists(
        st.one_of(st.binary(max_size=12), st.lists(_HEADER_BYTES, max_size=6).map(b"".join)),
        max_size=6,
    )
)
def test_headers_are_parsed_exactly_as_nats_py_parses_them(lines: list[bytes]) -> None:
    raw = b"\r\n".join(lines) + b"\r\n\r\n"
    assert parse_header_lines(raw) == Client._parse_header_lines(raw)


async def test_fleetbus_connections_parse_headers_their_way(nats_url: str) -> None:
    conn = await connect(ConnectSettings.from_url(nats_url))
    try:
        assert conn.nc._parse_header_lines is parse_header_lines
        sub = await conn.nc.subscribe("natspy.headers")
        sent = {"Fleet-Sender": "cto", "Fleet-Note": "  caf\u00e9  "}
        await conn.nc.publish("natspy.headers", b"x", headers=sent)
        msg = await sub.next_msg(timeout=5)
        assert msg.headers == {"Fleet-Sender": "cto", "Fleet-Note": "caf\u00e9"}
    finally:
        await conn.close()


async def test_a_message_over_max_payload_with_its_headers_is_refused_and_the_connection_lives(
    nats_url: str,
) -> None:
    """nats-py checks the payload alone; the server counts the headers too and closes the
    connection on a message over max_payload (nats-py then closes for good)."""
    conn = await connect(ConnectSettings.from_url(nats_url))
    nc = conn.nc
    try:
        headers = {"Fleet-Dlq-Reason": "r" * 100}
        body = b"x" * (nc.max_payload - header_block_size(headers) + 1)
        with pytest.raises(PayloadError, match="with its headers, over the server's max_payload"):
            await nc.publish("anything", body, headers=headers)
        with pytest.raises(PayloadError):  # a request (a persisted publish) goes the same way
            await nc.request("anything", body, timeout=1, headers=headers)
        await nc.publish("anything", body[:-1], headers=headers)  # exactly max_payload: sent
        await nc.flush(timeout=5)
        assert nc.is_connected
        sub = await nc.subscribe("after")
        await nc.publish("after", b"still here", headers={"k": "v"})
        assert (await sub.next_msg(timeout=5)).data == b"still here"
    finally:
        await conn.close()


@given(
    st.dictionaries(st.text(min_size=1).filter(str.isprintable), st.text().filter(str.isprintable))
)
def test_header_block_size_counts_the_bytes_written(headers: dict[str, str]) -> None:
    block = (
        b"NATS/1.0\r\n"
        + b"".join(k.encode() + b": " + v.encode() + b"\r\n" for k, v in headers.items())
        + b"\r\n"
    )
    assert header_block_size(headers) == len(block)
