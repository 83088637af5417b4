"""The dashboard's first render on a big fleet: 1,000 agents (three durable consumers each,
every one of them polling) and 10,000 tasks stored in TASKS.

Measured, per round, from a dashboard that starts cold (its own connection, an empty task
index) to:

- ``overview_s``: the overview's data complete (``GET /api/overview``: the first status
  sample taken and every task's last record folded in) — what the overview page waits for;
- ``tasks_page_s``: then the tasks page's first event (``/api/live/tasks``);
- ``browser_overview_cold_s``: with Debian's chromium, a dashboard started and its overview
  page loaded and filled in a real browser; ``browser_overview_warm_s`` the same page from the
  running dashboard (skipped without chromium);

and, on the running dashboard, the warm overview (``overview_warm_ms``, median of 20) and one
status sample (``status_sample_s``). The baseline, ``raw_s``, is hand-written nats-py reading
the same: the streams, every consumer (``CONSUMER.LIST`` pages), and each task subject's last
record through an ordered consumer, folded into a dict.

    python -m bench.dashboard [--agents 1000] [--tasks 10000] [--rounds 3]

The tasks' records are written straight to TASKS (accepted, progress, and for four in five a
completed outcome), as agents would have written them: a read benchmark needs them stored,
not worked.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import time
import urllib.request
from typing import Any

import nats
from nats.js.api import ConsumerConfig, DeliverPolicy

from bench import print_measures
from bench.scale import _spawn, _stop, served
from fleetbus.client import Fleet
from fleetbus.fleet import FleetSpec
from fleetbus.js.connection import ConnectSettings, connect
from fleetbus.provision import provision

WORKERS = ("backend-5d904958", "backend-1f0c2a77", "backend-c78382ff")


def records(spec: FleetSpec, tasks: int, roles: list[str]) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    for i in range(tasks):
        role = roles[i % len(roles)]
        task_id = f"task-{i:08d}"
        base = {"task_id": task_id, "agent": role, "assigner": "admin", "attempt": 1,
                "worker": f"{role}-{i % 7:08x}", "time": f"2026-12-01T10:{i // 600 % 60:02d}:"
                f"{i // 10 % 60:02d}.{i % 1000:03d}Z"}  # fmt: skip
        updates = spec.subjects.task(task_id, "updates", "admin", role)
        out.append((updates, {**base, "state": "accepted"}))
        out.append((updates, {**base, "state": "progress", "percent": 50, "message": "halfway"}))
        if i % 5:
            outcome = spec.subjects.task(task_id, "outcome", "admin", role)
            out.append((outcome, {**base, "state": "completed", "result": {"n": i}}))
    return out


async def _get(url: str) -> bytes:
    def get() -> bytes:
        with urllib.request.urlopen(url, timeout=60) as answer:
            body: bytes = answer.read()
            return body

    return await asyncio.to_thread(get)


async def _first_event(url: str, name: str) -> None:
    """Read a live stream until its first ``name`` event has come whole."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(
        f"GET {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode()
    )
    await writer.drain()
    seen, marker = b"", f"event: {name}\n".encode()
    while marker not in seen or b"\n\n" not in seen[seen.index(marker) :]:
        chunk = await reader.read(65536)
        if not chunk:
            raise RuntimeError(f"the stream ended before its {name} event")
        seen += chunk
    writer.close()


async def _cold(url: str, spec: FleetSpec) -> dict[str, float]:
    from fleetbus.dashboard import open_dashboard

    out: dict[str, float] = {}
    started = time.perf_counter()
    conn = await connect(ConnectSettings.from_url(url, name="bench-dashboard"))
    try:
        async with open_dashboard(conn, spec, port=0) as dashboard:
            body = await _get(dashboard.url + "api/overview")
            out["overview_s"] = time.perf_counter() - started
            assert json.loads(body)["tasks_known"] > 0
            mark = time.perf_counter()
            await _first_event(dashboard.url + "api/live/tasks?limit=200", "tasks")
            out["tasks_page_s"] = time.perf_counter() - mark
            samples = []
            for _ in range(20):
                mark = time.perf_counter()
                await _get(dashboard.url + "api/overview")
                samples.append(time.perf_counter() - mark)
            out["overview_warm_ms"] = 1000 * statistics.median(samples)
            out["overview_kib"] = len(body) / 1024
            mark = time.perf_counter()
            await dashboard.hub.data.status(dead_letters_before=None)
            out["status_sample_s"] = time.perf_counter() - mark
    finally:
        await conn.close()
    return out


