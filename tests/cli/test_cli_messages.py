"""send, msg, emit, ask, tail and task: the seed's nats pub/sub/req as fleetbus verbs."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest
import yaml

from fleetbus import Event, Message, NoResponders, Request, Task
from fleetbus.testing.fleets import FleetUnderTest

from .conftest import assert_one_error


class Cli:
    def __init__(self, fleet: FleetUnderTest, workdir: Path) -> None:
        self.fleet_file = workdir / "fleet.yaml"
        self.fleet_file.write_text(yaml.safe_dump(fleet.spec.model_dump(mode="json")))
        self.url = fleet.url
        self.workdir = workdir

    async def __call__(self, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETBUS_")}
        env["COLUMNS"] = "200"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "fleetbus", "--fleet", str(self.fleet_file),
            "--server", self.url, *args,
            cwd=self.workdir, env=env,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(
            proc.communicate(stdin.encode() if stdin is not None else None), 60
        )
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()


@pytest.fixture
def cli(fleet: FleetUnderTest, workdir: Path) -> Cli:
    return Cli(fleet, workdir)


async def test_send_wait_follows_the_task_to_completion(fleet: FleetUnderTest, cli: Cli) -> None:
    backend = fleet.agent("backend")

    @backend.on_task
    async def implement(task: Task) -> dict[str, object]:
        await task.progress("tests", percent=50)
        return {"pr": 143, "title": task.body["title"]}

    async with backend:
        code, out, err = await cli(
            "send", "backend", '{"title": "pagination"}', "--task-id", "task-cli-1", "--wait"
        )
        assert code == 0, err
        assert out.splitlines()[0] == "task-cli-1"
        assert "completed" in out and '"pr": 143' in out
        code, out, err = await cli("task", "task-cli-1", "--json")
    assert code == 0, err
    states = [u["state"] for u in json.loads(out)]
    assert states == ["accepted", "progress", "completed"]


async def test_send_reads_a_file_and_stdin(fleet: FleetUnderTest, cli: Cli) -> None:
    (cli.workdir / "task.json").write_text('{"title": "from a file"}')
    code, out, err = await cli("send", "backend", "@task.json", "--json")
    assert code == 0, err
    first = json.loads(out)["task_id"]
    code, out, err = await cli("send", "backend", "-", stdin='{"title": "from stdin"}')
    assert code == 0, err
    assert out.strip().startswith("task-") and out.strip() != first


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ('{"title": }', "BODY is not JSON: Expecting value at line 1 column 11"),
        ("[1, 2]", "must be a JSON object"),
        ("@missing.json", "cannot read missing.json"),
    ],
)
async def test_bad_bodies_are_clear_errors(cli: Cli, body: str, needle: str) -> None:
    code, _, err = await cli("send", "backend", body)
    assert code == 2
    assert_one_error(err, needle)


async def test_unknown_role_and_bad_token_are_refused_before_sending(cli: Cli) -> None:
    code, _, err = await cli("msg", "marketing", "{}")
    assert code == 1
    assert_one_error(err, "unknown role 'marketing'")
    code, _, err = await cli("emit", "deploy ment", "completed", "{}")
    assert code == 1
    assert_one_error(err, "contains a space")


async def test_msg_and_emit_reach_their_agents(fleet: FleetUnderTest, cli: Cli) -> None:
    got: list[str] = []
    both = asyncio.Event()
    cso = fleet.agent("cso")

    @cso.on_message
    async def inbox(msg: Message) -> None:
        got.append(f"inbox from {msg.sender}: {msg.body['text']}")
        if len(got) == 2:
            both.set()

    @cso.on_event("deployment.>")
    async def deployed(event: Event) -> None:
        got.append(f"event {event.domain}.{event.type}: {event.body['version']}")
        if len(got) == 2:
            both.set()

    async with cso:
        code, _, err = await cli("msg", "cso", '{"text": "review PR 143"}', "--as", "backend")
        assert code == 0, err
        code, _, err = await cli("emit", "deployment", "completed", '{"version": "v2.3.1"}')
        assert code == 0, err
        async with asyncio.timeout(10):
            await both.wait()
    assert sorted(got) == [
        "event deployment.completed: v2.3.1",
        "inbox from backend: review PR 143",
    ]


async def test_ask_prints_the_agents_answer(fleet: FleetUnderTest, cli: Cli) -> None:
    code, _, err = await cli("ask", "cso", '{"q": "safe?"}', "--timeout", "2")
    assert code == 1
    assert_one_error(err, "no agent of role 'cso' answers requests")

    cso = fleet.agent("cso")

    @cso.on_request
    async def answer(req: Request) -> dict[str, object]:
        return {"safe": True, "asked_by": req.sender}

    async with cso:
        code, out, err = await cli("ask", "cso", '{"q": "safe?"}', "--as", "backend")
    assert code == 0, err
    assert json.loads(out) == {"safe": True, "asked_by": "backend"}


async def test_tail_prints_live_messages_without_consuming(fleet: FleetUnderTest, cli: Cli) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETBUS_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fleetbus", "--fleet", str(cli.fleet_file), "--server", fleet.url,
        "tail", "agents.*.inbox",
        cwd=cli.workdir, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    try:  # "tailing ..." (on stderr) once the subscription is in place
        first = await asyncio.wait_for(proc.stderr.readline(), 20)
        assert b"tailing" in first
        async with fleet.client(sender="cto") as client:
            await client.message("backend", {"text": "hello"})
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
    finally:
        proc.terminate()
        await proc.wait()
    assert f"{fleet.spec.prefix}.agents.backend.inbox" in line
    assert "from cto" in line and '"text":"hello"' in line
    # Nothing was consumed: BACKEND_INBOX still has the message waiting.
    async with fleet.client() as client:
        stream = fleet.spec.stream_for(fleet.spec.subjects.inbox("backend"))
        info = await client.nc.jetstream().consumer_info(stream, "BACKEND_INBOX")
    assert info.num_pending == 1


async def test_tailing_everything_leaves_asks_failing_fast(fleet: FleetUnderTest, cli: Cli) -> None:
    """`tail` with no pattern must not become a responder on P.rpc.*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETBUS_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fleetbus", "--fleet", str(cli.fleet_file), "--server", fleet.url,
        "tail",
        cwd=cli.workdir, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    try:
        assert b"tailing" in await asyncio.wait_for(proc.stderr.readline(), 20)
        async with fleet.client(sender="backend") as client:
            with pytest.raises(NoResponders):
                await client.ask("cso", {"q": "anyone?"}, timeout=20)
            await client.emit("deployment", "completed", {"v": 1})
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
    finally:
        proc.terminate()
        await proc.wait()
    assert f"{fleet.spec.prefix}.events.deployment.completed" in line


async def test_task_of_an_unknown_id(cli: Cli) -> None:
    code, _, err = await cli("task", "task-nope")
    assert code == 1
    assert_one_error(err, "no updates for task task-nope")
