"""The status snapshot as Prometheus metrics (pure: no server)."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric

from fleetbus.ops.metrics import METRICS, NAMES, ExporterState, families
from fleetbus.ops.status import ConsumerStatus, FleetStatus, StreamStatus
from fleetbus.telemetry.metrics import agent_metrics
from scraping import Samples, parse, value

COMMS = StreamStatus(
    name="AGENT_COMMS", messages=950, bytes=4096, max_msgs=-1, max_bytes=1 << 20, replicas=3,
    lagging=("n3 (lag 42)",), max_msgs_per_subject=1000,
    fullest_subject="genbrain.agents.backend.tasks.cto", fullest_subject_msgs=950,
    consumers=10, max_consumers=115, discard="new", last_seq=1234,
)  # fmt: skip
GONE = StreamStatus(name="EVENTS", messages=0, bytes=0, max_msgs=-1, max_bytes=-1, replicas=0,
                    missing=True)  # fmt: skip
SERVED = ConsumerStatus(stream="AGENT_COMMS", name="BACKEND_TASKS", role="backend", pending=7,
                        ack_pending=2, redelivered=1, waiting=0)  # fmt: skip
UNSERVED = ConsumerStatus(stream="TASKS", name="CTO_UPDATES", role="cto", pending=40,
                          ack_pending=0, redelivered=0, waiting=0, serving=False)  # fmt: skip
COPIER = ConsumerStatus(stream="AGENT_DLQ", name="DLQ_COPIER", role="", pending=0,
                        ack_pending=0, redelivered=0, waiting=1)  # fmt: skip
MISSING = ConsumerStatus(stream="AGENT_COMMS", name="SALES_TASKS", role="sales", pending=0,
                         ack_pending=0, redelivered=0, waiting=0, missing=True)  # fmt: skip

SNAPSHOT = FleetStatus(
    server="nats://127.0.0.1:4222", version="2.15.1", streams=(COMMS, GONE),
    consumers=(SERVED, UNSERVED, COPIER, MISSING), dead_letters=5, account_storage=300,
    account_storage_max=1000, agents={"backend": {"running": 2, "suspect": 1}, "cto": {}},
)  # fmt: skip


def samples(metrics: list[Metric]) -> Samples:
    """The families as Prometheus scrapes them: rendered, then parsed back."""
    registry = CollectorRegistry()

    class Fixed:
        def collect(self) -> list[Metric]:
            return metrics

    registry.register(Fixed())
    return parse(generate_latest(registry).decode())


def test_every_metric_follows_prometheus_naming() -> None:
    assert len(NAMES) == len(METRICS)
    for m in METRICS:
        assert re.fullmatch(r"fleetbus_[a-z_]+", m.name), m.name
        assert m.name.endswith("_total") == (m.kind == "counter"), m.name
        assert m.help.endswith(".") or m.help.endswith(")"), m.name
        assert set(m.labels) <= {"stream", "consumer", "role", "state"}, m.name


def test_streams_against_their_own_limits() -> None:
    found = samples(families(ExporterState(snapshot=SNAPSHOT, refreshed_at=1e9)))
    one = {"stream": "AGENT_COMMS"}
    assert value(found, "fleetbus_stream_exists", **one) == 1
    assert value(found, "fleetbus_stream_messages", **one) == 950
    assert value(found, "fleetbus_stream_bytes", **one) == 4096
    assert value(found, "fleetbus_stream_max_bytes", **one) == 1 << 20
    assert value(found, "fleetbus_stream_max_messages", **one) is None  # no limit: no series
    assert value(found, "fleetbus_stream_subject_fill_ratio", **one) == 0.95
    assert value(found, "fleetbus_stream_consumers", **one) == 10
    assert value(found, "fleetbus_stream_max_consumers", **one) == 115
    assert value(found, "fleetbus_stream_replicas", **one) == 3
    assert value(found, "fleetbus_stream_replicas_lagging", **one) == 1
    assert value(found, "fleetbus_stream_last_sequence", **one) == 1234
    # a missing stream has its _exists series only
    assert value(found, "fleetbus_stream_exists", stream="EVENTS") == 0
    assert [k for k in found if ("stream", "EVENTS") in k[1]] == [
        ("fleetbus_stream_exists", (("stream", "EVENTS"),))
    ]


def test_consumers_their_backlog_and_whether_anyone_serves_them() -> None:
    found = samples(families(ExporterState(snapshot=SNAPSHOT)))
    backend = {"stream": "AGENT_COMMS", "consumer": "BACKEND_TASKS", "role": "backend"}
    assert value(found, "fleetbus_consumer_pending", **backend) == 7
    assert value(found, "fleetbus_consumer_ack_pending", **backend) == 2
    assert value(found, "fleetbus_consumer_redelivered", **backend) == 1
    assert value(found, "fleetbus_consumer_waiting_pulls", **backend) == 0
    assert value(found, "fleetbus_consumer_idle", **backend) == 0  # a task is in flight
    cto = {"stream": "TASKS", "consumer": "CTO_UPDATES", "role": "cto"}
    assert value(found, "fleetbus_consumer_idle", **cto) == 1  # no cto agent runs
    # the copier's consumer belongs to no role: an empty label (which Prometheus drops)
    copier = {"stream": "AGENT_DLQ", "consumer": "DLQ_COPIER", "role": ""}
    assert value(found, "fleetbus_consumer_idle", **copier) == 0  # polled
    sales = {"stream": "AGENT_COMMS", "consumer": "SALES_TASKS", "role": "sales"}
    assert value(found, "fleetbus_consumer_exists", **sales) == 0
    assert value(found, "fleetbus_consumer_pending", **sales) is None


def test_agents_by_state_and_the_roles_they_serve() -> None:
    found = samples(families(ExporterState(snapshot=SNAPSHOT)))
    assert value(found, "fleetbus_agents", role="backend", state="running") == 2
    assert value(found, "fleetbus_agents", role="backend", state="suspect") == 1
    assert value(found, "fleetbus_agents", role="backend", state="offline") == 0
    assert value(found, "fleetbus_agents", role="cto", state="running") == 0
    assert value(found, "fleetbus_role_serving", role="backend") == 1
    assert value(found, "fleetbus_role_serving", role="cto") == 0
    assert value(found, "fleetbus_dead_letters") == 5
    assert value(found, "fleetbus_jetstream_storage_bytes") == 300
    assert value(found, "fleetbus_jetstream_storage_max_bytes") == 1000


def test_without_a_snapshot_only_the_exporter_speaks() -> None:
    found = samples(families(ExporterState(errors=3)))
    assert found == {("fleetbus_exporter_scrape_errors_total", ()): 3}
    found = samples(families(ExporterState(refreshed_at=1.7e9, refresh_seconds=0.25)))
    assert value(found, "fleetbus_exporter_last_refresh_timestamp_seconds") == 1.7e9
    assert value(found, "fleetbus_exporter_last_refresh_duration_seconds") == 0.25


def test_every_name_scraped_is_a_declared_metric() -> None:
    tasks = StreamStatus(name="TASKS", messages=1, bytes=1, max_msgs=100, max_bytes=-1, replicas=1)
    snapshot = replace(SNAPSHOT, streams=(*SNAPSHOT.streams, tasks))
    found = samples(families(ExporterState(snapshot=snapshot, refreshed_at=1, refresh_seconds=1)))
    assert {name for name, _ in found} == NAMES


def test_the_docs_describe_every_metric_with_its_type_and_labels() -> None:
    whole = (Path(__file__).resolve().parents[2] / "docs" / "observability.md").read_text()
    doc, agents = whole.split("## Agent processes")
    rows = re.findall(r"^\| `(fleetbus_[a-z_]+)` \| (gauge|counter) \|([^|]*)\|", doc, re.M)
    documented = {
        name: (kind, tuple(re.findall(r"`(\w+)`", labels))) for name, kind, labels in rows
    }
    assert documented == {m.name: (m.kind, m.labels) for m in METRICS}
    # and what each agent process exports, in its own section
    agent_rows = re.findall(r"^\| `(fleetbus_[a-z_]+)` \| (\w+) \|", agents, re.M)
    assert dict(agent_rows) == agent_metrics()
