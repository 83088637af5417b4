"""An attacker on the same machine as a cluster: it starts a nats-server of its own, routed
into the cluster, to read the fleet's traffic and publish into it through a door with no
lock. The route ports take only the cluster's own credentials (and, with TLS, only a
certificate of the local CA)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest

from fleetbus.fleet import seed_fleet
from fleetbus.js.api import JsApi
from fleetbus.js.connection import ConnectSettings, connect
from fleetbus.js.publish import Publisher
from fleetbus.security.credentials import ensure_route_credential
from fleetbus.security.tls import ensure_local_ca, render_tls
from fleetbus.server.cluster import LocalCluster
from fleetbus.server.process import NatsServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


@pytest.fixture(params=["password", "password and tls"])
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LocalCluster]:
    spec = seed_fleet().server.model_copy(update={"port": 0})
    route_auth = ensure_route_credential(tmp_path / "data")
    route_tls = ""
    if "tls" in request.param:
        files = ensure_local_ca(tmp_path / "data")
        route_tls = render_tls(files, verify=True, indent="  ")
    with LocalCluster(
        spec, tmp_path / "cluster", 3, route_auth=route_auth, route_tls=route_tls
    ) as c:
        yield c


@pytest.mark.parametrize("login", ["", "route:wrong-password@"])
async def test_a_server_routed_in_without_the_clusters_credentials_sees_nothing(
    cluster: LocalCluster, tmp_path: Path, login: str
) -> None:
    routes = [f"nats-route://{login}127.0.0.1:{p.cluster}" for p in cluster.ports]
    rogue = NatsServer(
        seed_fleet().server, tmp_path / "rogue", port=0, cluster_port=0, routes=routes
    )
    rogue.start(timeout=10)
    try:
        spy = await nats.connect(rogue.url)
        heard: list[str] = []

        async def listen(msg: nats.aio.msg.Msg) -> None:
            heard.append(msg.subject)

        await spy.subscribe(">", cb=listen)
        await spy.flush()
        inside = await connect(ConnectSettings.from_url(cluster.url, name="fleet"))
        api = JsApi(inside)
        await api.create_stream(
            {"name": "AGENTS", "subjects": ["genbrain.agents.>"], "num_replicas": 3}
        )
        try:
            # Each is stored (retried while the new R3 stream elects its leader); given time
            # to route in, the rogue would hear them.
            publisher = Publisher(inside)
            for _ in range(20):
                await publisher.publish("genbrain.agents.backend.tasks.ceo", b"{}")
                await spy.publish("genbrain.agents.cso.tasks.ceo", b'{"title": "forged"}')
                await spy.flush()
                await asyncio.sleep(0.1)
            # The rogue's JetStream is its own: the fleet's API never answers it.
            with pytest.raises(Exception):  # noqa: B017 - no responders, or a timeout
                await spy.request("$JS.API.STREAM.NAMES", b"", timeout=1)
            info = await api.stream_info("AGENTS", {"subjects_filter": "genbrain.agents.>"})
        finally:
            await inside.close()
            await spy.close()
    finally:
        rogue.stop()
    assert "genbrain.agents.backend.tasks.ceo" not in heard  # the fleet's traffic: not a word
    assert info is not None
    # What the fleet published is stored; nothing the rogue published reached the stream.
    assert info["state"]["subjects"] == {"genbrain.agents.backend.tasks.ceo": 20}


async def test_without_route_credentials_the_same_attack_succeeds(tmp_path: Path) -> None:
    """The control: what the test above would see if the routes took anyone."""
    spec = seed_fleet().server.model_copy(update={"port": 0})
    with LocalCluster(spec, tmp_path / "cluster", 3) as open_cluster:
        routes = [f"nats-route://127.0.0.1:{p.cluster}" for p in open_cluster.ports]
        rogue = NatsServer(spec, tmp_path / "rogue", port=0, cluster_port=0, routes=routes)
        rogue.start(timeout=10)
        try:
            spy = await nats.connect(rogue.url)
            heard = asyncio.Event()

            async def listen(msg: nats.aio.msg.Msg) -> None:
                heard.set()

            await spy.subscribe("genbrain.agents.>", cb=listen)
            await spy.flush()
            inside = await nats.connect(open_cluster.urls)
            try:
                async with asyncio.timeout(20):
                    while not heard.is_set():
                        await inside.publish("genbrain.agents.backend.tasks.ceo", b"{}")
                        await asyncio.sleep(0.1)
            finally:
                await inside.close()
                await spy.close()
        finally:
            rogue.stop()
