"""Task lifecycle and control against a real server: cancel (queued and running), deadlines,
input requests that survive a restart, step results that survive a SIGKILL, the task list."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from nats.aio.msg import Msg

from fleetbus import TaskCancelled, TaskExpired, TaskSummary
from fleetbus.fleet import FleetSpec
from fleetbus.runtime import Agent, Task
from fleetbus.testing import eventually
from fleetbus.testing.fleets import FleetUnderTest
from fleetbus.wire import headers as h

from .support import dead_letters, raw_client, seed_spec, updates


async def test_a_cancelled_queued_task_never_runs(fleet: FleetUnderTest) -> None:
    ran: list[str] = []
    agent = fleet.agent("backend")

    @agent.on_task
    async def work(task: Task) -> str:
        ran.append(task.id)
        return "ran"

    async with fleet.client(sender="cto") as cto, raw_client(fleet) as nc:
        handle = await cto.assign("backend", {"title": "not needed after all"})
        assert await handle.cancel("no longer needed") is True
        async with agent:
            with pytest.raises(TaskCancelled, match="no longer needed"):
                await handle.result(timeout=15)
            after = await cto.assign("backend", {"title": "the next one runs"})
            assert await after.result(timeout=15) == "ran"
        history = await updates(nc, fleet, handle.id)
        assert await dead_letters(nc, fleet) == []
    assert ran == [after.id]
    assert [u.state for u in history] == ["canceled"]


def first_held(fleet: FleetUnderTest) -> tuple[Agent, list[str], asyncio.Event]:
    """A backend agent that records each task's title as it starts and holds the one titled
    "first" until the event is set: the tasks behind it stay queued."""
    ran: list[str] = []
    release = asyncio.Event()
    agent = fleet.agent("backend")

    @agent.on_task
    async def work(task: Task) -> str:
        ran.append(task.body["title"])
        if task.body["title"] == "first":
            await release.wait()
        return "ran"

    return agent, ran, release


async def test_a_task_cancelled_while_queued_behind_a_running_one_never_runs(
    fleet: FleetUnderTest,
) -> None:
    """The request comes live, while no handler runs the task: the agent keeps it, and the
    task ends cancelled when it is fetched (it is stored after the agent was listening, so
    the agent does not read the stream for it: on a server alone there is no clocks' margin
    to wait out first)."""
    agent, ran, release = first_held(fleet)
    async with agent, fleet.client(sender="cto") as cto, raw_client(fleet) as nc:
        looked_up: list[str] = []  # the agent's reads of the stream for a cancel request

        async def lookup(msg: Msg) -> None:
            if ".cancel." in msg.subject:
                looked_up.append(msg.subject)

        await nc.subscribe("$JS.API.DIRECT.GET.>", cb=lookup)
        first = await cto.assign("backend", {"title": "first"})
        await eventually(lambda: ran == ["first"], timeout=15)
        queued = await cto.assign("backend", {"title": "queued"})
        assert await queued.cancel("changed plans") is True
        release.set()
        assert await first.result(timeout=15) == "ran"
        with pytest.raises(TaskCancelled, match="changed plans"):
            await queued.result(timeout=15)
        await nc.flush()
        assert looked_up == []
        history = await updates(nc, fleet, queued.id)
    assert ran == ["first"]
    assert [u.state for u in history] == ["canceled"]


async def test_a_flood_of_cancel_requests_for_made_up_ids_loses_no_real_one(
    fleet: FleetUnderTest,
) -> None:
    """An attacker (another role, cancelling under its own name as the server allows) sends
    more requests for ids that do not exist than an agent keeps from its live subscription.
    The real request for a queued task is pushed out of what the agent kept; the agent then
    reads the stream for the task and still cancels it."""
    agent, ran, release = first_held(fleet)
    subjects = fleet.spec.subjects
    async with agent, fleet.client(sender="cto") as cto, raw_client(fleet) as attacker:
        first = await cto.assign("backend", {"title": "first"})
        await eventually(lambda: ran == ["first"], timeout=15)
        queued = await cto.assign("backend", {"title": "queued"})
        assert await queued.cancel("changed plans") is True
        for n in range(1_500):  # more than the agent keeps (1,024)
            await attacker.publish(subjects.task(f"made-up-{n}", "cancel", "ceo", "backend"), b"{}")
        await attacker.flush()
        await asyncio.sleep(1)  # the agent takes them in before the queued task is fetched
        release.set()
        assert await first.result(timeout=15) == "ran"
        with pytest.raises(TaskCancelled, match="changed plans"):
            await queued.result(timeout=15)
    assert ran == ["first"]


async def test_a_cancelled_running_task_stops_cleans_up_and_is_not_retried(
    make_fleet: Callable[[FleetSpec], FleetUnderTest],
) -> None:
    fleet = make_fleet(seed_spec(backend_tasks={"ack_wait": "1s"}))
    started = asyncio.Event()
    seen: list[str] = []
    agent = fleet.agent("backend")

    @agent.on_task
    async def long_job(task: Task) -> str:
        seen.append(f"start {task.attempt}")
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        finally:
            seen.append("cleanup")
        return "finished"

    async with agent, fleet.client(sender="cto") as cto, raw_client(fleet) as nc:
        handle = await cto.assign("backend", {"title": "30 minutes of model calls"})
        await asyncio.wait_for(started.wait(), 15)
        assert await handle.cancel("wrong approach") is True
        with pytest.raises(TaskCancelled, match="wrong approach"):
            await handle.result(timeout=5)
        await asyncio.sleep(2.5)  # past two ack waits: nothing comes back
        assert await dead_letters(nc, fleet) == []
        history = await updates(nc, fleet, handle.id)
        assert await handle.cancel("again") is False  # ended: nothing changes
    assert seen == ["start 1", "cancelled", "cleanup"]
    assert [u.state for u in history if u.state != "accepted"] == ["canceled"]


async def test_a_plain_def_handler_sees_the_cancel_and_stops(fleet: FleetUnderTest) -> None:
    started = threading.Event()
    agent = fleet.agent("backend")

    @agent.on_task
    def crunch(task: Task) -> str:
        started.set()
        while not task.cancelled:
            threading.Event().wait(0.05)
        return "stopped early"

    async with agent, fleet.client(sender="cto") as cto:
        handle = await cto.assign("backend", {"title": "crunch"})
        await asyncio.to_thread(started.wait, 15)
        await handle.cancel()
        with pytest.raises(TaskCancelled):
            await handle.result(timeout=10)


async def test_a_deadline_that_passes_before_the_task_starts(fleet: FleetUnderTest) -> None:
    ran: list[str] = []
    agent = fleet.agent("backend")

    @agent.on_task
    async def work(task: Task) -> None:
        ran.append(task.id)

    async with fleet.client(sender="cto") as cto:
        handle = await cto.assign("backend", {"title": "by noon"}, deadline=0.5)
        await asyncio.sleep(1.0)
        async with agent:
            with pytest.raises(TaskExpired, match="not started before its deadline"):
                await handle.result(timeout=15)
    assert ran == []


async def test_a_deadline_that_passes_while_the_task_runs(fleet: FleetUnderTest) -> None:
    seen: list[str] = []
    agent = fleet.agent("backend")

    @agent.on_task
    async def slow(task: Task) -> None:
        assert task.deadline is not None
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    async with agent, fleet.client(sender="cto") as cto:
        handle = await cto.assign("backend", {"title": "quick or never"}, deadline=1.5)
        with pytest.raises(TaskExpired, match="deadline passed while the handler ran"):
            await handle.result(timeout=15)
    assert seen == ["cancelled"]


async def test_an_input_request_is_answered_once_across_an_agent_restart(
    fleet: FleetUnderTest,
) -> None:
    """The first agent asks and gets the answer, then stops before it finishes; the next
    attempt reaches the same request and gets the stored answer without asking again."""
    answered = asyncio.Event()

    def agent_that(stops_after_answer: bool) -> object:
        agent = fleet.agent("backend")

        @agent.on_task
        async def implement(task: Task) -> dict[str, object]:
            choice = await task.request_input({"question": "cursor or offset?"}, timeout=30)
            if stops_after_answer:
                answered.set()
                await asyncio.sleep(60)  # stopped here
            return {"pagination": choice["pagination"], "attempt": task.attempt}

        return agent

    first = agent_that(stops_after_answer=True)
    async with fleet.client(sender="cto") as cto, raw_client(fleet) as nc:
        await first.start()  # type: ignore[attr-defined]
        handle = await cto.assign("backend", {"title": "paginate"})
        async for update in handle.updates():
            if update.state == "input-required":
                assert update.data == {"question": "cursor or offset?"}
                break
        await handle.respond({"pagination": "cursor"})
        await asyncio.wait_for(answered.wait(), 15)
        await first.stop(grace=0)  # type: ignore[attr-defined]
        async with agent_that(stops_after_answer=False):  # type: ignore[attr-defined]
            assert await handle.result(timeout=15) == {"pagination": "cursor", "attempt": 2}
        history = await updates(nc, fleet, handle.id)
    assert [u.state for u in history].count("input-required") == 1


WORKER = """
import asyncio
import sys
from pathlib import Path

