"""Which handlers an agent has, and which of its role's consumers they need.

``Routes`` is the registry behind the ``@agent.on_*`` decorators; ``plan`` checks it against
the fleet file (a handler for a consumer the role lacks, an event pattern its consumer does
not receive, observing without oversight) and says which consumers to bind.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel

from fleetbus.client.fleet import Observed
from fleetbus.errors import FleetbusError
from fleetbus.fleet import ConsumerKind, FleetSpec, ResolvedConsumer
from fleetbus.runtime.messages import Event, Message, Request, Task
from fleetbus.runtime.threads import in_thread
from fleetbus.wire.subjects import filter_within, subject_matches
from fleetbus.wire.updates import TaskUpdate

__all__ = [
    "BatchHandler",
    "EventHandler",
    "MessageHandler",
    "ObserveHandler",
    "RequestHandler",
    "Routes",
    "TaskHandler",
    "UpdateHandler",
    "invoke",
    "is_async",
]

TaskHandler = Callable[[Task], Awaitable[Any]]
MessageHandler = Callable[[Message], Awaitable[Any]]
EventHandler = Callable[[Event], Awaitable[Any]]
BatchHandler = Callable[[list[Event]], Awaitable[Any]]
ObserveHandler = Callable[[Observed], Awaitable[Any]]
UpdateHandler = Callable[[TaskUpdate], Awaitable[Any]]
RequestHandler = Callable[[Request], Awaitable[Any]]
H = TypeVar("H", bound=Callable[..., Awaitable[Any]])
T = TypeVar("T")


@dataclass(slots=True)
class Routes:
    """The handlers of one agent, as registered."""

    task: TaskHandler | None = None
    task_model: type[BaseModel] | None = None
    message: MessageHandler | None = None
    invitation: MessageHandler | None = None
    update: UpdateHandler | None = None
    request: RequestHandler | None = None
    events: list[tuple[str, EventHandler]] = field(default_factory=list)
    """(pattern relative to ``P.events``, handler), in registration order."""
    batches: list[tuple[str, BatchHandler, int]] = field(default_factory=list)
    """(pattern, handler, most events per call) of ``on_events``: lists of events."""
    observers: list[tuple[str, ObserveHandler]] = field(default_factory=list)
    _event_routes: list[tuple[str, EventHandler]] | None = None
    _by_subject: dict[str, list[EventHandler]] = field(default_factory=dict)

    def kinds(self) -> list[ConsumerKind]:
        """The consumer kinds these handlers need, in a fixed order."""
        wanted: list[ConsumerKind] = []
        if self.task is not None:
            wanted.append("tasks")
        if self.message is not None or self.request is not None:
            wanted.append("inbox")
        if self.invitation is not None:
            wanted.append("meetings")
        if self.events or self.batches:
            wanted.append("events")
        if self.update is not None:
            wanted.append("updates")
        return wanted

    def plan(self, spec: FleetSpec, role: str) -> list[ResolvedConsumer]:
        """The consumers to bind; a ``FleetbusError`` saying what to add to the fleet file
        when the role cannot serve these handlers."""
        wanted = self.kinds()
        if self.observers and not spec.role(role).oversight:
            raise FleetbusError(
                f"role {role} has no oversight: set roles.{role}.oversight: true"
                " to observe other roles' messages"
            )
        if not wanted and not self.observers:
            raise FleetbusError(f"agent {role} has no handlers: nothing to serve")
        if self.events and self.batches:
            raise FleetbusError(
                f"agent {role} has both on_event and on_events handlers: its events consumer"
                " delivers one way, so register one kind (on_events for lists)"
            )
        out: list[ResolvedConsumer] = []
        for kind in wanted:
            consumer = spec.consumer(role, kind)
            if consumer is None:
                raise FleetbusError(
                    f"role {role} has no {kind} consumer in the fleet file: add roles.{role}.{kind}"
                )
            out.append(consumer)
        events = spec.consumer(role, "events")
        patterns = [p for p, _ in self.events] + [p for p, _, _ in self.batches]
        for pattern in patterns:
            full = spec.subjects.events_filter(pattern)
            assert events is not None
            if not any(filter_within(full, f) or f == full for f in events.filters):
                raise FleetbusError(
                    f"role {role}'s events consumer does not receive {full} (its filters:"
                    f" {', '.join(events.filters)}); add {pattern!r} to"
                    f" roles.{role}.events.filters"
                )
        return out

    def event_handlers(self, spec: FleetSpec, subject: str) -> list[EventHandler]:
        """The event handlers whose pattern matches ``subject``, in registration order."""
        if self._event_routes is None:  # once, not per message
            self._event_routes = [(spec.subjects.events_filter(p), f) for p, f in self.events]
        found = self._by_subject.get(subject)
        if found is None:
            if len(self._by_subject) >= 4096:  # many distinct subjects: start over
                self._by_subject.clear()
            found = [func for full, func in self._event_routes if subject_matches(full, subject)]
            self._by_subject[subject] = found
        return found

    @property
    def batch_size(self) -> int:
        """The most events one ``on_events`` handler takes at once (0: none has)."""
        return max((size for _, _, size in self.batches), default=0)

    def batch_routes(self, spec: FleetSpec) -> list[tuple[str, BatchHandler, int]]:
        """The ``on_events`` handlers with their absolute filters."""
        return [(spec.subjects.events_filter(p), f, n) for p, f, n in self.batches]

    def summary(self) -> dict[str, Any]:
        """What these handlers serve, for the agent's presence record."""
        return {
            "tasks": self.task is not None,
            "inbox": self.message is not None,
            "requests": self.request is not None,
            "invitations": self.invitation is not None,
            "updates": self.update is not None,
            "events": [pattern for pattern, _ in self.events]
            + [pattern for pattern, _, _ in self.batches],
        }


_ASYNC: dict[Callable[..., Any], bool] = {}


def is_async(handler: Callable[..., Any]) -> bool:
    """Whether calling ``handler`` gives a coroutine: an ``async def``, or an object whose
    ``__call__`` is one (asked once per function, not per message)."""
    if not inspect.isfunction(handler) and not inspect.ismethod(handler):
        call = type(handler).__call__
        return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(call)
    found = _ASYNC.get(handler)
    if found is None:
        if len(_ASYNC) >= 1024:
            _ASYNC.clear()
        found = _ASYNC[handler] = inspect.iscoroutinefunction(handler)
    return found


async def invoke(handler: Callable[[Any], Any], arg: Any) -> Any:
    """Call a handler: an ``async def`` on the event loop, a plain ``def`` in a worker thread
    (so a blocking call does not stop heartbeats and every other handler)."""
    if is_async(handler):
        return await handler(arg)
    value = await in_thread(handler, arg)
    if inspect.isawaitable(value):
        value = await value
    return value
