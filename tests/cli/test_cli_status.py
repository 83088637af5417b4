"""fleetbus status: one screen of the fleet, and exit codes a cron job can use."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import yaml

from fleetbus import Reject, Task
from fleetbus.testing.fleets import FleetUnderTest
from fleetbus_cli import fleetbus


def status(fleet_file: Path, url: str, data_dir: Path, *args: str) -> tuple[int, str]:
    done = fleetbus(
        data_dir, "--fleet", str(fleet_file), "--server", url, "--data-dir", str(data_dir),
        "status", *args,
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr


def write_fleet(fleet: FleetUnderTest, path: Path, **alerts: object) -> Path:
    data = fleet.spec.model_dump(mode="json")
    data["alerts"].update(alerts)
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_quiet_fleet_exits_0_and_shows_every_part(fleet: FleetUnderTest, tmp_path: Path) -> None:
    code, out = status(write_fleet(fleet, tmp_path / "f.yaml"), fleet.url, tmp_path)
    assert code == 0, out
    header = next(line for line in out.splitlines() if "consumer" in line and "stream" in line)
    for column in ("role", "pending", "ack pending", "redelivered", "polling", "last active"):
        assert column in header
    assert "BACKEND_TASKS" in out and "no alerts" in out


async def test_pending_above_the_threshold_exits_1(fleet: FleetUnderTest, tmp_path: Path) -> None:
    """A backend agent is stuck on its first task while more arrive."""
    fleet_file = write_fleet(fleet, tmp_path / "f.yaml", consumer_pending=1)
    backend = fleet.agent("backend")
    started = asyncio.Event()

    @backend.on_task
    async def stuck(task: Task) -> None:
        started.set()
        await asyncio.Event().wait()

    async with backend, fleet.client(sender="cto") as client:
        for i in range(3):
            await client.assign("backend", {"n": i})
        await asyncio.wait_for(started.wait(), 15)
        code, out = await asyncio.to_thread(status, fleet_file, fleet.url, tmp_path, "--json")
    assert code == 1
    alerts = json.loads(out)["alerts"]
    assert [a["code"] for a in alerts] == ["pending"]
    assert alerts[0]["subject"] == "BACKEND_TASKS"


async def test_ack_pending_above_the_threshold_exits_1(
    fleet: FleetUnderTest, tmp_path: Path
) -> None:
    """A running backend agent holds a task it does not finish."""
    fleet_file = write_fleet(fleet, tmp_path / "f.yaml", ack_pending=0)
    backend = fleet.agent("backend")
    started = asyncio.Event()

    @backend.on_task
    async def stuck(task: Task) -> None:
        started.set()
        await asyncio.Event().wait()

    async with backend, fleet.client(sender="cto") as client:
        await client.assign("backend", {"n": 1})
        await asyncio.wait_for(started.wait(), 15)  # delivered, never acknowledged
        code, out = await asyncio.to_thread(status, fleet_file, fleet.url, tmp_path, "--json")
    assert code == 1
    assert [a["code"] for a in json.loads(out)["alerts"]] == ["ack-pending"]


async def test_growing_dead_letters_exit_1_once(fleet: FleetUnderTest, tmp_path: Path) -> None:
    fleet_file = write_fleet(fleet, tmp_path / "f.yaml")
    assert status(fleet_file, fleet.url, tmp_path)[0] == 0  # remembers 0 dead letters
    backend = fleet.agent("backend")

    @backend.on_task
    async def refuse(task: Task) -> None:
        raise Reject("unknown kind")

    async with backend, fleet.client(sender="cto") as client:
        handle = await client.assign("backend", {"kind": "drop-db"})
        with pytest.raises(Exception, match="unknown kind"):
            await handle.result(timeout=10)
    code, out = status(fleet_file, fleet.url, tmp_path, "--json")
    assert code == 1
    assert [a["code"] for a in json.loads(out)["alerts"]] == ["dead-letters"]
    code, out = status(fleet_file, fleet.url, tmp_path, "--json")
    assert code == 0, out  # not growing any more since the last check


async def test_storage_above_the_threshold_exits_1(fleet: FleetUnderTest, tmp_path: Path) -> None:
    events = next(n for n in fleet.spec.streams if n.startswith("EVENTS"))
    async with fleet.client(sender="devops") as client:
        js = client.nc.jetstream()
        info = await js.stream_info(events)
        info.config.max_msgs = 4
        await js.update_stream(info.config)  # a stream limit status can measure against
        for i in range(4):
            await client.emit("deployment", "completed", {"n": i})
    code, out = status(
        write_fleet(fleet, tmp_path / "f.yaml", storage_percent=75), fleet.url, tmp_path, "--json"
    )
    assert code == 1
    alerts = json.loads(out)["alerts"]
    assert [(a["code"], a["subject"]) for a in alerts] == [("storage", events)]


def test_a_missing_consumer_is_an_alert(fleet: FleetUnderTest, tmp_path: Path) -> None:
    data = fleet.spec.model_dump(mode="json")
    data["roles"]["sales"] = {}
    fleet_file = tmp_path / "f.yaml"
    fleet_file.write_text(yaml.safe_dump(data))
    code, out = status(fleet_file, fleet.url, tmp_path, "--json")
    assert code == 1
    assert "consumer-missing" in {a["code"] for a in json.loads(out)["alerts"]}


async def test_roles_without_a_running_agent_are_idle_and_status_exits_0(
    fleet: FleetUnderTest, tmp_path: Path
) -> None:
    """The README's flow: a backend agent runs, nothing else; tasks and events pile up for
    roles nobody serves (CTO_UPDATES, CSO_EVENTS). Shown as idle roles, not as alerts."""
    fleet_file = write_fleet(fleet, tmp_path / "f.yaml", consumer_pending=2)
    backend = fleet.agent("backend")

    @backend.on_task
    async def done(task: Task) -> str:
        return "ok"

    async with backend, fleet.client(sender="cto") as client:
        for i in range(5):
            assert await (await client.assign("backend", {"n": i})).result(timeout=15) == "ok"
            await client.emit("deployment", "started", {"n": i})
        code, out = await asyncio.to_thread(status, fleet_file, fleet.url, tmp_path, "--json")
        text_code, text = await asyncio.to_thread(status, fleet_file, fleet.url, tmp_path)
    assert code == 0, out
    report = json.loads(out)
    assert report["alerts"] == []
    cto_updates = next(c for c in report["consumers"] if c["name"] == "CTO_UPDATES")
    assert cto_updates["pending"] >= 5  # kept for cto
    # backend runs: its consumers nobody polls (it has no invitation handler) are its own,
    # not an idle role's (it was listed among the idle roles beside its running agent)
    assert {c["serving"] for c in report["consumers"] if c["role"] == "backend"} == {True}
    assert text_code == 0 and "idle roles" in text and "cto" in text
    idle_line = next(line for line in text.splitlines() if "idle roles" in line)
    assert "backend" not in idle_line
