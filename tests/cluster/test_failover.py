"""A real 3-node cluster: streams at R3, a leader killed under load, a whole-cluster restart."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetbus import Agent, Fleet, RuntimeSettings, Task
from fleetbus.fleet import FleetSpec, seed_fleet
from fleetbus.js.api import JsApi
from fleetbus.js.connection import ConnectSettings, connect
from fleetbus.provision import provision
from fleetbus.server.cluster import LocalCluster
from fleetbus.testing import eventually
from fleetbus.testing.fleets import final_history, isolate

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    # Port 0: the cluster picks free ports itself, and picks again if another process takes
    # one before a node binds it (ports given to it are never changed).
    spec = seed_fleet().server.model_copy(update={"port": 0})
    with LocalCluster(spec, tmp_path / "cluster", 3) as c:
        yield c


async def provisioned(cluster: LocalCluster) -> tuple[FleetSpec, ConnectSettings]:
    spec = isolate(seed_fleet())
    settings = ConnectSettings.from_url(cluster.url, name="test")
    nc = await connect(settings)
    try:
        result = await provision(nc, spec)
        assert not result.plan.warnings  # replicas 3 on 3 nodes: nothing adapted
        for name in spec.streams:
            info = await JsApi(nc).stream_info(name)
            assert info is not None
            assert info["config"]["num_replicas"] == 3
    finally:
        await nc.close()
    return spec, settings


class Done(dict[str, int]):
    """Task id → times processed; ``changed`` is set on each completion."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = asyncio.Event()

    async def cover(self, ids: set[str]) -> None:
        while not ids <= set(self):
            await self.changed.wait()
            self.changed.clear()


def backend(spec: FleetSpec, settings: ConnectSettings, done: Done, *, poll: float = 2.0) -> Agent:
    agent = Agent(
        "backend",
        spec=spec,
        connection=settings,
        settings=RuntimeSettings(poll=poll, retry_base=0.1, grace=5.0),
    )

    @agent.on_task
    async def work(task: Task) -> dict[str, str]:
        done[task.id] = done.get(task.id, 0) + 1
        done.changed.set()
        return {"ok": task.id}

    return agent


async def test_killing_the_stream_leader_under_load_loses_nothing(
    cluster: LocalCluster,
) -> None:
    spec, settings = await provisioned(cluster)
    comms = next(name for name in spec.streams if name.startswith("AGENT_COMMS"))
    done = Done()
    acked: list[str] = []
    workers = [backend(spec, settings, done) for _ in range(2)]
    for worker in workers:
        await worker.start()
    kill_at: float | None = None
    first_after_kill: float | None = None
    try:
        async with Fleet.connect(spec=spec, connection=settings, sender="cto") as fleet:
            for i in range(120):
                if i == 40:
                    info = await JsApi(fleet.conn).stream_info(comms)
                    assert info is not None
                    leader = str((info.get("cluster") or {}).get("leader") or "")
                    assert leader, "the stream has a leader"
                    kill_at = time.monotonic()
                    cluster.kill_node(cluster.node_named(leader))
                handle = await fleet.assign("backend", {"n": i}, task_id=f"task-{i:03d}")
                if kill_at is not None and first_after_kill is None:
                    first_after_kill = time.monotonic()
                acked.append(handle.id)
            async with asyncio.timeout(60):
                await done.cover(set(acked))
            api = JsApi(fleet.conn)
            info = await api.request(
                f"STREAM.INFO.{comms}",
                {"subjects_filter": fleet.spec.subjects.tasks("backend")},
            )
    finally:
        for worker in workers:
            await worker.stop(grace=2)
    assert kill_at is not None and first_after_kill is not None
    outage = first_after_kill - kill_at
    print(f"\npublish outage after SIGKILL of the {comms} leader: {outage:.2f}s")
    assert len(acked) == 120
    assert set(acked) <= set(done), "no acknowledged task is processed by none"
    # The same Nats-Msg-Id across publish retries: every task is stored exactly once (120
    # sequence numbers), and processed ones are gone (interest retention).
    assert info["state"]["last_seq"] == 120


async def test_an_idle_agent_hears_the_consumer_leader_elected_after_a_crash(
    cluster: LocalCluster,
) -> None:
    # The agent's long poll waits on the consumer's leader; SIGKILL that node. The new leader
    # ends the poll (409 Leadership Change) and the agent asks it at once: a task assigned
    # after the crash is done long before the agent's 60 s poll would have ended by itself.
    spec, _ = await provisioned(cluster)
    tasks = spec.consumer("backend", "tasks")
    assert tasks is not None
    async with Fleet.connect(spec=spec, connection=ConnectSettings.from_url(cluster.url)) as f:
        info = await JsApi(f.conn).consumer_info(tasks.stream, tasks.name)
    assert info is not None
    leader = cluster.node_named(str(info["cluster"]["leader"]))
    # Connected elsewhere: the agent's own connection survives (a reconnect re-asks anyway).
    elsewhere = ConnectSettings.from_url(
        next(url for i, url in enumerate(cluster.urls) if i != leader), name="test"
    )
    done = Done()
    async with (
        backend(spec, elsewhere, done, poll=60.0),
        Fleet.connect(spec=spec, connection=elsewhere, sender="cto") as fleet,
    ):
        api = JsApi(fleet.conn)

        async def polling() -> bool:
            info = await api.consumer_info(tasks.stream, tasks.name)
            return bool(info and info.get("num_waiting"))

        await eventually(polling, 10, "the agent's poll open on the consumer leader")
        cluster.kill_node(leader)
        handle = await fleet.assign("backend", {"n": 1})
        async with asyncio.timeout(40):  # the election (4-9 s), well inside the poll
            await done.cover({handle.id})
        assert await handle.result(timeout=10) == {"ok": handle.id}


async def test_a_whole_cluster_restart_keeps_every_message(cluster: LocalCluster) -> None:
    spec, settings = await provisioned(cluster)
    async with Fleet.connect(spec=spec, connection=settings, sender="cto") as fleet:
        ids = [(await fleet.assign("backend", {"n": i})).id for i in range(20)]
    for i in range(3):
        cluster.stop_node(i)  # graceful: SIGTERM
    for i in range(3):
        cluster.restart_node(i)  # from disk
    cluster.wait_healthy(30)
    done = Done()
    worker = backend(spec, settings, done)
    async with worker, Fleet.connect(spec=spec, connection=settings) as fleet:
        async with asyncio.timeout(60):
            await done.cover(set(ids))
        # A handler's return comes just before its completion update is stored.
        last = [(await final_history(fleet, task_id))[-1] for task_id in ids]
    assert [(u.state, u.result) for u in last] == [("completed", {"ok": i}) for i in ids]
