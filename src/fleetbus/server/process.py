"""``NatsServer``: one nats-server process: write its config, start it, wait until healthy, stop.

Synchronous on purpose, so that a CLI command and a pytest session fixture can both use it.
The server writes to a log file in its data directory (its stdout and stderr too, so that
config errors printed before its logger starts are kept): nothing reads a pipe, so a chatty
server can never block on one. ``start()`` returns only once the server's log says it listens
and is ready (nothing needs the HTTP monitoring port, which is off unless asked for), and
stops the process again if it does not.

Data directory layout::

    <data_dir>/nats-server.conf     the rendered config
    <data_dir>/nats-server.log      everything the server prints (appended across runs)
    <data_dir>/jetstream/           the JetStream store
"""

from __future__ import annotations

import atexit
import contextlib
import enum
import http.client
import json
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from fleetbus._files import write_private
from fleetbus.errors import ServerError
from fleetbus.natsconf import jetstream_account
from fleetbus.server.binary import find_nats_server
from fleetbus.server.config import NO_MONITOR, hostport, render_config
from fleetbus.server.logs import complaint, listening, ready, summarize_failure
from fleetbus.server.store import keep_streams

if TYPE_CHECKING:
    from fleetbus.fleet.model import ServerSpec

__all__ = ["CONFIG_FILE", "LOG_FILE", "NatsServer", "ServerState", "keep_detached"]

CONFIG_FILE = "nats-server.conf"
LOG_FILE = "nats-server.log"
_TICK = 0.02  # how long to wait on the process between looks at its log

# Detached servers' process handles, kept so that they are reaped when stopped from this
# process and never garbage-collected while running (which would warn).
_detached: dict[int, subprocess.Popen[bytes]] = {}


def keep_detached(proc: subprocess.Popen[bytes]) -> None:
    """Let ``proc`` outlive this process without a "still running" warning at exit."""
    _detached[proc.pid] = proc


@atexit.register
def _abandon_detached() -> None:
    """At exit, leave detached servers running on purpose: Popen's finalizer would otherwise
    warn "subprocess N is still running". Setting ``returncode`` tells it nobody will wait."""
    for proc in _detached.values():
        if proc.poll() is None:
            proc.returncode = 0
    _detached.clear()


class ServerState(enum.Enum):
    UNSTARTED = "unstarted"
    RUNNING = "running"
    STOPPED = "stopped"


def _default_spec() -> ServerSpec:
    from fleetbus.fleet.model import ServerSpec  # pydantic: imported only when needed

    return ServerSpec()


