"""A message is handled when it arrives, not when the long poll ends.

nats-py's ``fetch(n > 1)`` can hold a message it has received until its timeout; with
several workers on one consumer every task then waited a whole poll (2 s here)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from fleetbus.fleet import seed_fleet
from fleetbus.runtime import Task
from fleetbus.testing.fleets import FleetUnderTest


async def test_tasks_with_several_workers_do_not_wait_for_the_poll(
    make_fleet: Callable[..., FleetUnderTest],
) -> None:
    seed = seed_fleet()
    backend = seed.roles["backend"]
    assert backend.tasks is not None
    tasks = backend.tasks.model_copy(update={"max_ack_pending": 4})
    roles = {**seed.roles, "backend": backend.model_copy(update={"tasks": tasks})}
    fleet = make_fleet(seed.model_copy(update={"roles": roles}))
    agents = [fleet.agent("backend", dead_letter_copier=False) for _ in range(2)]
    for agent in agents:

        @agent.on_task
        async def work(task: Task) -> Any:
            return task.body["n"]

    await asyncio.gather(*(a.start() for a in agents))
    slowest = 0.0
    try:
        async with fleet.client(sender="cto") as client:

            async def assigner(w: int) -> None:
                nonlocal slowest
                for i in range(4):
                    t0 = time.perf_counter()
                    handle = await client.assign("backend", {"n": w * 10 + i})
                    assert await handle.result(timeout=10) == w * 10 + i
                    slowest = max(slowest, time.perf_counter() - t0)

            await asyncio.gather(*(assigner(w) for w in range(4)))
    finally:
        await asyncio.gather(*(a.stop(grace=1) for a in agents))
    poll = fleet.runtime_settings().poll
    assert slowest < poll / 2, f"a task waited {slowest:.2f}s (the poll is {poll}s)"
