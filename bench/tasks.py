"""Task round trip: assign -> handler -> completion seen by the assigner."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from bench import Env, Metric, Scenario, latency_metrics, rate
from fleetbus.fleet import FleetSpec, seed_fleet
from fleetbus.runtime import Task


def tasks_spec(workers: int) -> FleetSpec:
    """The seed, with backend taking ``workers`` tasks at a time (one per worker)."""
    seed = seed_fleet()
    backend = seed.roles["backend"]
    assert backend.tasks is not None
    tasks = backend.tasks.model_copy(update={"max_ack_pending": workers})
    roles = {**seed.roles, "backend": backend.model_copy(update={"tasks": tasks})}
    return seed.model_copy(update={"roles": roles})


def summarize(samples: list[float], count: int, elapsed: float) -> dict[str, float]:
    """p50 and p99 in milliseconds (``samples`` in seconds), and tasks per second."""
    out = latency_metrics(samples)
    return {"p50": out["p50"] / 1000, "p99": out["p99"] / 1000, "rate": rate(count, elapsed)}


async def assigning(p: dict[str, Any], one: Callable[[int], Awaitable[None]]) -> dict[str, float]:
    """``p["warmup"]`` tasks one after another, then ``p["workers"]`` assigners at once, each
    giving ``count // workers`` tasks one after another (``one(n)``: task number ``n`` sent
    and its result awaited): the timed ones' p50, p99 and throughput."""
    samples: list[float] = []

    async def assigner(offset: int, n: int, timed: bool) -> None:
        for i in range(n):
            t0 = time.perf_counter()
            await one(offset + i)
            if timed:
                samples.append(time.perf_counter() - t0)

    await assigner(0, p["warmup"], timed=False)
    workers = p["workers"]
    per = p["count"] // workers
    t0 = time.perf_counter()
    await asyncio.gather(*(assigner(1_000_000 * (w + 1), per, True) for w in range(workers)))
    return summarize(samples, per * workers, time.perf_counter() - t0)


async def fleetbus_tasks(env: Env, p: dict[str, Any]) -> dict[str, float]:
    workers = p["workers"]
    fleet = await env.fleet(tasks_spec(workers))
    agents = [fleet.agent("backend", dead_letter_copier=False) for _ in range(workers)]
    for agent in agents:

        @agent.on_task
        async def work(task: Task) -> dict[str, Any]:
            return {"ok": True, "n": task.body["n"]}

    await asyncio.gather(*(a.start() for a in agents))
    try:
        async with fleet.client(sender="cto") as client:

            async def one(n: int) -> None:
                handle = await client.assign("backend", {"n": n})
                result = await handle.result(timeout=30)
                assert result["n"] == n

            return await assigning(p, one)
    finally:
        await asyncio.gather(*(a.stop(grace=1) for a in agents))


Answer = Callable[[Client, JetStreamContext, Msg], Awaitable[None]]


@contextlib.asynccontextmanager
async def raw_side(
    url: str, stream: str, answers: list[Answer]
) -> AsyncIterator[tuple[Client, JetStreamContext]]:
    """Hand-written backend workers (``raw_worker``), one per answer, and the assigner's
    connection, its JetStream context yielded; the workers stopped and the connection
    closed on exit."""
    stop = asyncio.Event()
    runners = [asyncio.create_task(raw_worker(url, stream, stop, a)) for a in answers]
    nc = await nats.connect(url)
    try:
        yield nc, nc.jetstream()
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.gather(*runners)
        await nc.close()


async def raw_worker(url: str, stream: str, stop: asyncio.Event, answer: Answer) -> None:
    """A hand-written backend worker: ``fetch(1)`` from the tasks consumer until ``stop``,
    ``answer`` each task (its update published, then acked) on a connection of its own."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    try:
        psub = await js.pull_subscribe_bind("BACKEND_TASKS", stream)
        while not stop.is_set():
            try:
                msgs = await psub.fetch(1, timeout=0.5)
            except nats.errors.TimeoutError:
                continue
            for msg in msgs:
                await answer(nc, js, msg)
    finally:
        await nc.close()


async def raw_tasks(env: Env, p: dict[str, Any]) -> dict[str, float]:
    """Hand-written: js.publish the task (msg id = task id), a pull worker fetch(1)s it,
    js.publishes a completed update and acks; the assigner waits on a core subscription
    to the task's updates subject (made before the task is sent)."""
    workers = p["workers"]
    fleet = await env.fleet(tasks_spec(workers))
    subjects = fleet.spec.subjects
    stream = fleet.spec.stream_for(subjects.tasks("backend"))

    async def answer(nc: Client, js: JetStreamContext, msg: Msg) -> None:
        body = json.loads(msg.data)
        task_id = msg.headers["Fleet-Task-Id"] if msg.headers else body["task_id"]
        update = {"task_id": task_id, "state": "completed", "result": {"ok": True, "n": body["n"]}}
        await js.publish(
            subjects.task_updates(task_id),
            json.dumps(update).encode(),
            headers={"Nats-Msg-Id": f"{task_id}-done"},
        )
        await msg.ack()

    async with raw_side(env.url, stream, [answer] * workers) as (nc, js):

        async def one(n: int) -> None:
            task_id = f"task-{n}"
            sub = await nc.subscribe(subjects.task_updates(task_id), max_msgs=1)
            await js.publish(
                subjects.tasks("backend"),
                json.dumps({"n": n}).encode(),
                headers={"Nats-Msg-Id": task_id, "Fleet-Task-Id": task_id},
            )
            reply = await sub.next_msg(timeout=30)
            assert json.loads(reply.data)["result"]["n"] == n

        return await assigning(p, one)


def scenarios(quick: bool, full: bool) -> list[Scenario]:
    metrics = [
        Metric("p50", "p50", "ms", False),
        Metric("p99", "p99", "ms", False),
        Metric("rate", "throughput", "tasks/s", True),
    ]
    worker_counts = [1, 4] if quick else [1, 4, 16]
    out = []
    for workers in worker_counts:
        count = (40 if quick else 400) // workers * workers
        out.append(
            Scenario(
                "task round trip",
                f"{workers} worker(s), {workers} assigner(s)",
                metrics,
                fleetbus_tasks,
                raw_tasks,
                {"workers": workers, "count": count, "warmup": 5 if quick else 20},
                "assign+result()",
                "publish+fetch+core sub",
            )
        )
    return out
