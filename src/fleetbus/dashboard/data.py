"""Everything the dashboard reads from the fleet, or does to it, in one module: what the
library learns later (a live agent registry, a task list, cancelling a task) plugs in here
and nowhere else. The rest of the dashboard handles the plain values defined below.

What it reads, as the admin:

- **status**: ``ops.status.collect`` and ``evaluate``, what ``fleetbus status`` shows;
- **agents**: the fleet's presence records (``Fleet.agents``: every agent process with its
  host, pid, state and the tasks it holds), read with each status sample; a fleet without a
  presence stream falls back to what the task records say (each names the worker process,
  ``{role}-{8 hex}``, that wrote it);
- **tasks**: the last record of every task subject in the ``TASKS`` stream (a reader that
  starts from each subject's last message, then follows new ones), folded into a
  ``TaskIndex``: one row per task, its latest state. A task shows up with the first record
  an agent writes of it, ``accepted`` or (a quick task) its outcome (until then it is a
  message waiting on its role's consumer: the ``queued`` count);
- **dead letters**: ``deadletters.DeadLetters`` (list, show, replay, purge);
- **meetings and traffic**: core subscriptions, nothing stored, nothing consumed.

Task actions (``TASK_ACTIONS``) are what the task page offers as buttons: each is a name
and a coroutine over a ``Fleet`` and the task's row: ``cancel`` (``Fleet.cancel``) and
``respond`` (``Fleet.respond``, the answer to an input request).

One piece on purpose: every read of the fleet and every action on it live here, so that a
new source (a registry of agents, a task list from the library) replaces a function of this
module and touches nothing else of the dashboard.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict, TypeVar, Unpack

from nats.aio.msg import Msg

from fleetbus._backlog import Backlog
from fleetbus.client.fleet import Fleet
from fleetbus.client.meeting import MeetingMessage
from fleetbus.deadletters import DeadLetterEntry, DeadLetters
from fleetbus.errors import FleetbusError, InvalidSubjectError, PayloadError
from fleetbus.fleet import FleetSpec
from fleetbus.js.connection import Connection, unsubscribe
from fleetbus.js.reader import StreamReader
from fleetbus.ops.status import ConsumerStatus, FleetStatus, collect, evaluate
from fleetbus.presence import AgentInfo
from fleetbus.wire import headers as h
from fleetbus.wire.clock import format_iso, now_iso
from fleetbus.wire.codec import decode, fields_said, shown
from fleetbus.wire.subjects import Subjects, subjects_overlap
from fleetbus.wire.updates import A2A_STATE, TERMINAL_STATES, TaskUpdate

__all__ = [
    "TASK_ACTIONS",
    "AgentRow",
    "FleetData",
    "MeetingLine",
    "RoleRow",
    "TaskFilters",
    "TaskIndex",
    "TaskRow",
    "TrafficLine",
    "update_json",
]

WORKER_SEEN = timedelta(minutes=15)
"""A worker process counts as an agent while it has an unfinished task, or wrote a task
record this recently."""

TASKS_KEPT = 50_000
"""The most tasks the index holds; past it the least recently updated ones are dropped."""

BODY_SHOWN = 4096
"""The most characters of a message body the traffic tail carries."""

BACKLOG = 10_000
"""The most live messages (meetings, traffic) held for a reader that has not taken them."""
BACKLOG_BYTES = 64 * 1024 * 1024
"""And the most bytes of them: any role may say lines of a megabyte (10,000 of them held
would be ten gigabytes)."""

_T = TypeVar("_T")
OnRecord = Callable[[str, bytes, int, str], None]
"""Takes a stored message: its subject, data, stream sequence and stored time."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskRow:
    """One task as its latest record says (``A`` assigned it to ``role``)."""

    task_id: str
    role: str
    assigner: str
    state: str
    attempt: int
    worker: str
    time: str
    """When the server stored the record this row is from (not the time the record claims:
    its writer chose that)."""
    seq: int
    """The stream sequence of the record this row is from."""
    percent: float | None = None
    message: str | None = None
    error: str | None = None

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.task_id, self.assigner, self.role)

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "terminal": self.terminal}


class TaskFilters(TypedDict, total=False):
    """Which tasks a list shows: the role they went to, their state (``active``: not
    ended), part of their id; at most ``limit`` (200)."""

    role: str | None
    state: str | None
    text: str | None
    limit: int


