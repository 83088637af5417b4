"""The embedded server of ``fleetbus up`` / ``fleetbus down``, recorded in its data directory.

Layout (``server.data_dir`` of the fleet file, ``.fleetbus/`` by default)::

    .fleetbus/nats-server.conf   rendered config
    .fleetbus/nats-server.log    the server's log
    .fleetbus/jetstream/         the JetStream store
    .fleetbus/server.pid         pid of the running server
    .fleetbus/server.json        {url, monitor_url, pid, started_at, log_path}: how other
                                 commands find the embedded server

``server.pid`` is the record of truth: a live nats-server with that pid means "running".
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleetbus._files import write_private
from fleetbus.errors import ServerError
from fleetbus.server.cluster import LocalCluster, NodePorts
from fleetbus.server.process import LOG_FILE, NatsServer, reap

if TYPE_CHECKING:
    from fleetbus.fleet.model import ServerSpec

__all__ = [
    "INFO_FILE",
    "PID_FILE",
    "EmbeddedInfo",
    "EmbeddedServer",
    "pid_alive",
    "running_embedded",
    "start_embedded",
    "start_embedded_cluster",
    "stop_embedded",
]

PID_FILE = "server.pid"
INFO_FILE = "server.json"
_log = logging.getLogger("fleetbus.server")


@dataclass(frozen=True, slots=True)
class EmbeddedInfo:
    """What ``server.json`` records about the embedded server."""

    url: str
    monitor_url: str
    pid: int
    started_at: str
    """ISO 8601, UTC."""
    log_path: str = ""
    pids: tuple[int, ...] = ()
    """Every node's pid when ``fleetbus up --cluster N`` runs several (``pid`` is the first)."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> EmbeddedInfo:
        data: dict[str, Any] = json.loads(text)
        return cls(
            url=str(data["url"]),
            monitor_url=str(data["monitor_url"]),
            pid=int(data["pid"]),
            started_at=str(data["started_at"]),
            log_path=str(data.get("log_path", "")),
            pids=tuple(int(p) for p in data.get("pids") or ()),
        )


class EmbeddedServer(NatsServer):
    """A ``NatsServer`` that records itself in its data directory; ``stop()`` clears that."""

    def stop(self, grace: float = 10.0) -> int | None:
        code = super().stop(grace)
        _remove_records(self.data_dir)
        return code


