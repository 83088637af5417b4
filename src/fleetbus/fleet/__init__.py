"""The fleet file: what it says (``model``), what it means (``topology``), its loader and its
linter. Pure: no I/O beyond reading the file."""

from fleetbus.fleet.load import DEFAULT_FLEET_FILE, load_fleet, parse_fleet, seed_fleet
from fleetbus.fleet.model import (
    DEAD_LETTER_COPIER,
    AlertSpec,
    ConsumerKind,
    ConsumerSpec,
    EventsSpec,
    RoleSpec,
    ServerSpec,
    StreamSpec,
)
from fleetbus.fleet.topology import FleetSpec, ResolvedConsumer

__all__ = [
    "DEAD_LETTER_COPIER",
    "DEFAULT_FLEET_FILE",
    "AlertSpec",
    "ConsumerKind",
    "ConsumerSpec",
    "EventsSpec",
    "FleetSpec",
    "ResolvedConsumer",
    "RoleSpec",
    "ServerSpec",
    "StreamSpec",
    "load_fleet",
    "parse_fleet",
    "seed_fleet",
]
