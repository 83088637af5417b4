"""``fleetbus metrics``: the exporter as a command, stopped by SIGTERM with exit 0."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import yaml

from fleetbus.testing import eventually
from fleetbus.testing.fleets import FleetUnderTest
from scraping import scrape, value


async def test_metrics_serves_until_sigterm(fleet: FleetUnderTest, tmp_path: Path) -> None:
    fleet_file = tmp_path / "fleet.yaml"
    fleet_file.write_text(yaml.safe_dump(fleet.spec.model_dump(mode="json")))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETBUS_")}
    log = tmp_path / "metrics.log"
    with log.open("w") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "fleetbus", "--fleet", str(fleet_file), "--server", fleet.url,
            "metrics", "--port", "0", "--interval", "0.2",
            cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
        )  # fmt: skip
    try:
        found: list[str] = []

        def announced() -> bool:
            assert proc.returncode is None, log.read_text()
            found.extend(re.findall(r"on (http://127\.0\.0\.1:\d+/metrics)", log.read_text()))
            return bool(found)

        await eventually(announced, 20, "the exporter to serve")

        async def refreshed() -> bool:
            got = await scrape(found[0])
            return value(got, "fleetbus_exporter_last_refresh_timestamp_seconds") is not None

        await eventually(refreshed, 10, "a first snapshot")
        got = await scrape(found[0])
        for name in fleet.spec.streams:
            assert value(got, "fleetbus_stream_exists", stream=name) == 1
    finally:
        if proc.returncode is None:
            proc.terminate()
        async with asyncio.timeout(15):
            code = await proc.wait()
    assert code == 0, log.read_text()


def test_a_port_in_use_is_one_clear_error(fleet: FleetUnderTest, tmp_path: Path) -> None:
    fleet_file = tmp_path / "fleet.yaml"
    fleet_file.write_text(yaml.safe_dump(fleet.spec.model_dump(mode="json")))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETBUS_")}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "fleetbus", "--fleet", str(fleet_file), "--server", fleet.url,
             "metrics", "--port", str(port)],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert f"error: cannot serve metrics on 127.0.0.1:{port}" in done.stderr
