"""Serving the dashboard: the hub over the admin's connection, the app, and uvicorn on a
socket bound before anything is said about it (so the address printed is one that
answers, and port 0 means a free port).

``open_dashboard`` returns once the dashboard listens and stops it on exit; ``serve`` runs it
until an event is set. Neither installs signal handlers: the CLI does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import uvicorn

from fleetbus.dashboard.app import create_app
from fleetbus.dashboard.data import FleetData
from fleetbus.dashboard.live import Hub
from fleetbus.errors import FleetbusError
from fleetbus.fleet import FleetSpec
from fleetbus.js.connection import Connection

__all__ = ["Dashboard", "open_dashboard", "serve"]

log = logging.getLogger("fleetbus.dashboard")

DEFAULT_PORT = 8765


@dataclass(frozen=True, slots=True)
class Dashboard:
    """A running dashboard: where it answers, and its access token (None on loopback)."""

    url: str
    token: str | None
    hub: Hub

    @property
    def address(self) -> str:
        """What to open in a browser: the url, with the token when one is needed."""
        return f"{self.url}?token={self.token}" if self.token else self.url


Callback = Callable[[Dashboard], None]


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: only the CLI installs those."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def open_dashboard(
    conn: Connection,
    spec: FleetSpec,
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    token: str | None = None,
    interval: float = 2.0,
) -> AsyncIterator[Dashboard]:
    """Serve the dashboard of ``spec``'s fleet over ``conn`` (the admin's) on ``host:port``;
    every request then needs ``token`` when one is given."""
    sock = _bind(host, port)
    bound = sock.getsockname()[1]
    hub = Hub(FleetData(conn, spec), interval=interval)
    config = uvicorn.Config(
        create_app(hub, token=token, host=host),
        log_config=None,
        log_level="warning",
        access_log=False,
        lifespan="off",
        ws="none",
        timeout_graceful_shutdown=2,
    )
    server = _Server(config)
    name = f"[{host}]" if ":" in host else host
    dashboard = Dashboard(url=f"http://{name}:{bound}/", token=token, hub=hub)
    running = asyncio.create_task(hub.run())
    running.add_done_callback(_report)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield dashboard
    finally:
        hub.close()
        server.should_exit = True
        with contextlib.suppress(Exception):
            await serving
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await running
        sock.close()


async def serve(
    conn: Connection,
    spec: FleetSpec,
    *,
    until: asyncio.Event,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    token: str | None = None,
    on_ready: Callback | None = None,
) -> None:
    """Serve the dashboard until ``until`` is set; ``on_ready(dashboard)`` once it listens."""
    async with open_dashboard(conn, spec, host=host, port=port, token=token) as dashboard:
        if on_ready is not None:
            on_ready(dashboard)
        await until.wait()


def _report(task: asyncio.Task[None]) -> None:
    """The hub's loops keep going through every error they expect; say so if one did not."""
    if not task.cancelled() and task.exception() is not None:
        log.error("dashboard: the live state stopped: %r", task.exception())


def _bind(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise FleetbusError(f"the dashboard cannot listen on {host}:{port}: {exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)  # from now on a browser's connection waits for uvicorn to take it
    except OSError as exc:
        sock.close()
        raise FleetbusError(
            f"the dashboard cannot listen on {host}:{port}: {exc.strerror or exc}"
        ) from None
    return sock
