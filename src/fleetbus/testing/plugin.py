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

__all__ = ["fleet", "make_fleet", "nats_server", "nats_url", "project_fleet"]


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """A nats-server with JetStream on free 127.0.0.1 ports, shared by the session."""
    from fleetbus.testing import run_nats_server

    # Its data is thrown away: a clean stop of a session's worth of streams (1,000 and more)
    # took nats-server over 10 s, every run.
    with run_nats_server(tmp_path_factory.mktemp("nats-server"), grace=1.0) as server:
        yield server


@pytest.fixture
def nats_url(nats_server: NatsServer) -> str:
    """The session server's client url, ``nats://127.0.0.1:PORT``."""
    return nats_server.url


@pytest.fixture(scope="session")
def project_fleet(pytestconfig: pytest.Config) -> FleetSpec:
    """Your fleet file: ``FLEETBUS_FLEET``, else ``fleet.yaml`` in the pytest root
    directory, else the built-in seed fleet."""
    import os

    from fleetbus.fleet import load_fleet, seed_fleet

    named = os.environ.get("FLEETBUS_FLEET")
    if named:
        return load_fleet(named)
    local = pytestconfig.rootpath / "fleet.yaml"
    return load_fleet(local) if local.is_file() else seed_fleet()


@pytest.fixture
def make_fleet(nats_server: NatsServer, project_fleet: FleetSpec) -> Callable[..., FleetUnderTest]:
    """Provision a fleet (a ``FleetSpec``; default: your fleet file, see ``project_fleet``)
    under a unique prefix and stream names, on the session's server."""
    from fleetbus.testing.fleets import make

    def factory(spec: FleetSpec | None = None) -> FleetUnderTest:
        return make(nats_server.url, spec or project_fleet)

    return factory


@pytest.fixture
def fleet(make_fleet: Callable[..., FleetUnderTest]) -> FleetUnderTest:
    """Your fleet file's fleet (``project_fleet``), provisioned under a unique prefix on the
    session's server: tests never see each other's messages."""
    return make_fleet()
