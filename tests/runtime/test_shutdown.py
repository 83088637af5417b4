"""Graceful shutdown: a running handler may finish; past the grace its task is given back
at once (a nak), not after the ack wait."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from fleetbus.fleet import FleetSpec
from fleetbus.runtime import Agent, Message, Task
from fleetbus.testing.fleets import FleetUnderTest

from .support import carry_on, eventually, raw_client, seed_spec, updates


async def test_stop_lets_a_running_handler_finish(fleet: FleetUnderTest) -> None:
    started = asyncio.Event()
    release = asyncio.Event()
    agent = fleet.agent("backend")

    @agent.on_task
    async def implement(task: Task) -> str:
        started.set()
        await release.wait()
        return "finished during shutdown"

    async with fleet.client() as client, raw_client(fleet) as nc:
        await agent.start()
        handle = await client.assign("backend", {"title": "almost done"})
        async with asyncio.timeout(15):
            await started.wait()
        stopping = asyncio.create_task(agent.stop(grace=20))
        await asyncio.sleep(0.2)
        assert not stopping.done()  # waiting for the handler
        release.set()
        async with asyncio.timeout(20):
            await stopping
        history = await updates(nc, fleet, handle.id)
        info_result = await handle.result(timeout=5)

    assert info_result == "finished during shutdown"
    # (an "accepted" first when the handler ran past accepted_after; nothing else)
    assert [(u.state, u.attempt) for u in history if u.state != "accepted"] == [("completed", 1)]


async def test_past_the_grace_a_task_is_handed_to_another_worker_at_once(
    make_fleet: Callable[[FleetSpec], FleetUnderTest],
) -> None:
    """With an ack wait of 30 s, completing within 10 s proves the task was naked."""
    fleet = make_fleet(seed_spec(backend_tasks={"ack_wait": "30s"}))
    started = asyncio.Event()
    runs: list[tuple[str, int]] = []
    first = fleet.agent("backend")

    @first.on_task
    async def stuck(task: Task) -> str:
        runs.append((first.worker, task.attempt))
        started.set()
        await asyncio.Event().wait()  # never finishes
        return "unreachable"

    second = fleet.agent("backend")

    @second.on_task
    async def quick(task: Task) -> str:
        runs.append((second.worker, task.attempt))
        return "done by the second"

    async with fleet.client() as client, raw_client(fleet) as nc:
        await first.start()
        handle = await client.assign("backend", {"title": "handed over"})
        async with asyncio.timeout(15):
            await started.wait()
        await first.stop(grace=0.1)
        async with second:
            assert await handle.result(timeout=10) == "done by the second"
        history = await updates(nc, fleet, handle.id)

    assert runs == [(first.worker, 1), (second.worker, 2)]
    # (the first attempt's "accepted" is there if it ran past accepted_after before the stop)
    assert [(u.state, u.attempt, u.worker) for u in history if u.state != "accepted"] == [
        ("completed", 2, second.worker),
    ]


async def stop_while_held(agent: Agent, started: list[Any], send: Awaitable[Any]) -> None:
    """Start ``agent``, send it what its handler (``carry_on``) will hold, and stop it once
    the handler runs, with half a second of grace."""
    await agent.start()
    await send
    await eventually(lambda: bool(started), 15, "the handler started")
    async with asyncio.timeout(30):
        await agent.stop(grace=0.5)


async def test_a_handler_that_will_not_be_cancelled_does_not_hold_the_stop(
    make_fleet: Callable[[FleetSpec], FleetUnderTest],
) -> None:
    """An `on_message` handler that catches CancelledError and goes on: past the grace the
    stop cancelled it, then waited for it for good. Now it waits a while, says so, and
    stops; the message goes to the next agent once the ack wait has passed."""
    fleet = make_fleet(seed_spec(backend_inbox={"ack_wait": "2s"}))
    stubborn = fleet.agent("backend")
    started, done = carry_on(stubborn.on_message)
    handled: list[str] = []

    try:
        async with fleet.client(sender="cto") as client:
            await stop_while_held(stubborn, started, client.message("backend", {"text": "hold"}))
            successor = fleet.agent("backend")

            @successor.on_message
            async def take(msg: Message) -> None:
                handled.append(msg.body["text"])

            async with successor:
                await eventually(lambda: handled == ["hold"], 15, "the message redelivered")
    finally:
        done.set()


async def test_a_handler_left_behind_by_a_stop_does_not_make_the_stop_a_failure(
    make_fleet: Callable[[FleetSpec], FleetUnderTest],
) -> None:
    """Handlers left behind count towards ``left_behind_limit`` while the agent serves; one
    that a stop leaves behind does not turn the stop into a failure (exit 1)."""
    fleet = make_fleet(seed_spec(backend_tasks={"ack_wait": "1s"}))
    stubborn = fleet.agent("backend", left_behind_limit=1)
    started, done = carry_on(stubborn.on_task)

    try:
        async with fleet.client(sender="cto") as client:
            await stop_while_held(stubborn, started, client.assign("backend", {"title": "hold"}))
        assert stubborn.failure is None
    finally:
        done.set()


STUBBORN = """
import asyncio, contextlib, sys
from fleetbus.fleet import FleetSpec
from fleetbus.testing.fleets import FleetUnderTest

spec = FleetSpec.model_validate_json(open(sys.argv[1]).read())
agent = FleetUnderTest(spec, sys.argv[2]).agent("backend", grace=0.5)


@agent.on_message
async def stuck(msg):
    print("handler started", flush=True)
    while True:
        with contextlib.suppress(asyncio.CancelledError):  # and carries on
            await asyncio.sleep(0.2)


agent.run()
print("agent.run() returned", flush=True)
"""


async def test_agent_run_exits_though_a_handler_will_not_be_cancelled(
    make_fleet: Callable[[FleetSpec], FleetUnderTest], tmp_path: Path
) -> None:
    """The stop returned, then asyncio.run cancelled the handler's worker and waited for it
    for good: the process of `agent.run()` stayed after SIGTERM until a SIGKILL. It waits a
    few seconds for such tasks now, says so, and exits."""
    fleet = make_fleet(seed_spec(backend_inbox={"ack_wait": "2s"}))
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(fleet.spec.model_dump_json())
    script = tmp_path / "stubborn.py"
    script.write_text(STUBBORN)
    async with fleet.client(sender="cto") as client:
        await client.message("backend", {"text": "hold"})
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(script), str(spec_file), fleet.url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            while b"handler started" not in await proc.stdout.readline():
                pass
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    assert b"agent.run() returned" in out
    assert b"went on after they were cancelled" in err
