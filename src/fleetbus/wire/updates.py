"""Task updates: the JSON object published on ``P.tasks.{task_id}.updates`` at each change.

    {"task_id": "task-001", "state": "completed", "agent": "backend", "attempt": 1,
     "time": "2026-05-10T14:30:00.123Z", "result": {...}}

States: ``accepted`` (a worker took it), ``progress`` (message, percent), ``completed``
(result), ``failed`` (error; ``retry_in`` seconds when it will be retried), ``dead_lettered``
(error, reason: no further attempts).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from fleetbus.errors import PayloadError
from fleetbus.wire.clock import now_iso
from fleetbus.wire.codec import decode, encode
from fleetbus.wire.headers import TASK_ID as TASK_ID_HEADER

__all__ = ["TERMINAL_STATES", "TaskState", "TaskUpdate", "task_id_of", "update_msg_id"]

TaskState = Literal["accepted", "progress", "completed", "failed", "dead_lettered"]
TERMINAL_STATES: frozenset[str] = frozenset({"completed", "dead_lettered"})
_STATES = ("accepted", "progress", "completed", "failed", "dead_lettered")


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskUpdate:
    task_id: str
    state: TaskState
    agent: str
    attempt: int
    time: str
    worker: str = ""
    result: Any = None
    error: str | None = None
    reason: str | None = None
    message: str | None = None
    percent: float | None = None
    data: dict[str, Any] | None = None
    retry_in: float | None = None

    @staticmethod
    def now() -> str:
        return now_iso()

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    def encode(self) -> bytes:
        return encode({k: v for k, v in asdict(self).items() if v is not None and v != ""})

    @classmethod
    def decode(cls, raw: bytes) -> TaskUpdate:
        body = decode(raw)
        state = body.get("state")
        if state not in _STATES:
            raise PayloadError(f"not a task update: state {state!r}")
        known = set(cls.__dataclass_fields__)
        try:
            return cls(**{k: v for k, v in body.items() if k in known})
        except TypeError as exc:
            raise PayloadError(f"not a task update: {exc}") from None


def task_id_of(headers: Mapping[str, str], body: Mapping[str, Any], role: str, seq: int) -> str:
    """A task's id: the ``Fleet-Task-Id`` header, else the body's ``task_id`` (a plain
    ``nats pub``), else ``{role}-{stream sequence}`` — stable across redeliveries."""
    value = headers.get(TASK_ID_HEADER) or body.get("task_id") or f"{role}-{seq}"
    return str(value)


def update_msg_id(task_id: str, state: str, attempt: int) -> str:
    """The dedupe id of an update: a redelivery repeating it is stored once."""
    return f"{task_id}-done" if state == "completed" else f"{task_id}-{state}-{attempt}"
