"""The auth-on fleet the security tests share."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fleetbus.fleet import FleetSpec
from fleetbus.js.connection import ConnectSettings
from fleetbus.security import Credential


@dataclass(frozen=True)
class AuthFleet:
    spec: FleetSpec
    url: str
    credentials: dict[str, Credential]
    data_dir: Path

    def settings(self, identity: str) -> ConnectSettings:
        return self.credentials[identity].connect_settings(self.url, name=f"test-{identity}")
