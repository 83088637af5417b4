"""The fleet as Prometheus metrics: a status snapshot in, metric families out. Pure.

``fleetbus metrics`` (``ops.exporter``) serves what :func:`families` makes of its latest
snapshot. The alert rules and the Grafana dashboard (``deploy.prometheus``,
``deploy.grafana``) name only metrics listed in :data:`METRICS`, and the tests hold them to it.

The snapshot is the one ``fleetbus status`` prints (``ops.status.collect``), so each number
means here what it means there. Labels are bounded by the fleet file: ``stream``,
``consumer``, ``role`` and a presence ``state`` — never a task id, a subject or a host.

Limits a stream does not set (``max_msgs: -1``) are not exported rather than exported as -1,
so a query dividing by a limit never meets a negative one; a missing stream or consumer has
only its ``_exists`` series (0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from fleetbus.ops.status import FleetStatus
from fleetbus.presence import Liveness

__all__ = ["DEFAULT_PORT", "METRICS", "NAMES", "ExporterState", "MetricDef", "families"]

DEFAULT_PORT = 9465
"""Where ``fleetbus metrics`` serves unless told otherwise (free in Prometheus's list of
exporters' default ports)."""


@dataclass(frozen=True, slots=True)
class MetricDef:
    """One metric: its name as scraped (a counter's with ``_total``), type, labels, help."""

    name: str
    kind: Literal["gauge", "counter"]
    labels: tuple[str, ...]
    help: str


_STREAM = ("stream",)
_CONSUMER = ("stream", "consumer", "role")


def _gauge(name: str, labels: tuple[str, ...], help: str) -> MetricDef:
    return MetricDef(f"fleetbus_{name}", "gauge", labels, help)


STREAM_EXISTS = _gauge("stream_exists", _STREAM, "1 when the stream exists, 0 when it is missing.")
STREAM_MESSAGES = _gauge("stream_messages", _STREAM, "Messages stored in the stream.")
STREAM_BYTES = _gauge("stream_bytes", _STREAM, "Bytes stored in the stream.")
STREAM_MAX_MESSAGES = _gauge(
    "stream_max_messages", _STREAM, "The stream's max_msgs (absent without a limit)."
)
STREAM_MAX_BYTES = _gauge(
    "stream_max_bytes", _STREAM, "The stream's max_bytes (absent without a limit)."
)
STREAM_SUBJECT_FILL = _gauge(
    "stream_subject_fill_ratio",
    _STREAM,
    "The fullest subject's messages over max_msgs_per_subject, where a full subject refuses"
    " its sender (discard new per subject).",
)
STREAM_CONSUMERS = _gauge("stream_consumers", _STREAM, "Consumers of the stream.")
STREAM_MAX_CONSUMERS = _gauge(
    "stream_max_consumers", _STREAM, "The stream's max_consumers (absent without a limit)."
)
STREAM_REPLICAS = _gauge("stream_replicas", _STREAM, "The stream's configured replicas.")
STREAM_LAGGING = _gauge(
    "stream_replicas_lagging", _STREAM, "Replicas of the stream that are not current."
)
STREAM_LAST_SEQ = _gauge(
    "stream_last_sequence",
    _STREAM,
    "Sequence of the last message stored; it only grows: rate() of it is the message rate.",
)
CONSUMER_EXISTS = _gauge(
    "consumer_exists", _CONSUMER, "1 when the consumer exists, 0 when it is missing."
)
CONSUMER_PENDING = _gauge(
    "consumer_pending", _CONSUMER, "Messages stored for the consumer, not yet delivered."
)
CONSUMER_ACK_PENDING = _gauge(
    "consumer_ack_pending", _CONSUMER, "Messages delivered, not yet acknowledged."
)
CONSUMER_REDELIVERED = _gauge(
    "consumer_redelivered", _CONSUMER, "Messages delivered more than once, not yet acknowledged."
)
CONSUMER_WAITING = _gauge(
    "consumer_waiting_pulls", _CONSUMER, "Pull requests waiting: some agent polls right now."
)
CONSUMER_IDLE = _gauge(
    "consumer_idle",
    _CONSUMER,
    "1 when no agent serves the consumer (fleetbus status's idle role): its role has no live"
    " agent, or nobody polls it and nothing is in flight.",
)
DEAD_LETTERS = _gauge("dead_letters", (), "Dead letters stored.")
AGENTS = _gauge(
    "agents", ("role", "state"), "Agent processes by presence state (running, draining, ...)."
)
ROLE_SERVING = _gauge("role_serving", ("role",), "1 when a live agent of the role runs.")
JS_STORAGE = _gauge("jetstream_storage_bytes", (), "JetStream file storage the account uses.")
JS_STORAGE_MAX = _gauge(
    "jetstream_storage_max_bytes",
    (),
    "The account's storage limit, or the fleet file's server.max_file without one.",
)
SCRAPE_ERRORS = MetricDef(
    "fleetbus_exporter_scrape_errors_total",
    "counter",
    (),
    "Refreshes of the snapshot that failed (the last good one is served meanwhile).",
)
LAST_REFRESH = _gauge(
    "exporter_last_refresh_timestamp_seconds",
    (),
    "When the snapshot served was read from the server (Unix time).",
)
REFRESH_DURATION = _gauge(
    "exporter_last_refresh_duration_seconds", (), "How long reading the last snapshot took."
)

METRICS: tuple[MetricDef, ...] = (
    STREAM_EXISTS,
    STREAM_MESSAGES,
    STREAM_BYTES,
    STREAM_MAX_MESSAGES,
    STREAM_MAX_BYTES,
    STREAM_SUBJECT_FILL,
    STREAM_CONSUMERS,
    STREAM_MAX_CONSUMERS,
    STREAM_REPLICAS,
    STREAM_LAGGING,
    STREAM_LAST_SEQ,
    CONSUMER_EXISTS,
    CONSUMER_PENDING,
    CONSUMER_ACK_PENDING,
    CONSUMER_REDELIVERED,
    CONSUMER_WAITING,
    CONSUMER_IDLE,
    DEAD_LETTERS,
    AGENTS,
    ROLE_SERVING,
    JS_STORAGE,
    JS_STORAGE_MAX,
    SCRAPE_ERRORS,
    LAST_REFRESH,
    REFRESH_DURATION,
)
"""Every metric the exporter serves, in the order it serves them."""

NAMES: frozenset[str] = frozenset(m.name for m in METRICS)

_STATES = tuple(s.value for s in Liveness if s is not Liveness.STOPPED)


@dataclass(frozen=True, slots=True, kw_only=True)
class ExporterState:
    """What the exporter serves: the latest snapshot and how reading it has gone."""

    snapshot: FleetStatus | None = None
    refreshed_at: float | None = None
    """Unix time of the last refresh that succeeded."""
    refresh_seconds: float | None = None
    errors: int = 0


class _Families:
    def __init__(self) -> None:
        self.by_name: dict[str, GaugeMetricFamily | CounterMetricFamily] = {
            m.name: (
                GaugeMetricFamily(m.name, m.help, labels=m.labels)
                if m.kind == "gauge"
                else CounterMetricFamily(m.name, m.help, labels=m.labels)
            )
            for m in METRICS
        }

    def add(self, metric: MetricDef, value: float, *labels: str) -> None:
        self.by_name[metric.name].add_metric(list(labels), value)


def families(state: ExporterState) -> list[Metric]:
    """Every metric of :data:`METRICS` with the samples ``state`` gives it (none before the
    first snapshot, but the exporter's own)."""
    out = _Families()
    out.add(SCRAPE_ERRORS, state.errors)
    if state.refreshed_at is not None:
        out.add(LAST_REFRESH, state.refreshed_at)
    if state.refresh_seconds is not None:
        out.add(REFRESH_DURATION, state.refresh_seconds)
    if state.snapshot is not None:
        _snapshot(out, state.snapshot)
    return list(out.by_name.values())


def _snapshot(out: _Families, s: FleetStatus) -> None:
    for st in s.streams:
        out.add(STREAM_EXISTS, 0 if st.missing else 1, st.name)
        if st.missing:
            continue
        out.add(STREAM_MESSAGES, st.messages, st.name)
        out.add(STREAM_BYTES, st.bytes, st.name)
        for metric, limit in (
            (STREAM_MAX_MESSAGES, st.max_msgs),
            (STREAM_MAX_BYTES, st.max_bytes),
            (STREAM_MAX_CONSUMERS, st.max_consumers),
        ):
            if limit > 0:
                out.add(metric, limit, st.name)
        if st.max_msgs_per_subject > 0 and st.fullest_subject:
            out.add(STREAM_SUBJECT_FILL, st.fullest_subject_msgs / st.max_msgs_per_subject, st.name)
        out.add(STREAM_CONSUMERS, st.consumers, st.name)
        out.add(STREAM_REPLICAS, st.replicas, st.name)
        out.add(STREAM_LAGGING, len(st.lagging), st.name)
        out.add(STREAM_LAST_SEQ, st.last_seq, st.name)
    for c in s.consumers:
        labels = (c.stream, c.name, c.role)
        out.add(CONSUMER_EXISTS, 0 if c.missing else 1, *labels)
        if c.missing:
            continue
        out.add(CONSUMER_PENDING, c.pending, *labels)
        out.add(CONSUMER_ACK_PENDING, c.ack_pending, *labels)
        out.add(CONSUMER_REDELIVERED, c.redelivered, *labels)
        out.add(CONSUMER_WAITING, c.waiting, *labels)
        out.add(CONSUMER_IDLE, 1 if c.idle else 0, *labels)
    out.add(DEAD_LETTERS, s.dead_letters)
    serving = s.serving
    for role, counts in s.agents.items():
        for state in sorted({*_STATES, *counts}):
            out.add(AGENTS, counts.get(state, 0), role, state)
        out.add(ROLE_SERVING, 1 if role in serving else 0, role)
    out.add(JS_STORAGE, s.account_storage)
    if s.account_storage_max > 0:
        out.add(JS_STORAGE_MAX, s.account_storage_max)
