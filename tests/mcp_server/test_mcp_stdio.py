"""``fleetbus mcp`` over stdio, driven by the SDK's client session as a host drives it,
against a real fleet with real agents."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from fleetbus import Message, Request, Task
from fleetbus.js.api import JsApi
from fleetbus.testing import eventually
from fleetbus.testing.fleets import FleetUnderTest

from .support import (
    ROLE_TOOLS,
    call,
    read,
    refused,
    role_enum,
    stdio_session,
    tools_of,
    write_fleet,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def env(fleet: FleetUnderTest, tmp_path: Path) -> dict[str, str]:
    """What a host's config gives the command: the fleet file and the server."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FLEETBUS_")}
    fleet_file = write_fleet(fleet.spec, tmp_path / "fleet.yaml")
    return {**clean, "FLEETBUS_FLEET": str(fleet_file), "FLEETBUS_URL": fleet.url}


async def test_a_host_assigns_a_task_waits_for_it_and_asks_as_cto(
    fleet: FleetUnderTest, env: dict[str, str], tmp_path: Path
) -> None:
    backend = fleet.agent("backend")

    @backend.on_task
    async def implement(task: Task) -> dict[str, Any]:
        if task.body.get("long"):
            await asyncio.sleep(60)  # cancelled by the host
        await task.progress("writing it", percent=50)
        return {"pr": 143, "title": task.body["title"], "assigner": task.assigner}

    @backend.on_request
    async def review(request: Request) -> dict[str, Any]:
        return {"verdict": "approved", "asked_by": request.sender}

    async with backend, stdio_session("cto", env, tmp_path / "mcp.log") as session:
        tools = await tools_of(session)
        assert set(tools) == ROLE_TOOLS
        assert role_enum(tools["assign_task"]) == ["ceo", "backend", "devops", "cso"]
        assert role_enum(tools["wait_task"]) == ["ceo", "backend", "devops", "cso"]
        assert "Implements API and service changes" in (tools["assign_task"].description or "")

        assigned = await call(
            session, "assign_task", role="backend", body={"title": "pagination"}, deadline=600
        )
        task_id = assigned["task_id"]
        assert assigned["state"] == "assigned" and "deadline" in assigned
        done = await call(session, "wait_task", task_id=task_id, timeout=20)
        assert done["state"] == "completed"
        assert done["result"] == {"pr": 143, "title": "pagination", "assigner": "cto"}
        state = await call(session, "get_task", task_id=task_id)
        assert state["state"] == "completed" and state["finished"] is True
        assert state["overdue"] is False

        long = await call(session, "assign_task", role="backend", body={"title": "x", "long": 1})
        await eventually(
            lambda: _state(session, long["task_id"], "accepted"), 15, "the long task running"
        )
        cancelled = await call(session, "cancel_task", task_id=long["task_id"], reason="enough")
        assert cancelled["cancel_requested"] is True
        ended = await call(session, "wait_task", task_id=long["task_id"], timeout=20)
        assert (ended["state"], ended["reason"]) == ("canceled", "enough")
        listed_tasks = await call(session, "list_tasks")
        assert [t["task_id"] for t in listed_tasks["tasks"]] == [long["task_id"], task_id]

        answer = await call(session, "ask", role="backend", body={"pr": 143}, timeout=10)
        assert answer["answer"] == {"verdict": "approved", "asked_by": "cto"}

        overview = await read(session, "fleetbus://fleet")
        assert overview["you"]["identity"] == "cto"
        assert overview["roles"]["backend"]["description"] == "Implements API and service changes"
        task = await read(session, f"fleetbus://tasks/backend/{task_id}")
        assert task["state"] == "completed"
        listed = {str(r.uri) for r in (await session.list_resources()).resources}
        assert {"fleetbus://fleet", "fleetbus://inbox", f"fleetbus://tasks/backend/{task_id}"} <= (
            listed
        )


