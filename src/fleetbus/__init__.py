"""fleetbus: the messaging backbone for fleets of AI agents, on NATS JetStream."""

from fleetbus.errors import (
    ConnectError,
    FleetbusError,
    FleetFileError,
    InvalidSubjectError,
    PayloadError,
    PermissionDenied,
    ProvisionError,
    ServerError,
    ServerNotFoundError,
    TaskError,
    TaskTimeout,
    UnknownRoleError,
)

__version__ = "0.1.0"

__all__ = [
    "ConnectError",
    "FleetFileError",
    "FleetbusError",
    "InvalidSubjectError",
    "PayloadError",
    "PermissionDenied",
    "ProvisionError",
    "ServerError",
    "ServerNotFoundError",
    "TaskError",
    "TaskTimeout",
    "UnknownRoleError",
    "__version__",
]
