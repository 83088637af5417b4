"""Persisted publishes: awaited one by one (latency) and many at once (throughput)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import nats

from bench import LATENCY, Env, Metric, Scenario, latency_metrics, rate
from fleetbus.js.publish import Publisher


def body_of(size: int) -> dict[str, Any]:
    """A JSON object whose compact encoding is ``size`` bytes."""
    body: dict[str, Any] = {"kind": "bench", "n": 0, "pad": ""}
    overhead = len(json.dumps(body, separators=(",", ":")))
    body["pad"] = "x" * max(0, size - overhead)
    return body


def _encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


# -- awaited publish latency -------------------------------------------------------------------


async def emit_latency(env: Env, p: dict[str, Any]) -> dict[str, float]:
    fleet = await env.fleet()
    body = body_of(p["size"])
    samples = []
    async with fleet.client(sender="cto") as client:
        for _ in range(p["warmup"]):
            await client.emit("bench", "latency", body)
        for _ in range(p["count"]):
            t0 = time.perf_counter()
            await client.emit("bench", "latency", body)
            samples.append(time.perf_counter() - t0)
    return latency_metrics(samples)


async def publisher_latency(env: Env, p: dict[str, Any]) -> dict[str, float]:
    fleet = await env.fleet()
    data = _encode(body_of(p["size"]))
    subject = fleet.spec.subjects.event("bench", "latency")
    samples = []
    async with fleet.client() as client:
        pub = Publisher(client.conn)
        for _ in range(p["warmup"]):
            await pub.publish(subject, data)
        for _ in range(p["count"]):
            t0 = time.perf_counter()
            await pub.publish(subject, data)
            samples.append(time.perf_counter() - t0)
    return latency_metrics(samples)


async def raw_latency(env: Env, p: dict[str, Any]) -> dict[str, float]:
    fleet = await env.fleet()
    body = body_of(p["size"])
    subject = fleet.spec.subjects.event("bench", "latency")
    nc = await nats.connect(env.url)
    js = nc.jetstream()
    samples = []
    try:
        for _ in range(p["warmup"]):
            await js.publish(subject, _encode(body))
        for _ in range(p["count"]):
            t0 = time.perf_counter()
            await js.publish(subject, _encode(body))
            samples.append(time.perf_counter() - t0)
    finally:
        await nc.close()
    return latency_metrics(samples)


async def raw_latency_msgid(env: Env, p: dict[str, Any]) -> dict[str, float]:
    """js.publish with a Nats-Msg-Id, as fleetbus sends (the server's dedupe work included)."""
    fleet = await env.fleet()
    body = body_of(p["size"])
    subject = fleet.spec.subjects.event("bench", "latency")
    nc = await nats.connect(env.url)
    js = nc.jetstream()
    samples = []
    try:
        for _ in range(p["warmup"]):
            await js.publish(subject, _encode(body), headers={"Nats-Msg-Id": uuid.uuid4().hex})
        for _ in range(p["count"]):
            t0 = time.perf_counter()
            await js.publish(subject, _encode(body), headers={"Nats-Msg-Id": uuid.uuid4().hex})
            samples.append(time.perf_counter() - t0)
    finally:
        await nc.close()
    return latency_metrics(samples)


# -- pipelined throughput ----------------------------------------------------------------------


async def emit_many(env: Env, p: dict[str, Any]) -> dict[str, float]:
    fleet = await env.fleet()
    bodies = [body_of(p["size"]) for _ in range(p["count"])]
    async with fleet.client(sender="cto") as client:
        await client.emit_many("bench", "warm", bodies[:1000])
        t0 = time.perf_counter()
        result = await client.emit_many("bench", "many", bodies)
        elapsed = time.perf_counter() - t0
    assert len(result) == p["count"]
    return {"rate": rate(p["count"], elapsed)}


async def raw_publish_async(env: Env, p: dict[str, Any]) -> dict[str, float]:
    fleet = await env.fleet()
    bodies = [body_of(p["size"]) for _ in range(p["count"])]
    subject = fleet.spec.subjects.event("bench", "many")
    nc = await nats.connect(env.url)
    js = nc.jetstream()
    try:
        await asyncio.gather(*[js.publish_async(subject, _encode(b)) for b in bodies[:1000]])
        t0 = time.perf_counter()
        futures = [await js.publish_async(subject, _encode(b)) for b in bodies]
        acks = await asyncio.gather(*futures)
        elapsed = time.perf_counter() - t0
    finally:
        await nc.close()
    assert len(acks) == p["count"]
    return {"rate": rate(p["count"], elapsed)}


async def raw_atomic_batch(env: Env, p: dict[str, Any]) -> dict[str, float]:
    """The hand-written atomic batch (the DESIGN's 108-112K/s figure), one commit at a time."""
    fleet = await env.fleet()
    bodies = [body_of(p["size"]) for _ in range(p["count"])]
    subject = fleet.spec.subjects.event("bench", "many")
    nc = await nats.connect(env.url)
    try:
        t0 = time.perf_counter()
        stored = 0
        for start in range(0, len(bodies), 1000):
            chunk = bodies[start : start + 1000]
            bid = uuid.uuid4().hex
            for i, b in enumerate(chunk[:-1], 1):
                await nc.publish(
                    subject,
                    _encode(b),
                    headers={"Nats-Batch-Id": bid, "Nats-Batch-Sequence": str(i)},
                )
            reply = await nc.request(
                subject,
                _encode(chunk[-1]),
                timeout=5,
                headers={
                    "Nats-Batch-Id": bid,
                    "Nats-Batch-Sequence": str(len(chunk)),
                    "Nats-Batch-Commit": "1",
                },
            )
            stored += json.loads(reply.data)["count"]
        elapsed = time.perf_counter() - t0
    finally:
        await nc.close()
    assert stored == p["count"]
    return {"rate": rate(p["count"], elapsed)}


RATE = [Metric("rate", "persisted", "msg/s", True)]


def scenarios(quick: bool, full: bool) -> list[Scenario]:
    count = 150 if quick else 2000
    warmup = 20 if quick else 200
    out = []
    for size, label in ((256, "256 B"), (16 * 1024, "16 KiB")):
        params = {"size": size, "count": count, "warmup": warmup}
        out.append(
            Scenario(
                "awaited publish",
                f"Fleet.emit {label}",
                LATENCY,
                emit_latency,
                raw_latency,
                params,
                "Fleet.emit",
                "js.publish",
            )
        )
    params = {"size": 256, "count": count, "warmup": warmup}
    out.append(
        Scenario(
            "awaited publish",
            "Publisher.publish 256 B (both with Nats-Msg-Id)",
            LATENCY,
            publisher_latency,
            raw_latency_msgid,
            params,
            "Publisher.publish",
            "js.publish+msg id",
        )
    )
    many = {"size": 256, "count": 3000 if quick else 50_000}
    out.append(
        Scenario(
            "pipelined publish",
            "one stream, 256 B",
            RATE,
            emit_many,
            raw_publish_async,
            many,
            "Fleet.emit_many",
            "publish_async+gather",
        )
    )
    out.append(
        Scenario(
            "pipelined publish",
            "one stream, 256 B, vs hand-written atomic batches",
            RATE,
            emit_many,
            raw_atomic_batch,
            many,
            "Fleet.emit_many",
            "raw atomic batch",
        )
    )
    return out
