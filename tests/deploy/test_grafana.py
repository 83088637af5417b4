"""``fleetbus deploy grafana``: a dashboard whose every query parses and names metrics that
exist: the exporter's, or the agents' own."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from fleetbus.cli import app
from fleetbus.deploy.grafana import AGENT_METRICS, dashboard, render_dashboard
from fleetbus.fleet import seed_fleet
from fleetbus.ops.metrics import NAMES
from promql import selected_metrics

SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "counter": ("",), "gauge": ("",)}
AGENTS = {name + s for name, kind in AGENT_METRICS.items() for s in SUFFIXES[kind]}


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def test_the_dashboard_loads_with_a_prometheus_datasource_variable() -> None:
    board = json.loads(render_dashboard(seed_fleet()))
    assert board["schemaVersion"] == 39
    assert board["uid"] == "fleetbus-genbrain" and "genbrain" in board["title"]
    (variable,) = board["templating"]["list"]
    assert variable["name"] == "DS_PROMETHEUS"
    assert variable["type"] == "datasource" and variable["query"] == "prometheus"
    ids = [p["id"] for p in panels(board)]
    assert len(ids) == len(set(ids))
    for panel in panels(board):
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}"


def test_panels_do_not_overlap() -> None:
    cells: set[tuple[int, int]] = set()
    for panel in panels(dashboard(seed_fleet())):
        g = panel["gridPos"]
        mine = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not cells & mine, panel["title"]
        cells |= mine


def test_every_query_parses_and_names_known_metrics() -> None:
    used: set[str] = set()
    for panel in panels(dashboard(seed_fleet())):
        for target in panel.get("targets", []):
            names = selected_metrics(target["expr"])
            assert names, target["expr"]
            assert names <= NAMES | AGENTS, (panel["title"], names - NAMES - AGENTS)
            used |= names
    # what the dashboard is for: each of these is on it
    for name in (
        "fleetbus_stream_last_sequence",  # message rates per stream
        "fleetbus_consumer_pending",
        "fleetbus_consumer_ack_pending",
        "fleetbus_dead_letters",
        "fleetbus_agents",  # live agents per role
        "fleetbus_stream_max_bytes",  # storage against limits
        "fleetbus_jetstream_storage_max_bytes",
        "fleetbus_tasks_total",
        "fleetbus_handler_duration_seconds_bucket",
        "fleetbus_in_flight",
    ):
        assert name in used, name


def test_storage_thresholds_are_the_fleet_files() -> None:
    spec = seed_fleet()
    spec = spec.model_copy(
        update={"alerts": spec.alerts.model_copy(update={"storage_percent": 65})}
    )
    (storage,) = [p for p in panels(dashboard(spec)) if p["title"].startswith("Storage")]
    steps = storage["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert steps[-1] == {"color": "red", "value": 65}


def test_the_command_prints_or_writes_the_dashboard(tmp_path: Path) -> None:
    fleet_file = tmp_path / "fleet.yaml"
    fleet_file.write_text(yaml.safe_dump(seed_fleet().model_dump(mode="json")))
    args = ["--fleet", str(fleet_file), "deploy", "grafana"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == dashboard(seed_fleet())
    out = tmp_path / "dashboard.json"
    result = CliRunner().invoke(app, [*args, "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text()) == dashboard(seed_fleet())
    assert f"wrote {out}" in result.stdout
