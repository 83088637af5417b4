"""Fleet scale: N agents (3 durable consumers each) provisioned and idling in a few processes.

Measured: provisioning time of the whole fleet, the time to start every agent, the client
memory per agent, and the CPU the nats-server and the agent processes use while every agent
long-polls with nothing to do.

    python -m bench.scale [--agents 1000] [--processes 2] [--idle 60] [--auth]

With ``--auth`` the server runs fleetbus's accounts (``fleetbus up``'s default) and every
agent logs in as its role, so each has a connection of its own (a connection is one login);
without it the agents of a process share one.

Memory per agent is what Python allocates for it (``tracemalloc``, over up to
``MEMORY_SAMPLE`` agents started in a process of their own before the timed ones, after a
first batch whose start builds what every agent of the process shares). The
resident set growth of a worker is no measure of it: loading a fleet file of thousands of
roles leaves tens of megabytes freed but resident (150 MB for 4,000 roles, measured here),
which the first agents reuse, so growth per agent reads near zero for the first thousand and
reaches what an agent costs only past them. The workers' whole resident set is reported too.

With ``--raw`` no fleetbus agent runs: hand-written nats-py clients, in as many processes,
hold one long poll on each consumer of the same provisioned fleet and ask again when it
expires, as the agents do: the server's idle CPU for that, with no fleetbus code in the way
(and no presence records), and what such a client costs.

The worker side (``--worker``) runs its share of agents (on one connection without auth) and
reports on stdout: ``ready <rss_kib>``; ``--memory`` starts its agents with tracemalloc on and
reports ``allocated <bytes_per_agent>``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nats
import yaml
from nats.aio.msg import Msg

from bench import print_measures
from fleetbus import Agent, Message, RuntimeSettings, Task
from fleetbus.fleet import FleetSpec, load_fleet, seed_fleet
from fleetbus.js.connection import ConnectSettings, connect
from fleetbus.provision import provision
from fleetbus.security import ADMIN, ensure_credentials, load_credential, render_authorization

if TYPE_CHECKING:
    from fleetbus.server.process import NatsServer

_TICKS = os.sysconf("SC_CLK_TCK")
STARTING = 50
"""Agents one worker process starts at once."""
MEMORY_SAMPLE = 1000
"""Agents whose allocations are traced for the memory per agent."""
POLL = RuntimeSettings().poll
RAW_CONSUMERS = "consumers.json"
"""Beside the fleet file: every provisioned consumer, ``[stream, name]``, for ``--raw``."""


def fleet_of(agents: int, *, presence: bool = True) -> FleetSpec:
    """The seed's streams with ``agents`` plain roles (tasks, inbox and meetings each);
    without ``presence``, no presence stream (agents then renew nothing)."""
    data = seed_fleet().model_dump(mode="json")
    data["roles"] = {f"agent{i:04d}": {} for i in range(agents)}
    if not presence:
        data["streams"].pop("AGENT_PRESENCE")
    data["streams"]["AGENT_COMMS"]["max_consumers"] = max(10_000, 4 * agents)
    return FleetSpec.model_validate(data)


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


async def _worker(
    url: str,
    spec: FleetSpec,
    first: int,
    count: int,
    poll: float,
    *,
    traced: bool = False,
    auth: Path | None = None,
) -> None:
    """``auth``: the server's data directory, where each role's credential is (each agent
    then connects as its role); without it every agent uses one shared connection."""
    nc = None if auth else await connect(ConnectSettings.from_url(url, name=f"scale-{first}"))

    async def task(t: Task) -> None:
        pass

    async def message(m: Message) -> None:
        pass

    agents = []
    for i in range(first, first + count):
        role = f"agent{i:04d}"
        login = load_credential(auth, role) if auth else None
        agent = Agent(
            role,
            spec=spec,
            connection=login.connect_settings(url, name=role) if login else None,
            settings=RuntimeSettings(dead_letter_copier=False, poll=poll),
        )
        agent.on_task(task)
        agent.on_message(message)
        agent.on_invitation(message)
        agents.append(agent)
    # Started STARTING at a time, as a fleet of processes would start: each start is a few
    # round trips (its consumers' info, its subscriptions, its first presence record).
    warm = STARTING if count > STARTING else 0
    for at in range(0, len(agents), STARTING):
        if traced and at == warm:
            # Traced from the second batch on: what the first ones built once for every
            # agent of the process (the fleet's routes, the connection's) is not per agent.
            gc.collect()
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
        await asyncio.gather(*(a.start(nc) for a in agents[at : at + STARTING]))
        # (an agent given no connection opens its own, and closes it when it stops)
    if traced:
        await asyncio.sleep(1)  # every consumer loop asking, every presence timer set
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
        print(f"allocated {grown // (count - warm)}", flush=True)
        await asyncio.gather(*(a.stop(grace=1) for a in agents))
        if nc is not None:
            await nc.close()
        return
    print(f"ready {_rss_kib(os.getpid())}", flush=True)
    await asyncio.Event().wait()  # idle until the parent stops this process


async def _raw_worker(url: str, pairs: list[list[str]], poll: float) -> None:
    """One long poll (30 s by default, batch 64) held on each consumer ``stream > name`` of
    ``pairs`` by plain nats-py, asked again when it expires: the same requests the agents'
    loops keep open, with nothing else."""
    nc = await nats.connect(url)
    body = json.dumps({"batch": 64, "expires": int(poll * 1e9)}).encode()
    inbox = nc.new_inbox()

    async def ask(n: int) -> None:
        stream, name = pairs[n]
        await nc.publish(f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{name}", body, f"{inbox}.{n}")

    async def expired(msg: Msg) -> None:
        if (msg.headers or {}).get("Status") == "408":
            await ask(int(msg.subject.rsplit(".", 1)[1]))

    await nc.subscribe(f"{inbox}.*", cb=expired)
    for n in range(len(pairs)):
        await ask(n)
    await nc.flush()
    print(f"ready {_rss_kib(os.getpid())}", flush=True)
    await asyncio.Event().wait()


def _spawn(
    url: str,
    fleet_file: Path,
    first: int,
    count: int,
    poll: float = POLL,
    *,
    traced: bool = False,
    auth: bool = False,
    raw: bool = False,
) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "bench.scale", "--poll", str(poll), "--worker", url]
    argv += [str(fleet_file), str(first), str(count)] + (["--memory"] if traced else [])
    argv += ["--auth"] if auth else []  # the credentials are beside the fleet file
    argv += ["--raw"] if raw else []  # FIRST and COUNT are of the consumers file
    return subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)


async def _allocated_per_agent(
    url: str, fleet_file: Path, agents: int, poll: float, auth: bool
) -> int:
    """Bytes Python allocates per agent, over up to ``MEMORY_SAMPLE`` agents traced."""
    proc = _spawn(url, fleet_file, 0, min(agents, MEMORY_SAMPLE), poll, traced=True, auth=auth)
    assert proc.stdout is not None
    line = await asyncio.to_thread(proc.stdout.readline)
    await asyncio.to_thread(proc.wait, 60)
    return int(line.split()[1])


def _stop(workers: list[subprocess.Popen[str]]) -> None:
    for proc in workers:
        proc.terminate()
        proc.wait(10)


@contextlib.contextmanager
def served(
    agents: int, tag: str, *, presence: bool = True, auth: bool = False
) -> Iterator[tuple[FleetSpec, NatsServer, Path]]:
    """A nats-server in a temporary directory, and the fleet of ``agents`` roles in a fleet
    file there (not provisioned yet); with ``auth``, fleetbus's accounts and every role's
    credential in that directory."""
    from fleetbus.testing import run_nats_server

    spec = fleet_of(agents, presence=presence)
    with tempfile.TemporaryDirectory(prefix=f"fleetbus-{tag}-") as tmp:
        block = render_authorization(spec, ensure_credentials(tmp, spec)) if auth else ""
        with run_nats_server(tmp, extra_config=block) as server:
            fleet_file = Path(tmp) / "fleet.yaml"
            fleet_file.write_text(yaml.safe_dump(spec.model_dump(mode="json")))
            yield spec, server, fleet_file


async def measure(
    agents: int,
    processes: int,
    idle: float,
    *,
    presence: bool = True,
    poll: float = POLL,
    auth: bool = False,
    raw: bool = False,
) -> dict[str, Any]:
    with served(agents, "scale", presence=presence and not raw, auth=auth) as (
        spec,
        server,
        fleet_file,
    ):
        admin = load_credential(fleet_file.parent, ADMIN) if auth else None
        nc = await connect(
            admin.connect_settings(server.url) if admin else ConnectSettings.from_url(server.url)
        )
        started = time.monotonic()
        result = await provision(nc, spec)
        provision_s = time.monotonic() - started
        await nc.close()
        pairs = [[a.stream, a.name] for a in result.applied if a.kind == "consumer"]
        (fleet_file.parent / RAW_CONSUMERS).write_text(json.dumps(pairs))
        units = len(pairs) if raw else agents  # what the processes share
        if processes:
            if not raw:
                allocated = await _allocated_per_agent(server.url, fleet_file, agents, poll, auth)
            share = -(-units // processes)
        started = time.monotonic()
        workers = [
            _spawn(
                server.url, fleet_file, first, min(share, units - first), poll, auth=auth, raw=raw
            )
            for first in (range(0, units, share) if processes else ())
        ]
        try:
            rss = []
            for proc in workers:
                assert proc.stdout is not None
                line = await asyncio.to_thread(proc.stdout.readline)
                rss.append(int(line.split()[1]))
            start_s = time.monotonic() - started
            assert server.pid is not None
            server_cpu = _cpu_seconds(server.pid)
            client_cpu = sum(_cpu_seconds(p.pid) for p in workers)
            await asyncio.sleep(idle)
            server_cpu = _cpu_seconds(server.pid) - server_cpu
            client_cpu = sum(_cpu_seconds(p.pid) for p in workers) - client_cpu
            server_rss = _rss_kib(server.pid)
        finally:
            await asyncio.to_thread(_stop, workers)
    measures: dict[str, Any] = {
        "agents": agents,
        "client": "raw nats-py, a long poll per consumer" if raw else "fleetbus agents",
        "auth": auth,
        "presence": presence and not raw,
        "poll_s": poll,
        "processes": len(workers),
        "durable_consumers": len(pairs),
        "provision_s": round(provision_s, 2),
    }
    if workers and raw:
        measures |= {"agents_started_s": round(start_s, 2)}
    elif workers:
        measures |= {
            "agents_started_s": round(start_s, 2),
            "client_kib_per_agent": round(allocated / 1024, 1),
            "worker_rss_mib": round(sum(rss) / 1024 / len(rss)),
        }
    return measures | {
        "idle_s": idle,
        "server_rss_mib": round(server_rss / 1024),
        "server_cpu_percent_of_a_core": round(100 * server_cpu / idle, 2),
        "agent_processes_cpu_percent_of_a_core": round(100 * client_cpu / idle, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument(
        "--processes",
        type=int,
        default=2,
        help="agent processes; 0: none, the fleet provisioned and the server idle on its own",
    )
    parser.add_argument("--idle", type=float, default=60.0)
    parser.add_argument(
        "--no-presence",
        action="store_true",
        help="without the presence stream: what the presence renewals cost, by difference",
    )
    parser.add_argument(
        "--poll", type=float, default=POLL, help="the agents' RuntimeSettings.poll (seconds)"
    )
    parser.add_argument(
        "--auth",
        action="store_true",
        help="fleetbus's accounts on the server, every agent logged in as its role",
    )
    parser.add_argument(
        "--raw",
        action="store_true",
        help="no agents: hand-written nats-py holding one long poll per consumer (no presence)",
    )
    parser.add_argument("--worker", nargs=4, metavar=("URL", "FLEET", "FIRST", "COUNT"))
    parser.add_argument("--memory", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        url, fleet_file, first, count = args.worker
        if args.raw:
            pairs = json.loads((Path(fleet_file).parent / RAW_CONSUMERS).read_text())
            asyncio.run(_raw_worker(url, pairs[int(first) : int(first) + int(count)], args.poll))
            return 0
        spec = load_fleet(fleet_file)  # as an agent process loads it
        auth = Path(fleet_file).parent if args.auth else None
        asyncio.run(
            _worker(url, spec, int(first), int(count), args.poll, traced=args.memory, auth=auth)
        )
        return 0
    result = asyncio.run(
        measure(
            args.agents,
            args.processes,
            args.idle,
            presence=not args.no_presence,
            poll=args.poll,
            auth=args.auth,
            raw=args.raw,
        )
    )
    print_measures(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
