"""``fleetbus up`` / ``down`` / ``provision`` as a user runs them: ``python -m fleetbus``
subprocesses, checked with a plain nats-py client. Every server started here is stopped by
its recorded pid in the fixture's finalizer."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
import yaml

from fleetbus.fleet import seed_fleet
from fleetbus.fleet.template import SEED_FLEET_YAML
from fleetbus.security import ADMIN, inbox_prefix, load_credential
from fleetbus.server import running_embedded, stop_embedded
from fleetbus.server.embedded import pid_alive
from fleetbus.testing import eventually

from .conftest import Invoke, Run, assert_one_error

FREE_PORTS = ("--port", "0")


@pytest.fixture
def data_dir(workdir: Path) -> Iterator[Path]:
    path = workdir / "D"
    yield path
    if running_embedded(path):  # a failed test must not leave its server behind
        stop_embedded(path, grace=2)


async def _inspect(url: str, data_dir: Path) -> dict[str, Any]:
    """What a plain nats-py client sees as the admin: streams and their consumers' configs."""
    admin = load_credential(data_dir, ADMIN)  # `fleetbus up` turns auth on by default
    assert admin is not None
    nc = await nats.connect(url, user=admin.user, password=admin.password)
    try:
        js = nc.jetstream()
        out: dict[str, Any] = {}
        for info in await js.streams_info():
            name = info.config.name
            assert name is not None
            out[name] = {
                "config": info.config,
                "consumers": {c.name: c.config for c in await js.consumers_info(name)},
            }
        return out
    finally:
        await nc.close()


async def _sends(url: str, data_dir: Path, identity: str, subject: str) -> bool:
    """Whether ``identity`` may store a message on ``subject`` (its credentials, nats-py)."""
    cred = load_credential(data_dir, identity)
    assert cred is not None
    try:
        nc = await nats.connect(
            url,
            user=cred.user,
            password=cred.password,
            inbox_prefix=inbox_prefix(identity),  # the only replies a role may receive
            error_cb=_quiet,
            allow_reconnect=False,
        )
    except Exception:  # an identity the server does not know
        return False
    try:
        await nc.jetstream().publish(subject, b"{}", timeout=2)
    except Exception:  # a permissions violation: no PubAck comes
        return False
    finally:
        await nc.close()
    return True


async def _quiet(exc: Exception) -> None:
    """nats-py reports a permissions violation here too."""


def inspect(url: str, data_dir: Path) -> dict[str, Any]:
    return asyncio.run(_inspect(url, data_dir))


