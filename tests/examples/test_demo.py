"""The examples are documentation: the demo story must run, end to end, on a real server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_tells_the_whole_story(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETBUS_")}
    env.update({"FLEETBUS_DEMO_PACE": "0.2", "COLUMNS": "200"})
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for line in (
        "applied: 26 create",
        "got feature Cursor pagination",  # ceo → cto
        "ceo chose cursor pagination",  # an input request, answered
        "cancelled: cleaned up, nothing half-done",  # a running task cancelled
        "not now: the release comes first",
        "assigned task-",  # cto → backend
        "code written, running tests",  # progress
        "cso reviewed PR #143 for backend: approved",  # request-reply
        "in meeting: tests are green",  # meeting
        "meeting decided: ship",
        "event deployment.completed",  # fan-out to devops ...
        "audited event deployment.completed",  # ... and cso
        "feature done: PRs [143, 144]",
        "rejected: unknown task kind 'drop-db'",  # poison → dead letters
        "dead letters: 1",
    ):
        assert line in out, f"missing {line!r} in:\n{out}"
