"""An agent process's Prometheus metrics.

One registry per process, served on ``Agent(metrics_port=...)`` or ``fleetbus run
--metrics-port``; until then every call below returns at once (``enabled`` is False), so an
agent without metrics pays one attribute check per event. Labels are bounded: role, consumer
kind, outcome, stream — never a task id.

| metric | type | labels |
|---|---|---|
| ``fleetbus_tasks_total`` | counter | role, outcome (``completed``, ``dead_lettered``, ...) |
| ``fleetbus_handler_duration_seconds`` | histogram | role, kind |
| ``fleetbus_retries_total`` | counter | role, kind |
| ``fleetbus_dead_letters_total`` | counter | role, kind |
| ``fleetbus_in_flight`` | gauge | role, kind |
| ``fleetbus_heartbeats_total`` | counter | role |
| ``fleetbus_messages_handled_total`` | counter | role, kind |
| ``fleetbus_publish_duration_seconds`` | histogram | — |
| ``fleetbus_reconnects_total`` | counter | — |
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterator
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

__all__ = ["METRICS", "Metrics", "agent_metrics"]

M = TypeVar("M", bound=MetricWrapperBase)

_DURATIONS = (0.005, 0.025, 0.1, 0.5, 1, 2.5, 10, 30, 60, 300, 900, 1800, 3600)
_PUBLISH = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1, 5)


class Metrics:
    """The metrics of this process (``METRICS``)."""

    def __init__(self) -> None:
        self.enabled = False
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.tasks = Counter(
            "fleetbus_tasks_total", "Tasks ended, by outcome", ["role", "outcome"], registry=r
        )
        self.duration = Histogram(
            "fleetbus_handler_duration_seconds",
            "How long handlers ran",
            ["role", "kind"],
            buckets=_DURATIONS,
            registry=r,
        )
        self.retries = Counter(
            "fleetbus_retries_total", "Failed attempts that will be retried", ["role", "kind"],
            registry=r,
        )  # fmt: skip
        self.dead_letters = Counter(
            "fleetbus_dead_letters_total", "Deliveries given up on", ["role", "kind"], registry=r
        )
        self.heartbeats = Counter(
            "fleetbus_heartbeats_total", "In-progress heartbeats sent", ["role"], registry=r
        )
        # Changed twice per delivery: plain counts, read when scraped.
        self.tallies = _Tallies()
        r.register(self.tallies)
        self.publish = Histogram(
            "fleetbus_publish_duration_seconds",
            "Persisted publishes, until the stream's acknowledgement",
            buckets=_PUBLISH,
            registry=r,
        )
        self.reconnects = Counter("fleetbus_reconnects_total", "Reconnections to NATS", registry=r)
        self._served: dict[tuple[str, int], object] = {}
        self._children: dict[tuple[object, ...], MetricWrapperBase] = {}
        self._lock = threading.Lock()

    def serve(self, port: int, host: str = "127.0.0.1") -> int:
        """Serve ``/metrics`` on ``host:port`` (0: a free port) and turn the metrics on;
        the port it serves on. Once per process and address."""
        with self._lock:
            self.enabled = True
            server, _thread = start_http_server(port, addr=host, registry=self.registry)
            bound: int = server.server_port
            self._served[(host, bound)] = server
            return bound

    # -- events (no-ops until enabled) ---------------------------------------------------

    def _of(self, metric: M, *labels: str) -> M:
        """``metric.labels(*labels)``, looked up once per label set (a delivery counts in
        several metrics, and ``labels()`` costs a few microseconds each time)."""
        key: tuple[object, ...] = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child  # type: ignore[return-value]  # labels() gives the metric's own type

    def task_ended(self, role: str, outcome: str) -> None:
        if self.enabled:
            self._of(self.tasks, role, outcome).inc()

    def handler_ran(self, role: str, kind: str, seconds: float) -> None:
        if self.enabled:
            self._of(self.duration, role, kind).observe(seconds)

    def retried(self, role: str, kind: str) -> None:
        if self.enabled:
            self._of(self.retries, role, kind).inc()

    def dead_lettered(self, role: str, kind: str) -> None:
        if self.enabled:
            self._of(self.dead_letters, role, kind).inc()

    def running(self, role: str, kind: str, delta: int) -> None:
        if self.enabled:
            self.tallies.in_flight[role, kind] += delta

    def heartbeat(self, role: str) -> None:
        if self.enabled:
            self._of(self.heartbeats, role).inc()

    def acked(self, role: str, kind: str) -> None:
        if self.enabled:
            self.tallies.handled[role, kind] += 1

    def published(self, seconds: float) -> None:
        if self.enabled:
            self.publish.observe(seconds)

    def reconnected(self) -> None:
        if self.enabled:
            self.reconnects.inc()


class _Tallies(Collector):
    """``fleetbus_in_flight`` and ``fleetbus_messages_handled_total``: counts the event loop
    changes (a dict entry each, where a prometheus child takes a lock) and a scrape reads."""

    def __init__(self) -> None:
        self.in_flight: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.handled: defaultdict[tuple[str, str], int] = defaultdict(int)

    def collect(self) -> Iterator[Metric]:
        running = GaugeMetricFamily(
            "fleetbus_in_flight", "Handlers running now", labels=["role", "kind"]
        )
        for labels, value in list(self.in_flight.items()):
            running.add_metric(list(labels), value)
        yield running
        handled = CounterMetricFamily(
            "fleetbus_messages_handled",
            "Deliveries acknowledged, by consumer kind",
            labels=["role", "kind"],
        )
        for labels, value in list(self.handled.items()):
            handled.add_metric(list(labels), value)
        yield handled


METRICS = Metrics()
"""This process's metrics."""


def agent_metrics() -> dict[str, str]:
    """Every metric an agent process exports, by name and type (``counter``, ``gauge``,
    ``histogram``): for dashboards and alert rules that reference them."""
    out: dict[str, str] = {}
    for family in METRICS.registry.collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        out[name] = family.type
    return out
