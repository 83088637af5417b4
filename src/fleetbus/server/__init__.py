"""The nats-server process: find the binary, render its config, start, wait for health, stop.

``NatsServer`` runs one server (a CLI command, a test session); ``start_embedded`` and
``stop_embedded`` are ``fleetbus up`` and ``fleetbus down``, recorded in the data directory.
"""

from fleetbus.server.binary import ENV_VAR, find_nats_server
from fleetbus.server.config import RANDOM_PORT, render_config
from fleetbus.server.embedded import (
    EmbeddedInfo,
    EmbeddedServer,
    running_embedded,
    start_embedded,
    stop_embedded,
)
from fleetbus.server.process import NatsServer, ServerState

__all__ = [
    "ENV_VAR",
    "RANDOM_PORT",
    "EmbeddedInfo",
    "EmbeddedServer",
    "NatsServer",
    "ServerState",
    "find_nats_server",
    "render_config",
    "running_embedded",
    "start_embedded",
    "stop_embedded",
]
