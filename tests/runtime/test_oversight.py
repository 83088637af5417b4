"""Oversight: the seed's CEO watches every inbox without taking messages from their owners."""

from __future__ import annotations

import asyncio

import pytest

from fleetbus import FleetbusError, Message
from fleetbus.client.fleet import Observed
from fleetbus.testing.fleets import FleetUnderTest


async def test_ceo_observes_inboxes_without_stealing_them(fleet: FleetUnderTest) -> None:
    observed: list[Observed] = []
    received: list[Message] = []
    all_seen = asyncio.Event()
    both_owned = asyncio.Event()

    ceo = fleet.agent("ceo")

    @ceo.on_observe("agents.*.inbox")
    async def watch(item: Observed) -> None:
        observed.append(item)
        if len(observed) == 2:
            all_seen.set()

    backend = fleet.agent("backend")
    cso = fleet.agent("cso")

    async def owner(msg: Message) -> None:
        received.append(msg)
        if len(received) == 2:
            both_owned.set()

    backend.on_message(owner)
    cso.on_message(owner)

    async with ceo, backend, cso, fleet.client(sender="cto") as client:
        await client.message("backend", {"text": "pagination is next"})
        await client.message("cso", {"text": "please review PR 143"})
        async with asyncio.timeout(20):
            await all_seen.wait()
            await both_owned.wait()

    assert sorted(o.body["text"] for o in observed if o.body) == [
        "pagination is next",
        "please review PR 143",
    ]
    assert {o.sender for o in observed} == {"cto"}
    assert sorted(m.body["text"] for m in received) == [
        "pagination is next",
        "please review PR 143",
    ]
    # The owners' durable consumers acknowledged their messages; nothing is left pending.
    async with fleet.client() as client:
        js = client.nc.jetstream()
        stream = fleet.spec.stream_for(fleet.spec.subjects.inbox("backend"))
        for role in ("BACKEND_INBOX", "CSO_INBOX"):
            info = await js.consumer_info(stream, role)
            assert info.num_pending == 0
            assert info.num_ack_pending == 0
            assert info.delivered.stream_seq > 0


async def test_observing_needs_oversight(fleet: FleetUnderTest) -> None:
    backend = fleet.agent("backend")

    @backend.on_observe("agents.*.inbox")
    async def snoop(item: Observed) -> None:  # pragma: no cover - never runs
        pass

    with pytest.raises(FleetbusError, match="has no oversight"):
        await backend.start()
