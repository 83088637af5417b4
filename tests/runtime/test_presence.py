"""Presence against a real server: agents listed with what they hold, a killed agent going
suspect then offline, a stalled one never reaped, drain, and senders told when nobody runs."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from fleetbus import NoLiveAgent
from fleetbus.runtime import Task
from fleetbus.testing import eventually
from fleetbus.testing.fleets import FleetUnderTest

WORKER = """
import asyncio
import sys
from pathlib import Path

import yaml

from fleetbus.fleet import FleetSpec
from fleetbus.js.connection import ConnectSettings
from fleetbus.runtime import Agent, RuntimeSettings, Task

spec = FleetSpec.model_validate(yaml.safe_load(Path(sys.argv[1]).read_text()))
agent = Agent(
    "backend",
    spec=spec,
    connection=ConnectSettings.from_url(sys.argv[2]),
    settings=RuntimeSettings(poll=1.0, presence_interval=0.5, presence_grace=3.0),
)


@agent.on_task
async def work(task: Task) -> str:
    await asyncio.sleep(float(task.body.get("seconds", 60)))
    return "finished"


print(agent.worker, flush=True)
agent.run()
"""


async def _spawn(fleet: FleetUnderTest, tmp_path: Path) -> tuple[asyncio.subprocess.Process, str]:
    spec_file = tmp_path / "fleet.yaml"
    spec_file.write_text(yaml.safe_dump(fleet.spec.model_dump(mode="json")))
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(script), str(spec_file), fleet.url,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None
    instance = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode().strip()
    return proc, instance


async def test_agents_are_listed_with_the_task_they_hold(fleet: FleetUnderTest) -> None:
    started = asyncio.Event()
    release = asyncio.Event()
    agent = fleet.agent("backend", presence_interval=0.3)

    @agent.on_task
    async def work(task: Task) -> str:
        started.set()
        await release.wait()
        return "done"

    async with fleet.client() as admin, fleet.client(sender="cto") as cto:
        async with agent:
            handle = await cto.assign("backend", {"title": "held"})
            await asyncio.wait_for(started.wait(), 15)

            async def holding() -> bool:
                found = [a for a in await admin.agents("backend") if a.instance == agent.worker]
                return bool(found) and [t.task_id for t in found[0].tasks] == [handle.id]

            await eventually(holding, 10, "the agent holding the task")
            (info,) = await admin.agents("backend")
            assert (info.role, info.state, info.handlers["tasks"]) == ("backend", "running", True)
            assert info.tasks[0].attempt == 1 and info.tasks[0].assigner == "cto"
            assert await admin.agents("devops") == []
            pong = await admin.control(agent.worker, "ping")
            assert pong["agent"]["instance"] == agent.worker
            release.set()
            assert await handle.result(timeout=10) == "done"
        assert await admin.agents("backend") == []  # a clean stop leaves the list at once


@pytest.mark.slow
async def test_a_killed_agent_goes_suspect_then_offline(
    fleet: FleetUnderTest, tmp_path: Path
) -> None:
    proc, instance = await _spawn(fleet, tmp_path)
    seen: list[str] = []
    try:
        async with fleet.client() as admin:

            async def state_is(wanted: str) -> bool:
                found = {a.instance: a.state for a in await admin.agents("backend")}
                if found.get(instance) and (not seen or seen[-1] != found[instance]):
                    seen.append(found[instance])
                return found.get(instance) == wanted

            await eventually(lambda: state_is("running"), 15, "the agent running")
            proc.kill()
            await proc.wait()
            await eventually(lambda: state_is("offline"), 10, "the agent offline")
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert seen == ["running", "suspect", "offline"]


async def test_a_stalled_event_loop_inside_the_grace_never_reaps_the_agent(
    fleet: FleetUnderTest,
) -> None:
    """A handler blocks its agent's loop for 5 s (no renewals): suspect at most, never
    offline (grace 8 s), and running again afterwards."""
    started = threading.Event()
    release = threading.Event()
    instance: list[str] = []

    def stalling_agent() -> None:
        async def main() -> None:
            agent = fleet.agent("backend", presence_interval=1.0, presence_grace=8.0)
            instance.append(agent.worker)

            @agent.on_task
            async def stall(task: Task) -> str:
                started.set()
                time.sleep(5.0)  # noqa: ASYNC251 - the stall under test
                return "done"

            async with agent:
                await asyncio.to_thread(release.wait)

        asyncio.run(main())

    thread = threading.Thread(target=stalling_agent)
    thread.start()
    states: list[str] = []
    try:
        async with fleet.client() as admin, fleet.client(sender="cto") as cto:
            await eventually(lambda: bool(instance), 10, "the agent made")

            async def running() -> bool:
                return any(a.instance == instance[0] for a in await admin.agents("backend"))

            await eventually(running, 15, "the agent listed")
            handle = await cto.assign("backend", {"title": "stall"})
            await asyncio.to_thread(started.wait, 15)
            deadline = time.monotonic() + 7.0
            while time.monotonic() < deadline:
                for a in await admin.agents("backend"):
                    if a.instance == instance[0] and (not states or states[-1] != a.state):
                        states.append(a.state)
                await asyncio.sleep(0.2)
            assert await handle.result(timeout=15) == "done"
    finally:
        release.set()
        await asyncio.to_thread(thread.join, 20)
    assert "offline" not in states
    assert "suspect" in states and states[-1] == "running"


@pytest.mark.slow
async def test_drain_finishes_the_held_task_and_the_process_exits_0(
    fleet: FleetUnderTest, tmp_path: Path
) -> None:
    proc, instance = await _spawn(fleet, tmp_path)
    try:
        async with fleet.client() as admin, fleet.client(sender="cto") as cto:
            handle = await cto.assign("backend", {"seconds": 1.5})

            async def holding() -> bool:
                return any(a.tasks for a in await admin.agents("backend"))

            await eventually(holding, 15, "the agent holding the task")
            answer = await admin.control(instance, "drain")
            assert answer["held"] == 1
            assert await asyncio.wait_for(proc.wait(), 30) == 0
            assert await handle.result(timeout=5) == "finished"
            assert await admin.agents("backend") == []
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_a_sender_is_told_at_once_when_no_agent_of_the_role_runs(
    fleet: FleetUnderTest, caplog: pytest.LogCaptureFixture
) -> None:
    async with fleet.client(sender="cto") as cto:
        handle = await cto.assign("backend", {"title": "queued"})
        assert handle.agent_running is False
        assert "no backend agent is running; the task is queued" in caplog.text
        with pytest.raises(NoLiveAgent, match="no backend agent is running"):
            await cto.assign("backend", {"title": "not sent"}, require_live=True)
        agent = fleet.agent("backend")

        @agent.on_task
        async def work(task: Task) -> str:
            return "done"

        async with agent:
            await asyncio.sleep(1.1)  # what the client read of backend is a second old
            live = await cto.assign("backend", {"title": "now"}, require_live=True)
            assert live.agent_running is True
            assert await handle.result(timeout=15) == "done"  # the queued one ran
            assert await live.result(timeout=15) == "done"