class TaskIndex:
    """The latest state of every task, folded from task records in stream order."""

    def __init__(self, subjects: Subjects, *, limit: int = TASKS_KEPT) -> None:
        self.subjects = subjects
        self.limit = limit
        self.rows: dict[tuple[str, str, str], TaskRow] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def clear(self) -> None:
        self.rows.clear()

    def apply(self, subject: str, data: bytes, seq: int, stored: str) -> TaskRow | None:
        """Fold one stored record in (its stream sequence, the time it was stored); the
        task's row when it changed.

        Read straight from the JSON (the index folds every task's record at start: tens of
        thousands), with ``TaskUpdate.decode``'s checks: a known state, an int attempt."""
        parts = self.subjects.parse_task(subject)
        if parts is None or parts.kind not in ("updates", "outcome"):
            return None
        try:
            body = decode(data)
        except PayloadError:
            return None  # not a record: whoever wrote it, it says nothing
        state, attempt = body.get("state"), body.get("attempt")
        if state not in A2A_STATE or type(attempt) is not int:
            return None
        key = (parts.task_id, parts.assigner, parts.assignee)
        before = self.rows.get(key)
        terminal = state in TERMINAL_STATES
        if before is not None and (
            seq <= before.seq
            # after the outcome only a new attempt (a replayed task) reopens it: a late
            # update of an attempt that lost its lease does not
            or (before.terminal and parts.kind == "updates" and state != "accepted")
        ):
            return None
        if state == "progress":
            percent, message = _number(body.get("percent")), _text(body.get("message"))
        elif before is not None and not terminal and state != "accepted":
            percent, message = before.percent, before.message
        else:
            percent, message = None, None
        row = TaskRow(
            task_id=parts.task_id,
            role=parts.assignee,
            assigner=parts.assigner,
            state=str(state),
            attempt=attempt,
            worker=_text(body.get("worker")) or (before.worker if before else ""),
            time=stored,
            seq=seq,
            percent=percent,
            message=message,
            error=_text(body.get("error")),
        )
        self.rows[key] = row
        if len(self.rows) > self.limit * 1.1:
            self._trim()
        return row

    def _trim(self) -> None:
        newest = sorted(self.rows.values(), key=lambda r: r.seq, reverse=True)[: self.limit]
        self.rows = {r.key: r for r in newest}

    def counts(self) -> dict[str, int]:
        return dict(Counter(r.state for r in self.rows.values()))

    def select(self, **filters: Unpack[TaskFilters]) -> tuple[list[TaskRow], int]:
        """The most recently updated tasks matching ``role``, ``state`` (``active``: not
        ended) and ``text`` (part of the id), and how many match in all."""
        role, state, text = filters.get("role"), filters.get("state"), filters.get("text")
        found = [
            r
            for r in self.rows.values()
            if _matches(r, role, state) and (not text or text in r.task_id)
        ]
        found.sort(key=lambda r: r.seq, reverse=True)  # the order they were stored in
        return found[: filters.get("limit", 200)], len(found)

    def of_task(self, task_id: str) -> list[TaskRow]:
        return [r for r in self.rows.values() if r.task_id == task_id]


def _shallow(row: Any) -> dict[str, Any]:
    """A dataclass's fields, one level deep."""
    return {f.name: getattr(row, f.name) for f in dataclasses.fields(row)}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _matches(row: TaskRow, role: str | None, state: str | None) -> bool:
    if role and row.role != role:
        return False
    if state == "active":
        return not row.terminal
    return not state or row.state == state


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentRow:
    """One agent process. Until the fleet has a live registry, what the task records say:
    ``worker`` wrote them, ``last_seen`` is its latest record's time, ``tasks`` the ones it
    has not finished. ``host``, ``pid`` and ``started`` come with the registry."""

    role: str
    worker: str
    state: str
    """``working`` (an unfinished task), else ``seen`` (a record within WORKER_SEEN)."""
    last_seen: str
    tasks: tuple[TaskRow, ...] = ()
    host: str = ""
    pid: int | None = None
    started: str = ""

    def to_json(self) -> dict[str, Any]:
        return _shallow(self) | {"tasks": [t.to_json() for t in self.tasks]}


