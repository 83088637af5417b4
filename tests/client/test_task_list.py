"""The assigner's entry in the task list: written for a task that waits, not for every task."""

from __future__ import annotations

import asyncio

import pytest

from fleetbus.runtime import Agent, Task
from fleetbus.tasks import index
from fleetbus.testing import eventually
from fleetbus.testing.fleets import FleetUnderTest


async def _stored_entries(fleet: FleetUnderTest) -> int:
    """How many entries the task list's stream has stored, ever (its last sequence)."""
    stream = fleet.spec.stream_for(fleet.spec.subjects.task_index("r", "a", "t"))
    assert stream is not None
    async with fleet.client() as admin:
        info = await admin.nc.jetstream().stream_info(stream)
    return info.state.last_seq


def _holding(agent: Agent) -> tuple[asyncio.Event, asyncio.Event]:
    """A task handler for ``agent`` that holds each task until released (one task at a
    time: the next waits): the events (running, release)."""
    running, release = asyncio.Event(), asyncio.Event()

    @agent.on_task
    async def work(task: Task) -> str:
        running.set()
        await release.wait()
        return "done"

    return running, release


async def _listed_as(fleet: FleetUnderTest, task_id: str, state: str) -> None:
    """Until the admin's task list shows ``task_id`` in ``state``."""
    async with fleet.client() as admin:

        async def listed() -> bool:
            entry = await admin.find_task(task_id)
            return entry is not None and entry.state == state

        await eventually(listed, 10, f"{task_id} listed as {state}")


async def test_a_task_an_agent_ends_at_once_is_listed_by_the_agent_alone(
    fleet: FleetUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agent's entry says all there is; the assigner's ``submitted`` would be a second
    write (a publish, and a message the server stores) for every quick task."""
    monkeypatch.setattr(index, "SUBMITTED_AFTER", 30.0)  # what a slow machine takes, and more
    agent = fleet.agent("backend", accepted_after=30.0)

    @agent.on_task
    async def work(task: Task) -> str:
        return "done"

    async with agent, fleet.client(sender="cto") as cto:
        handle = await cto.assign("backend", {"n": 1})
        assert await handle.result(timeout=20) == "done"
    await _listed_as(fleet, handle.id, "completed")
    assert await _stored_entries(fleet) == 1


async def test_a_task_left_queued_is_listed_when_its_assigner_closes(
    fleet: FleetUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An assigner that closes before its tasks' entries fell due (a command line that
    assigns and exits) writes them as it closes: a task it left queued is listed."""
    monkeypatch.setattr(index, "SUBMITTED_AFTER", 30.0)
    agent = fleet.agent("backend")
    running, release = _holding(agent)
    async with agent:
        async with fleet.client(sender="cto") as cto:
            await cto.assign("backend", {"n": 1})
            await asyncio.wait_for(running.wait(), 15)
            queued = await cto.assign("backend", {"n": 2})  # one at a time: it waits
        await _listed_as(fleet, queued.id, "submitted")
        release.set()


async def test_what_an_agents_handler_left_queued_is_listed_when_the_agent_stops(
    fleet: FleetUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An agent's handlers assign through ``agent.fleet``: its stop writes what they left
    queued, as a client's close does."""
    monkeypatch.setattr(index, "SUBMITTED_AFTER", 30.0)
    assigned: list[str] = []
    backend, cto = fleet.agent("backend"), fleet.agent("cto")
    running, release = _holding(backend)

    @cto.on_task
    async def plan(task: Task) -> str:
        handle = await cto.fleet.assign("backend", {"step": task.body["step"]})
        assigned.append(handle.id)
        return handle.id

    async with backend:
        async with cto, fleet.client(sender="ceo") as ceo:
            for step in (1, 2):  # the second waits behind the first
                await (await ceo.assign("cto", {"step": step})).result(timeout=15)
            await asyncio.wait_for(running.wait(), 15)
        await _listed_as(fleet, assigned[1], "submitted")
        release.set()