async def _browser(url: str, spec: FleetSpec) -> tuple[float, float] | None:
    """The overview page loaded and filled in Debian's chromium: from a dashboard started
    with it, then (median of 5) from the running dashboard."""
    executable = shutil.which("chromium")
    if executable is None:
        return None
    try:
        from playwright.async_api import async_playwright, expect
    except ImportError:
        return None
    from fleetbus.dashboard import open_dashboard

    args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
            "--disable-background-networking", "--disable-component-update"]  # fmt: skip
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=executable, args=args)
        page = await browser.new_page(viewport={"width": 1280, "height": 800})
        conn = await connect(ConnectSettings.from_url(url, name="bench-dashboard"))
        try:
            filled = page.locator("#tasks-known")
            started = time.perf_counter()
            async with open_dashboard(conn, spec, port=0) as dashboard:
                await page.goto(dashboard.url)
                await expect(filled).not_to_have_text("–", timeout=30_000)
                cold = time.perf_counter() - started
                warm = []
                for _ in range(5):
                    started = time.perf_counter()
                    await page.goto(dashboard.url)
                    await expect(filled).not_to_have_text("–", timeout=30_000)
                    warm.append(time.perf_counter() - started)
        finally:
            await conn.close()
            await browser.close()
    return cold, statistics.median(warm)


async def _raw(url: str, spec: FleetSpec) -> float:
    """Hand-written nats-py: the same reads, folded into plain dicts."""
    started = time.perf_counter()
    nc = await nats.connect(url)
    js = nc.jetstream()
    consumers = 0
    for name in spec.streams:
        await js.stream_info(name)
        offset = 0
        while True:
            reply = json.loads(
                (
                    await nc.request(
                        f"$JS.API.CONSUMER.LIST.{name}", json.dumps({"offset": offset}).encode()
                    )
                ).data
            )
            page = reply.get("consumers") or []
            consumers += len(page)
            offset += len(page)
            if not page or offset >= reply.get("total", 0):
                break
    states: dict[str, str] = {}
    done = asyncio.Event()
    info = await js.stream_info(spec.stream_for(spec.subjects.task_records()))
    if info.state.messages == 0:
        done.set()

    async def fold(msg: Any) -> None:
        body = json.loads(msg.data)
        states[msg.subject.split(".")[2]] = body["state"]
        if msg.metadata.num_pending == 0:
            done.set()

    sub = await js.subscribe(
        f"{spec.prefix}.tasks.>",
        cb=fold,
        ordered_consumer=True,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.LAST_PER_SUBJECT),
    )
    await done.wait()
    elapsed = time.perf_counter() - started
    await sub.unsubscribe()
    await nc.close()
    assert consumers >= 3 * len(spec.roles) and states
    return elapsed


async def measure(agents: int = 1000, tasks: int = 10_000, rounds: int = 3) -> dict[str, Any]:
    with served(agents, "dashboard") as (spec, server, fleet_file):
        conn = await connect(ConnectSettings.from_url(server.url))
        await provision(conn, spec)
        stored = records(spec, tasks, sorted(spec.roles))
        await Fleet.attach(conn, spec).publish_many(stored)
        await conn.close()
        share = -(-agents // 2)
        workers = [_spawn(server.url, fleet_file, first, min(share, agents - first))
                   for first in range(0, agents, share)]  # fmt: skip
        try:
            for proc in workers:  # every agent polls its consumers
                assert proc.stdout is not None
                await asyncio.to_thread(proc.stdout.readline)
            cold: list[dict[str, float]] = []
            raw: list[float] = []
            for _ in range(rounds):
                cold.append(await _cold(server.url, spec))
                raw.append(await _raw(server.url, spec))
            browser = await _browser(server.url, spec)
        finally:
            await asyncio.to_thread(_stop, workers)
    out: dict[str, Any] = {"agents": agents, "consumers": 3 * agents, "tasks": tasks,
                           "records": len(stored), "rounds": rounds}  # fmt: skip
    for key in cold[0]:
        values = [c[key] for c in cold]
        out[key] = _summary(values)
    out["raw_s"] = _summary(raw)
    if browser is None:
        out["browser_overview_s"] = "no chromium"
    else:
        out["browser_overview_cold_s"] = round(browser[0], 3)
        out["browser_overview_warm_s"] = round(browser[1], 3)
    return out


def _summary(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} [{min(values):.3f}-{max(values):.3f}]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard", description=__doc__)
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    result = asyncio.run(measure(args.agents, args.tasks, args.rounds))
    print_measures(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
