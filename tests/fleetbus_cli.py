"""Running the `fleetbus` command as a user would, in a subprocess: clean of FLEETBUS_* settings
from the environment, wide output, a generous timeout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def fleetbus(cwd: Path, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETBUS_")}
    env["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, "-m", "fleetbus", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