async def test_forbidden_and_invalid_calls_are_tool_errors_and_the_server_goes_on(
    fleet: FleetUnderTest, env: dict[str, str], tmp_path: Path
) -> None:
    async with stdio_session("backend", env, tmp_path / "mcp.log") as session:
        tools = await tools_of(session)
        assert "dead_letters" not in tools  # the admin's
        assert role_enum(tools["send_message"]) == ["cto", "devops", "cso"]  # no ceo

        # What the schema does not offer, sent anyway: refused before anything is sent.
        text = await refused(session, "send_message", role="ceo", body={"hi": 1})
        assert "backend may not message ceo: ceo is not in backend's send_to" in text
        text = await refused(session, "assign_task", role="nobody", body={})
        assert "unknown role 'nobody'" in text
        text = await refused(session, "send_message", role="cto", body=[1, 2])
        assert (
            "invalid arguments for send_message: body: Input should be a valid dictionary" in text
        )
        text = await refused(session, "send_message", role="cto", body={}, urgent=True)
        assert "urgent: Extra inputs are not permitted" in text
        text = await refused(session, "emit_event", domain="deploy.ment", type="x", body={})
        assert "bad argument" in text
        text = await refused(session, "ask", role="cto", body={"q": 1}, timeout=5)
        assert "no agent of role 'cto' answers requests right now" in text
        text = await refused(session, "get_task", task_id="task-elsewhere")
        assert "pass role" in text
        text = await refused(session, "dead_letters")
        assert "no tool 'dead_letters' for backend" in text
        # ... and the server still serves
        assert (await call(session, "fleet_status"))["identity"] == "backend"


async def test_the_inbox_is_read_at_least_once(
    fleet: FleetUnderTest, env: dict[str, str], tmp_path: Path
) -> None:
    async with fleet.client(sender="cto") as cto:
        await cto.message("backend", {"n": 1})
        await cto.message("backend", {"n": 2})
    log = tmp_path / "mcp.log"

    # The host reads, then dies before it reads again: nothing confirmed the batch arrived.
    async with stdio_session("backend", env, log) as session:
        first = await call(session, "read_inbox", max=5, wait=5)
        assert [m["body"] for m in first["messages"]] == [{"n": 1}, {"n": 2}]
        assert {(m["from"], m["from_verified"], m["attempt"]) for m in first["messages"]} == {
            ("cto", True, 1)
        }

    # A new server (the host restarted) is given the same messages again.
    async with stdio_session("backend", env, log) as session:
        again = await call(session, "read_inbox", max=5, wait=5)
        assert [m["body"] for m in again["messages"]] == [{"n": 1}, {"n": 2}]
        assert [m["attempt"] for m in again["messages"]] == [2, 2]
        inbox = await read(session, "fleetbus://inbox")
        assert inbox["held_here"] == 2
        # Reading again is the confirmation: the batch is acknowledged, nothing is left.
        after = await call(session, "read_inbox")
        assert after["acknowledged_previous"] == 2 and after["messages"] == []

    consumer = fleet.spec.consumer("backend", "inbox")
    assert consumer is not None
    async with fleet.client() as admin:
        info = await JsApi(admin.conn).consumer_info(consumer.stream, consumer.name)
    assert info is not None
    assert (info["num_pending"], info["num_ack_pending"]) == (0, 0)


async def test_a_running_agent_and_the_host_share_the_roles_inbox(
    fleet: FleetUnderTest, env: dict[str, str], tmp_path: Path
) -> None:
    """One durable consumer, two readers: each message goes to one of them, once."""
    seen: list[int] = []
    backend = fleet.agent("backend")

    @backend.on_message
    async def note(message: Message) -> None:
        seen.append(message.body["n"])

    async with stdio_session("backend", env, tmp_path / "mcp.log") as session:
        async with fleet.client(sender="cto") as cto:
            for n in range(6):
                await cto.message("backend", {"n": n})
        host = await call(session, "read_inbox", max=3, wait=5)
        async with backend:
            await eventually(lambda: len(seen) == 6 - len(host["messages"]), what="the rest")
        read_by_host = [m["body"]["n"] for m in host["messages"]]
        assert sorted(read_by_host + seen) == list(range(6))


async def _state(session: Any, task_id: str, state: str) -> bool:
    return bool((await call(session, "get_task", task_id=task_id)).get("state") == state)
