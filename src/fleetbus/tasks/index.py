"""The task list: one entry per task with its latest state, for ``fleetbus tasks`` and the
dashboard.

Each task has one subject in the index stream (the seed's ``TASK_INDEX``, one message kept
per subject), ``P.index.{assignee}.{assigner}.{id}``: the assigner writes ``submitted`` for a
task the stream has stored and that is still waiting ``SUBMITTED_AFTER`` later with no news of
an agent (at once when no agent of the role is alive, and when the assigner closes; kept only
as the task's first entry: the assignee's agents may have written theirs by then), and the
agents write each state change over it. A task an agent takes or ends sooner is listed by the
agent's entry alone: most tasks cost one write, not two. So listing
every task is reading the last message of each subject, filtered by role on the server; a
window in time (``since``) reads only what was written in it.

The index is a view, written without waiting for the stream's acknowledgement (a lost entry
costs a line in a list, never a task): the task's records in ``TASKS`` are the truth, and
``fleetbus task ID`` reads those. Reading the whole list takes a consumer: the admin's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from nats.aio.msg import Msg

from fleetbus.errors import AmbiguousTask, FleetbusError, PayloadError
from fleetbus.fleet import FleetSpec
from fleetbus.js.connection import Connection
from fleetbus.js.publish import EXPECTED_LAST_SUBJECT_SEQUENCE
from fleetbus.js.reader import StreamReader
from fleetbus.wire.clock import format_iso, now_iso
from fleetbus.wire.codec import decode, encode, fields_said, typed
from fleetbus.wire.subjects import is_id
from fleetbus.wire.updates import A2A_STATE, TERMINAL_STATES, TaskUpdate

__all__ = ["SUBMITTED_AFTER", "LateEntries", "TaskIndex", "TaskSummary"]

log = logging.getLogger("fleetbus.tasks")

SUBMITTED_AFTER = 0.25
"""Seconds a stored task waits, with no news of an agent, before its assigner lists it as
``submitted`` (the module says why)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskSummary:
    """One task in the task list: who, where it stands, since when."""

    task_id: str
    role: str
    """The role it was assigned to."""
    assigner: str
    """Who assigned it: a role, or ``admin``."""
    state: str
    """``submitted`` (sent, no agent has it yet), then the task's update states
    (``accepted``, ``progress``, ``failed`` (an attempt), ``input-required``, and the
    outcomes ``completed``, ``dead_lettered``, ``rejected``, ``canceled``, ``expired``)."""
    created: str
    updated: str
    attempt: int = 0
    worker: str = ""
    """The agent process working it (its worker name), once one has it."""
    message: str | None = None
    percent: float | None = None
    error: str | None = None
    deadline: float | None = None
    """Unix time past which the task is not run (``expired``)."""
    request: str | None = None
    """The pending input request's number while ``input-required``."""

    @property
    def a2a_state(self) -> str:
        """The A2A task state: ``submitted``, ``working``, ``input-required``, ``completed``,
        ``failed``, ``canceled``, ``rejected``, or fleetbus's own ``expired``."""
        return A2A_STATE.get(self.state, self.state)

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    def matches(self, state: str) -> bool:
        """Whether ``state`` names this task's state, in fleetbus's words or A2A's."""
        return state in (self.state, self.a2a_state)

    def to_json(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if v is not None}
        data["a2a_state"] = self.a2a_state
        return data

    def encode(self) -> bytes:
        return encode(fields_said(self, _SUMMARY_FIELDS))

    @classmethod
    def decode(cls, raw: bytes, *, role: str, assigner: str, task_id: str) -> TaskSummary:
        """An entry as stored; who it is about comes from its subject, not its body.

        Roles write the entries, and any role may write nonsense: a field of the wrong type
        is dropped (the entry is listed without it), and an entry whose ``state``,
        ``created`` or ``updated`` is missing or not text is not a task summary
        (``PayloadError``: the list skips it). Either way the list of the other tasks is
        read and sorted as if it were not there."""
        body = decode(raw)
        fields: dict[str, Any] = {
            k: v for k, v in body.items() if k in _FIELD_TYPES and typed(v, _FIELD_TYPES[k])
        }
        missing = [k for k in _REQUIRED if k not in fields]
        if missing:
            raise PayloadError(f"not a task summary: no {', '.join(missing)} as text")
        return cls(task_id=task_id, role=role, assigner=assigner, **fields)

    def after(self, update: TaskUpdate) -> TaskSummary:
        """This entry once ``update`` is the task's latest record: its state, attempt,
        worker, error and request; its message and percent where it has them (an outcome
        keeps the last progress said). Made field by field (``moved`` takes twice as long:
        every task's end makes one)."""
        return TaskSummary(
            task_id=self.task_id,
            role=self.role,
            assigner=self.assigner,
            state=update.state,
            created=self.created,
            updated=now_iso(),
            attempt=update.attempt,
            worker=update.worker,
            message=self.message if update.message is None else update.message,
            percent=self.percent if update.percent is None else update.percent,
            error=update.error,
            deadline=self.deadline,
            request=update.request,
        )

    def moved(self, state: str, **fields: Any) -> TaskSummary:
        """This entry in ``state`` now, with ``fields`` changed."""
        return replace(self, state=state, updated=now_iso(), **fields)


