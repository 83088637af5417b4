"""Soak: months of traffic in minutes, and crash recovery at lease speed.

Three measurements on the seed fleet (``make bench``, not ``--quick``):

- **tasks**: 100,000 tasks from one sender (cto) to one role (backend, two agents in a worker
  process), the sender keeping at most ``WINDOW`` unfinished: every one assigned (0 refused,
  far past the 1,000-per-subject cap), every result received and stored (0 lost), and the
  sender's memory and the server's disk sampled as it goes (bounded: processed tasks leave
  ``AGENT_COMMS``).
- **events**: 1,000,000 events over 100 event types through ``EVENTS``, with a devops agent
  (``deployment.>``) and a cso agent (``>``) handling every one, the emitter pausing while
  either is more than ``EVENT_LAG`` behind (the fleet keeping up): 0 refused, 0 lost.
- **recovery**: a backend agent SIGKILLed in the middle of a task, five times: how long until
  a peer runs the task (the lease: ``ack_wait`` 4 s).

    python -m bench.soak [--tasks 100000] [--events 1000000] [--kills 5]

The worker side (``--worker ROLE...``) serves the given roles and prints ``ready``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml

from fleetbus import Agent, Event, Fleet, FleetbusError, RuntimeSettings, Task
from fleetbus.fleet import FleetSpec, seed_fleet
from fleetbus.js.api import JsApi
from fleetbus.js.connection import ConnectSettings
from fleetbus.testing import run_nats_server
from fleetbus.testing.fleets import isolate, provision_fleet

_ROOT = Path(__file__).resolve().parent.parent

WINDOW = 500
"""Unfinished tasks the sender allows itself."""
EVENT_BATCH = 1000
EVENT_LAG = 50_000
"""How far behind a consumer may be before the emitter waits (the per-type cap is 5,000 and
the events spread over 100 types)."""
EVENT_TYPES = 100


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _disk_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def _worker_main(url: str, spec_file: Path, roles: list[str], hang: bool) -> None:
    spec = FleetSpec.model_validate(yaml.safe_load(spec_file.read_text()))

    async def main() -> None:
        agents: list[Agent] = []
        for role in roles:
            agent = Agent(
                role,
                spec=spec,
                connection=ConnectSettings.from_url(url, name=f"soak-{role}"),
                settings=RuntimeSettings(poll=2.0, dead_letter_copier=False),
            )
            if role == "backend":

                async def work(task: Task) -> int:
                    if hang:
                        print(f"started {task.id} {task.attempt}", flush=True)
                        await asyncio.Event().wait()
                    return int(task.body["n"])

                agent.on_task(work)
            else:

                async def seen(event: Event) -> None:
                    pass

                agent.on_event(">" if role == "cso" else "deployment.>")(seen)
            await agent.start()
            agents.append(agent)
        print("ready", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


async def _spawn(url: str, spec_file: Path, *roles: str, hang: bool = False) -> Any:
    args = [sys.executable, "-m", "bench.soak", "--url", url, "--spec", str(spec_file)]
    args += ["--hang"] if hang else []
    proc = await asyncio.create_subprocess_exec(
        *args,
        "--worker",
        *roles,
        stdout=subprocess.PIPE,
        stderr=None if os.environ.get("SOAK_DEBUG") else subprocess.DEVNULL,
        cwd=_ROOT,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 60)
    if line.strip() != b"ready":
        raise RuntimeError(f"soak worker did not start: {line!r}")
    return proc


async def _left_in(api: JsApi, stream: str, within: float = 5.0) -> int:
    """Messages still in ``stream`` once the last acks have reached the server: an agent
    acks after the outcome is stored and does not wait for the ack, so the last task's
    ack can arrive a moment after its ``result()``."""
    deadline = time.monotonic() + within
    while True:
        info = await api.stream_info(stream)
        left = int((info or {}).get("state", {}).get("messages", -1))
        if left == 0 or time.monotonic() >= deadline:
            return left
        await asyncio.sleep(0.1)


async def soak_tasks(
    url: str, spec: FleetSpec, spec_file: Path, data: Path, n: int
) -> dict[str, Any]:
    workers = [await _spawn(url, spec_file, "backend") for _ in range(2)]
    refused = lost = 0
    rss: list[float] = []
    disk: list[float] = []
    started = time.monotonic()
    try:
        async with Fleet.connect(
            spec=spec, connection=ConnectSettings.from_url(url), sender="cto"
        ) as cto:
            sem = asyncio.Semaphore(WINDOW)
            done = 0

            async def one(i: int) -> None:
                nonlocal refused, lost, done
                try:
                    handle = await cto.assign("backend", {"n": i})
                except FleetbusError:
                    refused += 1
                    sem.release()
                    return
                try:
                    if await handle.result(timeout=120) != i:
                        lost += 1
                except FleetbusError:
                    lost += 1
                done += 1
                sem.release()

            running: set[asyncio.Task[None]] = set()
            for i in range(n):
                await sem.acquire()
                task = asyncio.create_task(one(i))
                running.add(task)
                task.add_done_callback(running.discard)
                if i % (n // 10 or 1) == 0:
                    rss.append(_rss_mib())
                    disk.append(_disk_mib(data))
            await asyncio.gather(*running)
            elapsed = time.monotonic() - started
            comms = next(name for name in spec.streams if name.startswith("AGENT_COMMS"))
            left = await _left_in(JsApi(cto.conn), comms)
    finally:
        for proc in workers:
            proc.kill()
            await proc.wait()
    return {
        "tasks": n,
        "refused": refused,
        "lost": lost,
        "seconds": round(elapsed, 1),
        "tasks_per_s": round(n / elapsed),
        "agent_comms_left": left,
        "sender_rss_mib": f"{min(rss):.0f}–{max(rss):.0f}",
        "server_disk_mib": f"{min(disk):.0f}–{max(disk):.0f}",
    }


async def soak_events(
    url: str, spec: FleetSpec, spec_file: Path, data: Path, n: int
) -> dict[str, Any]:
    workers = [await _spawn(url, spec_file, "devops"), await _spawn(url, spec_file, "cso")]
    refused = 0
    rss: list[float] = []
    disk: list[float] = []
    started = time.monotonic()
    consumers = [spec.consumer("devops", "events"), spec.consumer("cso", "events")]
    try:
        async with Fleet.connect(spec=spec, connection=ConnectSettings.from_url(url)) as fleet:
            api = JsApi(fleet.conn)

            async def behind() -> int:
                worst = 0
                for c in consumers:
                    assert c is not None
                    info = await api.consumer_info(c.stream, c.name)
                    assert info is not None
                    worst = max(worst, int(info["num_pending"]) + int(info["num_ack_pending"]))
                return worst

            sent = 0
            while sent < n:
                items = [
                    (
                        spec.subjects.event("deployment", f"t{(sent + i) % EVENT_TYPES:02d}"),
                        {"n": sent + i},
                    )
                    for i in range(min(EVENT_BATCH, n - sent))
                ]
                try:
                    await fleet.publish_many(items)
                except FleetbusError:
                    refused += len(items)
                sent += len(items)
                if sent % (10 * EVENT_BATCH) == 0:
                    await _until(lambda: behind(), EVENT_LAG)
                if sent % (n // 10 or 1) == 0:
                    rss.append(_rss_mib())
                    disk.append(_disk_mib(data))
            await _until(lambda: behind(), 0)
            elapsed = time.monotonic() - started
            delivered = []
            for c in consumers:
                assert c is not None
                info = await api.consumer_info(c.stream, c.name)
                assert info is not None
                delivered.append(int(info["ack_floor"]["stream_seq"]))
    finally:
        for proc in workers:
            proc.kill()
            await proc.wait()
    return {
        "events": n,
        "refused": refused,
        "lost": sum(1 for d in delivered if d < n),
        "seconds": round(elapsed, 1),
        "events_per_s": round(n / elapsed),
        "acked_by_devops_cso": " / ".join(str(d) for d in delivered),
        "emitter_rss_mib": f"{min(rss):.0f}–{max(rss):.0f}",
        "server_disk_mib": f"{min(disk):.0f}–{max(disk):.0f}",
    }


async def recovery(url: str, spec: FleetSpec, spec_file: Path, kills: int) -> dict[str, Any]:
    """SIGKILL a backend agent holding a task; time until a peer's handler starts it."""
    waits: list[float] = []
    async with Fleet.connect(
        spec=spec, connection=ConnectSettings.from_url(url), sender="cto"
    ) as cto:
        for n in range(kills):
            victim = await _spawn(url, spec_file, "backend", hang=True)
            handle = await cto.assign("backend", {"n": n})
            assert victim.stdout is not None
            await asyncio.wait_for(victim.stdout.readline(), 30)  # "started <id> 1"
            peer_started = asyncio.Event()
            peer = Agent(
                "backend",
                spec=spec,
                connection=ConnectSettings.from_url(url, name="soak-peer"),
                settings=RuntimeSettings(poll=2.0, dead_letter_copier=False),
            )

            async def finish(task: Task, started: asyncio.Event = peer_started) -> int:
                started.set()
                return int(task.body["n"])

            peer.on_task(finish)

            await peer.start()  # waiting beside the victim, as a peer would
            await asyncio.sleep(1.0 + n * 0.3)  # mid-task, somewhere between two heartbeats
            victim.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            await victim.wait()
            await asyncio.wait_for(peer_started.wait(), 60)
            waits.append(time.monotonic() - killed)
            await handle.result(timeout=30)
            await peer.stop()
    tasks = spec.roles["backend"].tasks
    return {
        "kills": kills,
        "ack_wait_s": tasks.ack_wait if tasks else 0,
        "resumed_on_a_peer_median_s": round(statistics.median(waits), 2),
        "resumed_on_a_peer_max_s": round(max(waits), 2),
    }


