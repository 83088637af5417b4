"""``fleetbus dashboard`` as a user runs it: it says where it answers, serves, and Ctrl-C
stops it cleanly."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import yaml

from fleetbus.testing.fleets import FleetUnderTest

from .support import http_get


async def test_the_dashboard_command_serves_until_ctrl_c(
    fleet: FleetUnderTest, tmp_path: Path
) -> None:
    fleet_file = tmp_path / "fleet.yaml"
    fleet_file.write_text(yaml.safe_dump(fleet.spec.model_dump(mode="json")))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETBUS_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fleetbus", "--fleet", str(fleet_file), "--server", fleet.url,
        "--data-dir", str(tmp_path), "dashboard", "--port", "0",
        cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        first = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert first.startswith(f"dashboard of {fleet.spec.prefix} on "), first
        found = re.search(r"on (http://127\.0\.0\.1:\d+/)\?token=(\S+)$", first.strip())
        assert found, first
        url, token = found.groups()
        # on loopback too: every user of the machine reaches 127.0.0.1
        assert (await http_get(url + "api/overview")).status == 401
        page = await http_get(f"{url}?token={token}")
        assert page.status == 303  # the token becomes a cookie
        bearer = {"Authorization": f"Bearer {token}"}
        overview = await http_get(url + "api/overview", headers=bearer)
        assert overview.status == 200 and b'"backend"' in overview.body
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode == 0, err.decode()
    assert b"Ctrl-C stops" in first.encode() + out and b"Traceback" not in err
