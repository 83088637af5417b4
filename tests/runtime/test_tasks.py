"""Tasks end to end on a real server: assigned or published raw, deduplicated, kept alive."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import pytest

from fleetbus.errors import FleetbusError, TaskCancelled, TaskError, TaskExpired
from fleetbus.runtime import Agent
from fleetbus.runtime.messages import Message, Task
from fleetbus.testing.fleets import FleetUnderTest
from fleetbus.wire import headers as h
from fleetbus.wire.codec import decode

from .support import (
    carry_on,
    consumer_info,
    eventually,
    raw_client,
    seed_spec,
    updates,
    wait_dead_letters,
)


async def test_assigned_and_raw_tasks_are_completed_and_observed(
    fleet: FleetUnderTest,
) -> None:
    seen: list[Task] = []
    agent = fleet.agent("backend")

    @agent.on_task
    async def implement(task: Task) -> dict[str, object]:
        seen.append(task)
        await task.progress("halfway", percent=50)
        return {"done": task.id, "title": task.body.get("title")}

    async with agent, fleet.client(sender="cto") as client, raw_client(fleet) as nc:
        handle = await client.assign("backend", {"title": "Implement pagination"})
        # The seed's plain `nats pub`: no headers at all, the task id is in the body.
        await nc.jetstream().publish(
            fleet.spec.subjects.tasks("backend"),
            b'{"task_id": "task-001", "title": "Fix the login bug"}',
        )
        assert await handle.result(timeout=15) == {
            "done": handle.id,
            "title": "Implement pagination",
        }
        watched = []
        async with asyncio.timeout(15):
            async for update in client.watch("task-001"):
                watched.append(update)
                if update.terminal:
                    break

    assert [u.state for u in watched] == ["accepted", "progress", "completed"]
    assert watched[-1].result == {"done": "task-001", "title": "Fix the login bug"}
    assert watched[1].percent == 50
    assert {u.agent for u in watched} == {"backend"}
    by_id = {t.id: t for t in seen}
    assert set(by_id) == {handle.id, "task-001"}
    assert len(seen) == 2
    assert by_id[handle.id].sender == "cto"
    assert by_id[handle.id].headers[h.TASK_ID] == handle.id
    assert by_id["task-001"].sender is None
    assert h.TASK_ID not in by_id["task-001"].headers
    assert all(t.attempt == 1 for t in seen)


async def test_the_same_task_id_twice_is_stored_and_run_once(fleet: FleetUnderTest) -> None:
    runs: list[str] = []
    agent = fleet.agent("backend")

    @agent.on_task
    async def implement(task: Task) -> str:
        runs.append(task.id)
        return task.id

    async with fleet.client() as client:
        first = await client.assign("backend", {"title": "once"}, task_id="task-dup")
        again = await client.assign("backend", {"title": "twice?"}, task_id="task-dup")
        after = await client.assign("backend", {"title": "after"}, task_id="task-after")
        assert not first.duplicate
        assert again.duplicate
        assert again.stream_seq == first.stream_seq
        async with agent:
            assert await first.result(timeout=15) == "task-dup"
            # One task at a time, in order: once "after" is done, a stored duplicate would
            # already have run.
            assert await after.result(timeout=15) == "task-after"
    assert runs == ["task-dup", "task-after"]


async def test_accepted_is_written_for_a_task_that_runs_not_for_a_quick_one(
    fleet: FleetUnderTest,
) -> None:
    """A task's ``accepted`` is stored once its handler has run for ``accepted_after``, while
    it runs, with the time the agent took it; a task that ends sooner has its outcome alone,
    which names the worker and the attempt. ``accepted_after=0`` stores it for every one."""
    release = asyncio.Event()
    agent = fleet.agent("backend", accepted_after=1.0)  # far from a quick task's milliseconds

    @agent.on_task
    async def implement(task: Task) -> str:
        if task.body.get("slow"):
            await release.wait()
        return "done"

    async with agent, fleet.client() as client, raw_client(fleet) as nc:
        quick = await client.assign("backend", {"slow": False})
        assert await quick.result(timeout=15) == "done"
        slow = await client.assign("backend", {"slow": True})
        async with asyncio.timeout(15):  # the handler still waits: the record says it runs
            first = await anext(aiter(slow.updates()))
        assert (first.state, first.worker) == ("accepted", agent.worker)
        release.set()
        assert await slow.result(timeout=15) == "done"
        quick_history = await updates(nc, fleet, quick.id)
        slow_history = await updates(nc, fleet, slow.id)

    assert [(u.state, u.attempt, u.worker) for u in quick_history] == [
        ("completed", 1, agent.worker)
    ]
    accepted, completed = slow_history
    assert (accepted.state, accepted.attempt, accepted.worker) == ("accepted", 1, agent.worker)
    assert completed.state == "completed"
    assert accepted.time < completed.time

    every = fleet.agent("backend", accepted_after=0)

    @every.on_task
    async def at_once(task: Task) -> str:
        return "done"

    async with every, fleet.client() as client, raw_client(fleet) as nc:
        handle = await client.assign("backend", {"slow": False})
        assert await handle.result(timeout=15) == "done"
        assert [u.state for u in await updates(nc, fleet, handle.id)] == ["accepted", "completed"]


async def test_heartbeats_keep_a_long_task_from_being_redelivered(
    make_fleet: Callable[..., FleetUnderTest],
) -> None:
    fleet = make_fleet(seed_spec(backend_tasks={"ack_wait": "1s"}))
    runs: list[tuple[str, int, str]] = []

    def worker() -> Agent:
        agent = fleet.agent("backend")

        @agent.on_task
        async def slow(task: Task) -> str:
            runs.append((task.id, task.attempt, agent.worker))
            await asyncio.sleep(3.5)  # 3.5 x ack_wait
            return "finished"

        return agent

    # Two workers: a redelivery while the first one runs would go to the idle second one.
    one, two = worker(), worker()
    async with one, two, fleet.client() as client, raw_client(fleet) as nc:
        handle = await client.assign("backend", {"title": "long"})
        assert await handle.result(timeout=20) == "finished"
        info = await consumer_info(nc, fleet, "backend", "tasks")
        history = await updates(nc, fleet, handle.id)

    assert len(runs) == 1
    assert runs[0][1] == 1
    assert info["num_redelivered"] == 0
    assert info["delivered"]["consumer_seq"] == 1
    assert [(u.state, u.attempt) for u in history] == [("accepted", 1), ("completed", 1)]


async def test_a_handler_past_its_task_budget_is_cancelled_and_retried(
    make_fleet: Callable[..., FleetUnderTest],
) -> None:
    """Heartbeats keep a long task alive only up to the role's task_budget."""
    fleet = make_fleet(
        seed_spec(backend_tasks={"ack_wait": "1s", "max_deliver": 2}, budgets={"backend": "1s"})
    )
    started: list[int] = []
    agent = fleet.agent("backend")

    @agent.on_task
    async def hang(task: Task) -> None:
        started.append(task.attempt)
        await asyncio.sleep(60)

    async with agent, fleet.client(sender="cto") as client:
        handle = await client.assign("backend", {"title": "never ends"})
        with pytest.raises(TaskError, match="task_budget of 1s"):
            await handle.result(timeout=30)
    assert started == [1, 2]


