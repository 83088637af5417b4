"""The raw nats-py worker and follower of docs/wire-contract.md, run as written against a
server with fleetbus's accounts: the admin's plain JetStream client (a pull consumer, an
ordered push consumer) works across the account that holds the streams."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

from fleetbus.security import ADMIN

from .support import AuthFleet

DOC = Path(__file__).parents[2] / "docs" / "wire-contract.md"


def example() -> str:
    section = DOC.read_text(encoding="utf-8").split("## With raw nats-py", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert found, "docs/wire-contract.md has no raw nats-py example"
    return found.group(1)


async def test_the_raw_nats_py_example_runs_as_written(
    auth_fleet: AuthFleet, tmp_path: Path
) -> None:
    code = example()
    spec = auth_fleet.spec  # the seed fleet, under a prefix and stream names of its own
    written = ('nats.connect("nats://127.0.0.1:4222"', 'PASSWORD = "..."', 'P = "genbrain"')
    for text in (*written, '"AGENT_COMMS"'):
        assert text in code, text
    code = code.replace('P = "genbrain"', f"P = {spec.prefix!r}")
    code = code.replace('"AGENT_COMMS"', repr(spec.stream_for(spec.subjects.tasks("backend"))))
    code = code.replace("nats://127.0.0.1:4222", auth_fleet.url)
    password = auth_fleet.credentials[ADMIN].password
    code = code.replace('PASSWORD = "..."', f"PASSWORD = {password!r}")
    script = tmp_path / "raw.py"
    script.write_text(code, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETBUS_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(script), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()[-2000:]
    lines = out.decode().splitlines()
    assert lines[0].endswith("updates.admin.backend accepted None"), lines
    assert lines[-1].endswith("outcome.admin.backend completed {'pr': 143}"), lines
