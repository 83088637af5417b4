"""The README's examples are run as written: the two-agent example and its test."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def readme_block(starts_with: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    return next(b for b in blocks if b.startswith(starts_with))


def test_the_readme_testing_example_passes(tmp_path: Path) -> None:
    (tmp_path / "backend.py").write_text(readme_block("# backend.py"))
    (tmp_path / "test_backend.py").write_text(readme_block("# test_backend.py"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETBUS_")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "-o", "asyncio_mode=auto", "-o", "asyncio_default_fixture_loop_scope=session",
         "test_backend.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
