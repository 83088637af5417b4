"""Fleet.publish_many / emit_many against a real server: atomic batches, fallbacks, errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from fleetbus import FleetbusError
from fleetbus.errors import BatchPublishError, JetStreamError, PayloadError
from fleetbus.fleet import seed_fleet
from fleetbus.js.api import JsApi
from fleetbus.js.batch import BATCH_ID, BATCH_SEQUENCE, BatchPublisher
from fleetbus.testing.fleets import FleetUnderTest
from fleetbus.wire import headers as h


async def _stored(fleet: Any, stream: str) -> list[dict[str, Any]]:
    """Every message of ``stream`` in order: subject, body and headers."""
    api = JsApi(fleet.conn)
    info = await api.stream_info(stream)
    assert info is not None
    out = []
    state = info["state"]
    for seq in range(state["first_seq"], state["last_seq"] + 1):
        msg = await api.get_message(stream, seq)
        if msg is None:
            continue
        out.append(
            {
                "seq": seq,
                "subject": msg.subject,
                "body": json.loads(msg.data),
                "headers": msg.headers,
            }
        )
    return out


def _events(fleet: FleetUnderTest) -> str:
    return next(n for n in fleet.spec.streams if n.startswith("EVENTS"))


async def test_every_message_stored_once_in_order_with_headers(fleet: FleetUnderTest) -> None:
    async with fleet.client(sender="cto") as client:
        bodies = [{"n": i} for i in range(25)]
        result = await client.emit_many("deployment", "started", bodies)
        assert len(result) == 25
        assert [a.duplicate for a in result] == [False] * 25
        stored = await _stored(client, _events(fleet))
    assert [m["body"]["n"] for m in stored] == list(range(25))
    assert [m["seq"] for m in stored] == [result[i].seq for i in range(25)]
    assert all(m["subject"] == f"{fleet.spec.prefix}.events.deployment.started" for m in stored)
    assert all(m["headers"][h.SENDER] == "cto" for m in stored)
    assert len({m["headers"][h.MSG_ID] for m in stored}) == 25
    # one atomic batch: one batch id, sequences 1..25
    assert len({m["headers"][BATCH_ID] for m in stored}) == 1
    assert [int(m["headers"][BATCH_SEQUENCE]) for m in stored] == list(range(1, 26))
    assert [b.atomic for b in result.batches] == [True]


async def test_more_than_one_batch_and_mixed_subjects(fleet: FleetUnderTest) -> None:
    p = fleet.spec.prefix
    async with fleet.client() as client:
        client._batches = BatchPublisher(client.conn, batch_size=100, window=3)
        items = [(f"{p}.events.build.{'ok' if i % 3 else 'failed'}", {"n": i}) for i in range(2345)]
        result = await client.publish_many(items)
        assert [b.count for b in result.batches] == [100] * 23 + [45]
        assert all(b.atomic for b in result.batches)
        stored = await _stored(client, _events(fleet))
    assert [m["body"]["n"] for m in stored] == list(range(2345))
    assert [m["subject"] for m in stored] == [s for s, _ in items]
    assert [m["seq"] for m in stored] == [a.seq for a in result]


async def test_default_chunk_is_the_servers_limit(fleet: FleetUnderTest) -> None:
    async with fleet.client() as client:
        result = await client.emit_many("load", "tick", [{"n": i} for i in range(2001)])
    assert [b.count for b in result.batches] == [1000, 1000, 1]
    assert result[2000].seq == result[0].seq + 2000


async def test_retried_batch_is_stored_once(fleet: FleetUnderTest) -> None:
    ids = [f"evt-{i}" for i in range(10)]
    async with fleet.client() as client:
        first = await client.emit_many(
            "deployment", "done", [{"n": i} for i in range(10)], msg_ids=ids
        )
        # the same batch again (a retry after a lost ack): the server refuses the atomic batch
        # (10201); fleetbus re-sends it message by message and reports every one duplicate
        again = await client.emit_many(
            "deployment", "done", [{"n": i} for i in range(10)], msg_ids=ids
        )
        assert again.duplicates == 10
        assert [a.seq for a in again] == [a.seq for a in first]
        # partly new: the new ones stored, the old ones dropped as duplicates
        mixed_ids = [*ids[5:], "evt-10", "evt-11"]
        mixed = await client.emit_many(
            "deployment", "done", [{"n": i} for i in range(5, 12)], msg_ids=mixed_ids
        )
        assert [a.duplicate for a in mixed] == [True] * 5 + [False] * 2
        stored = await _stored(client, _events(fleet))
    assert [m["headers"][h.MSG_ID] for m in stored] == [*ids, "evt-10", "evt-11"]


async def test_stream_without_atomic_publish_falls_back_to_pipelined(
    make_fleet: Callable[..., FleetUnderTest],
) -> None:
    spec = seed_fleet()
    # the live stream refuses atomic batches though the fleet file says it allows them:
    # provision without, then connect with a spec that claims it
    no_atomic = spec.model_copy(
        update={
            "streams": {
                n: s.model_copy(update={"allow_atomic_publish": False})
                for n, s in spec.streams.items()
            }
        }
    )
    fut = make_fleet(no_atomic)
    claims = fut.spec.model_copy(
        update={
            "streams": {
                n: s.model_copy(update={"allow_atomic_publish": True})
                for n, s in fut.spec.streams.items()
            }
        }
    )
    liar = FleetUnderTest(claims, fut.url)
    async with liar.client() as client:
        result = await client.emit_many("deployment", "x", [{"n": i} for i in range(30)])
        assert len(result) == 30 and not any(b.atomic for b in result.batches)
        stored = await _stored(client, _events(fut))
    assert [m["body"]["n"] for m in stored] == list(range(30))
    assert all(BATCH_ID not in m["headers"] for m in stored)


async def test_subject_no_stream_captures_is_refused_before_sending(fleet: FleetUnderTest) -> None:
    async with fleet.client() as client:
        with pytest.raises(FleetbusError, match="no stream of the fleet captures"):
            await client.publish_many(f"{fleet.spec.prefix}.nowhere.x", [{"n": 1}])


async def test_oversize_message_is_refused_before_sending(fleet: FleetUnderTest) -> None:
    async with fleet.client() as client:
        big = "x" * (client.nc.max_payload - 50)
        with pytest.raises(PayloadError, match="message 2 is"):
            await client.emit_many("a", "b", [{"n": 0}, {"n": 1}, {"big": big}])
        info = await JsApi(client.conn).stream_info(_events(fleet))
    assert info is not None and info["state"]["messages"] == 0


async def test_refused_batch_names_the_messages_not_stored(
    make_fleet: Callable[..., FleetUnderTest],
) -> None:
    spec = seed_fleet()
    limited = spec.model_copy(
        update={
            "streams": {
                n: (
                    s.model_copy(
                        update={
                            "max_msgs_per_subject": 15,
                            "discard": "new",
                            "discard_new_per_subject": True,
                        }
                    )
                    if n == "EVENTS"
                    else s
                )
                for n, s in spec.streams.items()
            }
        }
    )
    fut = make_fleet(limited)
    async with fut.client() as client:
        client._batches = BatchPublisher(client.conn, batch_size=10, window=1)
        with pytest.raises(BatchPublishError) as info:
            await client.emit_many("quota", "x", [{"n": i} for i in range(35)])
        err = info.value
        # batch 0..9 stored; 10..19 would exceed 15 per subject: refused whole; rest not sent
        assert [(b.start, b.stop) for b in err.stored.batches] == [(0, 10)]
        assert [(a, b) for a, b, _ in err.failed] == [(10, 20), (20, 35)]
        assert isinstance(err.failed[0][2], JetStreamError)
        assert err.failed[0][2].err_code == 10077
        assert "messages 10..19 not stored" in str(err)
        stored = await _stored(client, _events(fut))
    assert [m["body"]["n"] for m in stored] == list(range(10))
