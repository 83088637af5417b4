"""What auth costs: the same work against a server without auth and against one with
fleetbus's accounts (``fleetbus up``'s default: every request to a stream crosses from the
identities' account to the streams' one).

Measured on each, alternately, per round: fleetbus's task round trip (cto assigns, one
backend agent answers at once: p50 and tasks/s), fleetbus's awaited ``Fleet.emit`` (p50) and
raw nats-py's awaited ``js.publish`` of the same event (p50), each logged in as the seed's
roles (the admin for raw nats-py) where auth is on.

    python -m bench.auth [--count 1000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import latency_metrics, print_measures, rate
from fleetbus.fleet import ServerSpec, seed_fleet
from fleetbus.js.connection import ConnectSettings, connect
from fleetbus.provision import provision
from fleetbus.runtime import Agent, RuntimeSettings, Task
from fleetbus.security import ADMIN, Credential, ensure_credentials, render_authorization
from fleetbus.server.process import NatsServer


async def _measure(url: str, creds: dict[str, Credential] | None, count: int) -> dict[str, float]:
    from fleetbus.client import Fleet

    spec = seed_fleet()

    def login(identity: str) -> ConnectSettings:
        if creds is None:
            return ConnectSettings.from_url(url, name=f"bench-{identity}")
        return creds[identity].connect_settings(url, name=f"bench-{identity}")

    admin = await connect(login(ADMIN))
    await provision(admin, spec)
    settings = RuntimeSettings(dead_letter_copier=False)
    backend = Agent("backend", spec=spec, connection=login("backend"), settings=settings)

    @backend.on_task
    async def work(task: Task) -> dict[str, Any]:
        return {"n": task.body["n"]}

    rounds: list[float] = []
    emits: list[float] = []
    raws: list[float] = []
    js = admin.nc.jetstream()
    event = spec.subjects.event("deploy", "done")
    try:
        async with backend, Fleet.connect(spec=spec, connection=login("cto"), sender="cto") as cto:
            for n in range(count // 10):  # warm-up
                await (await cto.assign("backend", {"n": n})).result(timeout=30)
            began = time.perf_counter()
            for n in range(count):
                t0 = time.perf_counter()
                await (await cto.assign("backend", {"n": n})).result(timeout=30)
                rounds.append(time.perf_counter() - t0)
            elapsed = time.perf_counter() - began
            for n in range(count):
                t0 = time.perf_counter()
                await cto.emit("deploy", "done", {"n": n})
                emits.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                await js.publish(event, b'{"n": 0}')
                raws.append(time.perf_counter() - t0)
    finally:
        await admin.close()
    return {
        "task p50 (ms)": latency_metrics(rounds)["p50"] / 1000,
        "tasks/s": rate(count, elapsed),
        "emit p50 (us)": latency_metrics(emits)["p50"],
        "raw js.publish p50 (us)": latency_metrics(raws)["p50"],
    }


def _run(auth: bool, count: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="fleetbus-bench-auth-") as tmp:
        data = Path(tmp)
        creds = ensure_credentials(data, seed_fleet()) if auth else None
        block = render_authorization(seed_fleet(), creds) if creds is not None else ""
        with NatsServer(ServerSpec(), data, port=0, extra_config=block) as server:
            return asyncio.run(_measure(server.url, creds, count))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.auth", description=__doc__)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    runs: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    for n in range(args.rounds):
        for auth in (False, True) if n % 2 == 0 else (True, False):  # who goes first alternates
            runs[auth].append(_run(auth, args.count))
    figures: dict[str, Any] = {}
    for key in runs[False][0]:
        off = statistics.median(r[key] for r in runs[False])
        on = statistics.median(r[key] for r in runs[True])
        figures[key] = f"auth off {off:,.2f}, on {on:,.2f}: on / off {on / off:.2f}"
    print_measures(figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
