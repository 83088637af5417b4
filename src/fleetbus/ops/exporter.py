"""``fleetbus metrics``: the fleet's status as a Prometheus endpoint.

Two halves that never wait for each other. The refresh loop (an asyncio task) reads a
snapshot with ``ops.status.collect`` every ``interval`` seconds and swaps it in; the HTTP
server (prometheus-client's, on a thread of its own) renders whatever snapshot is there when
Prometheus scrapes. So a scrape never waits on NATS, and a slow or unreachable server shows
up as an old ``fleetbus_exporter_last_refresh_timestamp_seconds`` and a growing
``fleetbus_exporter_scrape_errors_total``, not as scrapes timing out. A failed refresh keeps
the last good snapshot.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import Metric

from fleetbus.errors import FleetbusError
from fleetbus.fleet import FleetSpec
from fleetbus.js.connection import Connection
from fleetbus.ops.metrics import DEFAULT_PORT, ExporterState, families
from fleetbus.ops.status import collect

__all__ = ["DEFAULT_HOST", "DEFAULT_INTERVAL", "DEFAULT_PORT", "FleetExporter"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_INTERVAL = 5.0

log = logging.getLogger("fleetbus.ops")


class FleetExporter:
    """Reads the fleet over ``conn`` every ``interval`` seconds; serves the latest reading.

    ``serve()`` binds the HTTP endpoint; ``refresh_forever()`` keeps the snapshot fresh (run
    it in a task group). ``clock`` gives the Unix time stamped on each snapshot."""

    def __init__(
        self,
        conn: Connection,
        spec: FleetSpec,
        *,
        interval: float = DEFAULT_INTERVAL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be above 0, not {interval}")
        self.conn = conn
        self.spec = spec
        self.interval = interval
        self.timeout = max(10.0, 2 * interval)
        """A refresh that takes longer is abandoned (and counted as an error)."""
        self._clock = clock
        self.state = ExporterState()
        """Replaced whole by each refresh: the HTTP thread reads one consistent state."""
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))

    async def refresh(self) -> bool:
        """Read one snapshot; False (and one more error counted) when that failed."""
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout):
                snapshot = await collect(self.conn, self.spec, dead_letters_before=None)
        except Exception as exc:  # whatever went wrong, the next refresh tries again
            self.state = replace(self.state, errors=self.state.errors + 1)
            log.warning("reading the fleet's status failed: %s", str(exc) or type(exc).__name__)
            return False
        self.state = replace(
            self.state,
            snapshot=snapshot,
            refreshed_at=self._clock(),
            refresh_seconds=time.perf_counter() - started,
        )
        return True

    async def refresh_forever(self) -> None:
        """Refresh now, then every ``interval`` seconds, until cancelled."""
        while True:
            await self.refresh()
            await asyncio.sleep(self.interval)

    @contextmanager
    def serve(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> Iterator[str]:
        """Serve ``/metrics`` on ``host:port`` (0: a free port) while the block runs; yields
        the URL to scrape. A port that cannot be bound raises ``FleetbusError``."""
        try:
            server, thread = start_http_server(port, host, registry=self.registry)
        except OSError as exc:
            raise FleetbusError(
                f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}"
            ) from None
        try:
            bound = server.server_port
            shown = f"[{host}]" if ":" in host else host
            yield f"http://{shown}:{bound}/metrics"
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)


class _Collector:
    """What the registry asks on every scrape: the exporter's current state, as families."""

    def __init__(self, exporter: FleetExporter) -> None:
        self._exporter = exporter

    def collect(self) -> Iterable[Metric]:
        return families(self._exporter.state)

    def describe(self) -> Iterable[Metric]:
        return families(ExporterState())