async def test_progress_sync_reports_from_a_def_handler_and_refuses_the_event_loop(
    fleet: FleetUnderTest,
) -> None:
    """A plain def handler reports with progress_sync (it waits until the update is stored).
    Called from an async def handler it would wait for the very loop it blocks, for good:
    the agent and its heartbeats stood still. It raises there instead: the attempt fails."""
    agent = fleet.agent("backend", retry_base=0.05, retry_max=0.1)

    @agent.on_task
    def implement(task: Task) -> str:
        task.progress_sync("halfway", percent=50)
        return "done"

    async with agent, fleet.client(sender="cto") as cto, raw_client(fleet) as nc:
        handle = await cto.assign("backend", {"title": "x"})
        assert await handle.result(timeout=15) == "done"
        states = [(u.state, u.message) for u in await updates(nc, fleet, handle.id)]
    assert ("progress", "halfway") in states

    wrong = fleet.agent("devops", retry_base=0.05, retry_max=0.1)

    @wrong.on_task
    async def deploy(task: Task) -> str:
        task.progress_sync("halfway")
        return "done"

    async with wrong, fleet.client(sender="cto") as cto:
        handle = await cto.assign("devops", {"title": "x"})
        with pytest.raises(TaskError, match="would block it for good"):
            await handle.result(timeout=15)


def stubborn_backend(
    make_fleet: Callable[..., FleetUnderTest], *, plain: bool = False, **settings: Any
) -> tuple[FleetUnderTest, Agent, list[Task], asyncio.Event]:
    """A backend agent whose task handler carries on after it is cancelled (``carry_on``);
    tasks get a 1 s budget and two attempts of a 1 s ack wait."""
    fleet = make_fleet(
        seed_spec(backend_tasks={"ack_wait": "1s", "max_deliver": 2}, budgets={"backend": "1s"})
    )
    agent = fleet.agent("backend", retry_base=0.05, retry_max=0.1, **settings)
    started, done = carry_on(agent.on_task, plain=plain)
    return fleet, agent, started, done


async def test_a_handler_that_will_not_be_cancelled_does_not_hold_its_task_for_good(
    make_fleet: Callable[..., FleetUnderTest],
) -> None:
    """A handler that catches CancelledError and carries on (a retry loop catching too
    much): at its budget it was cancelled once, then kept alive by heartbeats, holding the
    role's queue, for as long as it ran. Now it is given one ack wait to end, then left
    behind: its attempt fails, and the task goes on to its next attempt and its end."""
    fleet, agent, started, done = stubborn_backend(make_fleet)

    try:
        async with agent, fleet.client(sender="cto") as client:
            handle = await client.assign("backend", {"title": "never ends"})
            with pytest.raises(TaskError, match="task_budget of 1s"):
                await handle.result(timeout=30)
    finally:
        done.set()
    assert [task.attempt for task in started] == [1, 2]