def pid_alive(pid: int) -> bool:
    """Whether a nats-server process with this pid is running (a zombie is not)."""
    reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    proc = Path(f"/proc/{pid}")
    if not proc.exists():
        return True  # no procfs (macOS): trust the signal check
    try:
        stat = (proc / "stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return False
        argv0 = (proc / "cmdline").read_bytes().split(b"\0", 1)[0]
    except (OSError, IndexError):
        return False
    return Path(os.fsdecode(argv0)).name.startswith("nats-server")


def _read_pid(data_dir: Path) -> int | None:
    """The recorded pid, ``None`` without a pid file, ``-1`` for an unreadable one."""
    try:
        text = (data_dir / PID_FILE).read_text().strip()
    except FileNotFoundError:
        return None
    except OSError:
        return -1
    return int(text) if text.isdigit() else -1


def _read_info(data_dir: Path, pid: int) -> EmbeddedInfo:
    try:
        return EmbeddedInfo.from_json((data_dir / INFO_FILE).read_text())
    except (OSError, ValueError, KeyError, TypeError):
        return EmbeddedInfo(url="", monitor_url="", pid=pid, started_at="")


def _remove_records(data_dir: Path) -> None:
    for name in (PID_FILE, INFO_FILE):
        with contextlib.suppress(FileNotFoundError):
            (data_dir / name).unlink()


def _write_atomic(path: Path, text: str) -> None:
    write_private(path, text)


def running_embedded(data_dir: str | Path) -> EmbeddedInfo | None:
    """The embedded server recorded in ``data_dir``, if it is alive. Changes nothing."""
    data_dir = Path(data_dir)
    pid = _read_pid(data_dir)
    if pid is None or pid <= 0 or not pid_alive(pid):
        return None
    return _read_info(data_dir, pid)


def start_embedded(
    spec: ServerSpec,
    data_dir: str | Path | None = None,
    *,
    detach: bool = False,
    timeout: float = 10.0,
    on_warning: Callable[[str], None] | None = None,
    extra_config: str = "",
    tls: bool = False,
) -> EmbeddedServer:
    """Start the embedded server in ``data_dir`` (default ``spec.data_dir``) and record it.

    ``extra_config`` is appended to the rendered config (``fleetbus up`` passes the
    ``authorization`` block of ``fleetbus.security``).

    With ``detach`` the server runs in its own session, so that Ctrl-C in the terminal that
    started it does not stop it, and it outlives this process (``fleetbus down`` stops it).
    A stale pid file (its process is gone) is removed, and ``on_warning`` (else the
    ``fleetbus.server`` logger) is told. A live recorded server is a ``ServerError``.
    """
    shown = Path(data_dir if data_dir is not None else spec.data_dir)
    _refuse_running(shown, on_warning)
    server = EmbeddedServer(spec, shown, start_new_session=detach, extra_config=extra_config)
    server.start(timeout)
    assert server.pid is not None
    info = EmbeddedInfo(
        url=_scheme(server.url, tls),
        monitor_url=server.monitor_url,
        pid=server.pid,
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        log_path=str(server.data_dir / LOG_FILE),
    )
    try:
        _record(server.data_dir, info)
    except OSError as exc:
        server.stop()
        raise ServerError(f"cannot record the server in {shown}: {exc}") from exc
    if detach:
        server.detach()
    return server


def start_embedded_cluster(
    spec: ServerSpec,
    data_dir: str | Path | None = None,
    size: int = 3,
    *,
    detach: bool = False,
    ports: Sequence[NodePorts] | None = None,
    timeout: float = 30.0,
    on_warning: Callable[[str], None] | None = None,
    extra_config: str = "",
    tls: bool = False,
    route_auth: tuple[str, str] | None = None,
    route_tls: str = "",
) -> LocalCluster:
    """``fleetbus up --cluster N``: N routed nodes in ``data_dir/n1..nN``, recorded like one
    server (``server.json`` lists every URL and pid; ``fleetbus down`` stops them all)."""
    shown = Path(data_dir if data_dir is not None else spec.data_dir)
    _refuse_running(shown, on_warning)
    cluster = LocalCluster(
        spec,
        shown,
        size,
        ports=ports,
        extra_config=extra_config,
        start_new_session=detach,
        route_auth=route_auth,
        route_tls=route_tls,
    )
    cluster.start(timeout)
    pids = tuple(node.pid for node in cluster.nodes if node.pid is not None)
    info = EmbeddedInfo(
        url=_scheme(cluster.url, tls),
        monitor_url=cluster.nodes[0].monitor_url,
        pid=pids[0],
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        log_path=str(cluster.nodes[0].data_dir / LOG_FILE),
        pids=pids,
    )
    try:
        shown.mkdir(parents=True, exist_ok=True)
        shown.chmod(0o700)
        _record(shown.absolute(), info)
    except OSError as exc:
        cluster.stop()
        raise ServerError(f"cannot record the cluster in {shown}: {exc}") from exc
    if detach:
        for node in cluster.nodes:
            node.detach()
    return cluster


def _scheme(url: str, tls: bool) -> str:
    """``tls://`` for a server that requires TLS, so clients know to bring the CA."""
    return url.replace("nats://", "tls://") if tls else url


def _refuse_running(shown: Path, on_warning: Callable[[str], None] | None) -> None:
    """A live recorded server is an error; a stale record is removed with a warning."""
    pid = _read_pid(shown)
    if pid is None:
        return
    if pid > 0 and pid_alive(pid):
        info = _read_info(shown, pid)
        raise ServerError(
            f"already running (pid {pid}, {info.url or 'url unknown'}); `fleetbus down` stops it"
        )
    _remove_records(shown)
    gone = f"pid {pid} is gone" if pid > 0 else "it held no pid"
    message = f"removed stale pid file {shown / PID_FILE} ({gone})"
    (on_warning or _log.warning)(message)


def _record(data_dir: Path, info: EmbeddedInfo) -> None:
    _write_atomic(data_dir / INFO_FILE, info.to_json())
    _write_atomic(data_dir / PID_FILE, f"{info.pid}\n")


def stop_embedded(data_dir: str | Path, grace: float = 10.0) -> EmbeddedInfo:
    """Stop the embedded server recorded in ``data_dir``: SIGTERM, ``grace`` seconds, SIGKILL.

    Removes its records and returns what they said. ``ServerError`` when nothing runs (after
    removing a stale pid file, if there was one).
    """
    data_dir = Path(data_dir)
    pid = _read_pid(data_dir)
    if pid is None:
        raise ServerError(f"no embedded server is running in {data_dir}")
    if pid <= 0 or not pid_alive(pid):
        _remove_records(data_dir)
        gone = f"pid {pid} is gone" if pid > 0 else "it held no pid"
        raise ServerError(
            f"no server running: removed stale pid file {data_dir / PID_FILE} ({gone})"
        )
    info = _read_info(data_dir, pid)
    pids = [p for p in (info.pids or (pid,)) if pid_alive(p)]
    for each in pids:
        _signal(each, signal.SIGTERM)
    for each in pids:
        if not _wait_gone(each, grace):
            _signal(each, signal.SIGKILL)
            if not _wait_gone(each, 10.0):
                raise ServerError(f"nats-server pid {each} did not exit after SIGKILL")
    _remove_records(data_dir)
    return info


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _wait_gone(pid: int, timeout: float) -> bool:
    # Not our child (``fleetbus up --detach`` ran in another process): nothing to wait on
    # but the pid itself.
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True
