"""fleetbus: the messaging backbone for fleets of AI agents, on NATS JetStream.

    from fleetbus import Agent, Fleet

The receiving side is ``Agent`` (one per role, decorator handlers); the sending side is
``Fleet`` (assign, message, emit, ask, meetings, watch). Every error is a ``FleetbusError``.

This module is the public API: everything a user imports comes from here (and the pytest
plugin from ``fleetbus.testing``). The subpackages are internal and may change; the
layers they form are drawn in docs/architecture.md.
"""

from fleetbus._version import __version__
from fleetbus.client import Fleet, Meeting, MeetingMessage, Observed, TaskHandle
from fleetbus.deadletters import DeadLetterEntry, DeadLetters
from fleetbus.errors import (
    AmbiguousTask,
    AskError,
    AskTimeout,
    BatchPublishError,
    ConnectError,
    FleetbusError,
    FleetFileError,
    InvalidSubjectError,
    JetStreamError,
    JsErrorCode,
    NoConsumerError,
    NoLiveAgent,
    NoResponders,
    PayloadError,
    PermissionDenied,
    ProvisionError,
    RemoteError,
    ServerError,
    ServerNotFoundError,
    TaskCancelled,
    TaskError,
    TaskExpired,
    TaskTimeout,
    UnknownRoleError,
)
from fleetbus.fleet import FleetSpec, load_fleet, seed_fleet
from fleetbus.js.acks import BatchAck, PubAck, PublishManyResult
from fleetbus.js.connection import Connection, ConnectSettings
from fleetbus.presence import AgentChange, AgentInfo, HeldTask
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
from fleetbus.tasks import TaskSummary
from fleetbus.wire.updates import TaskUpdate

__all__ = [
    "Agent",
    "AgentChange",
    "AgentInfo",
    "AmbiguousTask",
    "AskError",
    "AskTimeout",
    "BatchAck",
    "BatchPublishError",
    "ConnectError",
    "ConnectSettings",
    "Connection",
    "DeadLetterEntry",
    "DeadLetters",
    "Event",
    "Fleet",
    "FleetFileError",
    "FleetSpec",
    "FleetbusError",
    "HeldTask",
    "InvalidSubjectError",
    "JetStreamError",
    "JsErrorCode",
    "Meeting",
    "MeetingMessage",
    "Message",
    "NoConsumerError",
    "NoLiveAgent",
    "NoResponders",
    "Observed",
    "PayloadError",
    "PermissionDenied",
    "ProvisionError",
    "PubAck",
    "PublishManyResult",
    "Reject",
    "RemoteError",
    "Request",
    "Retry",
    "RuntimeSettings",
    "ServerError",
    "ServerNotFoundError",
    "Task",
    "TaskCancelled",
    "TaskError",
    "TaskExpired",
    "TaskHandle",
    "TaskSummary",
    "TaskTimeout",
    "TaskUpdate",
    "UnknownRoleError",
    "__version__",
    "load_fleet",
    "seed_fleet",
]