async def _until(backlog: Any, limit: int) -> None:
    """Poll the consumers' backlog (another process works it off) until it is at most
    ``limit``."""
    while await backlog() > limit:  # noqa: ASYNC110 - the state is in the server
        await asyncio.sleep(0.2)


async def measure(tasks: int, events: int, kills: int) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="fleetbus-soak-") as tmp:
        data = Path(tmp) / "server"
        data.mkdir()
        with run_nats_server(data) as server:
            runs: tuple[tuple[str, Callable[[FleetSpec, Path], Awaitable[dict[str, Any]]]], ...]
            runs = (
                ("recovery", lambda s, f: recovery(server.url, s, f, kills)),
                ("tasks", lambda s, f: soak_tasks(server.url, s, f, data, tasks)),
                ("events", lambda s, f: soak_events(server.url, s, f, data, events)),
            )
            for name, run in runs:
                spec = isolate(seed_fleet())
                await provision_fleet(server.url, spec)
                spec_file = Path(tmp) / f"{name}.yaml"
                spec_file.write_text(yaml.safe_dump(spec.model_dump(mode="json")))
                out[name] = await run(spec, spec_file)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--worker", nargs="*", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--spec", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--hang", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
        _worker_main(args.url, args.spec, args.worker, args.hang)
        return 0
    results = asyncio.run(measure(args.tasks, args.events, args.kills))
    for name, figures in results.items():
        print(name)
        for key, value in figures.items():
            print(f"  {key.replace('_', ' ')}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
