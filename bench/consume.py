"""Pull consume + ack from one durable consumer, and event fan-out to many roles."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from bench import Env, Metric, Scenario, rate, wait_until
from bench.publish import _encode, body_of
from fleetbus.fleet import EventsSpec, FleetSpec, RoleSpec, seed_fleet
from fleetbus.runtime import Event


async def preload(url: str, subject: str, count: int, size: int = 256) -> None:
    """Store ``count`` events fast (hand-written atomic batches): the input, not the test.

    Spread over ``subject.0`` .. ``subject.15``: EVENTS keeps 5000 messages per subject."""
    nc = await nats.connect(url)
    data = _encode(body_of(size))
    try:
        for start in range(0, count, 1000):
            n = min(1000, count - start)
            bid = uuid.uuid4().hex
            target = f"{subject}.{start // 1000 % 16}"
            for i in range(1, n):
                await nc.publish(
                    target, data, headers={"Nats-Batch-Id": bid, "Nats-Batch-Sequence": str(i)}
                )
            reply = await nc.request(
                target,
                data,
                timeout=10,
                headers={
                    "Nats-Batch-Id": bid,
                    "Nats-Batch-Sequence": str(n),
                    "Nats-Batch-Commit": "1",
                },
            )
            assert b"error" not in reply.data, reply.data
    finally:
        await nc.close()


def fanout_spec(roles: int) -> FleetSpec:
    seed = seed_fleet()
    extra = {
        f"r{i}": RoleSpec(
            tasks=None, inbox=None, meetings=None, events=EventsSpec(filters=["bench.>"])
        )
        for i in range(roles)
    }
    return seed.model_copy(update={"roles": {**seed.roles, **extra}})


# -- one consumer --------------------------------------------------------------------------------


async def agent_consume(env: Env, p: dict[str, Any]) -> dict[str, float]:
    """The seed's CSO (events: ">", max_ack_pending 100) handling every event: one at a time
    (``on_event``), or in lists of up to ``p["batch"]`` (``on_events``)."""
    fleet = await env.fleet()
    await preload(env.url, fleet.spec.subjects.event("bench", "consume"), p["count"])
    agent = fleet.agent("cso", dead_letter_copier=False)
    seen = 0
    if p.get("batch"):

        @agent.on_events(">", batch=p["batch"])
        async def handle_list(events: list[Event]) -> None:
            nonlocal seen
            seen += len(events)

    else:

        @agent.on_event(">")
        async def handle(event: Event) -> None:
            nonlocal seen
            seen += 1

    elapsed = await _timed(
        agent.start, lambda: agent.stop(grace=1), lambda: seen, p["count"], "agent consumed", 120
    )
    return {"rate": rate(p["count"], elapsed)}


async def agent_consume_metrics(env: Env, p: dict[str, Any]) -> dict[str, float]:
    """``agent_consume`` with the process's Prometheus metrics on (served, counted)."""
    from fleetbus.telemetry import METRICS

    if not METRICS._served:
        METRICS.serve(0)
    METRICS.enabled = True
    try:
        return await agent_consume(env, p)
    finally:
        METRICS.enabled = False


async def agent_consume_plain(env: Env, p: dict[str, Any]) -> dict[str, float]:
    """``agent_consume`` with metrics off (the default until a port is given)."""
    from fleetbus.telemetry import METRICS

    METRICS.enabled = False
    return await agent_consume(env, p)


async def raw_consume(env: Env, p: dict[str, Any]) -> dict[str, float]:
    """A durable pull consumer with the same config; fetch(batch) + ack, decode each body."""
    fleet = await env.fleet()
    subject = fleet.spec.subjects.event("bench", "consume")
    stream = fleet.spec.stream_for(subject)
    await preload(env.url, subject, p["count"])
    subject += ".>"
    nc = await nats.connect(env.url)
    js = nc.jetstream()
    seen = 0
    batch = 100
    try:
        t0 = time.perf_counter()
        psub = await js.pull_subscribe(
            subject,
            durable="RAW_EVENTS",
            stream=stream,
            config=ConsumerConfig(
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                max_ack_pending=batch,
                ack_wait=30,
                max_deliver=3,
            ),
        )
        while seen < p["count"]:
            with contextlib.suppress(nats.errors.TimeoutError):
                for msg in await psub.fetch(batch, timeout=5):
                    json.loads(msg.data)
                    await msg.ack()
                    seen += 1
        elapsed = time.perf_counter() - t0
    finally:
        await nc.close()
    return {"rate": rate(p["count"], elapsed)}


