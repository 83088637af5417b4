"""The task list at size: 10,000 (or ``--tasks``) tasks stored, then the first page read.

Entries are written the way fleetbus writes them (one per task in ``TASK_INDEX``, several
writes per task as it moves), spread over five roles and every state; then ``fleet.tasks()``
is timed: the whole list's first page, one role's, one state's, and the last hour's.

    python -m bench.tasklist [--tasks 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from typing import Any

from fleetbus import Fleet, TaskSummary, TaskUpdate
from fleetbus.fleet import seed_fleet
from fleetbus.js.connection import ConnectSettings
from fleetbus.testing import run_nats_server
from fleetbus.testing.fleets import isolate, provision_fleet

STATES = ["submitted", "accepted", "progress", "input-required", "completed", "dead_lettered"]


async def measure(tasks: int, rounds: int = 5) -> dict[str, Any]:
    spec = isolate(seed_fleet())
    roles = list(spec.roles)
    with (
        tempfile.TemporaryDirectory(prefix="fleetbus-tasklist-") as tmp,
        run_nats_server(tmp) as server,
    ):
        await provision_fleet(server.url, spec)
        connection = ConnectSettings.from_url(server.url, name="bench-tasklist")
        async with Fleet.connect(spec=spec, connection=connection) as fleet:
            now = TaskUpdate.now()
            started = time.monotonic()
            for i in range(tasks):
                entry = TaskSummary(
                    task_id=f"task-{i:08d}",
                    role=roles[i % len(roles)],
                    assigner="cto",
                    state="submitted",
                    created=now,
                    updated=now,
                )
                await fleet.index.write(entry)
                for state in STATES[1 : 1 + i % len(STATES)]:
                    await fleet.index.write(entry.moved(state, attempt=1, worker="w-1"))
            await fleet.nc.flush()
            written = time.monotonic() - started
            figures: dict[str, Any] = {"tasks": tasks, "write_s": round(written, 2)}
            for name, kwargs in (
                ("first_page_ms", {}),
                ("one_role_ms", {"role": "backend"}),
                ("one_state_ms", {"state": "working"}),
                ("last_hour_ms", {"since": 3600}),
            ):
                samples = []
                for _ in range(rounds):
                    t0 = time.perf_counter()
                    page = await fleet.tasks(limit=100, **kwargs)
                    samples.append((time.perf_counter() - t0) * 1000)
                    assert page
                figures[name] = round(statistics.median(samples), 1)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tasklist", description=__doc__)
    parser.add_argument("--tasks", type=int, default=10_000)
    args = parser.parse_args(argv)
    for key, value in asyncio.run(measure(args.tasks)).items():
        print(f"{key.replace('_', ' ')}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
