"""A server restart under a running agent: it reconnects by itself and carries on, and
nothing that was acknowledged is lost."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from fleetbus.fleet import seed_fleet
from fleetbus.runtime import Task
from fleetbus.server.process import NatsServer
from fleetbus.testing import eventually, run_nats_server
from fleetbus.testing.fleets import FleetUnderTest, isolate, provision_fleet

from .support import raw_client, updates


async def seed_on(server: NatsServer) -> FleetUnderTest:
    """The seed fleet, isolated and provisioned on ``server``."""
    fleet = FleetUnderTest(isolate(seed_fleet()), server.url)
    await provision_fleet(fleet.url, fleet.spec)
    return fleet


async def restart(server: NatsServer, data: Path, *, down: float = 0.0) -> NatsServer:
    """``server`` stopped, ``down`` seconds of nothing, then a server on its port and data."""
    await asyncio.to_thread(server.stop)
    await asyncio.sleep(down)
    again = NatsServer(data_dir=data, host="127.0.0.1", port=server.port, monitor_port=0)
    await asyncio.to_thread(again.start)
    return again


@pytest.mark.slow
async def test_an_agent_rides_out_a_server_restart(tmp_path: Path) -> None:
    data = tmp_path / "server"
    runs: list[str] = []
    with run_nats_server(data) as first_server:  # a port it binds itself: nobody's in between
        fleet = await seed_on(first_server)
        # The default 30 s long poll: the server forgets a pull request across a restart,
        # so only waking the poll on reconnect gets the next task promptly.
        agent = fleet.agent("backend", poll=30.0)

        @agent.on_task
        async def implement(task: Task) -> str:
            runs.append(task.id)
            return f"done {task.body['n']}"

        await agent.start()
        try:
            async with fleet.client() as client:
                before = await client.assign("backend", {"n": 1})
                assert await before.result(timeout=15) == "done 1"
            second_server = await restart(first_server, data)
            try:
                assert second_server.url == fleet.url
                async with fleet.client() as client, raw_client(fleet) as nc:
                    after = await client.assign("backend", {"n": 2})
                    assert await after.result(timeout=15) == "done 2"
                    kept = await updates(nc, fleet, before.id)
            finally:
                await agent.stop()
                await asyncio.to_thread(second_server.stop)
        finally:
            await agent.stop()

    assert runs == [before.id, after.id]
    assert [u.state for u in kept if u.state != "accepted"] == ["completed"]
    assert kept[-1].result == "done 1"


@pytest.mark.slow
async def test_a_task_held_through_an_outage_past_its_lease_is_known_to_have_lost_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The server is down longer than the ack wait while a handler runs: the heartbeats sent
    meanwhile were only kept by nats-py for later, which renews nothing, and the server hands
    the task out again. The attempt counted them as sent and went on as the holder (a failure
    then naked a message another agent was running). Now the lost lease is said on the
    reconnect, and the task still ends with one stored outcome."""
    data = tmp_path / "server"
    release = asyncio.Event()
    started = asyncio.Event()
    with run_nats_server(data) as first_server:
        fleet = await seed_on(first_server)
        agent = fleet.agent("backend", poll=30.0)

        @agent.on_task
        async def implement(task: Task) -> str:
            started.set()
            await release.wait()
            return f"done by attempt {task.attempt}"

        async with agent:
            async with fleet.client(sender="cto") as client:
                handle = await client.assign("backend", {"n": 1})
                await asyncio.wait_for(started.wait(), 15)
            second_server = await restart(first_server, data, down=6)  # the ack wait is 4 s
            try:
                await eventually(lambda: "without a heartbeat" in caplog.text, 20, "the warning")
                release.set()
                async with fleet.client(sender="cto") as client:
                    ended = await client.task(handle.id, "backend").result(timeout=20)
                    outcome = await client.task(handle.id, "backend").outcome()
            finally:
                await agent.stop()
                await asyncio.to_thread(second_server.stop)
    assert ended.startswith("done by attempt") and outcome is not None
    assert "backend" in caplog.text and handle.id in caplog.text
