"""A worker killed with SIGKILL in the middle of a task: another worker of the role
completes it on the next attempt, once the ack wait runs out."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from fleetbus.runtime import Task
from fleetbus.testing.fleets import FleetUnderTest

from .support import raw_client, seed_spec, updates

WORKER = """
import asyncio
import sys
from pathlib import Path

import yaml

from fleetbus.js.connection import ConnectSettings
from fleetbus.fleet import FleetSpec
from fleetbus.runtime import Agent, RuntimeSettings, Task

spec = FleetSpec.model_validate(yaml.safe_load(Path(sys.argv[1]).read_text()))
started = Path(sys.argv[3])
agent = Agent(
    "backend",
    spec=spec,
    connection=ConnectSettings.from_url(sys.argv[2]),
    settings=RuntimeSettings(poll=1.0),
)


@agent.on_task
async def hang(task: Task) -> None:
    await asyncio.sleep(0.5)  # past accepted_after: its accepted is written
    partial = started.with_suffix(".tmp")
    partial.write_text(f"{task.id} {task.attempt} {agent.worker}")
    partial.replace(started)  # atomically: the test never reads half a line
    await asyncio.Event().wait()  # until killed


agent.run()
"""


@pytest.mark.slow
async def test_a_task_survives_its_worker_being_killed(
    make_fleet: Callable[..., FleetUnderTest], tmp_path: Path
) -> None:
    fleet = make_fleet(seed_spec(backend_tasks={"ack_wait": "2s"}))
    spec_file = tmp_path / "fleet.yaml"
    spec_file.write_text(yaml.safe_dump(fleet.spec.model_dump(mode="json")))
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    started = tmp_path / "started"

    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            str(spec_file),
            fleet.url,
            str(started),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=out,
        )
    runs: list[tuple[str, int]] = []
    try:
        async with fleet.client() as client, raw_client(fleet) as nc:
            handle = await client.assign("backend", {"title": "interrupted"})
            async with asyncio.timeout(20):
                while not started.exists():
                    assert proc.returncode is None, log.read_text()
                    await asyncio.sleep(0.05)
            task_id, attempt, killed_worker = started.read_text().split()
            assert (task_id, attempt) == (handle.id, "1")
            proc.kill()
            await proc.wait()

            second = fleet.agent("backend")

            @second.on_task
            async def finish(task: Task) -> str:
                runs.append((task.id, task.attempt))
                return "completed by the survivor"

            async with second:
                assert await handle.result(timeout=20) == "completed by the survivor"
            history = await updates(nc, fleet, handle.id)
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()

    assert proc.returncode == -9
    assert runs == [(handle.id, 2)]
    assert [(u.state, u.attempt, u.worker) for u in history] == [
        ("accepted", 1, killed_worker),
        ("completed", 2, second.worker),  # a quick attempt: its outcome alone
    ]
