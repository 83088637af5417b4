"""LiveCancels: when an agent may skip reading the stream for a task's cancel request."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetbus.js.connection import Connection, ConnectSettings, connect
from fleetbus.runtime.cancels import MARGIN, LiveCancels, clocks_margin

LISTENING = "2026-12-01T10:00:00.123456789Z"
SINCE = datetime(2026, 12, 1, 10, 0, 0, 123456, tzinfo=UTC)
ONE_SERVER = {"ts": LISTENING}  # a consumer info without a cluster block
CLUSTERED = {"ts": LISTENING, "cluster": {"name": "c1", "leader": "n2", "replicas": []}}


async def test_only_tasks_stored_after_listening_began_without_a_break(nats_url: str) -> None:
    conn = await connect(ConnectSettings.from_url(nats_url))
    try:
        cancels = LiveCancels()
        later = SINCE + MARGIN + timedelta(milliseconds=1)
        assert not cancels.complete_for(later)  # not listening yet: read the stream
        cancels.listening(conn, CLUSTERED)
        assert cancels.complete_for(later)
        assert not cancels.complete_for(SINCE)  # stored before: a request may be unseen
        assert not cancels.complete_for(SINCE + MARGIN)  # within the clocks' margin
        conn.breaks += 1  # what the client's disconnect callback counts
        assert not cancels.complete_for(later)  # requests during the break went unseen
        cancels.listening(conn, {})  # a server that does not say its time
        assert not cancels.complete_for(later)
        cancels.listening(conn, None)  # no consumer info came
        assert not cancels.complete_for(later)
    finally:
        await conn.close()


async def test_on_a_server_alone_there_is_no_margin(nats_url: str) -> None:
    """The test server runs JetStream and is in no cluster: its one clock stamps the task and
    the reply, and the subscription was in place before it read the request."""
    conn = await connect(ConnectSettings.from_url(nats_url))
    try:
        cancels = LiveCancels()
        cancels.listening(conn, ONE_SERVER)
        assert cancels.complete_for(SINCE + timedelta(microseconds=1))
        assert not cancels.complete_for(SINCE)
        cancels.listening(conn, CLUSTERED)  # the consumer's stream is clustered
        assert not cancels.complete_for(SINCE + timedelta(microseconds=1))
    finally:
        await conn.close()


@pytest.mark.parametrize(
    ("server", "consumer", "margin"),
    [
        ({"jetstream": True}, ONE_SERVER, timedelta(0)),
        ({"jetstream": True, "cluster": ""}, ONE_SERVER, timedelta(0)),
        ({"jetstream": True, "cluster": "c1"}, ONE_SERVER, MARGIN),  # a cluster member
        ({"jetstream": True}, CLUSTERED, MARGIN),  # the stream is a cluster's
        ({}, ONE_SERVER, MARGIN),  # JetStream answered by another server (a leaf's hub)
        ({"jetstream": False}, ONE_SERVER, MARGIN),
    ],
)
def test_the_margin_is_dropped_only_for_one_jetstream_server(
    server: dict[str, object], consumer: dict[str, object], margin: timedelta
) -> None:
    assert clocks_margin(consumer, server) == margin


async def test_a_connection_made_elsewhere_never_skips_the_read(nats_url: str) -> None:
    made = await connect(ConnectSettings.from_url(nats_url))
    try:
        cancels = LiveCancels()
        cancels.listening(Connection.wrap(made.nc), ONE_SERVER)  # its breaks are not counted
        assert not cancels.complete_for(SINCE + timedelta(days=1))
    finally:
        await made.close()


async def test_a_forgotten_request_moves_listening_past_its_tasks(nats_url: str) -> None:
    conn = await connect(ConnectSettings.from_url(nats_url))
    try:
        cancels = LiveCancels(keep=2)
        cancels.listening(conn, ONE_SERVER)
        stored = datetime.now(UTC) - timedelta(seconds=5)  # before any request below
        assert cancels.complete_for(stored)
        for n in range(3):
            cancels.arrived(f"task-{n}", "cto", f"reason {n}")
        assert cancels.take("task-0", "cto") is None  # forgotten: the oldest of three
        assert not cancels.complete_for(stored)  # so its task is read from the stream
        assert cancels.take("task-2", "cto") == "reason 2"
        assert cancels.take("task-2", "cto") is None  # taken once
    finally:
        await conn.close()


@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "c", "d"]), st.sampled_from(["cto", "ceo"])),
        max_size=30,
    )
)
def test_kept_requests_are_the_latest_distinct_ones(keys: list[tuple[str, str]]) -> None:
    cancels = LiveCancels(keep=3)
    for task_id, assigner in keys:
        cancels.arrived(task_id, assigner, f"{task_id}/{assigner}")
    latest: list[tuple[str, str]] = []
    for key in reversed(keys):
        if key not in latest:
            latest.append(key)
    kept = latest[:3]
    for key in set(keys):
        reason = cancels.take(*key)
        assert reason == (f"{key[0]}/{key[1]}" if key in kept else None)
