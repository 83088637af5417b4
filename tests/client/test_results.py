"""TaskHandle.result(): live updates for tasks this client assigned, stored ones otherwise."""

from __future__ import annotations

import asyncio

import pytest

import fleetbus.client.fleet as fleet_module
import fleetbus.client.handle as handle_module
from fleetbus import Task
from fleetbus.testing import eventually
from fleetbus.testing.fleets import FleetUnderTest
from fleetbus.wire.updates import TaskUpdate


async def test_result_follows_live_updates_and_creates_no_consumer(
    fleet: FleetUnderTest,
) -> None:
    backend = fleet.agent("backend")

    @backend.on_task
    async def work(task: Task) -> dict[str, int]:
        return {"n": task.body["n"]}

    tasks = fleet.spec.stream_for(fleet.spec.subjects.task_records())
    async with backend, fleet.client(sender="cto") as client:
        handles = [await client.assign("backend", {"n": i}) for i in range(20)]
        assert [await h.result(timeout=20) for h in handles] == [{"n": i} for i in range(20)]
        info = await client.nc.jetstream().stream_info(tasks)
    # No reader per task: the live subscription saw every completion; only the fleet's own
    # durable consumers (CTO_UPDATES) are on the stream.
    durables = [c for c in fleet.spec.consumers() if c.stream == tasks]
    assert info.state.consumer_count == len(durables)


async def test_a_missed_live_update_is_found_in_the_stored_ones(
    fleet: FleetUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(handle_module, "LIVE_CHECK", 0.2)
    release = asyncio.Event()
    backend = fleet.agent("backend")

    @backend.on_task
    async def work(task: Task) -> str:
        await release.wait()
        return "done"

    async with backend, fleet.client(sender="cto") as client:
        handle = await client.assign("backend", {})
        assert handle._follower is not None
        handle._follower.stop()  # as if a reconnect had dropped the live messages
        release.set()
        assert await handle.result(timeout=20) == "done"


async def test_a_duplicate_assignment_reads_the_stored_result(fleet: FleetUnderTest) -> None:
    backend = fleet.agent("backend")

    @backend.on_task
    async def work(task: Task) -> str:
        return task.id

    async with backend, fleet.client(sender="cto") as client:
        first = await client.assign("backend", {}, task_id="task-twice")
        assert await first.result(timeout=20) == "task-twice"
        again = await client.assign("backend", {}, task_id="task-twice")
        assert again.duplicate
        assert await again.result(timeout=20) == "task-twice"
        # Its task list entry stays completed: the second `submitted` is not kept. (A later
        # task's entry, sent after it on the same connection, is listed after it is handled.)
        await client.assign("backend", {}, task_id="task-after")
        async with fleet.client() as admin:
            await eventually(lambda: admin.find_task("task-after"), what="the later entry")
            listed = await admin.find_task("task-twice")
    assert listed is not None and listed.state == "completed"


async def test_result_takes_the_servers_word_that_the_outcome_is_stored(
    fleet: FleetUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stream republishes each outcome once stored: ``result()`` returns on that notice
    and reads nothing back from the stream. (The wait for the notice after a live outcome is
    made long, so that a loaded machine cannot turn it into a read.)"""
    monkeypatch.setattr(handle_module, "NOTICE_WAIT", 3.0)
    backend = fleet.agent("backend")

    @backend.on_task
    async def work(task: Task) -> int:
        return int(task.body["n"])

    async with backend, fleet.client(sender="cto") as client:
        handles = [await client.assign("backend", {"n": i}) for i in range(10)]
        reads: list[str] = []
        read_back = handles[0].records.last

        async def counted(*args: object, **kwargs: object) -> object:
            reads.append(str(args))
            return await read_back(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(handles[0].records, "last", counted)
        assert [await h.result(timeout=20) for h in handles] == list(range(10))
    assert reads == []


async def test_without_the_stored_notice_the_result_is_read_back(fleet: FleetUnderTest) -> None:
    """A stream provisioned without the republish (an older fleetbus, a hand edit): the live
    outcome is checked against the stored one by direct get, as before."""
    tasks = fleet.spec.stream_for(fleet.spec.subjects.task_records())
    backend = fleet.agent("backend")

    @backend.on_task
    async def work(task: Task) -> str:
        return "done"

    async with backend, fleet.client(sender="cto") as client:
        js = client.nc.jetstream()
        config = (await js.stream_info(tasks)).config
        assert config.republish is not None
        config.republish = None
        await js.update_stream(config)
        handle = await client.assign("backend", {})
        assert await handle.result(timeout=20) == "done"


async def test_after_the_first_notice_outcomes_no_longer_come_live(
    fleet: FleetUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the stream's notices are seen, the live outcomes would only cost the assigner a
    message per task: the client stops taking them. Each task then brings it two messages,
    the task's PubAck and the notice (three while it took the live outcome as well)."""
    # Nothing else may reach the client on a slow machine: assign() re-reads whether a
    # backend agent is alive once a second, and a handler past accepted_after sends an update.
    monkeypatch.setattr(fleet_module, "LIVENESS_CACHE", 600.0)
    backend = fleet.agent("backend", accepted_after=600)

    @backend.on_task
    async def work(task: Task) -> int:
        return int(task.body["n"])

    async with backend, fleet.client(sender="cto") as client:
        first = await client.assign("backend", {"n": -1})
        assert await first.result(timeout=20) == -1
        await asyncio.sleep(0.1)  # the live outcomes' unsubscribe runs in the background
        await client.conn.flush()
        before = client.nc.stats["in_msgs"]
        handles = [await client.assign("backend", {"n": n}) for n in range(10)]
        assert [await h.result(timeout=20) for h in handles] == list(range(10))
        assert client.nc.stats["in_msgs"] - before == 2 * 10


async def test_an_input_request_seen_live_is_answered_before_the_stream_has_it(
    fleet: FleetUnderTest,
) -> None:
    """Subscribers hear a record a moment before the stream has stored it, so ``updates()``
    can show an input request that ``respond()`` does not find stored yet: it reads again
    shortly instead of refusing. Here the request's record is stored 50 ms after the handle
    has seen it live (no agent runs: backend's client writes it as the agent would)."""
    async with fleet.client(sender="cto") as cto, fleet.client(sender="backend") as backend:
        handle = await cto.assign("backend", {"title": "paginate"})
        request = TaskUpdate(
            task_id=handle.id,
            state="input-required",
            agent="backend",
            attempt=1,
            time=TaskUpdate.now(),
            request="1",
            data={"question": "cursor or offset?"},
        )
        assert handle._follower is not None
        handle._follower._on_update(request, False)  # as the live record arrives

        async def store_soon() -> None:
            await asyncio.sleep(0.05)
            assert await backend.records.update(handle.ref, request)

        storing = asyncio.create_task(store_soon())
        await handle.respond({"pagination": "cursor"})
        await storing
        assert await backend.records.answer(handle.ref, "1") == {"pagination": "cursor"}