def test_up_provision_down(run_cli: Run, data_dir: Path) -> None:
    up = run_cli("--data-dir", "D", "up", "--detach", *FREE_PORTS)
    assert up.returncode == 0, up.stderr
    assert "Traceback" not in up.stdout + up.stderr
    info = running_embedded(data_dir)
    assert info is not None
    assert f"nats-server {info.url}" in up.stdout
    assert f"running in the background (pid {info.pid}; dead-letter copier" in up.stdout
    assert "provisioned" in up.stdout  # the plan
    assert "applied: 26 create" in up.stdout
    assert "replicas above the server's 1 node(s) for AGENT_COMMS (3)" in up.stdout

    seen = inspect(info.url, data_dir)
    # auth is on: secrets are 0600 and the config holds only bcrypt hashes
    admin = load_credential(data_dir, ADMIN)
    assert admin is not None
    assert oct((data_dir / "auth" / "admin.json").stat().st_mode & 0o777) == "0o600"
    config = (data_dir / "nats-server.conf").read_text()
    assert admin.password not in config and "$2b$" in config
    assert "http" not in config  # no monitoring port: it would list every subscription
    assert "allow_responses: false" in config
    # Nothing in the data dir is readable by anyone but its owner.
    assert data_dir.stat().st_mode & 0o077 == 0
    exposed = [
        str(p.relative_to(data_dir))
        for p in data_dir.rglob("*")
        if p.stat().st_mode & 0o077 and not p.is_symlink()
    ]
    assert exposed == []
    assert set(seen) == {
        "AGENT_COMMS",
        "EVENTS",
        "TASKS",
        "TASK_INDEX",
        "TASK_MEMO",
        "AGENT_PRESENCE",
        "AGENT_DLQ",
    }
    assert seen["AGENT_COMMS"]["config"].subjects == ["genbrain.agents.>"]
    for c in seed_fleet().consumers():
        assert c.name in seen[c.stream]["consumers"], (c.stream, c.name)
    tasks = seen["AGENT_COMMS"]["consumers"]["BACKEND_TASKS"]
    # plain publishes and P.agents.backend.tasks.{sender} (the sender token: docs/security.md)
    assert tasks.filter_subjects == [
        "genbrain.agents.backend.tasks",
        "genbrain.agents.backend.tasks.*",
    ]
    # max_deliver: the runtime counts attempts (3); the server never gives up by itself
    assert (tasks.max_deliver, tasks.max_ack_pending, tasks.ack_wait) == (-1, 1, 4.0)
    assert seen["EVENTS"]["consumers"]["DEVOPS_EVENTS"].filter_subject == (
        "genbrain.events.deployment.>"
    )

    # Other verbs find the embedded server through the data dir.
    again = run_cli("--data-dir", "D", "provision", "--json")
    assert again.returncode == 0, again.stderr
    plan = json.loads(again.stdout)
    assert {a["op"] for a in plan["actions"]} == {"unchanged"}
    assert len(plan["actions"]) == 26
    assert plan["needs_force"] == []
    text = run_cli("--data-dir", "D", "provision")
    assert text.returncode == 0
    assert "26 unchanged" in text.stdout
    assert "still holds" not in text.stderr

    assert "reloaded" not in text.stdout

    # A send_to taken away: nats-server reads permissions at start, so provision has it
    # reload them (it changed nothing before, and said nothing: backend still sent to cso).
    assert asyncio.run(_sends(info.url, data_dir, "backend", "genbrain.agents.cso.inbox.backend"))
    fleet = yaml.safe_load(SEED_FLEET_YAML)
    fleet["roles"]["backend"]["send_to"] = ["cto"]
    (data_dir.parent / "fleet.yaml").write_text(yaml.safe_dump(fleet))
    revoked = run_cli("--fleet", "fleet.yaml", "--data-dir", "D", "provision")
    assert revoked.returncode == 0, revoked.stderr
    assert "reloaded: the embedded server now holds the fleet file's" in revoked.stdout
    cso_inbox = "genbrain.agents.cso.inbox.backend"

    async def refused() -> bool:  # the server reloads on SIGHUP, a moment after it
        return not await _sends(info.url, data_dir, "backend", cso_inbox)

    asyncio.run(eventually(refused, 10, "backend refused on cso's inbox"))
    assert asyncio.run(_sends(info.url, data_dir, "backend", "genbrain.agents.cto.inbox.backend"))
    # A role added: its credentials are made and the server knows it (it was refused).
    fleet["roles"]["newbie"] = {"send_to": ["cto"]}
    (data_dir.parent / "fleet.yaml").write_text(yaml.safe_dump(fleet))
    added = run_cli("--fleet", "fleet.yaml", "--data-dir", "D", "provision")
    assert added.returncode == 0 and "reloaded" in added.stdout, added.stderr

    async def newbie_sends() -> bool:
        return await _sends(info.url, data_dir, "newbie", "genbrain.agents.cto.inbox.newbie")

    asyncio.run(eventually(newbie_sends, 10, "newbie logs in and sends to cto"))

    twice = run_cli("--data-dir", "D", "up", "--detach", *FREE_PORTS)
    assert twice.returncode == 1
    assert_one_error(twice.stderr, "already running", f"pid {info.pid}")

    down = run_cli("--data-dir", "D", "down")
    assert down.returncode == 0, down.stderr
    assert f"stopped nats-server pid {info.pid} ({info.url})" in down.stdout
    assert not pid_alive(info.pid)
    assert not (data_dir / "server.pid").exists()
    assert running_embedded(data_dir) is None

    down_again = run_cli("--data-dir", "D", "down")
    assert down_again.returncode == 1
    assert down_again.stdout == ""
    assert_one_error(down_again.stderr, "no embedded server is running")


