"""Failover: a 3-node cluster, continuous persisted publishing, the stream leader stopped.

For a crash (SIGKILL) and a planned stop (SIGTERM), fleetbus's ``Publisher`` and a raw
nats-py loop (``js.publish`` with a 2 s timeout, retried on any error) publish side by side
into one R3 stream. Measured for each: the outage — from the signal to its first publish
acknowledged afterwards — and, once the leader is back, how many acknowledged messages the
stream lost and how many it stored twice (a raw retry after a lost ack has no message id).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
from nats.js.api import StreamConfig

from fleetbus.fleet import seed_fleet
from fleetbus.js.connection import Connection
from fleetbus.js.publish import Publisher
from fleetbus.server.cluster import LocalCluster, NodePorts, free_port

STREAM = "FAILOVER"
SUBJECT = "failover.x"


async def _quiet(exc: Exception) -> None:
    """Reconnect attempts to the stopped node are expected: say nothing."""


@dataclass
class Side:
    name: str
    acked: set[str] = field(default_factory=set)
    first_after: float | None = None
    errors: int = 0
    recovered: asyncio.Event = field(default_factory=asyncio.Event)

    def acked_one(self, key: str, began: float, mark: list[float]) -> None:
        self.acked.add(key)
        if mark and began >= mark[0] and self.first_after is None:
            self.first_after = time.monotonic()
            self.recovered.set()


async def _fleetbus_loop(
    url: list[str], side: Side, stop: asyncio.Event, mark: list[float]
) -> None:
    nc = await nats.connect(
        url, max_reconnect_attempts=-1, reconnect_time_wait=0.2, error_cb=_quiet
    )
    publisher = Publisher(Connection.wrap(nc), attempt_timeout=2.0, deadline=60.0)
    try:
        while not stop.is_set():
            msg_id = f"fb-{uuid.uuid4().hex}"
            began = time.monotonic()
            await publisher.publish(f"{SUBJECT}.fb", b"x" * 256, msg_id=msg_id)
            side.acked_one(msg_id, began, mark)
    finally:
        await nc.close()


async def _raw_loop(url: list[str], side: Side, stop: asyncio.Event, mark: list[float]) -> None:
    nc = await nats.connect(
        url, max_reconnect_attempts=-1, reconnect_time_wait=0.2, error_cb=_quiet
    )
    js = nc.jetstream()
    try:
        while not stop.is_set():
            token = uuid.uuid4().hex
            began = time.monotonic()
            while not stop.is_set():
                try:
                    await js.publish(f"{SUBJECT}.raw", token.encode() + b"x" * 224, timeout=2)
                    break
                except Exception:  # the raw loop retries whatever it is told
                    side.errors += 1
                    await asyncio.sleep(0.05)
            side.acked_one(token, began, mark)
    finally:
        await nc.close()


async def _stored(url: list[str]) -> tuple[int, int]:
    """Messages in the stream on the fleetbus and raw subjects."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(STREAM, subjects_filter=f"{SUBJECT}.>")
        subjects = info.state.subjects or {}
        return subjects.get(f"{SUBJECT}.fb", 0), subjects.get(f"{SUBJECT}.raw", 0)
    finally:
        await nc.close()


async def measure(sig: signal.Signals, warmup: float = 2.0) -> dict[str, Any]:
    spec = seed_fleet().server
    ports = [NodePorts(free_port(), free_port(), free_port()) for _ in range(3)]
    with (
        tempfile.TemporaryDirectory(prefix="fleetbus-failover-") as tmp,
        LocalCluster(spec, Path(tmp), 3, ports=ports) as cluster,
    ):
        nc = await nats.connect(cluster.urls)
        await nc.jetstream().add_stream(
            StreamConfig(name=STREAM, subjects=[f"{SUBJECT}.>"], num_replicas=3)
        )
        stop = asyncio.Event()
        mark: list[float] = []
        fb, raw = Side("fleetbus"), Side("raw nats-py")
        loops = [
            asyncio.create_task(_fleetbus_loop(cluster.urls, fb, stop, mark)),
            asyncio.create_task(_raw_loop(cluster.urls, raw, stop, mark)),
        ]
        await asyncio.sleep(warmup)
        info = await nc.jetstream().stream_info(STREAM)
        await nc.close()
        assert info.cluster is not None and info.cluster.leader
        leader = info.cluster.leader
        index = cluster.node_named(leader)
        before = (len(fb.acked), len(raw.acked))
        killed_at = time.monotonic()
        if sig == signal.SIGKILL:
            cluster.kill_node(index)
        else:
            cluster.stop_node(index)
        mark.append(killed_at)  # only publishes begun after the signal count
        async with asyncio.timeout(60):
            await asyncio.gather(fb.recovered.wait(), raw.recovered.wait())
        await asyncio.sleep(1.0)
        stop.set()
        for task in loops:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 30)
        cluster.restart_node(index)
        cluster.wait_healthy(30)
        stored_fb, stored_raw = await _stored(cluster.urls)
    return {
        "signal": sig.name,
        "leader": leader,
        "fleetbus_outage_s": round((fb.first_after or 0) - killed_at, 3),
        "raw_outage_s": round((raw.first_after or 0) - killed_at, 3),
        "fleetbus_acked": len(fb.acked),
        "fleetbus_stored": stored_fb,
        "raw_acked": len(raw.acked),
        "raw_stored": stored_raw,
        "raw_errors_seen": raw.errors,
        "acked_before_signal": before,
    }


async def run_all(
    kinds: tuple[signal.Signals, ...] = (signal.SIGKILL, signal.SIGTERM),
) -> list[dict[str, Any]]:
    return [await measure(sig) for sig in kinds]
