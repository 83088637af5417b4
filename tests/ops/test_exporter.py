"""The exporter against a real server: scraped over HTTP as Prometheus would."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fleetbus import Task
from fleetbus.js.connection import connect
from fleetbus.ops.exporter import FleetExporter
from fleetbus.testing import eventually
from fleetbus.testing.fleets import FleetUnderTest
from scraping import scrape, value


@asynccontextmanager
async def exporting(fleet: FleetUnderTest, interval: float = 0.1) -> AsyncIterator[str]:
    """The exporter of ``fleetbus metrics`` in this process, on a free port: its URL."""
    conn = await connect(fleet.connection)
    try:
        exporter = FleetExporter(conn, fleet.spec, interval=interval)
        with exporter.serve("127.0.0.1", 0) as url:
            async with asyncio.TaskGroup() as tg:
                refresher = tg.create_task(exporter.refresh_forever())
                try:
                    yield url
                finally:
                    refresher.cancel()
    finally:
        await conn.drain()


def stream(fleet: FleetUnderTest, name: str) -> str:
    return next(s for s in fleet.spec.streams if s.startswith(f"{name}_"))


async def test_a_scrape_shows_the_fleet(fleet: FleetUnderTest) -> None:
    events = stream(fleet, "EVENTS")
    async with exporting(fleet) as url:
        await eventually(
            lambda: scrape_has(url, "fleetbus_exporter_last_refresh_timestamp_seconds"),
            10,
            "a first snapshot",
        )
        before = await scrape(url)
        for name in fleet.spec.streams:
            assert value(before, "fleetbus_stream_exists", stream=name) == 1, name
        for c in fleet.spec.consumers():
            labels = {"stream": c.stream, "consumer": c.name, "role": c.role}
            assert value(before, "fleetbus_consumer_exists", **labels) == 1, c.name
        for role in fleet.spec.roles:
            assert value(before, "fleetbus_role_serving", role=role) == 0, role
            assert value(before, "fleetbus_agents", role=role, state="running") == 0, role
        assert value(before, "fleetbus_dead_letters") == 0
        assert value(before, "fleetbus_exporter_scrape_errors_total") == 0
        first = value(before, "fleetbus_stream_last_sequence", stream=events)
        assert first is not None

        async with fleet.client(sender="devops") as client:
            for i in range(3):
                await client.emit("deployment", "completed", {"n": i})

        async def three_more() -> bool:
            now = await scrape(url)
            return value(now, "fleetbus_stream_last_sequence", stream=events) == first + 3

        await eventually(three_more, 10, "three events counted")


async def scrape_has(url: str, name: str) -> bool:
    return any(n == name for n, _ in await scrape(url))


async def test_pending_rises_with_no_agent_and_falls_when_one_runs(
    fleet: FleetUnderTest,
) -> None:
    comms = stream(fleet, "AGENT_COMMS")
    backend = {"stream": comms, "consumer": "BACKEND_TASKS", "role": "backend"}

    async def pending(expected: int) -> bool:
        return value(await scrape(url), "fleetbus_consumer_pending", **backend) == expected

    async with exporting(fleet) as url, fleet.client(sender="cto") as client:
        handles = [await client.assign("backend", {"n": i}) for i in range(3)]
        await eventually(lambda: pending(3), 10, "3 tasks pending")
        found = await scrape(url)
        assert value(found, "fleetbus_role_serving", role="backend") == 0
        assert value(found, "fleetbus_consumer_idle", **backend) == 1  # kept, not an alert

        agent = fleet.agent("backend")

        @agent.on_task
        async def done(task: Task) -> str:
            return "ok"

        async with agent:
            for handle in handles:
                assert await handle.result(timeout=15) == "ok"
            await eventually(lambda: pending(0), 10, "the backlog worked off")

            async def serving() -> bool:
                found = await scrape(url)
                return (
                    value(found, "fleetbus_role_serving", role="backend") == 1
                    and value(found, "fleetbus_agents", role="backend", state="running") == 1
                    and value(found, "fleetbus_consumer_idle", **backend) == 0
                )

            await eventually(serving, 10, "backend served")


async def test_a_failed_refresh_keeps_the_last_snapshot_and_counts(
    fleet: FleetUnderTest,
) -> None:
    conn = await connect(fleet.connection)
    exporter = FleetExporter(conn, fleet.spec, clock=lambda: 1_700_000_000.0)
    with exporter.serve("127.0.0.1", 0) as url:
        assert await exporter.refresh()
        await conn.drain()  # the server is out of reach from now on
        assert not await exporter.refresh()
        found = await scrape(url)
    assert value(found, "fleetbus_exporter_scrape_errors_total") == 1
    assert value(found, "fleetbus_exporter_last_refresh_timestamp_seconds") == 1_700_000_000.0
    assert value(found, "fleetbus_dead_letters") == 0  # the last good snapshot, still served
