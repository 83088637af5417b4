"""A nats-server with auth on, configured from the seed fleet's rendered authorization."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fleetbus.fleet import ServerSpec, seed_fleet
from fleetbus.security import ADMIN, ensure_credentials, render_authorization
from fleetbus.server.process import NatsServer
from fleetbus.testing.fleets import isolate

from .support import AuthFleet


@pytest.fixture(scope="module")
def auth_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthFleet]:
    data = tmp_path_factory.mktemp("auth-server")
    spec = isolate(seed_fleet())
    creds = ensure_credentials(data, spec)
    block = render_authorization(spec, creds)
    with NatsServer(ServerSpec(), data, port=0, extra_config=block) as server:
        fleet = AuthFleet(spec, server.url, creds, data)
        import asyncio

        async def provision() -> None:
            from fleetbus.js.connection import connect
            from fleetbus.provision import provision as apply

            nc = await connect(fleet.settings(ADMIN))
            try:
                await apply(nc, spec)
            finally:
                await nc.close()

        asyncio.run(provision())
        yield fleet
