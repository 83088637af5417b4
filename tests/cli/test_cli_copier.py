"""`fleetbus up --detach` runs a dead-letter copier as the admin beside the server: with auth
on, agents may not read the originals, and a task that a worker outside fleetbus (a consumer
with its own max_deliver) took and never finished must still reach the dead-letter stream."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from pathlib import Path

import nats
import yaml

from fleetbus.fleet.template import SEED_FLEET_YAML
from fleetbus.security import ADMIN, load_credential
from fleetbus.server.embedded import running_embedded
from fleetbus_cli import fleetbus


def copier_alive(pid: int) -> bool:
    try:
        return b"copier" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


async def test_the_detached_copier_dead_letters_a_crashed_agents_task(tmp_path: Path) -> None:
    seed = yaml.safe_load(SEED_FLEET_YAML)
    seed["roles"]["backend"]["tasks"].update(ack_wait="1s", max_deliver=2)
    (tmp_path / "fleet.yaml").write_text(yaml.safe_dump(seed))
    up = fleetbus(tmp_path, "up", "--detach", "--port", "0")
    assert up.returncode == 0, up.stdout + up.stderr
    data = tmp_path / ".fleetbus"
    try:
        assert "dead-letter copier" in up.stdout
        copier = int((data / "copier.pid").read_text())
        assert copier_alive(copier)
        info = running_embedded(data)
        admin = load_credential(data, ADMIN)
        assert info is not None and admin is not None
        nc = await nats.connect(info.url, user=admin.user, password=admin.password)
        try:
            js = nc.jetstream()
            await js.add_consumer(
                "AGENT_COMMS",
                durable_name="OUTSIDER",
                ack_wait=1.0,
                max_deliver=2,
                filter_subject="genbrain.agents.backend.tasks",
            )
            await js.publish("genbrain.agents.backend.tasks", b'{"task_id": "task-crash"}')
            # A worker that takes the task and dies, twice: nobody acks, nobody terms.
            sub = await js.pull_subscribe_bind("OUTSIDER", "AGENT_COMMS")
            for _ in range(2):
                async with asyncio.timeout(15):
                    while True:
                        try:
                            await sub.fetch(1, timeout=2)
                            break
                        except TimeoutError:
                            continue
            # The next pull makes the server notice the exhausted message.
            with contextlib.suppress(TimeoutError):
                await sub.fetch(1, timeout=2)
        finally:
            await nc.close()
        letters: list[dict[str, object]] = []
        async with asyncio.timeout(20):
            while not letters:
                listed = fleetbus(tmp_path, "dlq", "list", "--json")
                assert listed.returncode == 0, listed.stderr
                letters = json.loads(listed.stdout)
                if not letters:
                    await asyncio.sleep(0.5)
        assert "max deliveries (2) reached" in str(letters[0]["reason"])
        task = fleetbus(tmp_path, "task", "task-crash", "--json")
        assert json.loads(task.stdout)[-1]["state"] == "dead_lettered"
    finally:
        down = fleetbus(tmp_path, "down")
    assert down.returncode == 0, down.stderr
    async with asyncio.timeout(10):
        while copier_alive(copier):  # noqa: ASYNC110 - another process, no event
            await asyncio.sleep(0.1)
    assert not (data / "copier.pid").exists()


def test_down_stops_only_the_copier_it_started(tmp_path: Path) -> None:
    """`down` sent SIGTERM to whatever process had the recorded pid if its command line held
    "fleetbus": a reused pid (an agent `fleetbus run` serves, say) was stopped with it."""
    data = tmp_path / ".fleetbus"
    data.mkdir()
    decoy = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "fleetbus"])
    try:
        (data / "copier.pid").write_text(f"{decoy.pid}\n")
        fleetbus(tmp_path, "down")  # no server runs: exit 1, the copier record handled first
        assert decoy.poll() is None  # still running
        assert not (data / "copier.pid").exists()
    finally:
        decoy.kill()
        decoy.wait()
