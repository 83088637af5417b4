"""The dashboard's live state, and how it reaches the pages.

Three loops run for as long as the dashboard does, under one task group:

- **status**: every ``interval`` seconds (longer when a sample is slow to take: never more
  than a fifth of the time), ``FleetData.status``: streams, consumers, dead letters and
  alerts. Each sample is kept for ``history`` rounds, for the rates and sparklines;
- **tasks**: the ``TaskIndex``, built from every task's last record and kept current by
  following new records; rebuilt after a reconnect (the reader's consumer lives in the
  server's memory and may be gone);
- **meetings**: what is said in meetings from the dashboard's start (nothing stores it).

A page subscribes to the topics it shows (``overview``, ``agents``, ``streams``, ``tasks``,
``record`` for one task, ``meeting``, ``deadletters``) and gets a first view, then what
changes. A subscriber that falls ``QUEUE`` messages behind is dropped; its page reconnects
and starts again from a fresh view.

One piece: the state the loops keep and the views the pages get of it change together.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Unpack

from fleetbus.dashboard.data import (
    FleetData,
    MeetingLine,
    RoleRow,
    TaskFilters,
    TaskIndex,
    TaskRow,
    update_json,
)
from fleetbus.errors import PayloadError
from fleetbus.js.backoff import Backoff
from fleetbus.ops.status import FleetStatus
from fleetbus.wire.clock import now_iso
from fleetbus.wire.updates import TaskUpdate

__all__ = ["Hub", "Subscriber"]

log = logging.getLogger("fleetbus.dashboard")

QUEUE = 512
"""Messages a page may fall behind before it is dropped (and reconnects)."""
DEAD_LETTER_WINDOW = 60.0
"""The dead-letter alert compares with the count this many seconds ago."""
MEETINGS_KEPT = 100
LINES_KEPT = 500
FLUSH = 0.25
"""Seconds between two pushes of changed task rows: a burst of records is one message."""


class Subscriber:
    """One page's share of the live state: what it asked for, queued until it takes it."""

    def __init__(self, topics: frozenset[str], task_id: str | None = None) -> None:
        self.topics = topics
        self.task_id = task_id
        self.queue: asyncio.Queue[tuple[str, Any] | None] = asyncio.Queue(maxsize=QUEUE)
        self.dropped = False

    def offer(self, topic: str, payload: Any) -> None:
        if self.dropped:
            return
        try:
            self.queue.put_nowait((topic, payload))
        except asyncio.QueueFull:
            self.dropped = True  # the page reconnects and starts from a fresh view

    def end(self) -> None:
        if self.queue.full():
            self.queue.get_nowait()
        self.queue.put_nowait(None)

    async def next(self) -> tuple[str, Any] | None:
        """The next message; None once the subscription has ended (or was dropped)."""
        item = await self.queue.get()
        return None if self.dropped else item


@dataclass(frozen=True, slots=True)
class Sample:
    at: float
    streams: dict[str, tuple[int, int]]
    """Per stream: messages stored, last sequence."""
    consumers: dict[str, tuple[int, int]]
    """Per ``stream/consumer``: pending, ack pending."""
    dead_letters: int


@dataclass
class Meeting:
    lines: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=LINES_KEPT))
    members: set[str] = field(default_factory=set)


