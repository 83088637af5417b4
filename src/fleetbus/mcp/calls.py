"""Every call the MCP server makes into fleetbus, in one place: ``FleetCalls``.

Each public method is the work of one tool or one resource: it checks what the fleet file
lets this identity do (``Reach``), calls ``Fleet`` (or the inbox, the status collector, the
dead-letter store) and returns plain JSON for the host. It raises ``FleetbusError``s;
``explain`` turns any of them into the one line a model reads as the tool's error.

Wiring a new fleetbus feature into the MCP server is one method here and one row in
``fleetbus.mcp.tools.TOOLS`` (whose ``needs`` names the ``Fleet`` method it calls, so the tool
is offered only by a fleetbus that has it).

One piece on purpose: keeping every call into fleetbus here means the rest of the package
never changes when fleetbus does, and each method is short.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

from nats.aio.msg import Msg

from fleetbus.client import Fleet, TaskHandle
from fleetbus.deadletters import DeadLetters
from fleetbus.errors import (
    AmbiguousTask,
    FleetbusError,
    InvalidSubjectError,
    JetStreamError,
    JsErrorCode,
    PayloadError,
    PermissionDenied,
    TaskError,
    TaskTimeout,
)
from fleetbus.fleet import FleetSpec
from fleetbus.js.api import JsApi
from fleetbus.js.connection import ConnectSettings
from fleetbus.mcp.inbox import HOLD, Inbox
from fleetbus.mcp.reach import ADMIN, Reach
from fleetbus.ops.status import collect, evaluate
from fleetbus.wire import headers as h
from fleetbus.wire.codec import decode, shown
from fleetbus.wire.subjects import validate_id
from fleetbus.wire.updates import TaskUpdate

__all__ = ["FleetCalls", "NotAllowed", "WaitTimeout", "explain"]

log = logging.getLogger("fleetbus.mcp")

REMEMBERED_TASKS = 1000
"""How many tasks assigned through this server it remembers (their assignee and deadline)."""
SHOWN = 4000
"""The most characters of one value a role wrote (a body, a result, a reason, a host name)
that a tool returns: a longer one is its JSON text, cut (``codec.shown``). What a role writes
is its to size, what reaches the host's model is not."""


class NotAllowed(FleetbusError):
    """The fleet file does not let this identity do that (checked before anything is sent)."""


class WaitTimeout(FleetbusError, TimeoutError):
    """A task did not finish within the wait; it may still finish later."""


@dataclass(frozen=True, slots=True)
class _Assigned:
    handle: TaskHandle
    deadline: float | None


