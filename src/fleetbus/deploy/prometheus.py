"""Prometheus alert rules for ``fleetbus metrics``, from the fleet file's ``alerts``. Pure.

The rules are ``fleetbus status``'s alerts (``ops.status.evaluate``) in PromQL, with the same
thresholds, so a cron job running ``status`` and an Alertmanager see the same fleet:

- a stream or consumer missing;
- a stream at ``storage_percent`` of its own ``max_msgs`` or ``max_bytes``, its fullest
  subject at ``storage_percent`` of ``max_msgs_per_subject`` (where a full subject refuses
  its sender), 90% of its ``max_consumers``; replicas not current;
- JetStream storage at ``storage_percent`` of the account's limit (or ``server.max_file``);
- a consumer with more than ``consumer_pending`` pending or ``ack_pending`` unacknowledged,
  only while an agent serves it (``fleetbus_consumer_idle == 0``: a role with no live agent
  keeps its backlog, which is no fault of the fleet);
- dead letters growing (over 5 minutes, where ``status`` compares with its previous run);

and one that ``status`` needs not: the exporter itself stale (or never scraped).
``fleetbus_consumer_idle`` is ``status``'s own judgement of an idle role (presence, else
nobody polling and nothing in flight), so the pending alerts hold for the consumers a role's
agents actually read, and for ``DLQ_COPIER``, which belongs to no role.
"""

from __future__ import annotations

from typing import Any

from fleetbus.deploy.k8s_manifests import dump, labels, meta
from fleetbus.deploy.k8s_values import K8sOptions
from fleetbus.fleet import FleetSpec

__all__ = ["DEFAULT_STALE_AFTER", "prometheus_rule", "prometheus_rules", "render_rules"]

DEFAULT_STALE_AFTER = 60.0
"""Seconds without a fresh snapshot before the exporter counts as stale (12 readings at the
default interval)."""


def _rule(
    alert: str, expr: str, duration: str, severity: str, summary: str, description: str
) -> dict[str, Any]:
    return {
        "alert": alert,
        "expr": expr,
        "for": duration,
        "labels": {"severity": severity},
        "annotations": {"summary": summary, "description": description},
    }


