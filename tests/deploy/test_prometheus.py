"""``fleetbus deploy prometheus-rules``: status's thresholds as Prometheus alert rules, naming
only metrics the exporter serves. (promtool is not installed: a PromQL parser checks them.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from fleetbus.cli import app
from fleetbus.deploy.prometheus import prometheus_rules, render_rules
from fleetbus.fleet import FleetSpec, seed_fleet
from fleetbus.ops.metrics import NAMES
from promql import selected_metrics

DURATION = re.compile(r"^\d+[smhd]$")


def with_alerts(**alerts: object) -> FleetSpec:
    spec = seed_fleet()
    return spec.model_copy(update={"alerts": spec.alerts.model_copy(update=alerts)})


def rules_of(text: str) -> dict[str, dict[str, Any]]:
    groups = yaml.safe_load(text)["groups"]
    return {r["alert"]: r for g in groups for r in g["rules"]}


def test_the_rules_file_loads_and_every_rule_is_complete() -> None:
    text = render_rules(seed_fleet())
    (group,) = yaml.safe_load(text)["groups"]
    assert group["name"] == "fleetbus-genbrain"
    names = [r["alert"] for r in group["rules"]]
    assert len(names) == len(set(names))
    for rule in group["rules"]:
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert re.fullmatch(r"Fleetbus[A-Za-z]+", rule["alert"])
        assert DURATION.match(rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert set(rule["annotations"]) == {"summary", "description"}


def test_every_expression_parses_and_names_only_exported_metrics() -> None:
    for rule in rules_of(render_rules(seed_fleet())).values():
        names = selected_metrics(rule["expr"])
        assert names, rule["alert"]
        assert names <= NAMES, (rule["alert"], names - NAMES)


def test_every_alert_of_status_has_a_rule() -> None:
    """evaluate()'s codes, each with its rule (and the exporter's own)."""
    rules = rules_of(render_rules(seed_fleet()))
    assert set(rules) == {
        "FleetbusStreamMissing",  # stream-missing
        "FleetbusConsumerMissing",  # consumer-missing
        "FleetbusStreamStorage",  # storage (a stream)
        "FleetbusJetStreamStorage",  # storage (the account)
        "FleetbusSubjectFull",  # subject-full
        "FleetbusStreamConsumers",  # consumers
        "FleetbusReplicasLagging",  # replicas
        "FleetbusConsumerPending",  # pending
        "FleetbusConsumerAckPending",  # ack-pending
        "FleetbusDeadLettersGrowing",  # dead-letters
        "FleetbusExporterStale",
    }


def test_thresholds_come_from_the_fleet_file() -> None:
    seed = rules_of(render_rules(seed_fleet()))
    assert "fleetbus_consumer_pending > 100" in seed["FleetbusConsumerPending"]["expr"]
    assert "fleetbus_consumer_ack_pending > 50" in seed["FleetbusConsumerAckPending"]["expr"]
    assert seed["FleetbusStreamStorage"]["expr"].count(">= 80") == 2
    changed = rules_of(
        render_rules(with_alerts(consumer_pending=7, ack_pending=3, storage_percent=92.5))
    )
    assert "fleetbus_consumer_pending > 7" in changed["FleetbusConsumerPending"]["expr"]
    assert "fleetbus_consumer_ack_pending > 3" in changed["FleetbusConsumerAckPending"]["expr"]
    for alert in ("FleetbusStreamStorage", "FleetbusSubjectFull", "FleetbusJetStreamStorage"):
        assert ">= 92.5" in changed[alert]["expr"], alert
        assert ">= 80" not in changed[alert]["expr"], alert


def test_backlog_alerts_only_for_consumers_an_agent_serves() -> None:
    """As in status: a role with no live agent (or a consumer nobody polls, with nothing in
    flight) keeps its backlog without an alert."""
    rules = rules_of(render_rules(seed_fleet()))
    for alert in ("FleetbusConsumerPending", "FleetbusConsumerAckPending"):
        assert "and fleetbus_consumer_idle == 0" in rules[alert]["expr"]


def test_switched_off_alerts_have_no_rule() -> None:
    rules = rules_of(render_rules(with_alerts(dead_letters_growing=False)))
    assert "FleetbusDeadLettersGrowing" not in rules
    rules = rules_of(render_rules(with_alerts(replicas_out_of_sync=False)))
    assert "FleetbusReplicasLagging" not in rules
    growing = rules_of(render_rules(seed_fleet()))["FleetbusDeadLettersGrowing"]
    assert growing["expr"] == "increase(fleetbus_dead_letters[5m]) > 0"


def test_staleness_follows_the_option() -> None:
    (group,) = prometheus_rules(seed_fleet(), stale_after=300)
    (stale,) = [r for r in group["rules"] if r["alert"] == "FleetbusExporterStale"]
    assert "> 300" in stale["expr"]


@pytest.mark.parametrize("to_file", [False, True])
def test_the_command_prints_or_writes_the_rules(tmp_path: Path, to_file: bool) -> None:
    fleet_file = tmp_path / "fleet.yaml"
    spec = with_alerts(consumer_pending=12)
    fleet_file.write_text(yaml.safe_dump(spec.model_dump(mode="json")))
    out = tmp_path / "rules.yaml"
    args = ["--fleet", str(fleet_file), "deploy", "prometheus-rules"]
    result = CliRunner().invoke(app, [*args, "-o", str(out)] if to_file else args)
    assert result.exit_code == 0, result.output
    text = out.read_text() if to_file else result.stdout
    assert text == render_rules(spec)
    assert "fleetbus_consumer_pending > 12" in text


def test_the_docs_list_every_rule() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "observability.md").read_text()
    documented = set(re.findall(r"^\| `(Fleetbus[A-Za-z]+)` \|", doc, re.M))
    assert documented == set(rules_of(render_rules(seed_fleet())))
