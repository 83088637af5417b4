"""A Grafana dashboard for a fleet: the exporter's metrics and the agents' own. Pure.

One JSON document (``schemaVersion`` 39) with a datasource variable ``DS_PROMETHEUS``, so it
imports as it is (the UI, the HTTP API, or file provisioning) and every panel queries the
Prometheus picked there. Thresholds drawn on the storage panels are the fleet file's
``alerts.storage_percent``.

Two sources of metrics: ``fleetbus metrics`` (``ops.metrics.METRICS``: streams, consumers,
dead letters, agents from presence) and each agent process (:data:`AGENT_METRICS`: tasks,
handler durations, work in flight). Queries take the ``max`` across series of one stream or
consumer, so two exporters scraping the same fleet are not counted twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from fleetbus.fleet import FleetSpec
from fleetbus.telemetry.metrics import agent_metrics

__all__ = ["AGENT_METRICS", "dashboard", "render_dashboard"]

AGENT_METRICS: dict[str, str] = agent_metrics()
"""What every agent process exports about itself, by name and type (``telemetry.metrics``)."""

SCHEMA_VERSION = 39
DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
_WIDTH = 24
_LIVE = 'state=~"running|draining|suspect"'


@dataclass(frozen=True, slots=True)
class _Target:
    expr: str
    legend: str


@dataclass(frozen=True, slots=True)
class _Panel:
    title: str
    targets: tuple[_Target, ...]
    unit: str = "short"
    kind: str = "timeseries"
    width: int = 12
    height: int = 8
    description: str = ""
    threshold: float | None = None
    """A red line (or colour) from this value on: the alert threshold."""
    extra: dict[str, Any] = field(default_factory=dict)


def _per_consumer(
    metric: str, title: str, description: str, threshold: float | None = None
) -> _Panel:
    target = _Target(f"max by (consumer) (fleetbus_consumer_{metric})", "{{consumer}}")
    return _Panel(title, (target,), description=description, threshold=threshold)


def _panels(spec: FleetSpec) -> list[tuple[str, list[_Panel]]]:
    pct = spec.alerts.storage_percent
    return [
        (
            "Fleet",
            [
                _Panel(
                    "Live agents per role",
                    (
                        _Target(
                            f"sum by (role) (max by (role, state) (fleetbus_agents{{{_LIVE}}}))",
                            "{{role}}",
                        ),
                    ),
                    kind="stat",
                    width=8,
                    height=6,
                    description="Agent processes running, draining or suspect, from presence.",
                ),
                _Panel(
                    "Dead letters",
                    (_Target("max(fleetbus_dead_letters)", "dead letters"),),
                    width=8,
                    height=6,
                    description="Stored dead letters: `fleetbus dlq list`.",
                ),
                _Panel(
                    "Exporter reading age",
                    (
                        _Target(
                            "time() - max(fleetbus_exporter_last_refresh_timestamp_seconds)",
                            "age",
                        ),
                    ),
                    unit="s",
                    kind="stat",
                    width=8,
                    height=6,
                    description="Seconds since fleetbus metrics last read the fleet.",
                ),
            ],
        ),
        (
            "Streams",
            [
                _Panel(
                    "Message rate per stream",
                    (
                        _Target(
                            "max by (stream)"
                            " (rate(fleetbus_stream_last_sequence[$__rate_interval]))",
                            "{{stream}}",
                        ),
                    ),
                    unit="ops",
                    description="Messages stored per second (the rate of the last sequence).",
                ),
                _Panel(
                    "Storage against the streams' own limits",
                    (
                        _Target(
                            "max by (stream) (100 * fleetbus_stream_messages"
                            " / fleetbus_stream_max_messages)",
                            "{{stream}} messages",
                        ),
                        _Target(
                            "max by (stream) (100 * fleetbus_stream_bytes"
                            " / fleetbus_stream_max_bytes)",
                            "{{stream}} bytes",
                        ),
                        _Target(
                            "max by (stream) (100 * fleetbus_stream_subject_fill_ratio)",
                            "{{stream}} fullest subject",
                        ),
                        _Target(
                            "max(100 * fleetbus_jetstream_storage_bytes"
                            " / fleetbus_jetstream_storage_max_bytes)",
                            "JetStream storage",
                        ),
                    ),
                    unit="percent",
                    kind="bargauge",
                    description="Streams without a limit are not shown. The red line is the"
                    " fleet file's alerts.storage_percent.",
                    threshold=pct,
                    extra={"max": 100, "min": 0},
                ),
            ],
        ),
        (
            "Consumers",
            [
                _per_consumer(
                    "pending",
                    "Pending per consumer",
                    "Stored for the consumer, not yet delivered. Alert above"
                    f" {spec.alerts.consumer_pending} while an agent serves it.",
                    spec.alerts.consumer_pending,
                ),
                _per_consumer(
                    "ack_pending",
                    "Ack pending per consumer",
                    f"Delivered, not yet acknowledged. Alert above {spec.alerts.ack_pending}.",
                    spec.alerts.ack_pending,
                ),
                _per_consumer(
                    "redelivered",
                    "Redelivered per consumer",
                    "Delivered more than once, not yet acknowledged.",
                ),
                _per_consumer(
                    "idle",
                    "Idle consumers",
                    "1: no agent serves the consumer (its backlog is kept).",
                ),
            ],
        ),
        (
            "Agent processes",
            [
                _Panel(
                    "Tasks per second by outcome",
                    (
                        _Target(
                            "sum by (role, outcome) (rate(fleetbus_tasks_total[$__rate_interval]))",
                            "{{role}} {{outcome}}",
                        ),
                    ),
                    unit="ops",
                    width=8,
                    description="From every agent process's own metrics.",
                ),
                _Panel(
                    "Handler duration (p50, p95)",
                    tuple(
                        _Target(
                            f"histogram_quantile({q}, sum by (le, role)"
                            " (rate(fleetbus_handler_duration_seconds_bucket[$__rate_interval])))",
                            f"{{{{role}}}} p{round(q * 100)}",
                        )
                        for q in (0.5, 0.95)
                    ),
                    unit="s",
                    width=8,
                ),
                _Panel(
                    "In flight",
                    (_Target("sum by (role, kind) (fleetbus_in_flight)", "{{role}} {{kind}}"),),
                    width=8,
                    description="Deliveries being handled right now, by kind.",
                ),
            ],
        ),
    ]


def _panel_json(panel: _Panel, pid: int, x: int, y: int) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"color": "green", "value": None}]
    if panel.threshold is not None:
        steps.append({"color": "red", "value": panel.threshold})
    custom: dict[str, Any] = {}
    if panel.kind == "timeseries" and panel.threshold is not None:
        custom["thresholdsStyle"] = {"mode": "line"}
    return {
        "id": pid,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": DATASOURCE,
                "expr": t.expr,
                "legendFormat": t.legend,
            }
            for i, t in enumerate(panel.targets)
        ],
        "fieldConfig": {
            "defaults": {
                "unit": panel.unit,
                "thresholds": {"mode": "absolute", "steps": steps},
                "custom": custom,
                **panel.extra,
            },
            "overrides": [],
        },
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}}
        if panel.kind == "timeseries"
        else {},
    }


def dashboard(spec: FleetSpec) -> dict[str, Any]:
    """The dashboard for ``spec`` as a JSON-ready dict."""
    panels: list[dict[str, Any]] = []
    pid, y = 0, 0
    for row, members in _panels(spec):
        pid += 1
        panels.append(
            {
                "id": pid,
                "type": "row",
                "title": row,
                "collapsed": False,
                "gridPos": {"h": 1, "w": _WIDTH, "x": 0, "y": y},
                "panels": [],
            }
        )
        y += 1
        x, tallest = 0, 0
        for panel in members:
            if x + panel.width > _WIDTH:
                x, y, tallest = 0, y + tallest, 0
            pid += 1
            panels.append(_panel_json(panel, pid, x, y))
            x += panel.width
            tallest = max(tallest, panel.height)
        y += tallest
    return {
        "title": f"fleetbus: {spec.prefix}",
        "uid": f"fleetbus-{spec.prefix}"[:40],
        "description": f"The fleetbus fleet {spec.prefix}: written by `fleetbus deploy grafana`.",
        "tags": ["fleetbus", "nats"],
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "timezone": "",
        "templating": {
            "list": [
                {
                    "name": "DS_PROMETHEUS",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                    "refresh": 1,
                    "regex": "",
                    "options": [],
                }
            ]
        },
        "annotations": {"list": []},
        "links": [],
        "panels": panels,
    }


def render_dashboard(spec: FleetSpec) -> str:
    return json.dumps(dashboard(spec), indent=2) + "\n"
