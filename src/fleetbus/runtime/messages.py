"""What handlers receive, and how they steer the outcome by raising.

A handler gets a ``Task``, a ``Message`` or an ``Event``: the body (the sender's JSON object,
as-is), the headers, ids and attempt. Returning acknowledges it. Raising ``Retry`` asks for
another attempt after a delay; raising ``Reject`` dead-letters it at once (a poison message:
retrying cannot help). Any other exception is retried with a growing delay until the
consumer's ``max_deliver``, then dead-lettered with the error text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

__all__ = ["Event", "Message", "Reject", "Request", "Retry", "Task", "TaskWork"]


class Reject(Exception):
    """Raise in a handler to dead-letter the message now, with ``reason``. No retry."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class Retry(Exception):
    """Raise in a handler to try again after ``delay`` seconds (counts as an attempt)."""

    def __init__(self, delay: float | None = None, reason: str = "retry requested") -> None:
        self.delay = delay
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """A direct message from a role's inbox (``P.agents.{role}.inbox``)."""

    body: dict[str, Any]
    headers: Mapping[str, str]
    subject: str
    sender: str | None
    """The sending role when a fleetbus client sent it; None for plain NATS publishers."""
    sender_verified: bool = False
    """True when ``sender`` is the subject's sender token (``P.agents.{role}.{kind}.{from}``),
    which the server lets only that role publish with auth on. False when it came from the
    ``Fleet-Sender`` header, which any publisher can write: treat it as a claim."""
    attempt: int
    """1 on first delivery, 2 on the first redelivery, ..."""
    stream_seq: int
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True, slots=True, kw_only=True)
class Event(Message):
    """An event (``P.events.{domain}.{type}``) delivered to this role's events consumer."""

    domain: str
    type: str


class TaskWork(Protocol):
    """What a running task can do beyond its fields (the runtime provides it)."""

    async def progress(
        self, message: str, percent: float | None, data: Mapping[str, Any] | None
    ) -> None: ...

    def progress_threadsafe(
        self, message: str, percent: float | None, data: Mapping[str, Any] | None
    ) -> None: ...

    @property
    def cancelled(self) -> bool: ...

    async def step(
        self, name: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any: ...

    async def request_input(self, question: Mapping[str, Any], timeout: float | None) -> Any: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Task(Message):
    """A task assignment. ``id`` is stable across redeliveries: use it for idempotency."""

    id: str
    assigner: str = "admin"
    """Who assigned it: the sending role (when ``sender_verified``), else ``admin``."""
    deadline: float | None = None
    """Unix time past which the task is cancelled (``expired``); None without one."""
    _work: TaskWork = field(repr=False, compare=False)

    @property
    def cancelled(self) -> bool:
        """True once a cancel request reached the task. A coroutine handler is cancelled
        outright (``asyncio.CancelledError``, its ``finally`` blocks run); a plain ``def``
        handler, which cannot be interrupted, should check this in long stretches."""
        return self._work.cancelled

    async def step(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` once per task and ``name``: its result (JSON) is stored,
        and a later attempt of this task (after a crash, a retry) gets it back without
        calling ``fn`` — a model call already paid for is not paid again. ``fn`` may be async
        or a plain function (run in a thread)."""
        return await self._work.step(name, fn, args, kwargs)

    async def request_input(
        self, question: Mapping[str, Any], *, timeout: float | None = None
    ) -> Any:
        """Ask the assigner (state ``input-required``, with ``question``) and wait for the
        answer (``handle.respond``; ``fleetbus task respond``). The answer is stored: an
        attempt that reaches this same request after a restart gets it without asking again.
        ``TimeoutError`` after ``timeout`` seconds (the attempt then fails and is retried,
        asking again). Heartbeats go on while it waits; the role's ``task_budget`` still
        bounds the handler."""
        return await self._work.request_input(question, timeout)

    async def progress(
        self, message: str, *, percent: float | None = None, data: Mapping[str, Any] | None = None
    ) -> None:
        """Publish a progress update on the task's updates subject (also a heartbeat)."""
        await self._work.progress(message, percent, data)

    def progress_sync(
        self, message: str, *, percent: float | None = None, data: Mapping[str, Any] | None = None
    ) -> None:
        """``progress`` for a plain ``def`` handler (it runs in a worker thread): returns once
        the update is stored."""
        self._work.progress_threadsafe(message, percent, data)


@dataclass(frozen=True, slots=True, kw_only=True)
class Request(Message):
    """A question from ``Fleet.ask``; the handler's return value is the answer.

    ``durable`` asks were stored in the inbox (``stream_seq`` > 0) and may arrive after the
    agent restarted; fast asks came over core NATS (``stream_seq`` 0, ``attempt`` 1)."""

    durable: bool
    deadline: float | None = None
    """Unix time after which the asker no longer waits (durable asks)."""
