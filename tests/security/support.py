"""The auth-on fleet the security tests share."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path

from fleetbus.client import Fleet
from fleetbus.fleet import FleetSpec
from fleetbus.js.connection import ConnectSettings
from fleetbus.runtime import Agent, RuntimeSettings
from fleetbus.security import ADMIN, Credential


@dataclass(frozen=True)
class AuthFleet:
    spec: FleetSpec
    url: str
    credentials: dict[str, Credential]
    data_dir: Path

    def settings(self, identity: str) -> ConnectSettings:
        return self.credentials[identity].connect_settings(self.url, name=f"test-{identity}")


FAST = RuntimeSettings(poll=2.0, grace=2.0, retry_base=0.05, retry_max=0.5)


def agent(fleet: AuthFleet, role: str) -> Agent:
    """An agent of ``role``, logged in as ``role``."""
    return Agent(role, spec=fleet.spec, connection=fleet.settings(role), settings=FAST)


def client(fleet: AuthFleet, role: str) -> AbstractAsyncContextManager[Fleet]:
    """A ``Fleet`` sending as ``role``, logged in as ``role`` (or the admin)."""
    sender = None if role == ADMIN else role
    return Fleet.connect(spec=fleet.spec, connection=fleet.settings(role), sender=sender)
