"""Where the task round trip's time goes: in fleetbus's messages, or in its code?

Three ways of doing the same tasks (cto assigns, backend agents answer at once), one after
another per round, against one server:

- ``fleetbus``: ``Fleet.assign`` + ``handle.result()``, and ``@agent.on_task`` handlers;
- ``raw``: the ``make bench`` task scenario's raw nats-py side (a publish, a ``fetch(1)``
  worker, a completed update on a core subscription made for each task);
- ``raw, fleetbus's wire``: raw nats-py sending exactly what fleetbus sends for a task: the
  assigner's ``submitted`` task-list entry, the task with fleetbus's headers, the outcome
  record written once (``Nats-Expected-Last-Subject-Sequence: 0``) with a random message
  id, the agent's task-list entry, the ack, and the outcome heard as the task stream
  republishes it once stored (one subscription for every task). What fleetbus adds beyond
  that (the checks, the records' rules, the heartbeats, the time limits) is not there.

Per task: p50, throughput, and the client process's CPU (every agent and the assigner run
in it, so CPU per task is what the round trip costs Python; each run's fleet provisioning
and its workers' start are in it too: 16–24 ms of CPU for the fleet and one agent, about
10 µs per task at 2,000, more for fleetbus's agents than for raw's connections).
``raw, fleetbus's wire`` beside ``raw`` says what fleetbus's messages cost at nats-py's
price; ``fleetbus`` beside it, what its code costs.

    python -m bench.taskwire [--workers 1 16] [--count 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from bench import Env, print_measures
from bench.tasks import Answer, assigning, fleetbus_tasks, raw_side, raw_tasks, tasks_spec
from fleetbus.js.publish import EXPECTED_LAST_SUBJECT_SEQUENCE
from fleetbus.testing import run_nats_server
from fleetbus.wire import headers as h

Run = Callable[[Env, dict[str, Any]], Awaitable[dict[str, float]]]


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


async def wire_tasks(env: Env, p: dict[str, Any]) -> dict[str, float]:
    """Raw nats-py, sending fleetbus's messages for each task (see the module)."""
    workers = p["workers"]
    fleet = await env.fleet(tasks_spec(workers))
    subjects = fleet.spec.subjects
    stream = fleet.spec.stream_for(subjects.tasks("backend", "cto"))

    def answering(name: str) -> Answer:
        async def answer(nc: Client, js: JetStreamContext, msg: Msg) -> None:
            body = json.loads(msg.data)
            task_id = (msg.headers or {})[h.TASK_ID]
            outcome = {
                "task_id": task_id,
                "state": "completed",
                "agent": "backend",
                "attempt": 1,
                "time": _now(),
                "assigner": "cto",
                "worker": name,
                "result": {"ok": True, "n": body["n"]},
            }
            await js.publish(
                subjects.task(task_id, "outcome", "cto", "backend"),
                json.dumps(outcome).encode(),
                headers={
                    h.TASK_ID: task_id,
                    EXPECTED_LAST_SUBJECT_SEQUENCE: "0",
                    h.MSG_ID: f"outcome-{os.urandom(16).hex()}",
                    h.SENDER: "backend",
                },
            )
            entry = {
                "task_id": task_id,
                "role": "backend",
                "assigner": "cto",
                "state": "completed",
                "created": _now(),
                "updated": _now(),
                "attempt": 1,
                "worker": name,
            }
            await nc.publish(
                subjects.task_index("backend", "cto", task_id), json.dumps(entry).encode()
            )
            await msg.ack()

        return answer

    answers = [answering(f"backend-{n}") for n in range(workers)]
    waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}

    async def heard(msg: Msg) -> None:
        parts = subjects.parse_stored_outcome(msg.subject)
        future = waiting.pop(parts.task_id, None) if parts is not None else None
        if future is not None:
            future.set_result(json.loads(msg.data))

    async with raw_side(env.url, stream, answers) as (nc, js):
        await nc.subscribe(subjects.stored_outcomes("cto"), cb=heard)
        loop = asyncio.get_running_loop()

        async def one(n: int) -> None:
            task_id = f"task-{os.urandom(8).hex()}"
            outcome = waiting[task_id] = loop.create_future()
            entry = {
                "task_id": task_id,
                "role": "backend",
                "assigner": "cto",
                "state": "submitted",
                "created": _now(),
                "updated": _now(),
                "attempt": 0,
            }
            await nc.publish(
                subjects.task_index("backend", "cto", task_id), json.dumps(entry).encode()
            )
            await js.publish(
                subjects.tasks("backend", "cto"),
                json.dumps({"n": n}).encode(),
                headers={h.TASK_ID: task_id, h.MSG_ID: task_id, h.SENDER: "cto"},
            )
            result = await asyncio.wait_for(outcome, 30)
            assert result["result"]["n"] == n

        return await assigning(p, one)


WAYS: dict[str, Run] = {
    "fleetbus": fleetbus_tasks,
    "raw": raw_tasks,
    "raw, fleetbus's wire": wire_tasks,
}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(workers: int, count: int, rounds: int) -> dict[str, dict[str, float]]:
    """Medians over ``rounds`` of each way: p50 (ms), rate (tasks/s), cpu (µs per task)."""
    runs: dict[str, list[dict[str, float]]] = {way: [] for way in WAYS}
    params = {"workers": workers, "count": count // workers * workers, "warmup": 20}
    with tempfile.TemporaryDirectory() as tmp, run_nats_server(tmp) as server:
        env = Env(server.url, quick=False, full=False)
        await fleetbus_tasks(env, {**params, "count": workers * 10})  # imports, first fleet
        for n in range(rounds):
            order = list(WAYS) if n % 2 == 0 else list(reversed(WAYS))
            for way in order:
                before = _cpu()
                figures = await WAYS[way](env, params)
                spent = _cpu() - before
                figures["cpu"] = spent / (params["count"] + params["warmup"]) * 1e6
                runs[way].append(figures)
    return {
        way: {key: statistics.median(r[key] for r in found) for key in found[0]}
        for way, found in runs.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.taskwire", description=__doc__)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    figures: dict[str, Any] = {}
    for workers in args.workers:
        found = asyncio.run(measure(workers, args.count, args.rounds))
        raw = found["raw"]
        for way, got in found.items():
            figures[f"{workers}/{workers} {way}"] = (
                f"p50 {got['p50']:.2f} ms, {got['rate']:,.0f} tasks/s,"
                f" {got['cpu']:,.0f} µs CPU per task;"
                f" / raw: throughput {got['rate'] / raw['rate']:.2f},"
                f" CPU {got['cpu'] / raw['cpu']:.2f}"
            )
    print_measures(figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
