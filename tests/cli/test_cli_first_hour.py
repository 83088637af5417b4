"""A newcomer's first hour: naming the server explicitly still logs in, output read by
programs is never wrapped, JSON Lines, --version, completion, one-line usage errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetbus.server import running_embedded, stop_embedded

from .conftest import Run


@pytest.fixture
def up(workdir: Path, run_cli: Run) -> Iterator[str]:
    """`fleetbus up --detach` (auth on) in the working directory; its URL."""
    done = run_cli("--data-dir", "D", "up", "--detach", "--port", "0", "--json")
    assert done.returncode == 0, done.stderr
    url = json.loads(done.stdout)["url"]
    yield url
    if running_embedded(workdir / "D"):
        stop_embedded(workdir / "D", grace=2)


def _narrow(workdir: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """``fleetbus ARGS`` with its output piped, and no COLUMNS: what a script reads."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("FLEETBUS_")}
    base.pop("COLUMNS", None)
    done = subprocess.run(
        [sys.executable, "-m", "fleetbus", *args], cwd=workdir, env={**base, **(env or {})},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    return done.stdout


def test_naming_the_server_explicitly_still_logs_in(workdir: Path, up: str, run_cli: Run) -> None:
    done = run_cli("--data-dir", "D", "--server", up, "status", "--json")
    assert done.returncode in (0, 1), done.stderr  # 1 only for alerts, never a login failure
    assert json.loads(done.stdout)["streams"]
    script = (
        "import asyncio\n"
        "from fleetbus import Fleet\n"
        "async def main():\n"
        "    async with Fleet.connect(sender='cto') as f:\n"
        "        print((await f.message('backend', {'hi': 1})).seq)\n"
        "asyncio.run(main())\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETBUS_")}
    sent = subprocess.run(
        [sys.executable, "-c", script], cwd=workdir,
        env={**env, "FLEETBUS_URL": up, "FLEETBUS_DATA_DIR": "D"},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    refused = run_cli("--server", up, "--user", "nobody", "--password", "x", "status")
    assert refused.returncode == 1
    assert "Authorization Violation" in refused.stderr and "fleetbus creds" in refused.stderr


def test_piped_output_is_never_wrapped(workdir: Path, up: str) -> None:
    creds = _narrow(workdir, "--data-dir", "D", "creds", "backend")
    nats_line = next(line for line in creds.splitlines() if "nats CLI" in line)
    assert "--user" in nats_line and "--password" in nats_line  # one line, not two
    status = _narrow(workdir, "--data-dir", "D", "status")
    assert "BACKEND_TASKS" in status and "CSO_MEETINGS" in status  # names not truncated
    assert "…" not in status
    listed = _narrow(workdir, "--data-dir", "D", "tasks", "--json")
    assert json.loads(listed) == []  # one JSON document on one line


def test_send_wait_json_is_json_lines(workdir: Path, up: str, run_cli: Run) -> None:
    done = run_cli(
        "--data-dir", "D", "send", "backend", '{"t": 1}', "--wait", "--timeout", "1", "--json"
    )  # no backend agent: nothing but the id comes, and a clear note on stderr
    assert "no backend agent is running; the task is queued" in done.stderr
    assert "waiting for a backend agent" in done.stderr
    for line in done.stdout.splitlines():
        json.loads(line)  # every line one object


def test_version_completion_and_usage_errors(run_cli: Run) -> None:
    version = run_cli("--version")
    assert version.returncode == 0 and version.stdout.startswith("fleetbus ")
    completion = run_cli("--show-completion", "bash")
    assert completion.returncode == 0 and "complete" in completion.stdout
    for args, needle in (
        (("dlq", "show", "x"), "valid integer"),
        (("send", "backend", "{}", "--timeout", "-1"), "--timeout"),
        (("tail", "foo bar"), "whitespace"),
    ):
        done = run_cli(*args)
        assert done.returncode in (1, 2), done
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], lines
        assert "╭" not in done.stderr and "Traceback" not in done.stderr
