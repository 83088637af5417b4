"""fleetbus: the messaging backbone for fleets of AI agents, on NATS JetStream.

    from fleetbus import Agent, Fleet

The receiving side is ``Agent`` (one per role, decorator handlers); the sending side is
``Fleet`` (assign, message, emit, watch). Every error is a ``FleetbusError``.
"""

from fleetbus.client import Fleet, TaskHandle
from fleetbus.errors import (
    AskError,
    AskTimeout,
    BatchPublishError,
    ConnectError,
    FleetbusError,
    FleetFileError,
    InvalidSubjectError,
    JetStreamError,
    NoResponders,
    PayloadError,
    PermissionDenied,
    ProvisionError,
    RemoteError,
    ServerError,
    ServerNotFoundError,
    TaskError,
    TaskTimeout,
    UnknownRoleError,
)
from fleetbus.js.connection import ConnectSettings
from fleetbus.runtime import (
    Agent,
    Event,
    Message,
    Reject,
    Request,
    Retry,
    RuntimeSettings,
    Task,
)
from fleetbus.wire.updates import TaskUpdate

__version__ = "0.1.0"

__all__ = [
    "Agent",
    "AskError",
    "AskTimeout",
    "BatchPublishError",
    "ConnectError",
    "ConnectSettings",
    "Event",
    "Fleet",
    "FleetFileError",
    "FleetbusError",
    "InvalidSubjectError",
    "JetStreamError",
    "Message",
    "NoResponders",
    "PayloadError",
    "PermissionDenied",
    "ProvisionError",
    "Reject",
    "RemoteError",
    "Request",
    "Retry",
    "RuntimeSettings",
    "ServerError",
    "ServerNotFoundError",
    "Task",
    "TaskError",
    "TaskHandle",
    "TaskTimeout",
    "TaskUpdate",
    "UnknownRoleError",
    "__version__",
]
