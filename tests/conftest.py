"""Shared test setup. The ``nats_server`` / ``nats_url`` fixtures come from fleetbus's own
pytest plugin (``fleetbus.testing.plugin``), loaded through its entry point."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.fixture
def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(proc.stdout)
