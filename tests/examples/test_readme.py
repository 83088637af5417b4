"""The README's examples are run as written: the two-agent example and its test."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def readme_block(starts_with: str, language: str = "python") -> str:
    blocks = re.findall(rf"```{language}\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    return next(b for b in blocks if b.startswith(starts_with))


def test_the_readme_testing_example_passes_as_written(tmp_path: Path) -> None:
    """A newcomer's project: `fleetbus init`, the README's backend.py, its pyproject.toml
    settings and test file, then plain `pytest`: the test runs against their fleet.yaml, with
    no warning."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETBUS_")}
    init = subprocess.run(
        [sys.executable, "-m", "fleetbus", "init"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert init.returncode == 0, init.stderr
    (tmp_path / "backend.py").write_text(readme_block("# backend.py"))
    (tmp_path / "test_backend.py").write_text(readme_block("# test_backend.py"))
    (tmp_path / "pyproject.toml").write_text(readme_block("# pyproject.toml", "toml"))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
