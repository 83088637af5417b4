"""Starting an agent: a clear error and nothing left open when the fleet is not there; the
dead-letter copier, an extra in every agent, never takes the agent down with it."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest

from fleetbus.deadletters import COPIER_CONSUMER
from fleetbus.errors import FleetbusError
from fleetbus.fleet import seed_fleet
from fleetbus.js.connection import ConnectSettings
from fleetbus.provision import provision_at
from fleetbus.runtime import Agent, RuntimeSettings, Task
from fleetbus.server.process import NatsServer
from fleetbus.testing.fleets import FleetUnderTest, isolate

from .support import api_of, eventually, raw_client


def connection_names(server: NatsServer) -> list[str]:
    with urllib.request.urlopen(f"{server.monitor_url}/connz?limit=1024") as reply:
        return [str(c.get("name", "")) for c in json.load(reply).get("connections") or []]


async def test_an_unprovisioned_fleet_fails_clearly_and_leaves_no_connection(
    tmp_path: Path,
) -> None:
    with NatsServer(data_dir=tmp_path, port=0, monitor_port=0) as server:  # /connz to look
        await _unprovisioned_fails_clearly(server)


async def _unprovisioned_fails_clearly(nats_server: NatsServer) -> None:
    name = f"agent-{uuid.uuid4().hex[:8]}"
    agent = Agent(
        "backend",
        spec=isolate(seed_fleet()),  # never provisioned: no streams, no consumers
        connection=ConnectSettings.from_url(nats_server.url, name=name),
        settings=RuntimeSettings(poll=1.0),
    )

    @agent.on_task
    async def implement(task: Task) -> None:
        raise AssertionError("never called")

    with pytest.raises(FleetbusError, match=r"BACKEND_TASKS does not exist.*fleetbus provision"):
        await agent.start()
    # The client has closed; the server lists the connection until it has read the close.
    await eventually(
        lambda: asyncio.to_thread(lambda: name not in connection_names(nats_server)),
        what="the server forgetting the agent's connection",
    )
    await agent.stop()  # nothing to stop: a no-op


async def test_an_agent_serves_even_when_its_dead_letter_copier_cannot(
    fleet: FleetUnderTest,
) -> None:
    dlq = fleet.spec.dead_letter_stream
    assert dlq is not None
    async with raw_client(fleet) as nc:
        await api_of(nc).delete_consumer(dlq, COPIER_CONSUMER)
    agent = fleet.agent("backend")

    @agent.on_task
    async def implement(task: Task) -> str:
        return "served"

    failures = Logged(COPIER_CONSUMER, "failed")
    logging.getLogger("fleetbus").addHandler(failures)
    try:
        async with agent, fleet.client() as client:
            await failures.reach(1)  # the copier's first fetch failed
            first = await client.assign("backend", {"n": 1})
            assert await first.result(timeout=10) == "served"
            await failures.reach(2)  # and its retry
            second = await client.assign("backend", {"n": 2})
            assert await second.result(timeout=10) == "served"
    finally:
        logging.getLogger("fleetbus").removeHandler(failures)


class Logged(logging.Handler):
    """The warnings logged that hold every one of ``words``, as they come."""

    def __init__(self, *words: str) -> None:
        super().__init__(logging.WARNING)
        self.words = words
        self.lines: list[str] = []
        self.changed = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if all(word in text for word in self.words):
            self.lines.append(text)
            self.changed.set()

    async def reach(self, count: int) -> None:
        async with asyncio.timeout(30):
            while len(self.lines) < count:
                self.changed.clear()
                await self.changed.wait()


def test_agent_run_without_a_server_is_one_clear_line(tmp_path: Path) -> None:
    script = tmp_path / "backend.py"
    script.write_text(
        "from fleetbus import Agent\n"
        "backend = Agent('backend')\n"
        "@backend.on_task\n"
        "async def work(task):\n"
        "    return {}\n"
        "backend.run()\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETBUS_")}
    env["FLEETBUS_URL"] = "nats://127.0.0.1:1"
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().startswith("error: cannot connect to nats://127.0.0.1:1")


async def test_a_consumer_deleted_under_a_running_agent_is_asked_for_calmly_until_it_is_back(
    fleet: FleetUnderTest,
) -> None:
    """The consumer gone (an operator's delete, a recreate): every pull request was refused
    (503), and the loop asked again every 0.4 s, each time logging a line that ran on into
    the next header (``503 \\nNats-Subject: ...``): a sent request counted as a success and
    reset the pause. The pauses now double while requests fail, each line says what 503
    means, and the agent serves again once the consumer is back."""
    agent = fleet.agent("backend")

    @agent.on_task
    async def implement(task: Task) -> str:
        return "served"

    refused = Logged("pull request failed")
    logging.getLogger("fleetbus.consume").addHandler(refused)
    try:
        async with agent, fleet.client() as client, raw_client(fleet) as nc:
            tasks = fleet.spec.consumer("backend", "tasks")
            assert tasks is not None
            await api_of(nc).delete_consumer(tasks.stream, tasks.name)
            await refused.reach(3)
            assert all("\n" not in line for line in refused.lines)
            assert "503 no responders: the consumer or its stream is missing" in refused.lines[2]
            delays = [float(line.rsplit(" in ", 1)[1].removesuffix("s")) for line in refused.lines]
            assert delays[:3] == [0.4, 0.8, 1.6]
            await provision_at(ConnectSettings.from_url(fleet.url), fleet.spec)
            handle = await client.assign("backend", {"n": 1})
            assert await handle.result(timeout=20) == "served"
    finally:
        logging.getLogger("fleetbus.consume").removeHandler(refused)