_SUMMARY_FIELDS = tuple(TaskSummary.__dataclass_fields__)

_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    **dict.fromkeys(("state", "created", "updated", "worker", "message", "error"), (str,)),
    "request": (str,),
    "attempt": (int,),
    "percent": (int, float),
    "deadline": (int, float),
}
"""What each field of a stored entry must be (``codec.typed``: ``bool`` is never a number
here); who the task is about (``task_id``, ``role``, ``assigner``) comes from the subject."""

_REQUIRED = ("state", "created", "updated")

_FIRST = {EXPECTED_LAST_SUBJECT_SEQUENCE: "0"}
"""Stored only on a subject with nothing stored yet (the server drops it otherwise)."""


class TaskIndex:
    """Writes entries (as whoever ``conn`` is) and lists them (the admin)."""

    def __init__(self, conn: Connection, spec: FleetSpec) -> None:
        self.conn = conn
        self.spec = spec
        self.stream = spec.stream_for(spec.subjects.task_index("r", "a", "t"))

    async def write(self, summary: TaskSummary, *, first: bool = False) -> None:
        """Publish the entry, without waiting for the stream (a view: see the module).
        ``first``: only if the task has no entry yet (the assigner's ``submitted`` and
        ``rejected``: the entry a task under that id has stays where that task is)."""
        if not self.stream:
            return
        subject = self.spec.subjects.task_index(summary.role, summary.assigner, summary.task_id)
        try:
            await self.conn.nc.publish(subject, summary.encode(), headers=_FIRST if first else None)
        except Exception as exc:  # a closed connection, say: the records are what counts
            log.debug("task %s: index entry not sent: %s", summary.task_id, exc)

    async def tasks(
        self,
        *,
        role: str | None = None,
        state: str | None = None,
        since: float | timedelta | None = None,
        limit: int | None = 100,
    ) -> list[TaskSummary]:
        """Tasks, the most recently changed first: of ``role`` (all roles by default), in
        ``state`` (fleetbus's word or A2A's: ``working``), changed within ``since`` seconds,
        at most ``limit``."""
        if not self.stream:
            raise FleetbusError(
                f"no stream of the fleet stores {self.spec.prefix}.index.>: add the task"
                " index to the fleet file (the template's TASK_INDEX) and run `fleetbus"
                " provision`"
            )
        if role is not None:
            self.spec.role(role)
        window = since.total_seconds() if isinstance(since, timedelta) else since
        start = None
        if window is not None:
            moment = datetime.now(UTC) - timedelta(seconds=window)
            start = moment.isoformat().replace("+00:00", "Z")
        where = self.spec.subjects.task_index(role) if role else f"{self.spec.prefix}.index.>"
        latest = await self._entries(where, start)
        found = [s for s in latest if state is None or s.matches(state)]
        found.sort(key=lambda s: s.updated, reverse=True)
        return found if limit is None else found[:limit]

    async def find(self, task_id: str, role: str | None = None) -> TaskSummary | None:
        """The entry of ``task_id`` (whoever assigned it, to ``role`` or any), or None.
        ``AmbiguousTask`` when entries of several tasks have that id: ids are the assigner's
        choice, and a role writes its own entries under any id it likes, so the one to act on
        is never picked by anything a role wrote (which one was updated last, say)."""
        if not self.stream:
            return None
        found = await self._entries(self.spec.subjects.task_index(role, None, task_id))
        tasks = sorted({(s.role, s.assigner) for s in found})
        if len(tasks) > 1:
            raise AmbiguousTask(task_id, tasks)
        return max(found, key=lambda s: s.updated, default=None)

    async def _entries(self, where: str, since: str | None = None) -> list[TaskSummary]:
        """The last entry of each subject ``where`` matches (written ``since``, if given)."""
        latest: dict[str, TaskSummary] = {}
        reader = StreamReader(
            self.conn, self.stream, where, deliver="last_per_subject", since=since
        )
        async with reader:
            if reader.pending:
                async for msg in reader:
                    entry = self._entry(msg)
                    if entry is not None:
                        latest[msg.subject] = entry
                    if msg.metadata.num_pending == 0:
                        break
        return list(latest.values())

    def _entry(self, msg: Msg) -> TaskSummary | None:
        parts = msg.subject.split(".")
        if len(parts) < 3:
            return None
        role, assigner, task_id = parts[-3:]
        if not is_id(task_id):  # a role's entry under "*", say: not a task anyone can name
            return None
        with contextlib.suppress(PayloadError):
            entry = TaskSummary.decode(msg.data, role=role, assigner=assigner, task_id=task_id)
            # When the server stored it, not when its writer says: the list is ordered by it,
            # and a role could date its own entries 9999 to sit on top of everyone's.
            return replace(entry, updated=format_iso(msg.metadata.timestamp))
        return None