async def test_a_cancelled_handler_that_will_not_end_ends_its_task_canceled_not_retried(
    make_fleet: Callable[..., FleetUnderTest],
) -> None:
    """The cancel request cancels the handler, which carries on; one ack wait past its
    budget it is given up. The task ends as it was asked to (``canceled``), by the attempt
    that was cancelled, not as a failed attempt that another one would have to end."""
    fleet, agent, started, done = stubborn_backend(make_fleet)

    try:
        async with agent, fleet.client(sender="cto") as client, raw_client(fleet) as nc:
            handle = await client.assign("backend", {"title": "never ends"})
            await eventually(lambda: len(started) == 1, 15, "the handler started")
            assert await handle.cancel("wrong approach") is True
            with pytest.raises(TaskCancelled, match="wrong approach"):
                await handle.result(timeout=30)
            await asyncio.sleep(1.5)  # past the ack wait: no second attempt
            history = await updates(nc, fleet, handle.id)
    finally:
        done.set()
    assert [task.attempt for task in started] == [1]
    assert [(u.state, u.attempt) for u in history if u.state != "accepted"] == [("canceled", 1)]


async def test_a_handler_that_will_not_end_at_its_deadline_ends_its_task_expired(
    make_fleet: Callable[..., FleetUnderTest],
) -> None:
    """Cancelled at the task's deadline, the handler carries on; one ack wait later it is
    given up and its task ends ``expired`` (no attempt starts after a deadline)."""
    fleet = make_fleet(seed_spec(backend_tasks={"ack_wait": "1s", "max_deliver": 3}))
    agent = fleet.agent("backend", retry_base=0.05, retry_max=0.1)
    started, done = carry_on(agent.on_task)

    try:
        async with agent, fleet.client(sender="cto") as client:
            handle = await client.assign("backend", {"title": "too late"}, deadline=1.0)
            with pytest.raises(TaskExpired):
                await handle.result(timeout=30)
    finally:
        done.set()
    assert [task.attempt for task in started] == [1]


@pytest.mark.parametrize("plain", [False, True], ids=["async-def", "def"])
async def test_an_agent_with_too_many_handlers_left_behind_stops_serving(
    make_fleet: Callable[..., FleetUnderTest], plain: bool
) -> None:
    """Each handler left running holds what it holds for as long as it runs (a plain
    ``def`` one of the process's handler threads); at ``left_behind_limit`` the agent stops
    serving, so that its supervisor starts a fresh process, and says why. The task itself is
    dead-lettered first: nothing is lost."""
    fleet, agent, _, done = stubborn_backend(make_fleet, plain=plain, left_behind_limit=2)

    try:
        async with agent, fleet.client(sender="cto") as client:
            handle = await client.assign("backend", {"title": "never ends"})
            with pytest.raises(TaskError, match="task_budget of 1s"):
                await handle.result(timeout=30)
            async with asyncio.timeout(10):
                await agent.stopped()
            assert agent.failure is not None and "left_behind_limit" in agent.failure
            with pytest.raises(FleetbusError, match="went on after they were cancelled"):
                await agent.serve_forever()
    finally:
        done.set()


async def test_a_message_handler_that_will_not_be_cancelled_does_not_hold_the_inbox(
    make_fleet: Callable[..., FleetUnderTest],
) -> None:
    """The same for an `on_message` handler, which runs in its consumer's worker (no task of
    its own): at its budget it was cancelled, caught it, and its heartbeats held the message,
    and with `max_ack_pending: 1` the role's whole inbox, for good. Now it is given one ack
    wait, then left running: its message is tried again, then dead-lettered, and the
    messages behind it are handled meanwhile."""
    fleet = make_fleet(
        seed_spec(
            backend_inbox={"ack_wait": "1s", "max_deliver": 2, "max_ack_pending": 1},
            budgets={"backend": "1s"},
        )
    )
    attempts: list[int] = []
    handled: list[str] = []
    done = asyncio.Event()
    agent = fleet.agent("backend", retry_base=0.05, retry_max=0.1)

    @agent.on_message
    async def stubborn(msg: Message) -> None:
        if msg.body["text"] != "stubborn":
            handled.append(msg.body["text"])
            return
        attempts.append(msg.attempt)
        while not done.is_set():
            with contextlib.suppress(asyncio.CancelledError):  # and carries on
                await asyncio.sleep(0.2)

    try:
        async with agent, fleet.client(sender="cto") as client, raw_client(fleet) as nc:
            await client.message("backend", {"text": "stubborn"})
            for n in range(3):
                await client.message("backend", {"text": f"behind {n}"})
            (letter,) = await wait_dead_letters(nc, fleet, 1, timeout=30)
            assert letter.headers[h.DLQ_REASON] == "failed on all 2 attempts (max_deliver 2)"
            assert "went on after it was cancelled" in letter.headers[h.DLQ_ERROR]
            assert decode(letter.data)["text"] == "stubborn"
            await eventually(lambda: len(handled) == 3, 10, "the messages behind it handled")
    finally:
        done.set()
    assert attempts == [1, 2]
    assert handled == ["behind 0", "behind 1", "behind 2"]
