"""fleetbus up --nkeys: every identity logs in with an NKey; no password reaches the server."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetbus import Agent, Fleet, Task
from fleetbus.errors import ConnectError
from fleetbus.fleet import seed_fleet
from fleetbus.security import load_credential
from fleetbus.server.embedded import running_embedded
from fleetbus_cli import fleetbus


@pytest.fixture
def nkey_server(tmp_path: Path) -> Iterator[Path]:
    up = fleetbus(tmp_path, "up", "--nkeys", "--detach", "--port", "0")
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        yield tmp_path / ".fleetbus"
    finally:
        fleetbus(tmp_path, "down")


async def test_roles_log_in_by_nkey(nkey_server: Path) -> None:
    config = (nkey_server / "nats-server.conf").read_text()
    assert config.count("nkey: ") == 6  # admin and the five roles
    assert "password" not in config
    for identity in ("admin", "backend"):
        seed = nkey_server / "auth" / f"{identity}.nk"
        assert stat.S_IMODE(seed.stat().st_mode) == 0o600
        assert seed.read_text().startswith("SU")  # a user seed

    info = running_embedded(nkey_server)
    backend_cred = load_credential(nkey_server, "backend")
    cto_cred = load_credential(nkey_server, "cto")
    assert info is not None and backend_cred is not None and cto_cred is not None
    spec = seed_fleet()
    backend = Agent("backend", spec=spec, connection=backend_cred.connect_settings(info.url))

    @backend.on_task
    async def work(task: Task) -> dict[str, object]:
        return {"from": task.sender, "verified": task.sender_verified}

    cto = cto_cred.connect_settings(info.url)
    async with backend, Fleet.connect(spec=spec, connection=cto, sender="cto") as fleet:
        handle = await fleet.assign("backend", {"title": "x"})
        assert await handle.result(timeout=20) == {"from": "cto", "verified": True}

    # A password no longer opens the door, and neither does a seed the server does not know.
    from dataclasses import replace

    with pytest.raises(ConnectError):
        await Fleet.connect(
            spec=spec,
            connection=replace(cto, nkey_seed_file=None, user="cto", password=cto_cred.password,
                               connect_timeout=2.0),
        ).__aenter__()  # fmt: skip
    stranger = nkey_server.parent / "stranger.nk"
    import nkeys

    stranger.write_text(nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER).decode())
    with pytest.raises(ConnectError):
        await Fleet.connect(
            spec=spec, connection=replace(cto, nkey_seed_file=str(stranger), connect_timeout=2.0)
        ).__aenter__()
