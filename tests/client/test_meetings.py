"""Meetings: live messages between members, in order; invitations that wait for the offline."""

from __future__ import annotations

import asyncio
import contextlib
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from nats.aio.msg import Msg

from fleetbus import FleetbusError, Message
from fleetbus.client.meeting import Meeting, MeetingMessage
from fleetbus.testing import eventually
from fleetbus.testing.fleets import FleetUnderTest


async def test_meeting_messages_reach_every_member_in_order(fleet: FleetUnderTest) -> None:
    heard: dict[str, list[MeetingMessage]] = {"backend": [], "devops": []}
    done = {role: asyncio.Event() for role in heard}

    async with (
        fleet.client(sender="cto") as cto_client,
        fleet.client(sender="backend") as backend_client,
        fleet.client(sender="devops") as devops_client,
        cto_client.meeting("api-design") as cto,
        backend_client.meeting("api-design") as backend,
        devops_client.meeting("api-design") as devops,
    ):

        async def listen(role: str, room: object) -> None:
            async for message in room:  # type: ignore[attr-defined]
                if message.notice:
                    continue
                heard[role].append(message)
                if len(heard[role]) == 20:
                    done[role].set()
                    return

        listeners = [
            asyncio.create_task(listen("backend", backend)),
            asyncio.create_task(listen("devops", devops)),
        ]
        # Meeting traffic is not stored: say things once the others are known to listen.
        # (Measured: a member that had subscribed and flushed could still miss every message
        # from a sender that spoke without waiting, about once in 20 runs on a loaded
        # machine; never once the sender had heard it join.)
        async with asyncio.timeout(10):
            await cto.until_present("backend", "devops")
        for i in range(20):
            await cto.say(f"point {i}", type="proposal", reasoning="scale")
        try:
            async with asyncio.timeout(10):
                await asyncio.gather(*listeners)
        except TimeoutError:
            heard_so_far = {role: [m.content for m in said] for role, said in heard.items()}
            raise AssertionError(f"not everything was heard: {heard_so_far}") from None

        # Presence: everyone learns who is in the room from join / present notices.
        async with asyncio.timeout(10):
            await backend.until_present("cto", "devops")
        assert {"cto", "backend", "devops"} <= cto.members
        assert all(m.sender_verified for m in heard["backend"])

    for role in heard:
        assert [m.content for m in heard[role]] == [f"point {i}" for i in range(20)]
        assert {m.sender for m in heard[role]} == {"cto"}
        assert heard[role][0].body["reasoning"] == "scale"


async def test_a_member_sees_others_leave(fleet: FleetUnderTest) -> None:
    seen: list[str] = []
    async with (
        fleet.client(sender="cto") as a,
        fleet.client(sender="backend") as b,
        a.meeting("standup") as cto,
    ):
        async with b.meeting("standup"):
            pass
        async with asyncio.timeout(10):
            async for message in cto:
                seen.append(f"{message.sender}:{message.type}")
                if message.type == "leave":
                    break
    assert seen == ["backend:join", "backend:leave"]
    assert cto.members == {"cto"}


async def test_an_offline_invitee_finds_its_invitation(fleet: FleetUnderTest) -> None:
    async with fleet.client(sender="cto") as client, client.meeting("retro") as room:
        await room.invite("devops", topic="the failed deploy")

    invitations: list[Message] = []
    got = asyncio.Event()
    devops = fleet.agent("devops")

    @devops.on_invitation
    async def invited(msg: Message) -> None:
        invitations.append(msg)
        got.set()

    async with devops:  # starts only now: the invitation waited in AGENT_COMMS
        async with asyncio.timeout(10):
            await got.wait()
    assert invitations[0].body == {
        "meeting_id": "retro",
        "from": "cto",
        "topic": "the failed deploy",
    }
    assert invitations[0].sender == "cto"


async def test_a_member_leaves_even_when_its_leave_notice_fails(fleet: FleetUnderTest) -> None:
    """The subscription goes with the room, whatever happened to the goodbye."""

    class Unlucky(Meeting):
        async def _notice(self, kind: str) -> None:
            if kind == "leave":
                raise OSError("the leave notice could not be sent")
            await super()._notice(kind)

    async with fleet.client(sender="backend") as b, fleet.client(sender="cto") as a:
        async with Unlucky(b, "standup", "backend"):
            pass
        # Its own join, echoed before it left, has arrived (what the server delivers in one
        # read comes after that read's PONG: two round trips, as Connection.settle says).
        await b.conn.settle()
        received_before = b.nc.stats["in_msgs"]
        async with a.meeting("standup") as cto:
            await cto.say("anyone there?")
        await a.conn.settle()
        await b.conn.settle()  # what the server sent b before these round trips has arrived
        assert b.nc.stats["in_msgs"] == received_before


async def test_meeting_words_carry_no_headers_and_a_member_skips_its_own(
    fleet: FleetUnderTest,
) -> None:
    """Who spoke is the subject's token: no header block for every listener to parse. Two
    room objects of one role in one room hear each other, never themselves."""
    raw: list[Msg] = []
    async with (
        fleet.client(sender="cto") as a,
        fleet.client(sender="cto") as b,
        a.meeting("sync") as first,
        b.meeting("sync") as second,
    ):
        await a.nc.subscribe(fleet.spec.subjects.meeting("sync", "cto"), cb=_collect(raw))
        await a.conn.flush()
        heard = await say_until_heard(first, second, "from the first")
        assert heard.content == "from the first" and "member" not in heard.body
        with pytest.raises(FleetbusError, match="member"):
            await first.say("x", member="forged")
        heard = await say_until_heard(second, first, "from the second")
        assert heard.content == "from the second"  # not its own "from the first"
    assert raw and all(m.headers is None for m in raw)