@dataclass(frozen=True, slots=True, kw_only=True)
class RoleRow:
    """A role of the fleet file: its consumers, and the agents known to serve it."""

    role: str
    state: str
    """``missing`` (a consumer is not provisioned), ``working`` (messages being worked on),
    ``polling`` (an agent waits for work), or ``idle`` (no agent of the role is running)."""
    pending: int
    ack_pending: int
    last_active: str
    consumers: tuple[ConsumerStatus, ...]
    agents: tuple[AgentRow, ...] = ()

    @property
    def serving(self) -> bool:
        return self.state in ("working", "polling")

    def to_json(self) -> dict[str, Any]:
        return _shallow(self) | {
            "serving": self.serving,
            "consumers": [
                {"name": c.name, "pending": c.pending, "ack_pending": c.ack_pending}
                for c in self.consumers
            ],
            "agents": [a.to_json() for a in self.agents],
        }


def role_state(consumers: Iterable[ConsumerStatus]) -> str:
    found = list(consumers)
    if any(c.missing for c in found):
        return "missing"
    if any(c.ack_pending for c in found):
        return "working"
    if any(c.waiting for c in found):
        return "polling"
    return "idle"


@dataclass(frozen=True, slots=True, kw_only=True)
class MeetingLine:
    """One thing said in a meeting, as the dashboard heard it."""

    meeting_id: str
    message: MeetingMessage

    def to_json(self) -> dict[str, Any]:
        """What the pages show (and the live view keeps, 500 lines of 100 meetings): content
        longer than ``BODY_SHOWN`` characters as JSON is kept as that text, cut."""
        m = self.message
        return {
            "meeting_id": self.meeting_id,
            "sender": m.sender,
            "verified": m.sender_verified,
            "type": m.type,
            "content": shown(m.content, BODY_SHOWN),
            "notice": m.notice,
            "time": m.time,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class TrafficLine:
    """One message seen on the wire (not consumed)."""

    subject: str
    sender: str
    verified: bool
    headers: Mapping[str, str]
    body: str
    """The body as text (undecodable bytes replaced), cut at ``BODY_SHOWN`` characters."""
    time: str

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"headers": dict(self.headers)}


TaskAction = Callable[[Fleet, TaskRow, Mapping[str, Any]], Awaitable[Any]]


async def _cancel(fleet: Fleet, row: TaskRow, body: Mapping[str, Any]) -> Any:
    reason = str(body.get("reason") or "cancelled from the dashboard")
    return await fleet.cancel(row.task_id, row.role, reason, assigner=row.assigner)


async def _respond(fleet: Fleet, row: TaskRow, body: Mapping[str, Any]) -> Any:
    text = str(body.get("text") or "")
    try:
        answer = decode(text.encode())  # a JSON object as written, else the text itself
    except PayloadError:
        answer = {"text": text}
    await fleet.respond(row.task_id, row.role, answer, assigner=row.assigner)
    return True


TASK_ACTIONS: dict[str, TaskAction] = {"cancel": _cancel, "respond": _respond}
"""The task page's buttons: a name and what it does to the task (the ``Fleet`` is the
admin's; ``body`` has the fields of the action's ``<template id="action-NAME">`` in
``task.html``, if it has one). Each one appears on the page of every unfinished task."""


