"""fleetbus up --tls: a local CA in the data dir; clients that trust it connect, others not."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetbus.errors import ConnectError
from fleetbus.fleet import seed_fleet
from fleetbus.js.connection import ConnectSettings, connect
from fleetbus_cli import fleetbus


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[Path]:
    up = fleetbus(tmp_path, "up", "--tls", "--detach", "--port", "0")
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        yield tmp_path
    finally:
        fleetbus(tmp_path, "down")


async def test_tls_with_a_local_ca(tls_server: Path) -> None:
    data = tls_server / ".fleetbus"
    info = json.loads((data / "server.json").read_text())
    assert info["url"].startswith("tls://")
    for key in ("ca-key.pem", "server-key.pem"):
        assert stat.S_IMODE((data / "tls" / key).stat().st_mode) == 0o600

    # The CLI finds the CA (and the admin's credentials) in the data dir by itself.
    status = fleetbus(tls_server, "status", "--json")
    assert status.returncode == 0, status.stdout + status.stderr

    admin = json.loads((data / "auth" / "admin.json").read_text())
    plain = ConnectSettings.from_url(
        info["url"].replace("tls://", "nats://"),
        user=admin["user"],
        password=admin["password"],
        connect_timeout=2.0,
    )
    with pytest.raises(ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        await connect(plain)
    from dataclasses import replace

    trusted = replace(plain, tls_ca_file=str(data / "tls" / "ca.pem"))
    conn = await connect(trusted)
    try:
        assert conn.nc.connected_url is not None
        assert (await conn.nc.jetstream().account_info()).streams == len(seed_fleet().streams)
    finally:
        await conn.close()