def prometheus_rules(
    spec: FleetSpec, *, stale_after: float = DEFAULT_STALE_AFTER
) -> list[dict[str, Any]]:
    """The rule groups (Prometheus's ``groups:``) for ``spec``'s thresholds."""
    a = spec.alerts
    pct = f"{a.storage_percent:g}"
    rules = [
        _rule(
            "FleetbusStreamMissing",
            "fleetbus_stream_exists == 0",
            "1m",
            "critical",
            "Stream {{ $labels.stream }} does not exist",
            "The fleet file declares {{ $labels.stream }} but the server has no such stream:"
            " run `fleetbus provision`.",
        ),
        _rule(
            "FleetbusConsumerMissing",
            "fleetbus_consumer_exists == 0",
            "1m",
            "critical",
            "Consumer {{ $labels.consumer }} does not exist",
            "{{ $labels.stream }} has no consumer {{ $labels.consumer }}: run"
            " `fleetbus provision`.",
        ),
        _rule(
            "FleetbusStreamStorage",
            f"100 * fleetbus_stream_messages / fleetbus_stream_max_messages >= {pct}\n"
            f"or 100 * fleetbus_stream_bytes / fleetbus_stream_max_bytes >= {pct}",
            "5m",
            "warning",
            "Stream {{ $labels.stream }} is at {{ $value | humanize }}% of its limit",
            f"{{{{ $labels.stream }}}} holds {pct}% or more of its max_msgs or max_bytes"
            " (alerts.storage_percent); at the limit it discards, or refuses new messages.",
        ),
        _rule(
            "FleetbusSubjectFull",
            f"100 * fleetbus_stream_subject_fill_ratio >= {pct}",
            "5m",
            "warning",
            "The fullest subject of {{ $labels.stream }} is at {{ $value | humanize }}%",
            "A subject of {{ $labels.stream }} is near max_msgs_per_subject: at the limit its"
            " sender is refused until the role catches up.",
        ),
        _rule(
            "FleetbusStreamConsumers",
            "fleetbus_stream_consumers >= 0.9 * fleetbus_stream_max_consumers",
            "5m",
            "warning",
            "Stream {{ $labels.stream }} has 90% of its max_consumers",
            "At the limit readers (fleetbus task, dlq list, a dashboard) are refused.",
        ),
        _rule(
            "FleetbusJetStreamStorage",
            "100 * fleetbus_jetstream_storage_bytes / fleetbus_jetstream_storage_max_bytes"
            f" >= {pct}",
            "5m",
            "warning",
            "JetStream storage at {{ $value | humanize }}% of its limit",
            f"File storage has reached {pct}% of the account's limit (or the fleet file's"
            " server.max_file).",
        ),
        _rule(
            "FleetbusConsumerPending",
            f"fleetbus_consumer_pending > {a.consumer_pending}\nand fleetbus_consumer_idle == 0",
            "5m",
            "warning",
            "{{ $labels.consumer }} has {{ $value }} messages waiting",
            f"More than {a.consumer_pending} messages (alerts.consumer_pending) wait for"
            " {{ $labels.consumer }} while an agent serves it: stuck or overwhelmed?",
        ),
        _rule(
            "FleetbusConsumerAckPending",
            f"fleetbus_consumer_ack_pending > {a.ack_pending}\nand fleetbus_consumer_idle == 0",
            "5m",
            "warning",
            "{{ $labels.consumer }} has {{ $value }} unacknowledged messages",
            f"More than {a.ack_pending} messages (alerts.ack_pending) delivered to"
            " {{ $labels.consumer }} are not acknowledged.",
        ),
    ]
    if a.replicas_out_of_sync:
        rules.append(
            _rule(
                "FleetbusReplicasLagging",
                "fleetbus_stream_replicas_lagging > 0",
                "2m",
                "warning",
                "{{ $value }} replica(s) of {{ $labels.stream }} not current",
                "Replicas of {{ $labels.stream }} lag behind its leader"
                " (alerts.replicas_out_of_sync).",
            )
        )
    if a.dead_letters_growing:
        rules.append(
            _rule(
                "FleetbusDeadLettersGrowing",
                "increase(fleetbus_dead_letters[5m]) > 0",
                "0m",
                "warning",
                "New dead letters",
                "Messages were dead-lettered in the last 5 minutes"
                " (alerts.dead_letters_growing): `fleetbus dlq list`.",
            )
        )
    rules.append(
        _rule(
            "FleetbusExporterStale",
            f"time() - fleetbus_exporter_last_refresh_timestamp_seconds > {stale_after:g}\n"
            "or absent(fleetbus_exporter_last_refresh_timestamp_seconds)",
            "1m",
            "warning",
            "fleetbus metrics has no fresh reading of the fleet",
            f"No snapshot of the fleet in {stale_after:g}s (or no exporter scraped): every"
            " other fleetbus alert is blind. Its log says why.",
        )
    )
    return [{"name": f"fleetbus-{spec.prefix}", "rules": rules}]


def prometheus_rule(spec: FleetSpec, options: K8sOptions) -> dict[str, Any]:
    """The rules as a Prometheus Operator ``PrometheusRule`` (for ``fleetbus deploy k8s``)."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": meta("fleetbus-alerts", options, labels("alerts")),
        "spec": {"groups": prometheus_rules(spec)},
    }


def render_rules(spec: FleetSpec, *, stale_after: float = DEFAULT_STALE_AFTER) -> str:
    """A Prometheus rules file (``rule_files:``) for ``spec``."""
    groups = prometheus_rules(spec, stale_after=stale_after)
    header = (
        f"# Alert rules for fleetbus fleet {spec.prefix}, from its fleet file's `alerts`\n"
        "# (written by `fleetbus deploy prometheus-rules`; render again after changing them).\n"
    )
    return header + dump({"groups": groups})
