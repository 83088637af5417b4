"""The fleet file: the declarative model of a fleet, its loader and its linter. Pure: no I/O
beyond reading the file."""

from fleetbus.fleet.load import DEFAULT_FLEET_FILE, load_fleet, parse_fleet, seed_fleet
from fleetbus.fleet.model import (
    AlertSpec,
    ConsumerSpec,
    EventsSpec,
    FleetSpec,
    ResolvedConsumer,
    RoleSpec,
    ServerSpec,
    StreamSpec,
)

__all__ = [
    "DEFAULT_FLEET_FILE",
    "AlertSpec",
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