class NatsServer:
    """A nats-server process with JetStream, configured from a ``ServerSpec``.

    ``port``/``monitor_port`` override the spec's; ``0`` asks for free ports, learnt from
    the server's log once it listens. Ready means the log said "Server is ready" (JetStream
    has recovered its streams by then); a cluster also waits for a meta leader
    (``LocalCluster.wait_healthy``).
    """

    def __init__(
        self,
        spec: ServerSpec | None = None,
        data_dir: str | Path | None = None,
        *,
        host: str | None = None,
        port: int | None = None,
        monitor_port: int | None = -3,
        store_dir: str | Path | None = None,
        server_name: str = "fleetbus",
        cluster_name: str | None = None,
        cluster_port: int | None = None,
        routes: Sequence[str] = (),
        route_auth: tuple[str, str] | None = None,
        route_tls: str = "",
        extra_config: str = "",
        binary: str | Path | None = None,
        health_query: str = "",
        start_new_session: bool = False,
    ) -> None:
        self.spec = spec if spec is not None else _default_spec()
        self.data_dir = Path(data_dir if data_dir is not None else self.spec.data_dir).absolute()
        self._store_dir = Path(store_dir).absolute() if store_dir is not None else None
        self.host = host if host is not None else self.spec.host
        self._port = self.spec.port if port is None else port
        # -3 (the default): as the spec says (off unless it names a port); None: off.
        self._monitor_port: int | None = (
            self.spec.monitor_port if monitor_port == -3 else monitor_port
        )
        self._cluster_port = cluster_port
        self._server_name = server_name
        self._cluster_name = cluster_name
        self._routes = list(routes)
        self._route_auth = route_auth
        self._route_tls = route_tls
        self._extra = extra_config
        self._binary = Path(binary) if binary is not None else None
        self._health_query = health_query
        self._new_session = start_new_session
        self._proc: subprocess.Popen[bytes] | None = None
        self._ready_offset = 0
        self._detached = False
        self.state = ServerState.UNSTARTED

    # -- facts ---------------------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return self.data_dir / CONFIG_FILE

    @property
    def log_path(self) -> Path:
        return self.data_dir / LOG_FILE

    @property
    def store_dir(self) -> Path:
        """The config's ``store_dir`` (the data dir unless given); files go in ``jetstream/``."""
        return self._store_dir or self.data_dir

    @property
    def server_name(self) -> str:
        return self._server_name

    @property
    def port(self) -> int:
        """The client port (the real one once started)."""
        return self._port

    @property
    def monitor_port(self) -> int | None:
        """The HTTP monitoring port (the real one once started), or None when it is off."""
        return self._monitor_port

    @property
    def cluster_port(self) -> int | None:
        return self._cluster_port

    @property
    def url(self) -> str:
        """``nats://host:port`` for clients."""
        return f"nats://{hostport(self.host, self._port)}"

    @property
    def monitor_url(self) -> str:
        """``http://host:port`` of the monitoring port, or "" when it is off."""
        if self._monitor_port is None:
            return ""
        return f"http://{hostport(self.host, self._monitor_port)}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def render(self) -> str:
        """The config text this server runs with (requested ports, not learnt ones)."""
        return render_config(
            self.spec,
            store_dir=self.store_dir,
            host=self.host,
            port=self._port,
            monitor_port=NO_MONITOR if self._monitor_port is None else self._monitor_port,
            server_name=self._server_name,
            log_file=self.log_path,
            cluster_name=self._cluster_name,
            cluster_port=self._cluster_port,
            routes=self._routes,
            route_auth=self._route_auth,
            route_tls=self._route_tls,
            extra=self._extra,
        )

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> NatsServer:
        """Start the server; return once its log says it is ready, within ``timeout`` seconds.

        Raises :class:`~fleetbus.errors.ServerError` (the server's own words in ``.log``) if
        it exits early or is not healthy in time; the process is stopped in that case.
        """
        if self.state is not ServerState.UNSTARTED:
            raise ServerError(f"this NatsServer is {self.state.value}: make a new one to start")
        binary = self._binary or find_nats_server()
        config = self.render()
        try:
            # Private: the config holds route credentials and password hashes, the store
            # every message. The server writes its files under umask 077 too.
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self.data_dir.chmod(0o700)
            write_private(self.config_path, config)
            keep_streams(self.store_dir, jetstream_account(config), clustered=bool(self._routes))
            offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "ab") as log:
                self._proc = subprocess.Popen(
                    [str(binary), "-c", str(self.config_path)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.data_dir,
                    start_new_session=self._new_session,
                    umask=0o077,
                )
        except OSError as exc:
            raise ServerError(f"cannot start nats-server in {self.data_dir}: {exc}") from exc
        self.state = ServerState.RUNNING
        try:
            self._wait_ready(offset, timeout)
        except BaseException:
            self.stop(grace=2.0)
            raise
        return self

    def _new_log(self, offset: int) -> str:
        try:
            with self.log_path.open("rb") as f:
                f.seek(offset)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def _wait_ready(self, offset: int, timeout: float) -> None:
        """Until the server's log says it listens and is ready: nothing here needs the HTTP
        monitoring port, which is off unless asked for."""
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        health = "the server did not report its ports"
        while True:
            code = self._proc.poll()
            text = self._new_log(offset)
            if code is not None:
                said = complaint(text)
                message = summarize_failure(said, store_dir=str(self.store_dir), exit_code=code)
                raise ServerError(f"{message} (log: {self.log_path})", log=said)
            ports = listening(text)
            monitored = self._monitor_port is None or ports.monitor
            if ports.client and monitored:
                self._port = ports.client
                if ports.monitor:
                    self._monitor_port = ports.monitor
                if ports.cluster:
                    self._cluster_port = ports.cluster
                health = "the server did not say it is ready"
                if ready(text):
                    self._ready_offset = offset
                    return
            if time.monotonic() >= deadline:
                raise ServerError(
                    f"nats-server was not healthy within {timeout:g}s: {health} "
                    f"(log: {self.log_path})",
                    log=complaint(text),
                )
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(_TICK)

    def log_since_start(self) -> str:
        """What the server logged since it was last started."""
        return self._new_log(self._ready_offset)

    def healthz(self, query: str | None = None) -> tuple[bool, str]:
        """Whether ``/healthz`` (with ``query``, default this server's ``health_query``) says
        ok, and what it said; only with the monitoring port on."""
        if self._monitor_port is None:
            return False, "the monitoring port is off"
        return healthz(
            self.host, self._monitor_port, self._health_query if query is None else query
        )

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM, wait up to ``grace`` seconds, then SIGKILL. Returns the exit code.

        Safe to call twice, or on a server that never started.
        """
        proc = self._proc
        if proc is None:
            self.state = ServerState.STOPPED
            return None
        if proc.poll() is None:
            _terminate(proc, grace)
        _detached.pop(proc.pid, None)
        self.state = ServerState.STOPPED
        return proc.returncode

    def detach(self) -> int:
        """Let the server outlive this object (and this process): ``with`` no longer stops
        it. Returns its pid; ``stop()`` still works."""
        if self._proc is None or self._proc.poll() is not None:
            raise ServerError("cannot detach: the server is not running")
        self._detached = True
        _detached[self._proc.pid] = self._proc
        return self._proc.pid

    def __enter__(self) -> NatsServer:
        if self.state is ServerState.UNSTARTED:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._detached:
            self.stop()

    def __repr__(self) -> str:
        return f"<NatsServer {self.state.value} {self.url} pid={self.pid}>"


def healthz(host: str, port: int, query: str = "") -> tuple[bool, str]:
    """Whether the monitoring endpoint's ``/healthz?query`` says ok, and what it said."""
    path = "/healthz" + (f"?{query}" if query else "")
    conn = http.client.HTTPConnection(host, port, timeout=2.0)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read().decode("utf-8", "replace")
    except OSError as exc:
        return False, f"GET {path}: {exc}"
    finally:
        conn.close()
    try:
        answer = json.loads(body)
    except ValueError:
        answer = {}
    if response.status == 200 and answer.get("status") == "ok":
        return True, "ok"
    said = answer.get("error") or body.strip()
    return False, f"GET {path}: {response.status} {said}"


def _terminate(proc: subprocess.Popen[bytes], grace: float) -> None:
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    except ProcessLookupError:
        proc.wait()


def reap(pid: int) -> None:
    """Collect ``pid``'s exit status if it is a child of this process that has exited."""
    proc = _detached.get(pid)
    if proc is not None:
        if proc.poll() is not None:
            _detached.pop(pid, None)
        return
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
