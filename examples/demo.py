"""The main job (`make demo`): an embedded backbone, the seed's fleet, its agents at work.

1. starts a nats-server (JetStream, file storage) in a temporary directory;
2. provisions the seed's streams and consumers and prints the plan;
3. runs the five agents of examples/agents.py in this process, on one connection;
4. tells the seed's story: the CEO hands a feature to the CTO, the CTO asks back (an input
   request the CEO answers), splits it into backend tasks, backend reports progress and
   completes, CSO audits, devops deploys and the deployment event fans out to devops and cso;
   the CEO cancels a chore it changed its mind about; a poison task ends in the dead-letter
   stream;
5. ends with `fleetbus status` and the dead letters.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("FLEETBUS_DEMO_PACE", "3")  # slow enough to read along

import nats
from agents import AGENTS, console, say

from fleetbus import Fleet, TaskCancelled
from fleetbus.deadletters import DeadLetters
from fleetbus.environment import resolve_fleet
from fleetbus.js.connection import ConnectSettings, connect
from fleetbus.ops.report import render
from fleetbus.ops.status import collect, evaluate
from fleetbus.provision import provision
from fleetbus.provision.report import print_plan
from fleetbus.testing import run_nats_server


async def story(url: str) -> int:
    spec = resolve_fleet()  # FLEETBUS_FLEET, ./fleet.yaml, or the seed: as the agents do
    connection = ConnectSettings.from_url(url, name="fleetbus-demo")
    nc = await connect(connection)
    result = await provision(nc, spec)
    print_plan(console, result, dry_run=False)
    console.rule("the fleet at work")

    for agent in AGENTS:
        await agent.start(nc)
    say("ceo", "all five agents are up: ceo, cto, backend, devops, cso")

    async with Fleet.connect(spec=spec, connection=connection, sender="ceo") as fleet:
        feature = await fleet.assign(
            "cto", {"title": "Cursor pagination for /api/users", "priority": "high"}
        )
        say("ceo", f"assigned {feature.id} to cto: cursor pagination for /api/users")

        # A task from a plain NATS client, no headers — and a kind backend cannot do.
        raw = await nats.connect(url)
        await raw.jetstream().publish(
            f"{spec.prefix}.agents.backend.tasks",
            json.dumps(
                {"task_id": "task-poison", "title": "Drop prod DB", "kind": "drop-db"}
            ).encode(),
        )
        await raw.close()
        say("ceo", "a plain `nats pub` sends backend task-poison (kind drop-db)")

        async for update in feature.updates():
            if update.state == "input-required":
                question = (update.data or {}).get("question")
                say("ceo", f"cto asks: {question} — answering: cursor")
                await feature.respond({"pagination": "cursor"})
                break

        chore = await fleet.assign(
            "devops", {"title": "Rotate staging certificates", "kind": "chore"}
        )
        async for update in chore.updates():
            if update.state == "accepted":
                break
        await fleet.cancel(chore.id, "devops", "not now: the release comes first")
        try:
            await chore.result(timeout=30)
        except TaskCancelled as exc:
            say("ceo", f"cancelled {chore.id}: {exc.reason}")

        outcome = await feature.result(timeout=60)
        say("ceo", f"feature done: PRs {outcome['prs']}, deployed {outcome['deployed']}")
        await asyncio.sleep(0.5)  # let the event fan-out and the audit finish

    for agent in AGENTS:
        await agent.stop(grace=5)
    console.rule("fleetbus status")
    snapshot = await collect(nc, spec, dead_letters_before=0)
    from dataclasses import replace

    snapshot = replace(snapshot, alerts=evaluate(snapshot, spec.alerts))
    console.print(render(snapshot))
    for entry in await DeadLetters(nc, spec).list():
        console.print(
            f"dead letter {entry.id}: {entry.original_subject} #{entry.seq} — {entry.reason}"
        )
    await nc.drain()
    return 0


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="         %(message)s")
    with (
        tempfile.TemporaryDirectory(prefix="fleetbus-demo-") as tmp,
        run_nats_server(tmp) as server,
    ):
        console.print(f"embedded nats-server {server.url}, data in {tmp}")
        return asyncio.run(story(server.url))


if __name__ == "__main__":
    sys.exit(main())
