"""Meetings: core NATS between 5 members; latency until every other member has a message."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import nats

from bench import LATENCY, Env, Scenario, latency_metrics
from bench.publish import _encode

ROLES = ["ceo", "cto", "backend", "devops", "cso"]


HEARD_WITHIN = 10.0
"""Core NATS keeps nothing: a message some member never hears would stall the run."""


PROBE = b'{"type":"probe"}'


async def until_heard(
    probe: Callable[[], Awaitable[None]], probed: set[int], listeners: int
) -> None:
    """Probe until every listener has heard one. A subscription flushed with raw nats-py's
    ``flush`` can miss the first message another connection publishes right after: nats-py
    writes the PING ahead of the SUB its flusher task has yet to write (fleetbus's
    ``Connection.flush`` writes them first: ``fleetbus.js._natspy.write_pending``). Core NATS
    keeps nothing, so the timed messages start once every member is known to hear."""
    async with asyncio.timeout(HEARD_WITHIN):
        while len(probed) < listeners:
            await probe()
            await asyncio.sleep(0.005)


async def heard(done: asyncio.Event, n: int, listeners: int) -> None:
    """Until every listener has message ``n``; a stall names what was missing."""
    try:
        async with asyncio.timeout(HEARD_WITHIN):
            await done.wait()
    except TimeoutError:
        raise TimeoutError(
            f"message {n} not heard by all {listeners} listening members in {HEARD_WITHIN:.0f}s"
        ) from None


async def fleetbus_meeting(env: Env, p: dict[str, Any]) -> dict[str, float]:
    fleet = await env.fleet()
    received = 0
    done = asyncio.Event()
    listeners = len(ROLES) - 1
    samples: list[float] = []
    async with (
        fleet.client(sender=ROLES[0]) as c0,
        fleet.client(sender=ROLES[1]) as c1,
        fleet.client(sender=ROLES[2]) as c2,
        fleet.client(sender=ROLES[3]) as c3,
        fleet.client(sender=ROLES[4]) as c4,
    ):
        clients = [c0, c1, c2, c3, c4]
        meetings = [c.meeting("bench") for c in clients]
        for m in meetings:
            await m.__aenter__()

        probed: set[int] = set()

        async def listen(index: int, m: Any) -> None:
            nonlocal received
            async for msg in m:
                if msg.type == "probe":
                    probed.add(index)
                elif msg.type == "message":
                    received += 1
                    if received == listeners:
                        done.set()

        readers = [asyncio.create_task(listen(i, m)) for i, m in enumerate(meetings[1:])]
        try:
            await until_heard(lambda: meetings[0].say("probe", type="probe"), probed, listeners)
            for i in range(p["warmup"] + p["count"]):
                received = 0
                done.clear()
                t0 = time.perf_counter()
                await meetings[0].say({"n": i, "text": "status?"})
                await heard(done, i, listeners)
                if i >= p["warmup"]:
                    samples.append(time.perf_counter() - t0)
        finally:
            for r in readers:
                r.cancel()
            for m in meetings:
                await m.__aexit__(None, None, None)
    return latency_metrics(samples)


async def raw_meeting(env: Env, p: dict[str, Any]) -> dict[str, float]:
    fleet = await env.fleet()
    subject = fleet.spec.subjects.meeting("bench")
    conns = [await nats.connect(env.url) for _ in ROLES]
    received = 0
    done = asyncio.Event()
    listeners = len(ROLES) - 1
    samples: list[float] = []

    probed: set[int] = set()

    def listener(index: int) -> Callable[[Any], Awaitable[None]]:
        async def on_msg(msg: Any) -> None:
            nonlocal received
            said = json.loads(msg.data)  # what the message says, as every raw side reads it
            if said.get("type") == "probe":
                probed.add(index)
                return
            received += 1
            if received == listeners:
                done.set()

        return on_msg

    try:
        for index, nc in enumerate(conns[1:]):
            await nc.subscribe(subject, cb=listener(index))
            await nc.flush()
        await until_heard(lambda: conns[0].publish(subject, PROBE), probed, listeners)
        for i in range(p["warmup"] + p["count"]):
            received = 0
            done.clear()
            t0 = time.perf_counter()
            await conns[0].publish(subject, _encode({"from": "ceo", "type": "message", "n": i}))
            await heard(done, i, listeners)
            if i >= p["warmup"]:
                samples.append(time.perf_counter() - t0)
    finally:
        for nc in conns:
            await nc.close()
    return latency_metrics(samples)


def scenarios(quick: bool, full: bool) -> list[Scenario]:
    return [
        Scenario(
            "meetings (core NATS)",
            "5 members, 1 speaker",
            LATENCY,
            fleetbus_meeting,
            raw_meeting,
            {"count": 100 if quick else 2000, "warmup": 10 if quick else 100},
            "Meeting.say",
            "core publish",
        )
    ]
