"""NatsServer against the real nats-server binary: start, health, stop, and each way to fail."""

from __future__ import annotations

import http.client
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest

from fleetbus.errors import ServerError
from fleetbus.fleet import ServerSpec
from fleetbus.server import NatsServer, ServerState
from fleetbus.server.cluster import LocalCluster


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port someone else is listening on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def _random(tmp_path: Path, **kwargs: object) -> NatsServer:
    return NatsServer(data_dir=tmp_path, port=0, monitor_port=0, **kwargs)  # type: ignore[arg-type]


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_start_health_stop(tmp_path: Path) -> None:
    server = _random(tmp_path)
    server.start()
    try:
        assert server.running
        assert server.url.startswith("nats://127.0.0.1:")
        assert server.port > 0 and server.monitor_port > 0
        conn = http.client.HTTPConnection("127.0.0.1", server.monitor_port, timeout=5)
        conn.request("GET", "/healthz")
        assert json.loads(conn.getresponse().read()) == {"status": "ok"}
        conn.close()
        assert (tmp_path / "nats-server.conf").is_file()
        assert (tmp_path / "jetstream").is_dir()
        assert "Server is ready" in server.log_path.read_text()
        pid = server.pid
        assert pid is not None
    finally:
        code = server.stop()
    assert code == 0
    assert server.state is ServerState.STOPPED
    assert _gone(pid)
    server.stop()  # a second stop is harmless


def test_a_server_starts_once(tmp_path: Path) -> None:
    with _random(tmp_path) as server, pytest.raises(ServerError, match="is running: make a new"):
        server.start()
    with pytest.raises(ServerError, match="is stopped"):
        server.start()


def test_spec_settings_reach_the_server(tmp_path: Path) -> None:
    spec = ServerSpec(max_payload="64KB", sync_always=True)
    with NatsServer(spec, tmp_path, port=0, monitor_port=0) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.monitor_port, timeout=5)
        conn.request("GET", "/varz")
        varz = json.loads(conn.getresponse().read())
        conn.close()
    assert varz["max_payload"] == 64000
    assert varz["jetstream"]["config"]["sync_always"] is True


async def test_the_session_server_speaks_jetstream(nats_server: NatsServer, nats_url: str) -> None:
    assert nats_url == nats_server.url
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        info = await js.account_info()
        assert info.limits is not None
        await js.add_stream(name="SMOKE", subjects=["smoke.>"])
        ack = await js.publish("smoke.one", b"{}")
        assert ack.seq == 1
        await js.delete_stream("SMOKE")
    finally:
        await nc.close()


def test_client_port_in_use(tmp_path: Path, busy_port: int) -> None:
    with pytest.raises(ServerError) as info:
        NatsServer(data_dir=tmp_path, port=busy_port, monitor_port=0).start()
    err = info.value
    assert str(err).startswith(f"nats-server could not start: port 127.0.0.1:{busy_port} is")
    assert err.log.startswith("[FTL] Error listening on port:")
    assert "address already in use" in err.log


def test_monitor_port_in_use(tmp_path: Path, busy_port: int) -> None:
    with pytest.raises(ServerError, match=r"monitor port .* already in use") as info:
        NatsServer(data_dir=tmp_path, port=0, monitor_port=busy_port).start()
    assert info.value.log.startswith("[FTL] Can't start monitoring")


def test_store_dir_not_usable(tmp_path: Path) -> None:
    # Root ignores permission bits: a path under a regular file is unusable for anyone.
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ServerError, match="could not use its JetStream store directory") as info:
        _random(tmp_path / "data", store_dir=blocker / "store").start()
    assert info.value.log == "[FTL] Can't start JetStream: storage directory is not a directory"


def test_data_dir_not_usable(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ServerError, match="cannot start nats-server in"):
        _random(blocker / "data").start()


def test_bad_config_exits_early(tmp_path: Path) -> None:
    with pytest.raises(ServerError, match="rejected its configuration file") as info:
        _random(tmp_path, extra_config="no_such_setting: 1").start()
    assert 'unknown field "no_such_setting"' in info.value.log


def test_a_cluster_that_elects_no_meta_leader_is_not_ready(tmp_path: Path) -> None:
    """One node of three, alone: it is up, but JetStream waits for a meta leader forever."""
    spec = ServerSpec(port=0)
    cluster = LocalCluster(spec, tmp_path, 3)
    node = cluster.nodes[0]
    try:
        node.start(timeout=10)
        with pytest.raises(
            ServerError, match=r"not ready within 1\.5s: .*no JetStream meta leader"
        ):
            cluster.wait_healthy(1.5, nodes=[0])
    finally:
        node.stop()
    assert node.state is ServerState.STOPPED
    assert node.pid is not None and _gone(node.pid)


def test_each_start_reads_only_its_own_part_of_the_log(tmp_path: Path, busy_port: int) -> None:
    with pytest.raises(ServerError, match="configuration"):
        _random(tmp_path, extra_config="no_such_setting: 1").start()
    with pytest.raises(ServerError) as info:
        NatsServer(data_dir=tmp_path, port=busy_port, monitor_port=0).start()
    assert "no_such_setting" not in info.value.log
    with _random(tmp_path) as server:
        assert server.running
    assert "no_such_setting" in server.log_path.read_text()  # appended, not truncated
