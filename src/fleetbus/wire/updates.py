"""Task updates: the JSON object stored at each change of a task.

    {"task_id": "task-001", "state": "completed", "agent": "backend", "assigner": "cto",
     "attempt": 1, "time": "2026-05-10T14:30:00.123Z", "result": {...}}

Where it is stored says who wrote it (``wire.subjects``): state changes on
``P.tasks.{id}.updates.{assigner}.{agent}``, the one terminal record on
``P.tasks.{id}.outcome.{assigner}.{agent}``. A reader takes ``agent`` and ``assigner`` from the
subject, never from the body.

States (and the A2A task state each one is, for ``TaskSummary`` and docs/wire-contract.md):

- ``accepted``: an agent took it (attempt n) — A2A ``working``;
- ``progress``: a step, with ``message`` and ``percent`` — ``working``;
- ``failed``: an attempt failed; ``retry_in`` says when the next one starts — ``working``;
- ``input-required``: the handler asked a question (``data``, ``request``) — ``input-required``;
- terminal, each an outcome: ``completed`` (``result``), ``dead_lettered`` (no attempt left:
  ``error``, ``reason``) — ``failed``; ``rejected`` (the handler refused it) — ``rejected``;
  ``canceled`` — ``canceled``; ``expired`` (past its deadline) — ``expired``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from fleetbus.errors import PayloadError
from fleetbus.wire.clock import now_iso
from fleetbus.wire.codec import decode, encode, fields_said, mistyped
from fleetbus.wire.headers import TASK_ID as TASK_ID_HEADER

__all__ = [
    "A2A_STATE",
    "TERMINAL_STATES",
    "TEXT_LIMIT",
    "TaskState",
    "TaskUpdate",
    "bounded",
    "task_id_of",
]

TaskState = Literal[
    "accepted",
    "progress",
    "failed",
    "input-required",
    "completed",
    "dead_lettered",
    "rejected",
    "canceled",
    "expired",
]
_STATES: tuple[str, ...] = TaskState.__args__  # type: ignore[attr-defined]
TERMINAL_STATES: frozenset[str] = frozenset(
    {"completed", "dead_lettered", "rejected", "canceled", "expired"}
)
A2A_STATE: Mapping[str, str] = {
    "accepted": "working",
    "progress": "working",
    "failed": "working",
    "input-required": "input-required",
    "completed": "completed",
    "dead_lettered": "failed",
    "rejected": "rejected",
    "canceled": "canceled",
    "expired": "expired",
}
"""Each update state as the A2A task state it is (``expired`` is fleetbus's own)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskUpdate:
    task_id: str
    state: TaskState
    agent: str
    """The role working the task (from the record's subject when read)."""
    attempt: int
    time: str
    assigner: str = ""
    """Who assigned it: a role, or ``admin`` (from the record's subject when read)."""
    worker: str = ""
    result: Any = None
    error: str | None = None
    reason: str | None = None
    message: str | None = None
    percent: float | None = None
    data: dict[str, Any] | None = None
    retry_in: float | None = None
    request: str | None = None
    """The input request an ``input-required`` update asks (its answer is keyed by it)."""
    traceback: str | None = None
    """The handler's traceback, trimmed, on a failed attempt or a dead letter."""

    @staticmethod
    def now() -> str:
        return now_iso()

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def a2a_state(self) -> str:
        return A2A_STATE[self.state]

    def encode(self) -> bytes:
        return encode(fields_said(self, _UPDATE_FIELDS))

    def written_by(self, assigner: str, agent: str) -> TaskUpdate:
        """This update with the identities its subject vouches for (the body's are claims)."""
        if self.assigner == assigner and self.agent == agent:
            return self  # the usual case: the claims are the subject's (frozen: shared)
        return replace(self, assigner=assigner, agent=agent)

    @classmethod
    def decode(cls, raw: bytes) -> TaskUpdate:
        body = decode(raw)
        state = body.get("state")
        if state not in _STATES:
            raise PayloadError(f"not a task update: state {state!r}")
        try:
            update = cls(**{k: v for k, v in body.items() if k in _UPDATE_FIELD_SET})
        except TypeError as exc:
            raise PayloadError(f"not a task update: {exc}") from None
        wrong = mistyped(body, _FIELD_TYPES)
        if wrong is not None:
            raise PayloadError(f"not a task update: {wrong} is a {type(body[wrong]).__name__}")
        if type(update.attempt) is not int:
            raise PayloadError("not a task update: attempt is not an integer")
        return update


_UPDATE_FIELDS = tuple(TaskUpdate.__dataclass_fields__)
_UPDATE_FIELD_SET = frozenset(_UPDATE_FIELDS)
_TEXT: tuple[type, ...] = (str,)
_OPTIONAL_TEXT: tuple[type, ...] = (str, type(None))
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    **dict.fromkeys(("task_id", "agent", "time", "assigner", "worker"), _TEXT),
    **dict.fromkeys(("error", "reason", "message", "request", "traceback"), _OPTIONAL_TEXT),
    "percent": (int, float, type(None)),
    "retry_in": (int, float, type(None)),
    "data": (dict, type(None)),
}
"""What each field of a record must be when it is there (``result`` is any JSON): a record is
anyone's JSON until checked, and its readers (agents, ``result()``, the admin's tools) take
its fields as these types (``codec.typed``: a bool is not a number here)."""


TEXT_LIMIT = 4000
"""The most characters of an error or a reason a task's records keep (the start of it): the
text is anyone's (an exception that quotes the task's body), and a record too large to store
would leave the task without its outcome."""


def bounded(text: str) -> str:
    """``text``, or its first ``TEXT_LIMIT`` characters and an ellipsis."""
    return text if len(text) <= TEXT_LIMIT else text[:TEXT_LIMIT] + "..."


def task_id_of(headers: Mapping[str, str], body: Mapping[str, Any], role: str, seq: int) -> str:
    """A task's id: the ``Fleet-Task-Id`` header, else the body's ``task_id`` (a plain
    ``nats pub``), else ``{role}-{stream sequence}`` — stable across redeliveries."""
    value = headers.get(TASK_ID_HEADER) or body.get("task_id") or f"{role}-{seq}"
    return str(value)