class LateEntries:
    """The assigner's ``submitted`` entries, each written only if its task is still waiting
    ``after`` seconds on. News of a task (an update, its outcome: ``heard``) takes its entry
    off at once, so a task that ends quickly holds nothing here for long. One timer serves
    them all, in the order they were added."""

    def __init__(self, index: TaskIndex, after: float | None = None) -> None:
        self.index = index
        self.after = SUBMITTED_AFTER if after is None else after
        self._entries: dict[str, TaskSummary] = {}
        self._due: deque[tuple[float, str]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._writing: set[asyncio.Task[None]] = set()

    def add(self, key: str, entry: TaskSummary) -> None:
        """Write ``entry`` ``after`` seconds from now, unless ``heard(key)`` comes first."""
        loop = asyncio.get_running_loop()
        self._entries[key] = entry
        self._due.append((loop.time() + self.after, key))
        if self._timer is None:
            self._timer = loop.call_at(self._due[0][0], self._fall_due)

    def heard(self, key: str) -> None:
        """News of the task came: an agent has it, and writes its own entry."""
        self._entries.pop(key, None)

    def _fall_due(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        ready: list[TaskSummary] = []
        while self._due and self._due[0][0] <= now:
            entry = self._entries.pop(self._due.popleft()[1], None)
            if entry is not None:
                ready.append(entry)
        if ready:
            writing = loop.create_task(self._write(ready))
            self._writing.add(writing)
            writing.add_done_callback(self._writing.discard)
        if self._due:
            self._timer = loop.call_at(self._due[0][0], self._fall_due)

    async def _write(self, entries: list[TaskSummary]) -> None:
        for entry in entries:
            await self.index.write(entry, first=True)

    async def flush(self) -> None:
        """Write now every entry not yet due (the assigner closes: a task it leaves queued
        is listed), and wait for the writes under way."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        entries, self._entries = self._entries, {}
        self._due.clear()
        await self._write(list(entries.values()))
        if self._writing:
            await asyncio.gather(*self._writing, return_exceptions=True)
