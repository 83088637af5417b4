"""A store keeps its streams when the account that holds them changes: written with auth off
(or before the streams had an account of their own), read with fleetbus's accounts, and
back."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from fleetbus.errors import FleetbusError, ServerError
from fleetbus.fleet import ServerSpec, seed_fleet
from fleetbus.js.connection import ConnectSettings, connect
from fleetbus.security import ADMIN, ensure_credentials, render_authorization
from fleetbus.server.process import NatsServer
from fleetbus.server.store import keep_streams


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


def _stream_in(store: Path, account: str) -> Path:
    stream = store / "jetstream" / account / "streams" / "KEPT"
    stream.mkdir(parents=True)
    (stream / "meta.inf").write_text("{}")
    return stream


def test_a_cluster_node_refuses_to_start_without_its_streams(tmp_path: Path) -> None:
    """A cluster's meta layer names each stream's account: its streams are not moved, and
    the node says so rather than start with none."""
    stream = _stream_in(tmp_path, "$G")
    with pytest.raises(ServerError, match="a cluster cannot move them"):
        keep_streams(tmp_path, "STREAMS", clustered=True)
    assert (stream / "meta.inf").is_file()


def test_streams_are_not_moved_over_files_fleetbus_does_not_know(tmp_path: Path) -> None:
    stream = _stream_in(tmp_path, "$G")
    unknown = tmp_path / "jetstream" / "STREAMS" / "something"
    unknown.parent.mkdir(parents=True)
    unknown.write_text("?")
    with pytest.raises(ServerError, match="holds files but no stream"):
        keep_streams(tmp_path, "STREAMS", clustered=False)
    assert (stream / "meta.inf").is_file() and unknown.is_file()
    unknown.unlink()  # an empty account directory, as a server leaves it: the streams move in
    keep_streams(tmp_path, "STREAMS", clustered=False)
    assert (tmp_path / "jetstream" / "STREAMS" / "streams" / "KEPT" / "meta.inf").is_file()
    assert not (tmp_path / "jetstream" / "$G").exists()


def test_streams_kept_in_both_accounts_are_left_and_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Auth turned on or off after both layouts were provisioned: the config's account is
    used, the other's streams stay where they are, and the operator is told."""
    ours, theirs = _stream_in(tmp_path, "STREAMS"), _stream_in(tmp_path, "$G")
    with caplog.at_level("WARNING", logger="fleetbus.server"):
        keep_streams(tmp_path, "STREAMS", clustered=False)
    assert (ours / "meta.inf").is_file() and (theirs / "meta.inf").is_file()
    assert "holds streams of account $G too" in caplog.text