async def say_until_heard(speaker: Meeting, listener: Meeting, text: str) -> MeetingMessage:
    """Say ``text`` until ``listener`` hears a message; that message. (Meeting traffic is not
    stored, and a subscription flushed on one connection can miss the first message another
    connection publishes right after it: docs/performance.md, Meetings.)"""

    async def first_message() -> MeetingMessage:
        async for message in listener:
            if message.type == "message":
                return message
        raise AssertionError("the room closed")

    hearing = asyncio.ensure_future(first_message())
    try:
        async with asyncio.timeout(10):
            while not hearing.done():
                await speaker.say(text)
                await asyncio.wait({hearing}, timeout=0.05)
        return hearing.result()
    finally:
        hearing.cancel()


def _collect(into: list[Msg]) -> Callable[[Msg], Awaitable[None]]:
    async def collect(msg: Msg) -> None:
        into.append(msg)

    return collect


async def test_a_member_that_leaves_before_answering_a_join_says_nothing_after_its_leave(
    fleet: FleetUnderTest,
) -> None:
    """A join is answered with "present" as soon as the loop can; a member that left in
    between must not answer it: a "present" after its "leave" would put it back in the room
    for everyone else."""
    heard: list[str] = []
    async with fleet.client(sender="backend") as backend_client:
        room = backend_client.meeting("handover")
        subject = fleet.spec.subjects.meeting("handover")

        async def record(msg: Msg) -> None:
            said = MeetingMessage.parse(fleet.spec.subjects, msg.subject, msg.data, {})
            heard.append(said.type if said is not None else "?")

        watcher = await backend_client.nc.subscribe(f"{subject}.*", cb=record)
        await room.__aenter__()
        join = Msg(
            backend_client.nc,
            subject=fleet.spec.subjects.meeting("handover", "cto"),
            data=b'{"from":"cto","type":"join"}',
        )
        room._on_message(join)  # heard, its answer not sent yet
        await room.__aexit__(None, None, None)
        await backend_client.nc.flush()  # a round trip: an answer due would be sent by now
        # Published after all of it on the same connection: once it is heard, so is the rest.
        await backend_client.nc.publish(f"{subject}.cto", b'{"from":"cto","type":"marker"}')
        await eventually(lambda: "marker" in heard, 10, "the marker")
        await watcher.unsubscribe()
    assert heard == ["join", "leave", "marker"]  # its own join; no "present" at all


@contextlib.asynccontextmanager
async def flooded(
    fleet: FleetUnderTest, room: str, line: object, count: int
) -> AsyncIterator[Meeting]:
    """backend's room in ``room`` once cto has said ``line`` ``count`` times (``n`` 0 to
    ``count - 1``), then a 5,000-character end (``n`` = ``count``), and nobody read."""
    async with (
        fleet.client(sender="cto") as cto_client,
        fleet.client(sender="backend") as backend_client,
        cto_client.meeting(room) as cto,
        backend_client.meeting(room) as backend,
    ):
        async with asyncio.timeout(10):
            await cto.until_present("backend")
        for i in range(count):
            await cto.say(line, n=i)
        await cto.say("e" * 5000, n=count)  # the end: its size is no notice's, no big line's

        async def heard_the_end() -> bool:  # the end is the last queued (none may be yet)
            sizes = backend._inbox.weights
            return bool(sizes) and 5000 < sizes[-1] < 100_000

        await eventually(heard_the_end, what="backend's room heard every line")
        yield backend


async def said_until(room: Meeting, last: int) -> list[int]:
    """The ``n`` of each line read from ``room`` up to ``last``."""
    said: list[int] = []
    async with asyncio.timeout(10):
        async for message in room:
            if not message.notice:
                said.append(message.body["n"])
            if said and said[-1] == last:
                return said
    return said


async def test_a_member_that_does_not_read_keeps_the_latest_sixteen_megabytes(
    fleet: FleetUnderTest,
) -> None:
    """Any member may say lines of a megabyte; a room nobody reads keeps the newest of them,
    at most 16 MiB on the wire (and 10,000 lines), and a reader then gets them in order."""
    async with flooded(fleet, "flood", "x" * 900_000, 30) as backend:
        assert backend._inbox.held <= 16 * 1024 * 1024
        said = await said_until(backend, 30)
    assert 10 <= len(said) < 31  # the oldest dropped, not all
    assert said == list(range(31 - len(said), 31))  # the newest, in order


@pytest.mark.parametrize(
    "body",
    [b'{"type": ["a"], "content": 1}', b'{"time": {"a": 1}}', b'{"from": [1, 2]}'],
)
def test_a_body_whose_type_time_or_sender_is_not_text_is_not_meeting_traffic(
    fleet: FleetUnderTest, body: bytes
) -> None:
    subject = fleet.spec.subjects.meeting("m")
    assert MeetingMessage.parse(fleet.spec.subjects, subject, body, {}) is None


async def test_an_unread_room_keeps_its_bound_in_memory_not_only_on_the_wire(
    fleet: FleetUnderTest,
) -> None:
    """The 16 MiB bound counted wire bytes while lines were kept parsed: a line of empty
    objects takes some twenty-four times its size decoded, and a member's twenty megabyte
    lines held about 400 MB in a room nobody read. Long lines are kept as they came."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        async with flooded(fleet, "flood-objects", [{}] * 300_000, 20) as backend:  # ~900 KB
            held = tracemalloc.get_traced_memory()[0] - before
            tracemalloc.stop()
            said = await said_until(backend, 20)
    finally:
        tracemalloc.stop()
    assert held < 40 * 1024 * 1024, f"{held / 2**20:.0f} MiB held"
    assert said[-1] == 20 and len(said) >= 10  # parsed when read, the newest in order