import yaml
from nats.aio.msg import Msg

from fleetbus.fleet import FleetSpec
from fleetbus.js.connection import ConnectSettings
from fleetbus.runtime import Agent, RuntimeSettings, Task

spec = FleetSpec.model_validate(yaml.safe_load(Path(sys.argv[1]).read_text()))
calls = Path(sys.argv[3])
agent = Agent(
    "backend",
    spec=spec,
    connection=ConnectSettings.from_url(sys.argv[2]),
    settings=RuntimeSettings(poll=1.0),
)


def expensive_plan(title: str) -> dict:
    with calls.open("a") as out:  # one line per model call paid for
        out.write(title + "\\n")
    return {"steps": ["schema", "endpoint", "tests"]}


@agent.on_task
async def implement(task: Task) -> None:
    await task.step("plan", expensive_plan, task.body["title"])
    calls.with_suffix(".planned").write_text(str(task.attempt))
    await asyncio.Event().wait()  # killed here


agent.run()
"""


@pytest.mark.slow
async def test_a_step_result_survives_a_sigkilled_attempt(
    make_fleet: Callable[[FleetSpec], FleetUnderTest], tmp_path: Path
) -> None:
    fleet = make_fleet(seed_spec(backend_tasks={"ack_wait": "1s"}))
    spec_file = tmp_path / "fleet.yaml"
    spec_file.write_text(yaml.safe_dump(fleet.spec.model_dump(mode="json")))
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    calls = tmp_path / "calls.txt"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(script), str(spec_file), fleet.url, str(calls),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        async with fleet.client(sender="cto") as cto:
            handle = await cto.assign("backend", {"title": "paginate"})
            await eventually(calls.with_suffix(".planned").exists, 20, "the step done")
            proc.kill()
            await proc.wait()
            second = fleet.agent("backend")
            plans: list[object] = []

            @second.on_task
            async def implement(task: Task) -> object:
                plan = await task.step("plan", lambda: pytest.fail("paid twice"))
                plans.append(plan)
                return plan

            async with second:
                result = await handle.result(timeout=20)
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
    assert result == {"steps": ["schema", "endpoint", "tests"]}
    assert calls.read_text() == "paginate\n"  # the model call was made once


async def test_a_step_result_is_its_assigners_tasks_alone(fleet: FleetUnderTest) -> None:
    """Step results were keyed by assignee, task id and step: devops stored a task for
    backend under the id of cto's (a fresh message id passes the dedupe), and backend's
    step for it returned cto's stored plan (cto's confidential notes, into devops's result)
    without running; the other way round, devops's injected plan became cto's. Keyed by the
    assigner too, each task has its own."""
    agent = fleet.agent("backend")
    returned: list[str] = []

    @agent.on_task
    async def implement(task: Task) -> object:
        def plan() -> str:
            return f"plan for {task.sender}: {task.body['title']}"

        value = await task.step("plan", plan)
        returned.append(value)
        return value

    async with agent, raw_client(fleet) as nc, fleet.client(sender="cto") as cto:
        real = await cto.assign("backend", {"title": "cto-only: vendor contract"})
        assert await real.result(timeout=20) == "plan for cto: cto-only: vendor contract"
        await nc.request(  # devops reuses the id, with a message id of its own
            fleet.spec.subjects.tasks("backend", "devops"),
            b'{"title": "mine"}',
            headers={h.TASK_ID: real.id, h.MSG_ID: "fresh-1"},
            timeout=5,
        )
        await eventually(lambda: len(returned) == 2, 20, "devops's task done")
    assert returned == ["plan for cto: cto-only: vendor contract", "plan for devops: mine"]


async def test_the_task_list_shows_each_task_where_it_stands(fleet: FleetUnderTest) -> None:
    release = asyncio.Event()
    running = asyncio.Event()
    agent = fleet.agent("backend")

    @agent.on_task
    async def work(task: Task) -> str:
        if task.body.get("hold"):
            running.set()
            await task.progress("halfway", percent=50)
            await release.wait()
        return "done"

    async with fleet.client(sender="cto") as cto, fleet.client() as admin:
        done = await cto.assign("backend", {"n": 1})
        async with agent:
            assert await done.result(timeout=15) == "done"
            held = await cto.assign("backend", {"hold": True})
            await asyncio.wait_for(running.wait(), 15)
            queued = await cto.assign("backend", {"n": 2})  # waits: one at a time

            async def listed() -> bool:
                tasks = {t.task_id: t for t in await admin.tasks(role="backend")}
                return (
                    tasks.get(held.id) is not None
                    and tasks[held.id].percent == 50
                    and queued.id in tasks
                )

            await eventually(listed, 10, "the held task at 50%")
            everything = await admin.tasks()
            by_id = {t.task_id: t for t in everything}
            assert by_id[done.id].state == "completed"
            assert (by_id[held.id].a2a_state, by_id[held.id].message) == ("working", "halfway")
            assert by_id[held.id].worker == agent.worker
            assert by_id[queued.id].state == "submitted"
            assert {t.task_id for t in await admin.tasks(state="working")} == {held.id}
            assert [t.task_id for t in await admin.tasks(state="completed")] == [done.id]
            assert await admin.tasks(role="devops") == []
            assert everything[0].task_id in (held.id, queued.id)  # the newest first
            assert len(await admin.tasks(limit=1)) == 1
            assert {t.task_id for t in await admin.tasks(since=60)} == set(by_id)
            assert all(isinstance(t, TaskSummary) and t.assigner == "cto" for t in everything)
            release.set()
            await held.result(timeout=15)
            await queued.result(timeout=15)
