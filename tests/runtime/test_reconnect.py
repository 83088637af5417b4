"""A server restart under a running agent: it reconnects by itself and carries on, and
nothing that was acknowledged is lost."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from fleetbus.fleet import seed_fleet
from fleetbus.runtime import Task
from fleetbus.server.process import NatsServer
from fleetbus.testing import run_nats_server
from fleetbus.testing.fleets import FleetUnderTest, isolate, provision_fleet

from .support import raw_client, updates


@pytest.mark.slow
async def test_an_agent_rides_out_a_server_restart(tmp_path: Path) -> None:
    data = tmp_path / "server"
    runs: list[str] = []
    with run_nats_server(data) as first_server:  # a port it binds itself: nobody's in between
        port = first_server.port
        fleet = FleetUnderTest(isolate(seed_fleet()), first_server.url)
        await provision_fleet(fleet.url, fleet.spec)
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
            await asyncio.to_thread(first_server.stop)

            second_server = NatsServer(data_dir=data, host="127.0.0.1", port=port, monitor_port=0)
            await asyncio.to_thread(second_server.start)
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
