"""fleetbus dlq (list, show, replay, purge) and fleetbus run, against a real server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest
import yaml

from fleetbus import Reject, Task, TaskError
from fleetbus.js.publish import Publisher
from fleetbus.testing.fleets import FleetUnderTest, final_history
from fleetbus.wire import headers as h


class Cli:
    def __init__(self, fleet: FleetUnderTest, workdir: Path) -> None:
        self.fleet_file = workdir / "fleet.yaml"
        self.fleet_file.write_text(yaml.safe_dump(fleet.spec.model_dump(mode="json")))
        self.url = fleet.url
        self.workdir = workdir
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETBUS_")}
        self.env["COLUMNS"] = "200"

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "fleetbus", "--fleet", str(self.fleet_file),
                "--server", self.url, *args]  # fmt: skip

    async def __call__(self, *args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            *self.argv(*args), cwd=self.workdir, env=self.env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()


@pytest.fixture
def cli(fleet: FleetUnderTest, tmp_path: Path) -> Cli:
    return Cli(fleet, tmp_path)


async def test_dlq_list_show_replay_purge(fleet: FleetUnderTest, cli: Cli) -> None:
    attempts: list[str] = []
    replayed = asyncio.Event()
    backend = fleet.agent("backend")

    @backend.on_task
    async def picky(task: Task) -> dict[str, bool]:
        attempts.append(task.id)
        if len(attempts) == 2:
            replayed.set()
        if task.body.get("kind") == "drop-db" and len(attempts) == 1:
            raise Reject("unknown kind")
        return {"ok": True}

    async with backend, fleet.client(sender="cto") as client:
        handle = await client.assign("backend", {"kind": "drop-db"}, task_id="task-dlq-1")
        with pytest.raises(TaskError):
            await handle.result(timeout=10)

        code, out, err = await cli("dlq", "list", "--json")
        assert code == 0, err
        (entry,) = json.loads(out)
        assert entry["reason"] == "rejected: unknown kind"
        assert entry["original_subject"].startswith(fleet.spec.subjects.tasks("backend"))
        assert json.loads(entry["body"]) == {"kind": "drop-db"}

        code, out, err = await cli("dlq", "show", str(entry["id"]))
        assert code == 0, err
        assert "rejected: unknown kind" in out and "BACKEND_TASKS" in out

        # Replay: the task comes back with a fresh attempt count and completes this time.
        code, out, err = await cli("dlq", "replay", str(entry["id"]))
        assert code == 0, err
        assert f"replayed dead letter {entry['id']}" in out
        async with asyncio.timeout(10):
            await replayed.wait()
        updates = await final_history(client, "task-dlq-1", until="completed")
        assert updates[-1].state == "completed" and updates[-1].attempt == 1
        code, out, _ = await cli("dlq", "list", "--json")
        assert json.loads(out) == []  # replayed letters leave the dead-letter stream

        await client.assign("backend", {"kind": "drop-db"})  # not rejected: 3rd attempt
        code, out, err = await cli("dlq", "purge", "--yes")
        assert code == 0, err
        assert "purged 0 dead letter(s)" in out

    code, _, err = await cli("dlq", "show", "9999")
    assert code == 1 and "no dead letter 9999" in err
    code, _, err = await cli("dlq", "replay")
    assert code == 2 and "give a dead letter ID or --all" in err


async def test_dlq_replay_all_goes_on_past_one_it_cannot_replay(
    fleet: FleetUnderTest, cli: Cli
) -> None:
    """A dead letter replay refuses (one of an updates consumer's, here; one too large for
    its stream now, say) is told and kept; the ones after it are still replayed, and the
    exit code says not all went."""
    tasks = fleet.spec.stream_for(fleet.spec.subjects.task_records())
    assert tasks
    backend = fleet.agent("backend")
    tries: list[int] = []

    @backend.on_task
    async def picky(task: Task) -> dict[str, bool]:
        tries.append(task.attempt)
        if len(tries) == 1:
            raise Reject("not now")
        return {"ok": True}

    async with backend, fleet.client(sender="cto") as client:
        await fleet_publish(fleet, fleet.spec.subjects.dead_letter(tasks, "CTO_UPDATES", 1))
        handle = await client.assign("backend", {"title": "audit"})
        with pytest.raises(TaskError):
            await handle.result(timeout=10)
        code, out, err = await cli("dlq", "replay", "--all")
        assert code == 1
        assert "not replayed (kept)" in err and "CTO_UPDATES" in err
        assert "replayed dead letter" in out
        assert await client.task(handle.id, "backend").result(timeout=10) == {"ok": True}
    code, out, _ = await cli("dlq", "list", "--json")
    assert [e["consumer"] for e in json.loads(out)] == [""]  # the refused one, kept


async def fleet_publish(fleet: FleetUnderTest, subject: str) -> None:
    async with fleet.client() as admin:
        await Publisher(admin.conn).publish(subject, b"{}", {h.DLQ_REASON: "x"})


async def test_run_serves_agents_until_sigterm(fleet: FleetUnderTest, cli: Cli) -> None:
    module = cli.workdir / "my_agents.py"
    module.write_text(
        "from fleetbus import Agent\n"
        "backend = Agent('backend')\n"
        "@backend.on_task\n"
        "async def work(task):\n"
        "    return {'done': task.id}\n"
        "cso = Agent('cso')\n"
        "@cso.on_request\n"
        "async def review(req):\n"
        "    return {'verdict': 'approved'}\n"
    )
    proc = await asyncio.create_subprocess_exec(
        *cli.argv("run", "my_agents.py:backend", "my_agents.py:cso"),
        cwd=cli.workdir, env=cli.env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(30):  # every agent is started once it says so
            ready = (await proc.stdout.readline()).decode()
        assert ready.startswith("serving backend (backend-"), ready
        assert "cso (cso-" in ready
        async with fleet.client(sender="cto") as client:
            handle = await client.assign("backend", {"title": "x"})
            assert await handle.result(timeout=30) == {"done": handle.id}
            assert await client.ask("cso", {"q": 1}, timeout=10) == {"verdict": "approved"}
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    assert "serving BACKEND_TASKS" in err.decode()


async def test_run_names_a_bad_target(cli: Cli) -> None:
    code, _, err = await cli("run", "nowhere.py:agent")
    assert code == 1
    assert "no such file nowhere.py" in err
    (cli.workdir / "m.py").write_text("x = 1\n")
    code, _, err = await cli("run", "m.py:x")
    assert code == 1 and "x is not a fleetbus Agent" in err
