"""The fleetbus pytest plugin: a real nats-server per test session.

Registered through the ``pytest11`` entry point, so it loads in every project that installs
fleetbus: it imports nothing but pytest until a fixture is used, and a missing nats-server
only fails the tests that ask for one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from fleetbus.fleet import FleetSpec
    from fleetbus.server.process import NatsServer
    from fleetbus.testing.fleets import FleetUnderTest

__all__ = ["fleet", "make_fleet", "nats_server", "nats_url"]


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """A nats-server with JetStream on free 127.0.0.1 ports, shared by the session."""
    from fleetbus.testing import run_nats_server

    with run_nats_server(tmp_path_factory.mktemp("nats-server")) as server:
        yield server


@pytest.fixture
def nats_url(nats_server: NatsServer) -> str:
    """The session server's client url, ``nats://127.0.0.1:PORT``."""
    return nats_server.url


@pytest.fixture
def make_fleet(nats_server: NatsServer) -> Callable[..., FleetUnderTest]:
    """Provision a fleet (a ``FleetSpec``, default the seed's) under a unique prefix."""
    from fleetbus.fleet import seed_fleet
    from fleetbus.testing.fleets import make

    def factory(spec: FleetSpec | None = None) -> FleetUnderTest:
        return make(nats_server.url, spec or seed_fleet())

    return factory


@pytest.fixture
def fleet(make_fleet: Callable[..., FleetUnderTest]) -> FleetUnderTest:
    """The seed's fleet, provisioned under a unique prefix on the session's server."""
    return make_fleet()