class FleetData:
    """The fleet as the dashboard sees it, over the admin's connection."""

    def __init__(self, conn: Connection, spec: FleetSpec) -> None:
        self.conn = conn
        self.spec = spec
        self.subjects = spec.subjects
        self.fleet = Fleet.attach(conn, spec)
        self._dead_letters = DeadLetters(conn, spec) if spec.dead_letter_stream else None
        self.live_agents: list[AgentInfo] | None = None
        """The presence records as of the last status sample (None: no presence)."""

    # -- status and agents ----------------------------------------------------------------

    async def status(self, *, dead_letters_before: int | None) -> FleetStatus:
        """``fleetbus status``'s snapshot, its alerts evaluated; the agents' presence
        records are read with it (``roles`` shows them)."""
        snapshot = await collect(self.conn, self.spec, dead_letters_before=dead_letters_before)
        if self.fleet.presence.stream:
            try:
                self.live_agents = await self.fleet.agents()
            except FleetbusError:
                self.live_agents = None
        return dataclasses.replace(snapshot, alerts=evaluate(snapshot, self.spec.alerts))

    def roles(
        self, status: FleetStatus, index: TaskIndex, *, now: datetime | None = None
    ) -> list[RoleRow]:
        """Every role with its consumers and the agents that serve it. The agents are
        derived from task records until the fleet keeps a live registry of them."""
        by_role: dict[str, list[ConsumerStatus]] = {role: [] for role in self.spec.roles}
        for c in status.consumers:
            if c.role:  # the dead-letter copier's consumer is the fleet's, no role's
                by_role.setdefault(c.role, []).append(c)
        cutoff = format_iso((now or datetime.now(UTC)) - WORKER_SEEN)
        workers: dict[tuple[str, str], list[TaskRow]] = {}
        seen: dict[tuple[str, str], str] = {}
        for row in index.rows.values():
            if not row.worker or (row.terminal and row.time < cutoff):
                continue
            key = (row.role, row.worker)
            seen[key] = max(seen.get(key, ""), row.time)
            if not row.terminal:
                workers.setdefault(key, []).append(row)
        agents: dict[str, list[AgentRow]] = {}
        if self.live_agents is not None:  # presence: every process, whether or not it worked
            seen = {}
            for info in self.live_agents:
                held = tuple(
                    index.rows.get((t.task_id, t.assigner, info.role))
                    or TaskRow(
                        task_id=t.task_id,
                        role=info.role,
                        assigner=t.assigner,
                        state="accepted",
                        attempt=t.attempt,
                        worker=info.instance,
                        time=t.since,
                        seq=0,
                    )
                    for t in info.tasks
                )
                agents.setdefault(info.role, []).append(
                    AgentRow(
                        role=info.role,
                        worker=info.instance,
                        state="working" if held and info.state == "running" else info.state,
                        last_seen=info.renewed,
                        tasks=held,
                        host=info.host,
                        pid=info.pid,
                        started=info.started,
                    )
                )
        for (role, worker), last in sorted(seen.items()):
            tasks = tuple(sorted(workers.get((role, worker), []), key=lambda r: r.time))
            agents.setdefault(role, []).append(
                AgentRow(
                    role=role,
                    worker=worker,
                    state="working" if tasks else "seen",
                    last_seen=last,
                    tasks=tasks,
                )
            )
        return [
            RoleRow(
                role=role,
                state=role_state(consumers),
                pending=sum(c.pending for c in consumers),
                ack_pending=sum(c.ack_pending for c in consumers),
                last_active=max((c.last_active for c in consumers), default=""),
                consumers=tuple(consumers),
                agents=tuple(agents.get(role, ())),
            )
            for role, consumers in by_role.items()
        ]

    def queued(self, status: FleetStatus) -> int:
        """Tasks stored and not yet delivered to an agent: every tasks consumer's backlog."""
        tasks = {(c.stream, c.name) for c in self.spec.consumers() if c.kind == "tasks"}
        return sum(c.pending for c in status.consumers if (c.stream, c.name) in tasks)

    # -- tasks ----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def task_records(self, on_record: OnRecord) -> AsyncIterator[int]:
        """Every task subject's last stored record, then new records as they are stored,
        each passed to ``on_record(subject, data, stream sequence, stored time)``; gives how
        many stored records come first (some may be passed before it is known)."""

        async def deliver(msg: Msg) -> None:
            meta = msg.metadata
            on_record(msg.subject, msg.data, meta.sequence.stream, format_iso(meta.timestamp))

        async with StreamReader(
            self.conn,
            self.fleet.records.stream,
            f"{self.spec.prefix}.tasks.>",
            deliver="last_per_subject",
            on_message=deliver,
        ) as reader:
            yield reader.pending

    async def task_history(self, task_id: str) -> list[TaskUpdate]:
        """Every stored update and outcome of ``task_id``, in order."""
        return await self.fleet.records.stored(task_id, wait=1.0)

    def task_actions(self, row: TaskRow) -> list[str]:
        return [] if row.terminal else sorted(TASK_ACTIONS)

    async def task_action(self, name: str, row: TaskRow, body: Mapping[str, Any]) -> Any:
        action = TASK_ACTIONS.get(name)
        if action is None or row.terminal:
            raise FleetbusError(f"task {row.task_id}: no action {name!r} now")
        return await action(self.fleet, row, body)

    # -- dead letters ---------------------------------------------------------------------

    @property
    def dead_letters(self) -> DeadLetters:
        if self._dead_letters is None:
            raise FleetbusError("the fleet has no dead-letter stream (a stream with dead_letters)")
        return self._dead_letters

    async def dead_letter_list(self, *, limit: int = 1000) -> list[DeadLetterEntry]:
        if self._dead_letters is None:
            return []
        return await self._dead_letters.list(limit=limit)

    async def dead_letter(self, dead_letter_id: int) -> DeadLetterEntry:
        return await self.dead_letters.get(dead_letter_id)

    async def replay(self, dead_letter_id: int) -> tuple[str, int]:
        """Send a dead letter back to its consumer: the subject it went to, its sequence."""
        subject, ack = await self.dead_letters.replay(dead_letter_id)
        return subject, ack.seq

    async def purge_dead_letters(self) -> int:
        return await self.dead_letters.purge()

    # -- live traffic ---------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def meetings(self) -> AsyncIterator[AsyncIterator[MeetingLine]]:
        """Everything said in every meeting from now on (meetings are not stored)."""
        room = f"{self.spec.prefix}.meetings"

        def line(msg: Msg) -> MeetingLine | None:
            meeting_id = msg.subject[len(room) + 1 :].split(".")[0]
            said = MeetingMessage.parse(self.subjects, msg.subject, msg.data, msg.headers or {})
            return None if said is None else MeetingLine(meeting_id=meeting_id, message=said)

        async with self._listen([f"{room}.*", f"{room}.*.*"], line) as lines:
            yield lines

    def tail_filters(self, pattern: str) -> list[str]:
        """The subscriptions that show ``pattern``'s traffic; ``InvalidSubjectError`` for a
        bad pattern or one that reaches fast asks (a subscriber there would answer for the
        agents: asks to a role with no agent would wait for their timeout instead of failing
        at once; ``fleetbus tail 'rpc.>'`` shows them)."""
        filters = self.subjects.tail_filters(pattern)
        if any(subjects_overlap(f, f"{self.spec.prefix}.rpc.>") for f in filters):
            raise InvalidSubjectError(
                "the dashboard does not tail fast asks (rpc): a subscriber there counts as a"
                " responder; use `fleetbus tail 'rpc.>'`"
            )
        return filters

    @contextlib.asynccontextmanager
    async def tail(self, pattern: str) -> AsyncIterator[AsyncIterator[TrafficLine]]:
        """Every message published on ``pattern`` from now on, consumed by nobody."""
        filters = self.tail_filters(pattern)

        def line(msg: Msg) -> TrafficLine:
            headers = dict(msg.headers or {})
            token = self.subjects.sender_of(msg.subject)
            return TrafficLine(
                subject=msg.subject,
                sender=token or headers.get(h.SENDER, ""),
                verified=token is not None,
                headers=headers,
                body=msg.data[: BODY_SHOWN * 4].decode("utf-8", "replace")[:BODY_SHOWN],
                time=now_iso(),
            )

        async with self._listen(filters, line) as lines:
            yield lines

    @contextlib.asynccontextmanager
    async def _listen(
        self, subjects: list[str], parse: Callable[[Msg], _T | None]
    ) -> AsyncIterator[AsyncIterator[_T]]:
        """Core subscriptions on ``subjects``, their messages parsed, in arrival order (not
        what a role had the server send there: ``Subjects.heard_as_sent``). A reader that
        falls behind by ``BACKLOG`` messages, or ``BACKLOG_BYTES``, loses the oldest."""
        nc = self.conn.nc
        backlog: Backlog[Msg] = Backlog(BACKLOG, BACKLOG_BYTES)

        async def put(msg: Msg) -> None:
            if self.spec.subjects.heard_as_sent(msg.subject, msg.headers, subjects):
                backlog.put(msg, len(msg.data))

        async def items() -> AsyncIterator[_T]:
            while True:
                item = parse(await backlog.get())
                if item is not None:
                    yield item

        subs = [await nc.subscribe(s, cb=put) for s in subjects]
        try:
            await self.conn.flush()  # the server has the subscriptions: nothing said is missed
            yield items()
        finally:
            await unsubscribe(*subs)


def update_json(update: TaskUpdate) -> dict[str, Any]:
    """A task update as the pages get it: the fields it has."""
    return fields_said(update, (f.name for f in dataclasses.fields(update)))
