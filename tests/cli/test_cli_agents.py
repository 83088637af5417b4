"""fleetbus agents (a ps of the fleet), agents ping, and send telling when nobody runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleetbus import Task
from fleetbus.testing.fleets import FleetUnderTest

from .test_cli_messages import Cli


@pytest.fixture
def cli(fleet: FleetUnderTest, workdir: Path) -> Cli:
    return Cli(fleet, workdir)


async def test_send_says_at_once_when_no_agent_runs(cli: Cli) -> None:
    code, out, err = await cli("send", "backend", '{"title": "queued"}')
    assert code == 0, err
    assert out.startswith("task-")
    assert "no backend agent is running; the task is queued" in err
    code, out, err = await cli("send", "backend", '{"title": "x"}', "--require-live")
    assert code == 1
    assert "no backend agent is running" in err and "not sent" in err


async def test_agents_lists_and_pings_the_running_agents(fleet: FleetUnderTest, cli: Cli) -> None:
    agent = fleet.agent("backend")

    @agent.on_task
    async def work(task: Task) -> str:
        return "done"

    async with agent:
        code, out, err = await cli("agents", "--json")
        assert code == 0, err
        (listed,) = json.loads(out)
        assert (listed["instance"], listed["state"]) == (agent.worker, "running")
        code, out, err = await cli("agents", "--role", "backend")
        assert code == 0 and agent.worker in out and "running" in out
        code, out, err = await cli("agents", "ping", agent.worker)
        assert code == 0, err
        assert f"{agent.worker}: running, holding nothing" in out
    code, out, err = await cli("agents")
    assert code == 0 and "no agent is running" in out
    code, out, err = await cli("agents", "ping", agent.worker)
    assert code == 1 and "did not answer" in err
