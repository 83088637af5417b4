"""Events fan out to every subscribing role, late joiners replay history; inbox messages
wait for an agent that is not running yet."""

from __future__ import annotations

import asyncio

import pytest

from fleetbus.errors import FleetbusError
from fleetbus.runtime import Event, Message
from fleetbus.testing.fleets import FleetUnderTest

from .support import consumer_info, eventually, raw_client


async def test_events_fan_out_to_each_role_and_replay_for_late_joiners(
    fleet: FleetUnderTest,
) -> None:
    devops_seen: list[Event] = []
    cso_seen: list[Event] = []
    devops = fleet.agent("devops")
    cso = fleet.agent("cso")

    @devops.on_event("deployment.>")
    async def on_deployment(event: Event) -> None:
        devops_seen.append(event)

    @cso.on_event(">")
    async def on_anything(event: Event) -> None:
        cso_seen.append(event)

    async with fleet.client(sender="devops") as client, raw_client(fleet) as nc:
        # before any agent runs: a late joiner still gets it (deliver all)
        early = await client.emit("deployment", "started", {"service": "api", "version": 7})
        async with devops, cso:
            done = await client.emit("deployment", "completed", {"service": "api", "version": 7})
            audit = await client.emit("security", "scan", {"findings": 0})

            def all_seen() -> bool:
                return len(devops_seen) >= 2 and len(cso_seen) >= 3

            await eventually(all_seen, what="every event to arrive")

            async def settled() -> bool:
                for role in ("devops", "cso"):
                    info = await consumer_info(nc, fleet, role, "events")
                    if info["num_ack_pending"] or info["num_pending"]:
                        return False
                return True

            await eventually(settled, what="both consumers to ack everything")
            infos = {r: await consumer_info(nc, fleet, r, "events") for r in ("devops", "cso")}

    assert sorted(e.stream_seq for e in devops_seen) == [early.seq, done.seq]
    assert sorted(e.stream_seq for e in cso_seen) == [early.seq, done.seq, audit.seq]
    by_seq = {e.stream_seq: e for e in devops_seen}
    assert (by_seq[done.seq].domain, by_seq[done.seq].type) == ("deployment", "completed")
    assert by_seq[done.seq].body == {"service": "api", "version": 7}
    assert by_seq[done.seq].sender == "devops"
    assert all(e.attempt == 1 for e in devops_seen + cso_seen)
    for info in infos.values():
        assert info["num_redelivered"] == 0
    assert infos["devops"]["delivered"]["consumer_seq"] == 2
    assert infos["cso"]["delivered"]["consumer_seq"] == 3


async def test_an_event_pattern_outside_the_roles_filters_fails_at_start(
    fleet: FleetUnderTest,
) -> None:
    devops = fleet.agent("devops")

    @devops.on_event("security.>")
    async def on_security(event: Event) -> None:
        raise AssertionError("never called")

    with pytest.raises(FleetbusError, match=r"security\.>.*roles\.devops\.events\.filters"):
        await devops.start()


async def test_inbox_messages_wait_for_the_agent_and_name_their_sender(
    fleet: FleetUnderTest,
) -> None:
    received: list[Message] = []
    both = asyncio.Event()
    backend = fleet.agent("backend")

    @backend.on_message
    async def on_message(msg: Message) -> None:
        received.append(msg)
        if len(received) == 2:
            both.set()

    async with fleet.client(sender="cto") as client, raw_client(fleet) as nc:
        ack = await client.message("backend", {"text": "pagination is next"})
        raw = await nc.jetstream().publish(
            fleet.spec.subjects.inbox("backend"), b'{"text": "from a plain client"}'
        )
        async with backend:  # starts after both were sent: catch-up
            async with asyncio.timeout(15):
                await both.wait()

    by_seq = {m.stream_seq: m for m in received}
    assert set(by_seq) == {ack.seq, raw.seq}
    assert by_seq[ack.seq].sender == "cto"
    assert by_seq[ack.seq].body == {"text": "pagination is next"}
    assert by_seq[raw.seq].sender is None
    assert by_seq[raw.seq].body == {"text": "from a plain client"}
    assert by_seq[ack.seq].subject == fleet.spec.subjects.inbox("backend", "cto")
    assert by_seq[ack.seq].sender_verified  # from the subject token, not the header
    assert not by_seq[raw.seq].sender_verified


async def test_a_handler_that_waits_does_not_hold_up_the_events_behind_it(
    fleet: FleetUnderTest,
) -> None:
    """Handlers that return without waiting run one after another in one worker; one that
    waits hands the events behind it to more workers. Each handler here returns only once
    all five run at the same time, so one waiting handler holding up the rest never ends."""
    cso = fleet.agent("cso")
    running = 0
    peak = 0
    all_in = asyncio.Event()
    handled: list[int] = []

    @cso.on_event(">")
    async def on_event(event: Event) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        if running == 5:
            all_in.set()
        await all_in.wait()
        running -= 1
        handled.append(event.body["n"])

    async with fleet.client(sender="devops") as client:
        for n in range(5):
            await client.emit("deployment", "started", {"n": n})
        async with cso:
            await eventually(lambda: len(handled) == 5, what="all five events handled")
    assert peak == 5
    assert sorted(handled) == [0, 1, 2, 3, 4]