class FleetCalls:
    """One identity's connection to the fleet, and what the MCP server does with it."""

    def __init__(self, fleet: Fleet, identity: str) -> None:
        self.fleet = fleet
        self.spec = fleet.spec
        self.identity = identity
        self.reach = Reach.of(fleet.spec, identity)
        self.inbox: Inbox | None = None
        self._assigned: dict[str, _Assigned] = {}

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls, spec: FleetSpec, settings: ConnectSettings, identity: str
    ) -> AsyncIterator[FleetCalls]:
        """Connect as ``identity`` (a role sends as itself; the admin as no role), bind the
        role's inbox consumer; on exit give back held inbox messages and drain."""
        Reach.of(spec, identity)  # an unknown role fails before connecting
        sender = None if identity == ADMIN else identity
        async with Fleet.connect(spec=spec, connection=settings, sender=sender) as fleet:
            calls = cls(fleet, identity)
            consumer = None if sender is None else spec.consumer(sender, "inbox")
            if consumer is not None:
                calls.inbox = Inbox(fleet.conn, consumer)
                await calls.inbox.open()
            try:
                yield calls
            finally:
                if calls.inbox is not None:
                    await calls.inbox.close()

    @staticmethod
    def provides(api: str) -> bool:
        """Whether this fleetbus's ``Fleet`` has the method ``api`` (a tool's capability)."""
        return callable(getattr(Fleet, api, None))

    # -- tasks ---------------------------------------------------------------------------

    async def assign(
        self, role: str, body: Mapping[str, Any], deadline: float | None
    ) -> dict[str, Any]:
        self._allowed(role, self.reach.tasks, "assign tasks to", "tasks")
        when = time.time() + deadline if deadline is not None else None
        handle = await self.fleet.assign(role, body, deadline=deadline)
        self._assigned[handle.id] = _Assigned(handle, when)
        while len(self._assigned) > REMEMBERED_TASKS:
            del self._assigned[next(iter(self._assigned))]
        out: dict[str, Any] = {"task_id": handle.id, "role": role, "state": "assigned"}
        if handle.duplicate:
            out["duplicate"] = True
            out["note"] = "this task id was assigned before (within the dedupe window): kept once"
        if when is not None:
            out["deadline"] = _iso(when)
        return out

    async def task(self, task_id: str, role: str | None) -> dict[str, Any]:
        assignee, assigner = await self._target(task_id, role)
        updates = await self.fleet.history(task_id, role=assignee, assigner=assigner, wait=0.5)
        return self._task_view(task_id, assignee, updates)

    async def wait(self, task_id: str, timeout: float, role: str | None) -> dict[str, Any]:
        assignee, assigner = await self._target(task_id, role)
        remembered = self._assigned.get(task_id)
        handle = (
            remembered.handle
            if remembered is not None and remembered.handle.role == assignee
            else self.fleet.task(task_id, assignee, assigner=assigner)
        )
        try:
            value = await handle.result(timeout=timeout)
        except TaskTimeout:
            view = await self.task(task_id, assignee)
            raise WaitTimeout(
                f"task {task_id} did not finish within {timeout:g}s (state now:"
                f" {_state_line(view)}); it may still finish: wait_task again, or get_task"
            ) from None
        except TaskError:
            outcome = await handle.outcome()
            return self._task_view(task_id, assignee, [outcome] if outcome else [])
        return {
            "task_id": task_id,
            "role": assignee,
            "state": "completed",
            "finished": True,
            "result": shown(value, SHOWN),
        }

    async def _target(self, task_id: str, role: str | None) -> tuple[str, str]:
        """Which task ``task_id`` is: the role it went to and who assigned it.

        A role acts on the tasks it assigned. The admin acts on anyone's, and ids are the
        assigner's choice while a role writes its own records and list entries under any id:
        so the task is the task list's entry of that id (of ``role``, when given), never
        whatever records happen to be stored under it; ``AmbiguousTask`` names each one
        when several tasks have the id."""
        validate_id(task_id)
        remembered = self._assigned.get(task_id)
        if remembered is not None and role in (None, remembered.handle.role):
            return remembered.handle.role, self.fleet.identity
        if role is not None:
            self.spec.role(role)
        if not self.reach.admin:
            if role is None:
                raise NotAllowed(
                    f"task {task_id} was not assigned through this server: pass role, the role"
                    " it was assigned to (a role reads the records of tasks it assigned, by"
                    " assignee)"
                )
            return role, self.fleet.identity
        entry = await self.fleet.find_task(task_id, role)
        if entry is not None:
            return entry.role, entry.assigner
        # Not listed (a fleet without the task list, an entry gone): its records say, if
        # they are of one task.
        records = await self.fleet.history(task_id, role=role, wait=0.5)
        tasks = sorted({(u.agent, u.assigner) for u in records})
        if len(tasks) > 1:
            raise AmbiguousTask(task_id, tasks)
        if not tasks:
            of = f" as a task of {role}" if role else ""
            raise NotAllowed(f"task {task_id} is not in the task list{of}, and has no records")
        return tasks[0]

    def _task_view(
        self, task_id: str, role: str | None, updates: list[TaskUpdate]
    ) -> dict[str, Any]:
        last = updates[-1] if updates else None
        view: dict[str, Any] = {
            "task_id": task_id,
            "role": role or (last.agent if last is not None else None),
        }
        remembered = self._assigned.get(task_id)
        if last is None:
            if remembered is not None:
                view["state"] = "assigned"
                view["note"] = "no agent of the role has taken it yet"
            else:
                view["state"] = "unknown"
                view["note"] = (
                    "no records: no agent has taken it yet, or it is not a task this identity"
                    " assigned to that role, or it is older than the TASKS stream keeps"
                )
        else:
            view.update(_update(last))
            view["finished"] = last.terminal
            view["updates"] = [_update(u) for u in updates]
        if remembered is not None and remembered.deadline is not None:
            view["deadline"] = _iso(remembered.deadline)
            view["overdue"] = not view.get("finished") and time.time() > remembered.deadline
        return view

    async def cancel(self, task_id: str, role: str | None, reason: str) -> dict[str, Any]:
        assignee, assigner = await self._target(task_id, role)
        if not self.reach.admin:
            self._allowed(assignee, self.reach.tasks, "cancel tasks of", "tasks")
        requested = await self.fleet.cancel(task_id, assignee, reason, assigner=assigner)
        return {
            "task_id": task_id,
            "role": assignee,
            "cancel_requested": requested,
            "note": "queued: it never runs; running: its handler is cancelled"
            if requested
            else "it had ended already: nothing changed",
        }

    async def respond(
        self, task_id: str, role: str | None, answer: Mapping[str, Any]
    ) -> dict[str, Any]:
        assignee, assigner = await self._target(task_id, role)
        await self.fleet.respond(task_id, assignee, answer, assigner=assigner)
        return {"task_id": task_id, "role": assignee, "answered": True}

    async def agents(self, role: str | None) -> dict[str, Any]:
        if self.reach.admin:
            return {"agents": [_fit(a.to_json()) for a in await self.fleet.agents(role)]}
        # A role reads the latest record of each role it sends to (no whole list).
        out = []
        for target in sorted(set(self.reach.tasks) | set(self.reach.messages)):
            if role is not None and target != role:
                continue
            latest = await self.fleet.presence.latest(target)
            out.append(
                {"role": target, "alive": bool(latest and latest.alive)}
                | ({"latest": _fit(latest.to_json())} if latest else {})
            )
        return {"roles": out}

    async def tasks(self, role: str | None, state: str | None, limit: int) -> dict[str, Any]:
        if self.reach.admin:
            found = await self.fleet.tasks(role=role, state=state, limit=limit)
            return {"tasks": [_fit(t.to_json()) for t in found]}
        # A role reads no task list (that takes a consumer): the tasks it assigned here.
        views = []
        for task_id, assignee in reversed(self.assigned_here()):
            if role is not None and assignee != role:
                continue
            view = await self.task(task_id, assignee)
            if state is None or state in (view.get("state"), view.get("a2a_state")):
                views.append({k: v for k, v in view.items() if k != "updates"})
            if len(views) >= limit:
                break
        return {
            "tasks": views,
            "note": "the tasks assigned through this server (a role sees no whole task list)",
        }

    def assigned_here(self) -> list[tuple[str, str]]:
        """``(task id, role)`` of the tasks assigned through this server, oldest first."""
        return [(task_id, a.handle.role) for task_id, a in self._assigned.items()]

    # -- messages, asks, events ----------------------------------------------------------

    async def message(self, role: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self._allowed(role, self.reach.messages, "message", "inbox")
        ack = await self.fleet.message(role, body)
        return {"role": role, "stored": True, "stream": ack.stream, "seq": ack.seq}

    async def ask(self, role: str, body: Mapping[str, Any], timeout: float) -> dict[str, Any]:
        self._allowed(role, self.reach.asks, "ask", None)
        answer = await self.fleet.ask(role, body, timeout=timeout)
        return {"role": role, "answer": answer}

    async def emit(self, domain: str, type_: str, body: Mapping[str, Any]) -> dict[str, Any]:
        subject = self.spec.subjects.event(domain, type_)
        if not self.reach.may_emit(subject):
            grants = ", ".join(self.reach.events) or "none"
            raise NotAllowed(
                f"{self.identity} may not publish {subject}: its publish grants in the fleet"
                f" file that reach events are: {grants}"
            )
        ack = await self.fleet.emit(domain, type_, body)
        return {"subject": subject, "stored": True, "stream": ack.stream, "seq": ack.seq}

    def _allowed(self, role: str, allowed: tuple[str, ...], verb: str, kind: str | None) -> None:
        target = self.spec.role(role)  # UnknownRoleError names the roles there are
        if role in allowed:
            return
        if kind is not None and getattr(target, kind) is None:
            reason = f"{role} has no {kind} consumer in the fleet file"
        elif self.reach.admin:
            reason = "not permitted"
        else:
            may = ", ".join(allowed) or "none"
            reason = f"{role} is not in {self.identity}'s send_to in the fleet file (it may: {may})"
        raise NotAllowed(f"{self.identity} may not {verb} {role}: {reason}")

    # -- the inbox -----------------------------------------------------------------------

    async def read_inbox(self, count: int, wait: float) -> dict[str, Any]:
        if self.inbox is None:
            raise NotAllowed(f"{self.identity} has no inbox consumer to read")
        acked, msgs = await self.inbox.read(min(count, self.reach.inbox_batch), wait)
        return {
            "acknowledged_previous": acked,
            "messages": [self._inbox_item(m) for m in msgs],
            "note": (
                "These stay unacknowledged until you call read_inbox again. If you do not"
                f" within {HOLD:g}s, or this server stops first, they are delivered again"
                " (attempt + 1)."
            ),
        }

    async def inbox_view(self) -> dict[str, Any]:
        if self.inbox is None:
            raise NotAllowed(f"{self.identity} has no inbox consumer")
        return {
            "consumer": self.inbox.consumer.name,
            **await self.inbox.pending(),
            "held": [self._inbox_item(m) for m in self.inbox.held],
        }

    def _inbox_item(self, msg: Msg) -> dict[str, Any]:
        headers = dict(msg.headers or {})
        meta = msg.metadata
        token = self.spec.subjects.sender_of(msg.subject)
        item: dict[str, Any] = {
            "id": meta.sequence.stream,
            "from": token or headers.get(h.SENDER),
            "from_verified": token is not None,
            "attempt": meta.num_delivered,
            "time": _timestamp(meta.timestamp),
        }
        try:
            item["body"] = shown(decode(msg.data), SHOWN)
        except PayloadError as exc:
            item["body"] = None
            item["undecodable"] = f"{exc}: {msg.data[:SHOWN].decode('utf-8', 'replace')}"
        if h.REPLY_TO in headers:
            item["kind"] = "question"
            item["note"] = (
                "a durable ask: its asker waits for an answer from an agent's on_request"
                " handler, which this server cannot give"
            )
        return item

    # -- the fleet -----------------------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        if self.reach.admin:
            snapshot = await collect(self.fleet.conn, self.spec, dead_letters_before=None)
            snapshot = replace(snapshot, alerts=evaluate(snapshot, self.spec.alerts))
            return snapshot.to_json()
        api = JsApi(self.fleet.conn)
        consumers: list[dict[str, Any]] = []
        for c in (c for c in self.spec.consumers() if c.role == self.identity):
            info = await api.consumer_info(c.stream, c.name) or {}
            consumers.append(
                {
                    "name": c.name,
                    "kind": c.kind,
                    "waiting": int(info.get("num_pending", 0)),
                    "unacknowledged": int(info.get("num_ack_pending", 0)),
                    "agents_polling": int(info.get("num_waiting", 0)),
                    "missing": not info,
                }
            )
        return {
            "identity": self.identity,
            "server": self.fleet.conn.settings.display_url if self.fleet.conn.settings else "",
            "consumers": consumers,
            "tasks_assigned_here": [{"task_id": t, "role": r} for t, r in self.assigned_here()],
            "note": (
                f"{self.identity} sees its own consumers; streams, other roles' backlogs"
                " and dead letters are the admin's to read"
            ),
        }

    def overview(self) -> dict[str, Any]:
        """The fleet file as a model needs it: the roles, what each does, and this
        identity's reach."""
        roles: dict[str, Any] = {}
        for name, role in self.spec.roles.items():
            roles[name] = {
                "description": role.description,
                "send_to": role.send_to,
                "publish": role.publish,
                "receives": [c.kind for c in self.spec.consumers() if c.role == name],
            }
        reach = asdict(self.reach)
        for internal in ("inbox_batch", "descriptions"):
            reach.pop(internal)
        return {"prefix": self.spec.prefix, "you": reach, "roles": roles}

    async def dead_letters(self, limit: int) -> dict[str, Any]:
        if not self.reach.dead_letters:
            raise NotAllowed("dead letters are the admin's to read")
        entries = await DeadLetters(self.fleet.conn, self.spec).list(limit=limit)
        return {
            "dead_letters": [
                _fit(
                    {
                        "id": e.id,
                        "consumer": e.consumer,
                        "subject": e.original_subject,
                        "deliveries": e.deliveries,
                        "reason": e.reason,
                        "error": e.error,
                        "time": e.time,
                        "body": _body(e.body),
                    }
                )
                for e in entries
            ]
        }


def explain(exc: BaseException) -> str:
    """The one line a model reads when a tool fails: what went wrong, and why."""
    if isinstance(exc, PermissionDenied):
        return (
            f"permission denied by the NATS server: {exc}. These credentials do not allow it,"
            " whatever the tool's arguments say"
        )
    if isinstance(exc, PayloadError):
        return f"bad body: {exc}"
    if isinstance(exc, InvalidSubjectError):
        return f"bad argument: {exc}"
    if isinstance(exc, JetStreamError) and exc.err_code == JsErrorCode.MAX_MSGS_PER_SUBJECT:
        return f"refused, the receiver's queue is full (it has not caught up): {exc}"
    if isinstance(exc, TimeoutError):
        return f"timeout: {exc}"
    if isinstance(exc, FleetbusError):
        return str(exc)
    return f"internal error: {type(exc).__name__}: {exc}"


def _update(u: TaskUpdate) -> dict[str, Any]:
    keep = ("state", "agent", "attempt", "time", "result", "error", "reason", "message")
    out = {k: getattr(u, k) for k in keep if getattr(u, k) not in (None, "")}
    for k in ("percent", "data", "retry_in"):
        if getattr(u, k) is not None:
            out[k] = getattr(u, k)
    return _fit(out)


def _fit(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record someone else wrote, each of its values at most ``SHOWN`` characters."""
    return {k: shown(v, SHOWN) for k, v in record.items()}


def _state_line(view: Mapping[str, Any]) -> str:
    parts = [str(view.get("state"))]
    if view.get("message"):
        parts.append(repr(view["message"]))
    if view.get("percent") is not None:
        parts.append(f"{view['percent']:g}%")
    return " ".join(parts)


def _iso(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat(timespec="seconds")


def _timestamp(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value or "")


def _body(raw: bytes) -> Any:
    try:
        return decode(raw)
    except PayloadError:
        text = raw[:SHOWN]
        try:
            return text.decode("utf-8")
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(text).decode()}
