"""The admin's MCP tools against what roles write: task ids are the assigner's choice and a
role writes its own records and task-list entries under any id, so the admin's tools act on
the task the task list names (of the role given), never on whatever is stored under an id."""

from __future__ import annotations

import asyncio
import json

import pytest

from fleetbus.errors import AmbiguousTask, InvalidSubjectError, TaskCancelled
from fleetbus.js.publish import Publisher
from fleetbus.mcp.calls import SHOWN, FleetCalls
from fleetbus.mcp.server import RESULT_BUDGET, within_budget
from fleetbus.runtime import Task
from fleetbus.security import ADMIN
from fleetbus.testing import eventually
from fleetbus.wire import headers as h

from .support import AuthFleet, agent, attacker, client


async def test_the_admins_cancel_reaches_the_task_a_role_made_ambiguous(
    auth_fleet: AuthFleet,
) -> None:
    """backend writes a task-list entry under the id of a task cto gave devops: the admin's
    cancel_task without a role is refused (AmbiguousTask), and with role=devops it cancels
    cto's task. (It used to write the cancel as the admin's, which nobody obeys, and report
    cancel_requested while the deploy ran on.)"""
    spec = auth_fleet.spec
    started = asyncio.Event()
    devops = agent(auth_fleet, "devops")

    @devops.on_task
    async def deploy(task: Task) -> dict[str, str]:
        started.set()
        await asyncio.sleep(30)
        return {"deployed": "to prod"}

    async with devops, client(auth_fleet, "cto") as cto:
        handle = await cto.assign("devops", {"title": "deploy to prod"})
        await asyncio.wait_for(started.wait(), 10)
        async with client(auth_fleet, ADMIN) as admin:

            async def listed() -> bool:  # the agent's entry (the list is a view: a moment)
                return await admin.find_task(handle.id, "devops") is not None

            await eventually(listed, 10, "the deploy in the task list")
        entry = {"state": "progress", "created": "2025-01-01T00:00:00Z",
                 "updated": "2025-01-01T00:00:00Z"}  # fmt: skip
        async with attacker(auth_fleet, "backend") as backend:
            subject = spec.subjects.task_index("backend", "cto", handle.id)
            await backend.nc.publish(subject, json.dumps(entry).encode())
            await backend.flush()
        async with client(auth_fleet, ADMIN) as admin:
            calls = FleetCalls(admin, ADMIN)
            with pytest.raises(AmbiguousTask):
                await calls.cancel(handle.id, None, "stop")
            said = await calls.cancel(handle.id, "devops", "stop")
        assert said["cancel_requested"] is True
        with pytest.raises(TaskCancelled):
            await handle.result(timeout=15)


async def test_the_admins_task_tools_read_the_task_not_what_is_stored_under_its_id(
    auth_fleet: AuthFleet,
) -> None:
    """backend writes a list entry under the id "*" (its own index subject), and an outcome
    under a task id cto gave devops (its own records subject, as the admin's task). The
    admin's list leaves "*" out and get_task refuses it (it read every task of the fleet as
    one); get_task and wait_task of the real id give devops' result, not backend's."""
    spec = auth_fleet.spec
    async with client(auth_fleet, "cto") as cto:
        handle = await cto.assign("devops", {"title": "deploy v2"})
    entry = {"state": "input-required", "created": "2025-01-01T00:00:00Z",
             "updated": "2025-01-01T00:00:00Z"}  # fmt: skip
    forged = {"task_id": handle.id, "state": "completed", "agent": "devops", "attempt": 1,
              "time": "2030-01-01T00:00:00Z", "result": {"deployed": True}}  # fmt: skip
    async with attacker(auth_fleet, "backend") as backend:
        await backend.nc.publish(f"{spec.prefix}.index.backend.cto.*", json.dumps(entry).encode())
        outcome = spec.subjects.task(handle.id, "outcome", ADMIN, "backend")
        await backend.nc.publish(outcome, json.dumps(forged).encode())
        await backend.flush()
    devops = agent(auth_fleet, "devops")

    @devops.on_task
    async def deploy(task: Task) -> dict[str, object]:
        return {"deployed": False, "reason": "tests red"}

    async with devops, client(auth_fleet, ADMIN) as admin:
        calls = FleetCalls(admin, ADMIN)
        listed = await calls.tasks(None, None, 100)
        assert "*" not in [t["task_id"] for t in listed["tasks"]]
        with pytest.raises(InvalidSubjectError):
            await calls.task("*", None)
        waited = await calls.wait(handle.id, 15, None)
        assert waited["result"] == {"deployed": False, "reason": "tests red"}
        assert (await calls.wait(handle.id, 15, "devops"))["result"] == waited["result"]
        view = await calls.task(handle.id, None)
    assert view["state"] == "completed" and view["result"] == waited["result"]
    assert {u["agent"] for u in view["updates"]} == {"devops"}


async def test_what_a_role_writes_reaches_the_admins_model_cut(auth_fleet: AuthFleet) -> None:
    """backend writes dead letters with 300 KB bodies, a list entry with a 300 KB message and
    a presence record with a 300 KB host: the admin's tools returned them whole (18 MB per
    call at their default limits, twice: as text and as structured content). Each value a
    role wrote is cut at SHOWN characters."""
    spec = auth_fleet.spec
    comms = spec.stream_for(spec.subjects.tasks("backend"))
    assert comms
    huge = "x" * 300_000
    instance = "backend-0huge000"
    record = {"host": huge, "pid": 1, "version": "1", "started": "2026-01-01T00:00:00Z",
              "state": "running", "interval": 5.0, "grace": 15.0}  # fmt: skip
    entry = {"state": "progress", "created": "2026-01-01T00:00:00Z",
             "updated": "2026-01-01T00:00:00Z", "message": huge}  # fmt: skip
    async with attacker(auth_fleet, "backend") as backend:
        publisher = Publisher(backend)
        for n in range(3):
            letter = spec.subjects.dead_letter(comms, "BACKEND_TASKS", 700_000 + n)
            await publisher.publish(
                letter, json.dumps({"x": huge}).encode(), {h.DLQ_REASON: huge[:30_000]}
            )
        await publisher.publish(
            spec.subjects.presence("backend", instance), json.dumps(record).encode()
        )
        await backend.nc.publish(
            spec.subjects.task_index("backend", "cto", "t-huge"), json.dumps(entry).encode()
        )
        await backend.flush()
    async with client(auth_fleet, ADMIN) as admin:
        calls = FleetCalls(admin, ADMIN)
        outputs = [
            await calls.dead_letters(1000),
            await calls.tasks(None, None, 200),
            await calls.agents("backend"),
        ]
    texts = [json.dumps(o) for o in outputs]
    assert all("x" * 1000 in t for t in texts)  # each huge value is there, cut
    assert all("x" * (SHOWN + 1) not in t for t in texts)


def test_a_tool_result_is_cut_to_its_budget_with_a_note() -> None:
    items = [{"n": i, "body": "y" * 3000} for i in range(1000)]
    out = within_budget({"dead_letters": items, "count": 1000})
    kept = out["dead_letters"]
    assert len(json.dumps(out)) <= RESULT_BUDGET and 0 < len(kept) < 1000
    assert kept == items[: len(kept)] and f"{len(kept)} of 1000" in out["truncated"]
    small = {"tasks": items[:3]}
    assert within_budget(small) is small