# -- FastStream ----------------------------------------------------------------------------------


def _faststream_broker(url: str) -> Any:
    """A FastStream NATS broker with its logging off (what a benchmark of it should time)."""
    from faststream.nats import NatsBroker

    return NatsBroker(url, logger=None)


async def faststream_consume(env: Env, p: dict[str, Any]) -> dict[str, float]:
    """FastStream's NATS pull subscriber (batch 100, one message per handler call) on a
    durable consumer with the raw loop's settings; the body decoded to a dict by FastStream."""
    from faststream.nats import JStream, PullSub

    fleet = await env.fleet()
    subject = fleet.spec.subjects.event("bench", "consume")
    stream = fleet.spec.stream_for(subject)
    await preload(env.url, subject, p["count"])
    broker = _faststream_broker(env.url)
    seen = 0

    @broker.subscriber(  # type: ignore[untyped-decorator]
        f"{subject}.>",
        stream=JStream(stream, declare=False),
        durable="FS_EVENTS",
        pull_sub=PullSub(batch_size=100, timeout=5.0),
        config=ConsumerConfig(
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            max_ack_pending=100,
            ack_wait=30,
            max_deliver=3,
        ),
    )
    async def handle(body: dict[str, Any]) -> None:
        nonlocal seen
        seen += 1

    elapsed = await _timed(
        broker.start, broker.stop, lambda: seen, p["count"], "FastStream consumed", 120
    )
    return {"rate": rate(p["count"], elapsed)}


async def faststream_fanout(env: Env, p: dict[str, Any]) -> dict[str, float]:
    """One FastStream broker per role, its pull subscriber (batch 100) on the role's
    provisioned consumer."""
    from faststream.nats import JStream, PullSub

    roles, events = p["roles"], p["events"]
    fleet = await env.fleet(fanout_spec(roles))
    subject = fleet.spec.subjects.event("bench", "fanout")
    stream = fleet.spec.stream_for(subject)
    await preload(env.url, subject, events)
    seen = 0
    brokers = []
    for i in range(roles):
        broker = _faststream_broker(env.url)
        consumer = fleet.spec.consumer(f"r{i}", "events")
        assert consumer is not None

        @broker.subscriber(  # type: ignore[untyped-decorator]
            consumer.filters[0],
            stream=JStream(stream, declare=False),
            durable=consumer.name,
            pull_sub=PullSub(batch_size=100, timeout=5.0),
        )
        async def handle(body: dict[str, Any]) -> None:
            nonlocal seen
            seen += 1

        brokers.append(broker)
    elapsed = await _timed(
        lambda: asyncio.gather(*(b.start() for b in brokers)),
        lambda: asyncio.gather(*(b.stop() for b in brokers)),
        lambda: seen,
        roles * events,
        "FastStream fan-out delivered",
    )
    return {"rate": rate(roles * events, elapsed), "time": elapsed * 1000}


def _faststream() -> bool:
    try:
        import faststream.nats  # noqa: F401
    except ImportError:
        return False
    return True


# -- fan-out ---------------------------------------------------------------------------------------


async def agents_fanout(env: Env, p: dict[str, Any]) -> dict[str, float]:
    roles, events = p["roles"], p["events"]
    fleet = await env.fleet(fanout_spec(roles))
    await preload(env.url, fleet.spec.subjects.event("bench", "fanout"), events)
    seen = 0
    agents = []
    for i in range(roles):
        agent = fleet.agent(f"r{i}", dead_letter_copier=False)

        @agent.on_event("bench.>")
        async def handle(event: Event) -> None:
            nonlocal seen
            seen += 1

        agents.append(agent)
    elapsed = await _timed(
        lambda: asyncio.gather(*(a.start() for a in agents)),
        lambda: asyncio.gather(*(a.stop(grace=1) for a in agents)),
        lambda: seen,
        roles * events,
        "fan-out delivered",
    )
    return {"rate": rate(roles * events, elapsed), "time": elapsed * 1000}


