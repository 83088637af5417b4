"""A store keeps its streams when the account that holds them changes: written with auth off
(or before the streams had an account of their own), read with fleetbus's accounts, and
back."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from fleetbus.errors import FleetbusError
from fleetbus.fleet import ServerSpec, seed_fleet
from fleetbus.js.connection import ConnectSettings, connect
from fleetbus.security import ADMIN, ensure_credentials, render_authorization
from fleetbus.server.process import NatsServer


async def _stored(settings: ConnectSettings, *, write: bool = False) -> int:
    conn = await connect(settings)
    try:
        js = conn.nc.jetstream()
        if write:
            await js.add_stream(name="KEPT", subjects=["kept.>"])
            await js.publish("kept.one", b"work")
        return (await js.stream_info("KEPT")).state.messages
    finally:
        await conn.close()


def test_streams_follow_the_account_that_holds_them(tmp_path: Path) -> None:
    spec = seed_fleet()
    accounts = render_authorization(spec, ensure_credentials(tmp_path, spec))
    admin = ensure_credentials(tmp_path, spec)[ADMIN]
    with NatsServer(ServerSpec(), tmp_path, port=0) as server:
        assert asyncio.run(_stored(ConnectSettings.from_url(server.url), write=True)) == 1
    with NatsServer(ServerSpec(), tmp_path, port=0, extra_config=accounts) as server:
        assert asyncio.run(_stored(admin.connect_settings(server.url))) == 1
    assert (tmp_path / "jetstream" / "STREAMS" / "streams" / "KEPT").is_dir()
    with NatsServer(ServerSpec(), tmp_path, port=0) as server:  # auth off again
        assert asyncio.run(_stored(ConnectSettings.from_url(server.url))) == 1


def test_a_running_server_with_its_streams_beside_the_identities_is_not_reloaded(
    tmp_path: Path,
) -> None:
    """A server started before the streams had an account of their own: provisioning does
    not reload it into the accounts (every identity would lose its streams); it says to
    restart it, which moves them."""
    from fleetbus.cli.server_cmds import reload_permissions
    from fleetbus.deploy import basic_authorization
    from fleetbus.server.embedded import start_embedded

    spec = seed_fleet()
    before = basic_authorization(spec, ensure_credentials(tmp_path, spec))  # users only
    server = start_embedded(ServerSpec(port=0), tmp_path, extra_config=before)
    try:
        config = (tmp_path / "nats-server.conf").read_text()
        with pytest.raises(FleetbusError, match="restart it"):
            reload_permissions(spec, tmp_path)
        assert (tmp_path / "nats-server.conf").read_text() == config
    finally:
        server.stop()
