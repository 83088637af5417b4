"""The one exception tree of fleetbus.

Every error fleetbus raises on purpose is a ``FleetbusError``; catching it catches them all::

    FleetbusError
    ├── FleetFileError        the fleet file is unreadable or invalid (file, key path, reason)
    ├── ServerError           the nats-server process: binary missing, port taken, early exit
    │   └── ServerNotFoundError   no nats-server binary anywhere
    ├── ConnectError          cannot reach the NATS server (url, reason)
    ├── JetStreamError        the JetStream API answered with an error (code, err_code)
    ├── BatchPublishError     ``publish_many``: which messages were stored and which were not
    ├── ProvisionError        the live server refused a stream or consumer change
    ├── InvalidSubjectError   a subject token is empty, has a space, a dot or a wildcard
    ├── PayloadError          a body cannot be encoded, is not an object, or is too large
    ├── UnknownRoleError      a role the fleet file does not declare
    ├── PermissionDenied      the server refused a publish or subscribe for this identity
    ├── AskError              a question to another role got no answer
    │   ├── NoResponders          no agent of the role answers requests right now
    │   ├── AskTimeout            no answer within the caller's timeout
    │   └── RemoteError           the answering handler raised (its error text)
    └── TaskError             a task ended in the dead-letter stream (task id, attempt, error)
        └── TaskTimeout       no completion within the caller's timeout

Each carries its facts as attributes, not just in its message.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from fleetbus.js.acks import PublishManyResult

__all__ = [
    "AmbiguousTask",
    "AskError",
    "AskTimeout",
    "BatchPublishError",
    "ConnectError",
    "FleetFileError",
    "FleetbusError",
    "InvalidSubjectError",
    "JetStreamError",
    "JsErrorCode",
    "NoResponders",
    "PayloadError",
    "PermissionDenied",
    "ProvisionError",
    "RemoteError",
    "ServerError",
    "ServerNotFoundError",
    "TaskError",
    "TaskTimeout",
    "UnknownRoleError",
]


class FleetbusError(Exception):
    """Root of every error fleetbus raises on purpose."""


class FleetFileError(FleetbusError):
    """The fleet file cannot be read or does not validate.

    ``problems`` holds one ``(key_path, reason)`` pair per finding, so a file with three
    mistakes reports all three at once.
    """

    def __init__(self, path: str, problems: list[tuple[str, str]]) -> None:
        self.path = path
        self.problems = problems
        lines = [f"{path}: {key or '(top level)'}: {reason}" for key, reason in problems]
        super().__init__("\n".join(lines))


class ServerError(FleetbusError):
    """The nats-server process could not be started, reached or stopped.

    ``log`` holds the server's own fatal log lines, when it printed any.
    """

    def __init__(self, message: str, log: str = "") -> None:
        self.log = log
        super().__init__(f"{message}\n  server said: {log}" if log else message)


class ServerNotFoundError(ServerError):
    """No nats-server binary: not in NATS_SERVER_BIN, beside Python, nor on PATH."""


class ConnectError(FleetbusError):
    """The NATS server at ``url`` cannot be reached."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"cannot connect to {url}: {reason}")


class JsErrorCode(enum.IntEnum):
    """The JetStream error codes (``err_code``) fleetbus acts on, by name."""

    CONSUMER_MAX_REACHED = 10026
    """The stream's ``max_consumers`` is reached."""
    CONSUMER_NOT_FOUND = 10014
    MESSAGE_TOO_LARGE = 10054
    """Over the stream's ``max_msg_size`` (the headers count)."""
    NO_MESSAGE_FOUND = 10037
    STREAM_NOT_FOUND = 10059
    WRONG_LAST_SEQUENCE = 10071
    """``Nats-Expected-Last-Subject-Sequence`` did not hold: someone wrote there first."""
    MAX_MSGS_PER_SUBJECT = 10077
    """A discard-new limit refused the message (a 503 that retrying does not cure)."""
    INSUFFICIENT_RESOURCES = 10023
    """The server's JetStream storage (file or memory) is full (a 503 that retrying soon
    does not cure either)."""
    CONSUMER_ALREADY_EXISTS = 10148
    ATOMIC_PUBLISH_DISABLED = 10174
    BATCH_DUPLICATE_MSG_ID = 10201
    BATCH_TOO_MANY_INFLIGHT = 10210


_FULL = frozenset({JsErrorCode.MAX_MSGS_PER_SUBJECT, JsErrorCode.INSUFFICIENT_RESOURCES})


_HINTS: dict[int, str] = {
    JsErrorCode.MESSAGE_TOO_LARGE: (
        ": the stream's max_msg_size counts the headers too, and a stream the fleet's agents"
        " read keeps room under the server's max_payload for a dead letter's headers"
        " (`fleetbus docs fleet-file`: max_msg_size)"
    ),
}
"""What to do about an error, where the server's words do not say."""


class JetStreamError(FleetbusError):
    """The JetStream API refused a request: ``code`` (HTTP-like), ``err_code`` (NATS's own)."""

    def __init__(self, subject: str, code: int, err_code: int, description: str) -> None:
        self.subject = subject
        self.code = code
        self.err_code = err_code
        self.description = description
        super().__init__(f"{description} (error {err_code}){_HINTS.get(err_code, '')}")

    @classmethod
    def from_reply(cls, subject: str, reply: Mapping[str, Any]) -> JetStreamError | None:
        """The error a JetStream reply (API answer or PubAck) carries, or None if it has none."""
        error = reply.get("error")
        if not error:
            return None
        return cls(
            subject,
            int(error.get("code", 0)),
            int(error.get("err_code", 0)),
            str(error.get("description", "unknown error")),
        )

    @property
    def transient(self) -> bool:
        """A 503 (no leader yet, a server on its way down) that the same request may cure;
        a discard-new limit and full storage answer 503 too, but retrying them soon does not
        help (it only held the sender, and an agent's outcome, for the retry budget)."""
        return self.code == 503 and self.err_code not in _FULL


