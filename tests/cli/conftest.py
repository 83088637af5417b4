"""Running the ``fleetbus`` command in tests: in-process (CliRunner) and as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from fleetbus.cli import app

Invoke = Callable[..., Result]
Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clean working directory, and no FLEETBUS_* settings from the environment."""
    for name in list(os.environ):
        if name.startswith("FLEETBUS_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def invoke(workdir: Path) -> Invoke:
    """``fleetbus ARGS...`` in-process; ``result.stdout`` / ``result.stderr`` apart."""
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(app, list(args), catch_exceptions=True)

    return run


@pytest.fixture
def run_cli(workdir: Path) -> Run:
    """``python -m fleetbus ARGS...`` as a subprocess in ``workdir`` (wide output)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETBUS_")}
    env["COLUMNS"] = "250"

    def run(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "fleetbus", *args],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run


def assert_one_error(stderr: str, *needles: str) -> str:
    """Exactly one ``error:`` line, containing every needle, and no traceback."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]
