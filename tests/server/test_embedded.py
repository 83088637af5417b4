"""``fleetbus up`` / ``fleetbus down`` underneath: the embedded server and its records."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetbus.errors import ServerError
from fleetbus.fleet import ServerSpec
from fleetbus.server import running_embedded, start_embedded, stop_embedded
from fleetbus.server.embedded import pid_alive

SPEC = ServerSpec(port=0, monitor_port=0)


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / ".fleetbus"
    yield path
    if running_embedded(path):  # a failed test must not leave a server behind
        stop_embedded(path, grace=2)


def test_detach_running_stop(data_dir: Path) -> None:
    server = start_embedded(SPEC, data_dir, detach=True)
    pid = server.pid
    assert pid is not None
    assert os.getsid(pid) == pid  # its own session: Ctrl-C in the CLI's terminal spares it
    assert (data_dir / "server.pid").read_text().strip() == str(pid)
    recorded = json.loads((data_dir / "server.json").read_text())
    assert recorded["url"] == server.url and recorded["pid"] == pid

    info = running_embedded(data_dir)
    assert info is not None
    assert (info.pid, info.url, info.monitor_url) == (pid, server.url, server.monitor_url)
    assert info.started_at

    stopped = stop_embedded(data_dir, grace=5)
    assert stopped == info
    assert not pid_alive(pid)
    assert not (data_dir / "server.pid").exists()
    assert not (data_dir / "server.json").exists()
    assert running_embedded(data_dir) is None


def test_foreground_stop_clears_the_records(data_dir: Path) -> None:
    with start_embedded(SPEC, data_dir) as server:
        assert os.getsid(server.pid or 0) == os.getsid(0)
        assert running_embedded(data_dir) is not None
    assert not (data_dir / "server.pid").exists()
    assert running_embedded(data_dir) is None


def test_up_twice_names_the_running_server(data_dir: Path) -> None:
    server = start_embedded(SPEC, data_dir, detach=True)
    with pytest.raises(ServerError) as info:
        start_embedded(SPEC, data_dir, detach=True)
    assert str(info.value) == (
        f"already running (pid {server.pid}, {server.url}); `fleetbus down` stops it"
    )
    stop_embedded(data_dir)


def test_up_removes_a_stale_pid_file_and_warns(data_dir: Path, dead_pid: int) -> None:
    data_dir.mkdir()
    (data_dir / "server.pid").write_text(f"{dead_pid}\n")
    warnings: list[str] = []
    with start_embedded(SPEC, data_dir, on_warning=warnings.append) as server:
        assert warnings == [
            f"removed stale pid file {data_dir / 'server.pid'} (pid {dead_pid} is gone)"
        ]
        assert (data_dir / "server.pid").read_text().strip() == str(server.pid)


def test_a_live_pid_that_is_not_nats_server_is_stale(data_dir: Path) -> None:
    data_dir.mkdir()
    (data_dir / "server.pid").write_text(f"{os.getpid()}\n")  # pytest: alive, not nats-server
    assert running_embedded(data_dir) is None


def test_down_with_a_stale_pid_file(data_dir: Path, dead_pid: int) -> None:
    data_dir.mkdir()
    (data_dir / "server.pid").write_text(f"{dead_pid}\n")
    (data_dir / "server.json").write_text("{}")
    with pytest.raises(ServerError) as info:
        stop_embedded(data_dir)
    assert str(info.value) == (
        f"no server running: removed stale pid file {data_dir / 'server.pid'} "
        f"(pid {dead_pid} is gone)"
    )
    assert not (data_dir / "server.pid").exists()
    assert not (data_dir / "server.json").exists()


def test_down_with_nothing(data_dir: Path) -> None:
    with pytest.raises(ServerError, match=r"no embedded server is running in .*fleetbus$"):
        stop_embedded(data_dir)


def test_default_data_dir_is_relative_to_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with start_embedded(SPEC, detach=False) as server:
        assert server.data_dir == tmp_path / ".fleetbus"
        assert (tmp_path / ".fleetbus" / "jetstream").is_dir()
    with pytest.raises(ServerError, match=r"no embedded server is running in \.fleetbus$"):
        stop_embedded(".fleetbus")


def test_up_detach_in_one_process_down_in_another(data_dir: Path) -> None:
    # As `fleetbus up --detach` then `fleetbus down`: the server outlives the process that
    # started it, which must exit cleanly (no warning about a still-running subprocess).
    script = (
        "import sys\n"
        "from fleetbus.fleet import ServerSpec\n"
        "from fleetbus.server import start_embedded\n"
        "server = start_embedded(ServerSpec(port=0, monitor_port=0), sys.argv[1], detach=True)\n"
        "print(server.pid)\n"
    )
    up = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error", "-c", script, str(data_dir)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert up.stderr == ""
    pid = int(up.stdout)
    info = running_embedded(data_dir)
    assert info is not None and info.pid == pid
    stop_embedded(data_dir, grace=5)
    assert not pid_alive(pid)
