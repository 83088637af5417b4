"""``on_events(pattern, batch=N)``: lists of events, acknowledged only once the handler
returns, each event retried or dead-lettered on its own attempt count."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from fleetbus.errors import FleetbusError
from fleetbus.runtime import Event
from fleetbus.testing.fleets import FleetUnderTest

from .support import (
    consumer_info,
    dead_letters,
    eventually,
    raw_client,
    seed_spec,
    wait_dead_letters,
)


async def test_every_event_arrives_in_lists_and_is_acked_only_after_the_handler_returns(
    fleet: FleetUnderTest,
) -> None:
    agent = fleet.agent("cso", dead_letter_copier=False)
    lists: list[list[Event]] = []
    first_call = asyncio.Event()
    release = asyncio.Event()

    @agent.on_events(">", batch=50)
    async def audit(events: list[Event]) -> None:
        lists.append(events)
        first_call.set()
        await release.wait()

    async with fleet.client(sender="devops") as client, raw_client(fleet) as nc:
        result = await client.emit_many("audit", "entry", [{"n": i} for i in range(120)])
        async with agent:
            await asyncio.wait_for(first_call.wait(), 15)
            held = await consumer_info(nc, fleet, "cso", "events")
            # the handler has not returned: nothing of its list is acknowledged
            assert held["num_ack_pending"] >= len(lists[0])
            assert held["ack_floor"]["stream_seq"] < lists[0][0].stream_seq
            release.set()

            async def all_acked() -> bool:
                info = await consumer_info(nc, fleet, "cso", "events")
                return info["num_ack_pending"] == 0 and info["num_pending"] == 0

            await eventually(all_acked, what="every event acknowledged")
    seen = [e.body["n"] for events in lists for e in events]
    assert sorted(seen) == list(range(120))  # each once: none was redelivered
    assert all(1 <= len(events) <= 50 for events in lists)
    assert [e.stream_seq for events in lists for e in events] == sorted(
        ack.seq for ack in result
    )  # in the order they were stored
    assert all(e.domain == "audit" and e.type == "entry" for events in lists for e in events)


async def test_a_failing_list_is_retried_event_by_event(fleet: FleetUnderTest) -> None:
    agent = fleet.agent("cso", dead_letter_copier=False)
    attempts: dict[int, list[int]] = {}
    calls = 0

    @agent.on_events(">", batch=100)
    async def audit(events: list[Event]) -> None:
        nonlocal calls
        calls += 1
        for e in events:
            attempts.setdefault(e.body["n"], []).append(e.attempt)
        if calls == 1:
            raise RuntimeError("the model timed out")

    async with fleet.client(sender="devops") as client, raw_client(fleet) as nc:
        await client.emit_many("audit", "entry", [{"n": i} for i in range(10)])
        async with agent:

            async def all_acked() -> bool:
                info = await consumer_info(nc, fleet, "cso", "events")
                handled = all(attempts.get(n, [])[-1:] != [] for n in range(10))
                return handled and info["num_ack_pending"] == 0 and info["num_pending"] == 0

            await eventually(all_acked, what="every event handled and acknowledged")
        assert await dead_letters(nc, fleet) == []
    first = [n for n, seen in attempts.items() if seen[0] == 1]
    assert sorted(attempts) == list(range(10))
    assert first == sorted(first)
    # the events of the failed call came back, each on its own second attempt
    failed = [n for n, seen in attempts.items() if len(seen) == 2]
    assert failed and all(attempts[n] == [1, 2] for n in failed)


async def test_an_event_on_its_last_attempt_is_dead_lettered_alone(
    make_fleet: Callable[..., FleetUnderTest],
) -> None:
    fleet = make_fleet(seed_spec(cso_events={"max_deliver": 2}))
    agent = fleet.agent("cso", dead_letter_copier=False)
    handled: list[tuple[str, int]] = []
    failed_once = asyncio.Event()

    @agent.on_events(">", batch=100)
    async def audit(events: list[Event]) -> None:
        if any(e.body["kind"] == "bad" for e in events):
            failed_once.set()
            raise ValueError("cannot parse this entry")
        handled.extend((e.body["kind"], e.attempt) for e in events)

    async with fleet.client(sender="devops") as client, raw_client(fleet) as nc, agent:
        bad = await client.emit("audit", "entry", {"kind": "bad"})
        await asyncio.wait_for(failed_once.wait(), 15)
        # good events that may share a list with the bad one's last attempt
        await client.emit_many("audit", "entry", [{"kind": "good"} for _ in range(3)])

        async def settled() -> bool:
            info = await consumer_info(nc, fleet, "cso", "events")
            return len(handled) >= 3 and info["num_ack_pending"] == 0 and info["num_pending"] == 0

        await eventually(settled, what="the good events handled, the bad one given up")
        letters = await dead_letters(nc, fleet)
    assert [letter.headers.get("Fleet-Dlq-Sequence") for letter in letters] == [str(bad.seq)]
    assert "failed on all 2 attempts" in letters[0].headers["Fleet-Dlq-Reason"]
    assert "ValueError: cannot parse this entry" in letters[0].headers["Fleet-Dlq-Error"]
    assert sorted(kind for kind, _ in handled) == ["good", "good", "good"]


async def test_on_event_and_on_events_do_not_mix(fleet: FleetUnderTest) -> None:
    agent = fleet.agent("cso")

    @agent.on_event("deployment.>")
    async def one(event: Event) -> None:
        pass

    @agent.on_events("security.>")
    async def many(events: list[Event]) -> None:
        pass

    with pytest.raises(FleetbusError, match="both on_event and on_events"):
        await agent.start()
    with pytest.raises(FleetbusError, match="at least one event"):
        agent.on_events(">", batch=0)


@pytest.mark.parametrize("stubborn", [False, True], ids=["hangs", "catches-its-cancel"])
async def test_a_list_whose_handler_hangs_fails_at_the_roles_budget(
    make_fleet: Callable[..., FleetUnderTest], stubborn: bool
) -> None:
    """A batch handler that never returned (a model call that hangs) was never cancelled:
    its events' heartbeats held them, and at max_ack_pending the role's events, for good.
    It is cancelled at the role's task_budget, as `on_event` handlers are, and its events
    are tried again, then dead-lettered; one that catches its cancellation and goes on is
    left running an ack wait later."""
    fleet = make_fleet(
        seed_spec(cso_events={"max_deliver": 2, "ack_wait": "1s"}, budgets={"cso": "1s"})
    )
    agent = fleet.agent("cso", dead_letter_copier=False, retry_base=0.05, retry_max=0.1)
    calls: list[list[int]] = []

    done = asyncio.Event()

    @agent.on_events(">", batch=100)
    async def audit(events: list[Event]) -> None:
        calls.append([e.attempt for e in events])
        while not done.is_set():
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if not stubborn:
                    raise

    try:
        async with fleet.client(sender="devops") as client, raw_client(fleet) as nc, agent:
            await client.emit_many("audit", "entry", [{"n": n} for n in range(3)])
            letters = await wait_dead_letters(nc, fleet, 3, timeout=30)
    finally:
        done.set()
    assert {letter.headers["Fleet-Dlq-Reason"] for letter in letters} == {
        "failed on all 2 attempts (max_deliver 2)"
    }
    assert all("task_budget of 1s" in letter.headers["Fleet-Dlq-Error"] for letter in letters)
    assert sorted(a for call in calls for a in call) == [1, 1, 1, 2, 2, 2]
