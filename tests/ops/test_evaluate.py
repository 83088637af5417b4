"""Alert thresholds, checked against status snapshots (pure: no server)."""

from __future__ import annotations

from fleetbus.fleet import AlertSpec
from fleetbus.ops.status import ConsumerStatus, FleetStatus, StreamStatus, evaluate


def snapshot(**changes: object) -> FleetStatus:
    base: dict[str, object] = {
        "server": "nats://127.0.0.1:4222",
        "version": "2.15.1",
        "streams": (
            StreamStatus(name="AGENT_COMMS", messages=10, bytes=100, max_msgs=-1, max_bytes=-1,
                         replicas=3, leader="n1"),
        ),
        "consumers": (
            ConsumerStatus(stream="AGENT_COMMS", name="BACKEND_TASKS", role="backend",
                           pending=0, ack_pending=0, redelivered=0, waiting=1),
        ),
        "dead_letters": 0,
        "dead_letters_before": 0,
    }  # fmt: skip
    base.update(changes)
    return FleetStatus(**base)  # type: ignore[arg-type]


def codes(status: FleetStatus, **alerts: object) -> list[str]:
    return [a.code for a in evaluate(status, AlertSpec(**alerts))]  # type: ignore[arg-type]


def test_a_quiet_fleet_has_no_alerts() -> None:
    assert codes(snapshot()) == []


def test_replicas_out_of_sync() -> None:
    lagging = StreamStatus(
        name="AGENT_COMMS",
        messages=10,
        bytes=100,
        max_msgs=-1,
        max_bytes=-1,
        replicas=3,
        leader="n1",
        lagging=("n3 (lag 42)",),
    )
    status = snapshot(streams=(lagging,))
    assert codes(status) == ["replicas"]
    assert codes(status, replicas_out_of_sync=False) == []


def test_each_threshold_is_its_own_alert() -> None:
    full = StreamStatus(name="EVENTS", messages=90, bytes=0, max_msgs=100, max_bytes=-1,
                        replicas=1)  # fmt: skip
    busy = ConsumerStatus(stream="AGENT_COMMS", name="BACKEND_TASKS", role="backend",
                          pending=101, ack_pending=51, redelivered=3, waiting=0)  # fmt: skip
    status = snapshot(streams=(full,), consumers=(busy,), dead_letters=2)
    assert codes(status) == ["storage", "pending", "ack-pending", "dead-letters"]
    assert codes(status, storage_percent=95, consumer_pending=200, ack_pending=60,
                 dead_letters_growing=False) == []  # fmt: skip


def test_first_check_has_nothing_to_compare_dead_letters_with() -> None:
    assert codes(snapshot(dead_letters=5, dead_letters_before=None)) == []


def test_a_role_with_no_agent_is_idle_not_an_alert() -> None:
    """Nobody polls CTO_UPDATES and nothing is in flight: the cto agent is not running. Its
    backlog is kept for it and shown, and `fleetbus status` still exits 0."""
    idle = ConsumerStatus(stream="TASKS", name="CTO_UPDATES", role="cto",
                          pending=5000, ack_pending=0, redelivered=0, waiting=0)  # fmt: skip
    assert idle.idle
    assert codes(snapshot(consumers=(idle,))) == []
    stuck = ConsumerStatus(stream="AGENT_COMMS", name="BACKEND_TASKS", role="backend",
                           pending=500, ack_pending=1, redelivered=0, waiting=0)  # fmt: skip
    assert not stuck.idle  # an agent holds a message: serving, and behind
    assert codes(snapshot(consumers=(stuck,))) == ["pending"]


def test_each_stream_is_measured_against_its_own_limits() -> None:
    """Per-subject fill where a full subject refuses its sender, and consumers against
    max_consumers: both alerts of the stream itself, not of the account."""
    comms = StreamStatus(name="AGENT_COMMS", messages=950, bytes=1000, max_msgs=-1,
                         max_bytes=-1, replicas=1, max_msgs_per_subject=1000,
                         fullest_subject="p.agents.backend.tasks.cto",
                         fullest_subject_msgs=950, consumers=10,
                         max_consumers=115)  # fmt: skip
    assert comms.storage_percent is None and comms.subject_percent == 95.0
    assert codes(snapshot(streams=(comms,))) == ["subject-full"]
    crowded = StreamStatus(name="TASKS", messages=1, bytes=1, max_msgs=-1, max_bytes=-1,
                           replicas=1, consumers=105, max_consumers=115)  # fmt: skip
    assert codes(snapshot(streams=(crowded,))) == ["consumers"]


def test_storage_without_an_account_limit_is_measured_against_max_file() -> None:
    full = snapshot(account_storage=45, account_storage_max=50,
                    storage_limit_source="server.max_file")  # fmt: skip
    (alert,) = evaluate(full, AlertSpec())
    assert alert.code == "storage" and "server.max_file" in alert.message


def test_message_rates_come_from_the_growth_of_each_streams_last_sequence() -> None:
    """`status --watch` shows msg/s per stream: what was stored between two snapshots, also
    when retention removed it (interest streams shrink as their messages are processed)."""
    from fleetbus.ops.report import rates

    def comms(messages: int, last_seq: int) -> FleetStatus:
        stream = StreamStatus(name="AGENT_COMMS", messages=messages, bytes=0, max_msgs=-1,
                              max_bytes=-1, replicas=1, last_seq=last_seq)  # fmt: skip
        return snapshot(streams=(stream,))

    assert rates(comms(5, 100), comms(0, 130), 2.0) == {"AGENT_COMMS": 15.0}
    assert rates(comms(5, 100), comms(0, 130), 0.0) == {}
