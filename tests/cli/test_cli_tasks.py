"""tasks, task ID, task cancel and task respond: the task list and control from a shell."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from fleetbus import Task, TaskCancelled
from fleetbus.js.connection import ConnectSettings, connect
from fleetbus.testing.fleets import FleetUnderTest

from .test_cli_messages import Cli


@pytest.fixture
def cli(fleet: FleetUnderTest, workdir: Path) -> Cli:
    return Cli(fleet, workdir)


async def test_tasks_lists_answers_and_cancels(fleet: FleetUnderTest, cli: Cli) -> None:
    running = asyncio.Event()
    agent = fleet.agent("backend")

    @agent.on_task
    async def implement(task: Task) -> dict[str, object]:
        if task.body.get("ask"):
            choice = await task.request_input({"question": "cursor or offset?"}, timeout=30)
            return {"pagination": choice["pagination"]}
        running.set()
        await asyncio.sleep(60)
        return {}

    async with agent, fleet.client(sender="cto") as cto:
        asking = await cto.assign("backend", {"ask": True}, task_id="task-asks")
        async for update in asking.updates():
            if update.state == "input-required":
                break
        code, out, err = await cli("tasks", "--state", "input-required", "--json")
        assert code == 0, err
        assert [t["task_id"] for t in json.loads(out)] == ["task-asks"]
        code, out, err = await cli("task", "respond", "task-asks", '{"pagination": "cursor"}')
        assert code == 0, err
        assert await asking.result(timeout=15) == {"pagination": "cursor"}

        long = await cto.assign("backend", {"title": "long"}, task_id="task-long")
        await asyncio.wait_for(running.wait(), 15)
        code, out, err = await cli("tasks", "--role", "backend")
        assert code == 0, err
        rows = {line.split()[1]: line for line in out.splitlines() if "task-" in line}
        assert set(rows) == {"task-long", "task-asks"}, out
        assert "working" in rows["task-long"] and agent.worker in rows["task-long"]
        assert "completed" in rows["task-asks"]
        code, out, err = await cli("task", "cancel", "task-long", "--reason", "not needed")
        assert code == 0, err
        assert "cancel requested" in out
        with pytest.raises(TaskCancelled, match="not needed"):
            await long.result(timeout=10)
        code, out, err = await cli("task", "task-long")
        assert code == 1  # it did not complete
        assert "canceled" in out and "not needed" in out
        code, out, err = await cli("task", "cancel", "task-long")
        assert code == 0 and "ended already" in out


async def test_task_commands_on_an_unknown_task(cli: Cli) -> None:
    code, _, err = await cli("task", "cancel", "task-nope")
    assert code == 1 and "not in the task list" in err
    code, _, err = await cli("task", "respond", "task-nope", "{}", "--role", "backend")
    assert code == 1 and "not waiting for input" in err
    code, _, err = await cli("tasks", "--since", "a while")
    assert code == 2 and "--since" in err


async def test_task_history_of_an_id_several_tasks_have_says_whose_each_record_is(
    fleet: FleetUnderTest, cli: Cli
) -> None:
    """A role writes its records under any id: backend's record under the id of a task cto
    gave devops read, in `fleetbus task ID`, as that task's own history. Each row now says
    whose task it is, and a warning says there are several."""
    async with fleet.client(sender="cto") as cto:
        handle = await cto.assign("devops", {"title": "rotate"})
    conn = await connect(ConnectSettings.from_url(fleet.url))
    try:
        for role, state in (("devops", "progress"), ("backend", "completed")):
            record = {"task_id": handle.id, "state": state, "agent": role, "attempt": 1,
                      "time": "2026-01-01T00:00:00Z"}  # fmt: skip
            subject = fleet.spec.subjects.task(
                handle.id, "updates" if role == "devops" else "outcome", "cto", role
            )
            await conn.nc.publish(subject, json.dumps(record).encode())
        await conn.flush()
    finally:
        await conn.close()
    code, out, err = await cli("task", handle.id)
    assert code == 0  # the last record, backend's, says completed
    assert "cto -> devops" in out and "cto -> backend" in out
    assert "2 tasks have the id" in err and "--role" in err
    code, out, err = await cli("task", handle.id, "--role", "devops")
    assert code == 0 and "backend" not in out and "2 tasks" not in err