async def _timed(
    start: Callable[[], Awaitable[Any]],
    stop: Callable[[], Awaitable[Any]],
    seen: Callable[[], int],
    total: int,
    what: str,
    timeout: float = 600,
) -> float:
    """Seconds from ``start()`` until ``seen()`` reaches ``total``; ``stop()`` after."""
    t0 = time.perf_counter()
    await start()
    try:
        await wait_until(lambda: seen() >= total, timeout, f"{what} {seen()}/{total}")
        return time.perf_counter() - t0
    finally:
        await stop()


async def raw_fanout(env: Env, p: dict[str, Any]) -> dict[str, float]:
    """One connection and fetch(100)+ack loop per role, on the roles' provisioned consumers."""
    roles, events = p["roles"], p["events"]
    fleet = await env.fleet(fanout_spec(roles))
    subject = fleet.spec.subjects.event("bench", "fanout")
    stream = fleet.spec.stream_for(subject)
    await preload(env.url, subject, events)
    seen = 0

    async def role(i: int) -> None:
        nonlocal seen
        nc = await nats.connect(env.url)
        try:
            psub = await nc.jetstream().pull_subscribe_bind(f"R{i}_EVENTS", stream)
            got = 0
            while got < events:
                with contextlib.suppress(nats.errors.TimeoutError):
                    for msg in await psub.fetch(100, timeout=5):
                        json.loads(msg.data)
                        await msg.ack()
                        got += 1
                        seen += 1
        finally:
            await nc.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(role(i) for i in range(roles)))
    elapsed = time.perf_counter() - t0
    return {"rate": rate(roles * events, elapsed), "time": elapsed * 1000}


def scenarios(quick: bool, full: bool) -> list[Scenario]:
    out = [
        Scenario(
            "consume + ack",
            "one durable consumer, 256 B",
            [Metric("rate", "handled", "msg/s", True)],
            agent_consume,
            raw_consume,
            {"count": 2000 if quick else 20_000},
            "Agent.on_event",
            "fetch(100)+ack",
            framework=faststream_consume if _faststream() else None,
            framework_label="FastStream PullSub(batch_size=100)",
        )
    ]
    out.append(
        Scenario(
            "consume + ack",
            "one durable consumer, 256 B, lists of up to 100",
            [Metric("rate", "handled", "msg/s", True)],
            agent_consume,
            raw_consume,
            {"count": 2000 if quick else 20_000, "batch": 100},
            "Agent.on_events(batch=100)",
            "fetch(100)+ack",
            framework=faststream_consume if _faststream() else None,
            framework_label="FastStream PullSub(batch_size=100)",
        )
    )
    out.append(
        Scenario(
            "consume + ack",
            "metrics on vs off, 256 B",
            [Metric("rate", "handled", "msg/s", True)],
            agent_consume_metrics,
            agent_consume_plain,
            {"count": 2000 if quick else 20_000},
            "Agent, metrics on",
            "Agent, metrics off",
        )
    )
    fan = [
        Metric("rate", "deliveries", "msg/s", True),
        Metric("time", "all delivered", "ms", False),
    ]
    roles, events = (3, 100) if quick else (20, 500)
    out.append(
        Scenario(
            "event fan-out",
            f"{roles} roles x {events} events",
            fan,
            agents_fanout,
            raw_fanout,
            {"roles": roles, "events": events},
            "Agent per role",
            "fetch loop per role",
            framework=faststream_fanout if _faststream() else None,
            framework_label="FastStream broker per role",
        )
    )
    if full:
        out.append(
            Scenario(
                "event fan-out",
                "100 roles x 10,000 events",
                fan,
                agents_fanout,
                raw_fanout,
                {"roles": 100, "events": 10_000},
                "Agent per role",
                "fetch loop per role",
                framework=faststream_fanout if _faststream() else None,
                framework_label="FastStream broker per role",
            )
        )
    return out