def test_up_on_a_port_in_use_says_why(run_cli: Run, data_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("--data-dir", "D", "up", "--detach", "--port", str(port))
    assert result.returncode == 1
    line = assert_one_error(result.stderr, f"port 127.0.0.1:{port} is already in use")
    # The server's own log line, on the same line.
    assert "[FTL] Error listening on port" in line
    assert "address already in use" in line
    assert not (data_dir / "server.pid").exists()
    assert running_embedded(data_dir) is None


def test_up_refuses_a_fleet_file_with_errors_before_it_starts_a_server(
    run_cli: Run, data_dir: Path
) -> None:
    """`up --detach` started the server, then refused the file, and left the server running
    without a dead-letter copier (a second `up` then said "already running")."""
    fleet = yaml.safe_load(SEED_FLEET_YAML)
    fleet["streams"]["EVENTS"]["subjects"] = ["events.>", "tasks.>"]  # TASKS's: an error
    (data_dir.parent / "fleet.yaml").write_text(yaml.safe_dump(fleet))
    result = run_cli("--fleet", "fleet.yaml", "--data-dir", "D", "up", "--detach", *FREE_PORTS)
    assert result.returncode == 1
    assert_one_error(result.stderr, "so nothing was provisioned", "overlaps")
    assert running_embedded(data_dir) is None


@pytest.mark.parametrize("given", [".", "./"])
def test_up_refuses_the_project_itself_as_data_dir(workdir: Path, run_cli: Run, given: str) -> None:
    """The fleet file's `data_dir: .` was refused, `--data-dir .` was not: `up` made the
    project directory private (0700) and put credentials and the store among its files."""
    mode = workdir.stat().st_mode
    result = run_cli("--data-dir", given, "up", "--detach", *FREE_PORTS)
    assert result.returncode == 2
    assert_one_error(result.stderr, "--data-dir", "the project's own directory")
    assert workdir.stat().st_mode == mode
    assert sorted(p.name for p in workdir.iterdir()) == []


def test_up_replaces_a_stale_pid_file(run_cli: Run, data_dir: Path, dead_pid: int) -> None:
    data_dir.mkdir()
    (data_dir / "server.pid").write_text(f"{dead_pid}\n")
    result = run_cli("--data-dir", "D", "up", "--detach", "--no-provision", *FREE_PORTS)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(warnings) == 1
    assert warnings[0].startswith("warning: removed stale pid file")
    assert f"pid {dead_pid} is gone" in warnings[0]
    info = running_embedded(data_dir)
    assert info is not None and info.pid != dead_pid
    assert "provisioned" not in result.stdout  # --no-provision
    assert inspect(info.url, data_dir) == {}

    assert run_cli("--data-dir", "D", "down").returncode == 0
    assert not pid_alive(info.pid)


def test_down_with_a_stale_pid_file(run_cli: Run, data_dir: Path, dead_pid: int) -> None:
    data_dir.mkdir()
    (data_dir / "server.pid").write_text(f"{dead_pid}\n")
    result = run_cli("--data-dir", "D", "down")
    assert result.returncode == 1
    assert_one_error(result.stderr, "no server running", "stale pid file", f"pid {dead_pid}")
    assert not (data_dir / "server.pid").exists()


def test_down_with_a_garbled_pid_file(invoke: Invoke, data_dir: Path) -> None:
    data_dir.mkdir()
    (data_dir / "server.pid").write_text("not a pid\n")
    result = invoke("--data-dir", str(data_dir), "down")
    assert result.exit_code == 1
    assert_one_error(result.stderr, "no server running", "it held no pid")


def test_provision_cannot_connect(invoke: Invoke) -> None:
    result = invoke("provision", "--server", "nats://127.0.0.1:1")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.stdout == ""
    assert_one_error(result.stderr, "cannot connect to nats://127.0.0.1:1")


def test_up_in_the_foreground_stops_on_ctrl_c(workdir: Path, data_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETBUS_")}
    env["PYTHONUNBUFFERED"] = "1"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleetbus", "--data-dir", "D", "up", *FREE_PORTS],
        cwd=workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("serving"):
                break
        assert any(line.startswith("serving") for line in lines), "".join(lines)
        info = running_embedded(data_dir)
        assert info is not None
        assert "applied: 26 create" in "".join(lines)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "Traceback" not in out + err
    assert out.strip().endswith("stopped")
    assert not pid_alive(info.pid)
    assert running_embedded(data_dir) is None


def test_up_writes_no_permissions_past_the_model(
    run_cli: Run, workdir: Path, data_dir: Path
) -> None:
    """A fleet file that grants backend another role's presence records: `up` refuses to
    turn it into server permissions (and starts nothing), naming the line."""
    seed = SEED_FLEET_YAML.replace(
        '    send_to: [cto, devops, cso]\n    publish: ["events.>"]\n',
        '    send_to: [cto, devops, cso]\n    publish: ["events.>", "presence.>"]\n',
        1,
    )
    assert seed != SEED_FLEET_YAML
    (workdir / "fleet.yaml").write_text(seed)
    result = run_cli("--data-dir", "D", "up", "--detach", *FREE_PORTS)
    assert result.returncode == 1
    assert_one_error(result.stderr, "roles.backend.publish[1]", "presence.>", "fleetbus check")
    assert running_embedded(data_dir) is None


AGENTS = """
from fleetbus import Agent

backend = Agent("backend")


@backend.on_task
async def work(task):
    try:  # backend may not send to ceo (not in its send_to)
        await backend.fleet.message("ceo", {"text": "from a handler led astray"})
    except Exception as exc:
        return {"to_ceo": type(exc).__name__}
    return {"to_ceo": "sent"}


cso = Agent("cso")


@cso.on_request
async def review(req):
    return "approved"
"""


def test_run_holds_each_roles_handlers_to_its_own_permissions(
    run_cli: Run, data_dir: Path, workdir: Path
) -> None:
    """`fleetbus run` of several roles logged in once, as the admin: a handler of one role,
    led astray, could message any role through `agent.fleet`. Each role has a connection of
    its own now, as itself."""
    up = run_cli("--data-dir", "D", "up", "--detach", *FREE_PORTS)
    assert up.returncode == 0, up.stderr
    (workdir / "my_agents.py").write_text(AGENTS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETBUS_")}
    served = subprocess.Popen(
        [sys.executable, "-m", "fleetbus", "--data-dir", "D", "run",
         "my_agents.py:backend", "my_agents.py:cso"],
        cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert served.stdout is not None
        assert served.stdout.readline().startswith("serving backend (backend-")
        sent = run_cli("--data-dir", "D", "send", "backend", '{"title": "x"}', "--wait")
        assert sent.returncode == 0, sent.stderr
        assert '"to_ceo": "PermissionDenied"' in sent.stdout, sent.stdout
        asked = run_cli("--data-dir", "D", "ask", "cso", "{}")
        assert asked.returncode == 0 and "approved" in asked.stdout, asked.stderr
    finally:
        served.send_signal(signal.SIGTERM)
        served.communicate(timeout=30)
    assert served.returncode == 0