class BatchPublishError(FleetbusError):
    """Some batches of a ``publish_many`` were not stored.

    ``failed`` holds one ``(start, stop, error)`` per batch that was refused or never sent:
    input positions ``start`` to ``stop - 1`` are **not** stored (an atomic batch is stored
    whole or not at all). ``stored`` holds the acknowledgements of everything that was
    (a ``PublishManyResult``; positions outside it are the failed ones).
    """

    def __init__(
        self, stored: PublishManyResult, failed: list[tuple[int, int, FleetbusError]]
    ) -> None:
        self.stored = stored
        self.failed = failed
        lines = [f"messages {a}..{b - 1} not stored: {err}" for a, b, err in failed]
        total = sum(b - a for a, b, _ in failed)
        super().__init__(f"publish_many: {total} message(s) not stored\n  " + "\n  ".join(lines))


class ProvisionError(FleetbusError):
    """The server refused to create or change a stream or consumer."""


class InvalidSubjectError(FleetbusError, ValueError):
    """A subject or subject token is not valid where it is used."""


class PayloadError(FleetbusError, ValueError):
    """A message body cannot be sent or was not a JSON object."""


class UnknownRoleError(FleetbusError, LookupError):
    """A role name that the fleet file does not declare."""

    def __init__(self, role: str, known: list[str]) -> None:
        self.role = role
        self.known = known
        super().__init__(f"unknown role {role!r}; the fleet declares: {', '.join(known)}")


class NoConsumerError(FleetbusError):
    """A send no consumer would read: an interest-retention stream would acknowledge it and
    keep nothing, so fleetbus refuses it before it is sent."""

    def __init__(self, role: str, kind: str, stream: str) -> None:
        self.role = role
        self.kind = kind
        super().__init__(
            f"role {role} has no {kind} consumer: {stream} keeps a message only for a consumer"
            f" that reads it, so this one would be dropped (give roles.{role} a {kind}"
            " consumer in the fleet file and run `fleetbus provision`)"
        )


class NoLiveAgent(FleetbusError):
    """``assign(..., require_live=True)``: no agent of the role is running."""

    def __init__(self, role: str) -> None:
        self.role = role
        super().__init__(
            f"no {role} agent is running (no live presence record): the task was not sent"
        )


class PermissionDenied(FleetbusError):
    """The server refused an operation for the connected identity."""


class AskError(FleetbusError):
    """A question (``Fleet.ask``) to ``role`` got no answer."""

    def __init__(self, role: str, message: str) -> None:
        self.role = role
        super().__init__(message)


class NoResponders(AskError):
    """No agent of the role is listening for requests (fast asks only)."""

    def __init__(self, role: str) -> None:
        super().__init__(
            role,
            f"no agent of role {role!r} answers requests right now"
            " (a durable ask waits for one to start)",
        )


class AskTimeout(AskError, TimeoutError):
    """No answer within the timeout; a late answer is discarded, never given to another ask."""

    def __init__(self, role: str, timeout: float) -> None:
        self.timeout = timeout
        super().__init__(role, f"{role} did not answer within {timeout:g}s")


class RemoteError(AskError):
    """The answering handler raised; ``error`` is its text."""

    def __init__(self, role: str, error: str) -> None:
        self.error = error
        super().__init__(role, f"{role} failed to answer: {error}")


class TaskError(FleetbusError):
    """A task failed for good: it was dead-lettered after its last attempt or rejected."""

    def __init__(self, task_id: str, attempt: int, error: str, reason: str = "") -> None:
        self.task_id = task_id
        self.attempt = attempt
        self.error = error
        self.reason = reason
        super().__init__(f"task {task_id} failed on attempt {attempt}: {error}")


class AmbiguousTask(FleetbusError):
    """Several tasks have this id (``tasks``: each one's role and assigner): say which. Task
    ids are the assigner's choice, and a role may write its own records under any id."""

    def __init__(self, task_id: str, tasks: list[tuple[str, str]]) -> None:
        self.task_id = task_id
        self.tasks = tasks
        named = ", ".join(f"{role} (from {assigner})" for role, assigner in tasks)
        super().__init__(
            f"{len(tasks)} tasks have the id {task_id}: {named}; say which one by its role"
            " (and, acting for its assigner, as that assigner)"
        )


class TaskTimeout(TaskError, TimeoutError):
    """The task did not complete within the caller's timeout (it may still complete later)."""

    def __init__(self, task_id: str, timeout: float) -> None:
        self.timeout = timeout
        FleetbusError.__init__(self, f"task {task_id} did not complete within {timeout:g}s")
        self.task_id = task_id
        self.attempt = 0
        self.error = "timeout"
        self.reason = "timeout"


class TaskCancelled(TaskError):
    """The task was cancelled (``handle.cancel``): before it ran, or while it ran."""

    def __init__(self, task_id: str, attempt: int, reason: str) -> None:
        FleetbusError.__init__(self, f"task {task_id} was cancelled: {reason or 'no reason given'}")
        self.task_id = task_id
        self.attempt = attempt
        self.error = "canceled"
        self.reason = reason


class TaskExpired(TaskError):
    """The task's deadline passed before it ran, or while it ran."""

    def __init__(self, task_id: str, attempt: int, reason: str) -> None:
        FleetbusError.__init__(self, f"task {task_id} expired: {reason}")
        self.task_id = task_id
        self.attempt = attempt
        self.error = "expired"
        self.reason = reason