class Hub:
    """The fleet, sampled and followed; pages subscribe to it."""

    def __init__(self, data: FleetData, *, interval: float = 2.0, history: int = 60) -> None:
        self.data = data
        self.interval = interval
        self.samples: deque[Sample] = deque(maxlen=history)
        self.status: FleetStatus | None = None
        self.problem = ""
        self.index = TaskIndex(data.subjects)
        self.meetings: OrderedDict[str, Meeting] = OrderedDict()
        self.status_ready = asyncio.Event()
        self.tasks_ready = asyncio.Event()
        self._subscribers: set[Subscriber] = set()
        self._dirty: dict[tuple[str, str, str], TaskRow] = {}
        self._tick = 0
        self._roles: tuple[int, list[RoleRow]] = (-1, [])
        self._sent: dict[str, str] = {}
        self._reconnected = asyncio.Event()
        self.closing = asyncio.Event()
        """Set once the dashboard shuts down: every stream ends."""

    # -- running --------------------------------------------------------------------------

    async def run(self) -> None:
        """Sample, follow and fan out until cancelled."""
        remove = self.data.conn.on_reconnect(self._on_reconnect)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._sample_forever())
                group.create_task(self._tasks_forever())
                group.create_task(self._flush_forever())
                group.create_task(self._meetings_forever())
        finally:
            remove()
            self.close()

    async def ready(self) -> None:
        """Return once the first sample is taken and the task index has caught up."""
        await self.status_ready.wait()
        await self.tasks_ready.wait()

    def close(self) -> None:
        """End every subscription: their pages' streams close."""
        self.closing.set()
        for sub in list(self._subscribers):
            sub.end()

    async def _on_reconnect(self) -> None:
        self._reconnected.set()

    async def _sample_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                status = await self.data.status(dead_letters_before=self._dead_letters_before())
            except Exception as exc:  # the server away, an election: show it, keep going
                self.problem = f"the fleet did not answer: {exc}"
                log.warning("dashboard: %s", self.problem)
                self.publish("problem", self.problem)
            else:
                self.problem = ""
                self._take(status)
            await asyncio.sleep(max(self.interval, 5 * (loop.time() - started)))

    def _take(self, status: FleetStatus) -> None:
        before = self.samples[-1].dead_letters if self.samples else None
        self.samples.append(
            Sample(
                at=time.time(),
                streams={s.name: (s.messages, s.last_seq) for s in status.streams},
                consumers={
                    _key(c.stream, c.name): (c.pending, c.ack_pending) for c in status.consumers
                },
                dead_letters=status.dead_letters,
            )
        )
        self.status = status
        self._tick += 1
        self.status_ready.set()
        if before != status.dead_letters:
            self.publish("deadletters", status.dead_letters)
        if not self.tasks_ready.is_set():
            return
        self._publish_changed("overview", self.overview)
        self._publish_changed("agents", self.agents)
        if self._wanted("streams"):
            self.publish("streams", self.streams(history=False))

    def _dead_letters_before(self) -> int | None:
        """The count ``DEAD_LETTER_WINDOW`` seconds ago (or the first one taken)."""
        if not self.samples:
            return None
        cutoff = time.time() - DEAD_LETTER_WINDOW
        older = [s for s in self.samples if s.at <= cutoff]
        return (older[-1] if older else self.samples[0]).dead_letters

    async def _tasks_forever(self) -> None:
        backoff = Backoff(1.0, 30.0)
        while True:
            self._reconnected.clear()
            reading = asyncio.create_task(self._read_tasks())
            reconnected = asyncio.create_task(self._reconnected.wait())
            try:
                await asyncio.wait({reading, reconnected}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                reading.cancel()
                reconnected.cancel()
                await asyncio.wait({reading, reconnected})  # both ended (wait never raises)
            failure = None if reading.cancelled() else reading.exception()
            if failure is not None:
                # (a TASKS stream not provisioned, say: status shows why; the pages go on)
                log.warning("dashboard: following task records failed: %s", failure)
                self.tasks_ready.set()
                await backoff.wait()
            else:
                backoff.reset()

    async def _read_tasks(self) -> None:
        """Build the index from every task's last record, then keep it current."""
        self.index.clear()
        seen, stored = 0, None

        def on_record(subject: str, data: bytes, seq: int, when: str) -> None:
            nonlocal seen
            row = self.index.apply(subject, data, seq, when)
            seen += 1
            if not self.tasks_ready.is_set():
                if stored is not None and seen >= stored:
                    self._caught_up()
                return
            if row is not None:
                self._dirty[row.key] = row
                self._record(row, data)

        async with self.data.task_records(on_record) as pending:
            stored = pending
            if seen >= stored:
                self._caught_up()
            await asyncio.Future()  # until a reconnect (or the end) cancels it

    def _record(self, row: TaskRow, data: bytes) -> None:
        """A task page's live record: the update as the history reader reads it."""
        try:
            update = TaskUpdate.decode(data).written_by(row.assigner, row.role)
        except PayloadError:  # pragma: no cover - the index took it
            return
        self.publish(
            "record", {"row": row.to_json(), "update": update_json(update)}, task_id=row.task_id
        )

    def _caught_up(self) -> None:
        if self.tasks_ready.is_set():
            self.publish("tasks-reset", None)  # after a rebuild: the pages start afresh
        self.tasks_ready.set()

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(FLUSH)
            if self._dirty:
                rows, self._dirty = list(self._dirty.values()), {}
                self.publish("tasks", [r.to_json() for r in rows])

    async def _meetings_forever(self) -> None:
        backoff = Backoff(1.0, 30.0)
        while True:
            try:
                async with self.data.meetings() as lines:
                    backoff.reset()
                    async for line in lines:
                        self._said(line)
            except Exception as exc:  # a subscription refused, the connection away
                log.warning("dashboard: listening to meetings failed: %s", exc)
                await backoff.wait()

    def _said(self, line: MeetingLine) -> None:
        meeting = self.meetings.pop(line.meeting_id, None) or Meeting()
        self.meetings[line.meeting_id] = meeting  # the most recently active last
        while len(self.meetings) > MEETINGS_KEPT:
            self.meetings.popitem(last=False)
        said = line.message
        if said.type in ("join", "present"):
            meeting.members.add(said.sender)
        elif said.type == "leave":
            meeting.members.discard(said.sender)
        if said.type == "present":
            return  # an answer to a join: presence only
        entry = line.to_json()
        meeting.lines.append(entry)
        self.publish("meeting", {**entry, "members": sorted(meeting.members)})

    # -- subscribers ----------------------------------------------------------------------

    @contextlib.contextmanager
    def subscribe(self, *topics: str, task_id: str | None = None) -> Iterator[Subscriber]:
        sub = Subscriber(frozenset(topics) | {"problem", "tasks-reset"}, task_id)
        if self.closing.is_set():
            sub.end()
        self._subscribers.add(sub)
        try:
            yield sub
        finally:
            self._subscribers.discard(sub)

    def publish(self, topic: str, payload: Any, *, task_id: str | None = None) -> None:
        for sub in list(self._subscribers):
            if topic in sub.topics and (task_id is None or sub.task_id in (None, task_id)):
                sub.offer(topic, payload)

    def _wanted(self, topic: str) -> bool:
        return any(topic in sub.topics for sub in self._subscribers)

    def _publish_changed(self, topic: str, view: Any) -> None:
        """Push ``view()`` to the pages that show it, unless it is what they last got."""
        if not self._wanted(topic):
            self._sent.pop(topic, None)
            return
        payload = view()
        text = json.dumps(payload, sort_keys=True, default=str)
        if self._sent.get(topic) != text:
            self._sent[topic] = text
            self.publish(topic, payload)

    # -- views ------------------------------------------------------------------------------

    def roles(self) -> list[RoleRow]:
        """The roles and their agents, worked out once per sample."""
        if self.status is None:
            return []
        if self._roles[0] != self._tick:
            self._roles = (self._tick, self.data.roles(self.status, self.index))
        return self._roles[1]

    def overview(self) -> dict[str, Any]:
        status = self.status
        if status is None:
            return {"problem": self.problem}
        roles = self.roles()
        states: dict[str, int] = {}
        for role in roles:
            states[role.state] = states.get(role.state, 0) + 1
        tasks = self.index.counts()
        tasks["queued"] = self.data.queued(status)
        rates = self._rates()
        return {
            "server": status.server,
            "version": status.version,
            "prefix": self.data.spec.prefix,
            "sampled": now_iso(),
            "problem": self.problem,
            "roles": {
                "total": len(roles),
                "states": states,
                "list": [{"role": r.role, "state": r.state} for r in roles],
            },
            "agents": sum(len(r.agents) for r in roles),
            "serving": sum(1 for r in roles if r.serving),
            "tasks": tasks,
            "tasks_known": len(self.index),
            "streams": [
                {
                    "name": s.name,
                    "messages": s.messages,
                    "rate": rates.get(s.name, [0.0])[-1],
                    "history": rates.get(s.name, []),
                }
                for s in status.streams
            ],
            "alerts": [dataclasses.asdict(a) for a in status.alerts],
            "dead_letters": status.dead_letters,
        }

    def agents(self) -> dict[str, Any]:
        return {"roles": [r.to_json() for r in self.roles()], "problem": self.problem}

    def streams(self, *, history: bool = True) -> dict[str, Any]:
        """Streams and consumers now; with ``history``, every kept sample's values too
        (a consumer's only where they changed: a flat line is its current value)."""
        status = self.status
        if status is None:
            return {"streams": [], "consumers": []}
        rates = self._rates()
        out: dict[str, Any] = {
            "sampled": now_iso(),
            "interval": self.interval,
            "streams": [
                dataclasses.asdict(s)
                | {"storage_percent": s.storage_percent, "rate": rates.get(s.name, [0.0])[-1]}
                for s in status.streams
            ],
            "consumers": [
                dataclasses.asdict(c) | {"key": _key(c.stream, c.name), "idle": c.idle}
                for c in status.consumers
            ],
        }
        if history:
            series: dict[str, dict[str, list[float]]] = {
                "rate": rates,
                "pending": {},
                "ack_pending": {},
            }
            for c in status.consumers:
                key = _key(c.stream, c.name)
                values = [s.consumers.get(key, (0, 0)) for s in self.samples]
                if len(set(values)) > 1:
                    series["pending"][key] = [float(v[0]) for v in values]
                    series["ack_pending"][key] = [float(v[1]) for v in values]
            out["history"] = series
        return out

    def _rates(self) -> dict[str, list[float]]:
        """Messages stored per second, per stream, between each two samples kept."""
        out: dict[str, list[float]] = {}
        pairs = list(zip(self.samples, list(self.samples)[1:], strict=False))
        for before, after in pairs:
            seconds = max(after.at - before.at, 1e-3)
            for name, (_, last) in after.streams.items():
                previous = before.streams.get(name, (0, last))[1]
                out.setdefault(name, []).append(round(max(last - previous, 0) / seconds, 2))
        return out

    def tasks(self, **filters: Unpack[TaskFilters]) -> dict[str, Any]:
        rows, matching = self.index.select(**filters)
        return {
            "rows": [r.to_json() for r in rows],
            "matching": matching,
            "known": len(self.index),
            "limit": filters.get("limit", 200),
        }

    def meeting_view(self) -> dict[str, Any]:
        return {
            "meetings": [
                {"meeting_id": mid, "members": sorted(m.members), "lines": list(m.lines)}
                for mid, m in reversed(self.meetings.items())
            ]
        }


def _key(stream: str, name: str) -> str:
    return f"{stream}/{name}"
