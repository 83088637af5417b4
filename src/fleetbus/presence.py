"""Presence: which agent processes run, where, holding which task — leases, not guesses.

Every running ``Agent`` keeps one record in the fleet's presence stream (the template's
``AGENT_PRESENCE``: one message per subject, in memory), ``P.presence.{role}.{instance}``,
renewed every ``interval`` seconds with what it holds. A reader judges a record by the age of
its last renewal, as the server stored it (one clock for every host):

- ``running`` / ``draining``: renewed within ``2 × interval``;
- ``suspect``: a renewal or two missed (a busy host, a GC pause, an event loop stalled by a
  handler) — still counted as alive;
- ``offline``: nothing for ``grace`` seconds: the process is gone (its unacknowledged
  messages go to a peer within their ack wait anyway: presence only tells);
- a clean stop writes ``stopped``, and the record is not listed any more.

So a missed renewal, or a few seconds of stall, never reaps a live agent. A role writes only
records under its own name (permissions); the admin reads them all, and a role may read the
latest record of the roles it sends to (a direct get: "is any backend agent alive?").
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
import socket
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any

from nats.aio.msg import Msg

from fleetbus.errors import FleetbusError, PayloadError
from fleetbus.fleet import FleetSpec
from fleetbus.js.api import JsApi
from fleetbus.js.connection import Connection
from fleetbus.js.reader import StreamReader
from fleetbus.wire.clock import format_iso, parse_iso
from fleetbus.wire.codec import decode, encode, mistyped

__all__ = ["AgentChange", "AgentInfo", "HeldTask", "Presence"]


class Liveness(enum.StrEnum):
    RUNNING = "running"
    DRAINING = "draining"
    SUSPECT = "suspect"
    OFFLINE = "offline"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True, kw_only=True)
class HeldTask:
    """A task an instance holds right now."""

    task_id: str
    attempt: int
    since: str
    assigner: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentInfo:
    """One agent process, as its last renewal says (``state`` judged by the reader)."""

    role: str
    instance: str
    """The worker name, ``{role}-{8 hex}``: unique per process and start."""
    host: str
    pid: int
    version: str
    started: str
    renewed: str
    """When the server stored its last renewal (ISO 8601, UTC)."""
    state: str
    """``running``, ``draining``, ``suspect``, ``offline`` (or ``stopped``)."""
    interval: float
    grace: float
    handlers: dict[str, Any] = field(default_factory=dict)
    """What it serves: ``tasks``, ``inbox``, ``requests``, ``invitations``, ``updates``
    (booleans) and ``events`` (its patterns)."""
    tasks: tuple[HeldTask, ...] = ()
    handled: dict[str, int] = field(default_factory=dict)
    """Counts since it started: ``tasks``, ``messages``, ``events``, ``requests``, ``failed``."""

    @property
    def alive(self) -> bool:
        """Running, draining or suspect: not known to be gone."""
        return self.state in (Liveness.RUNNING, Liveness.DRAINING, Liveness.SUSPECT)

    def to_json(self) -> dict[str, Any]:
        """As JSON's types, in new containers (what ``dataclasses.asdict`` gives, without its
        deep copy of every value: a tenth of an agent's start went there)."""
        data = {name: _copied(getattr(self, name)) for name in _INFO_FIELDS}
        data["tasks"] = [{name: getattr(t, name) for name in _HELD_FIELDS} for t in self.tasks]
        return data

    def record(self) -> bytes:
        """The body an instance writes (``state`` is its own: running, draining, stopped)."""
        data = self.to_json()
        for key in ("role", "instance", "renewed"):
            data.pop(key)
        return encode(data)

    @classmethod
    def from_record(
        cls, raw: bytes, *, role: str, instance: str, stored: datetime, now: datetime
    ) -> AgentInfo:
        body = decode(raw)
        held = body.pop("tasks", None) or []
        _check(body, _RECORD_TYPES)
        if body.get("state") not in _WRITTEN:
            # any other text would be shown, counted and exported as a state of its own (a
            # metrics series per made-up state)
            raise PayloadError(
                "not a presence record: its state is not running, draining or stopped"
            )
        if type(held) is not list or len(held) > _MOST_HELD:
            raise PayloadError(f"not a presence record: tasks is not a list of <= {_MOST_HELD}")
        for t in held:
            _check(t, _HELD_TYPES)
        try:
            tasks = tuple(HeldTask(**t) for t in held)
            known = set(cls.__dataclass_fields__) - {"role", "instance", "renewed", "tasks"}
            info = cls(
                role=role,
                instance=instance,
                renewed=format_iso(stored),
                tasks=tasks,
                **{k: v for k, v in body.items() if k in known},
            )
        except TypeError as exc:
            raise PayloadError(f"not a presence record: {exc}") from None
        return replace(info, state=judge(info.state, (now - stored).total_seconds(), info))


_WRITTEN = frozenset({Liveness.RUNNING, Liveness.DRAINING, Liveness.STOPPED})
"""The states an instance writes of itself (suspect and offline are its readers' verdicts)."""
_NUMBER = (int, float)
_INFO_FIELDS = tuple(f.name for f in fields(AgentInfo))
_HELD_FIELDS = tuple(f.name for f in fields(HeldTask))


def _copied(value: Any) -> Any:
    """``value`` with each dict and list in it made anew (a record's handlers and counts)."""
    if isinstance(value, dict):
        return {k: _copied(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copied(v) for v in value]
    return value


_RECORD_TYPES: dict[str, tuple[type, ...]] = {
    "host": (str,),
    "pid": (int,),
    "version": (str,),
    "started": (str,),
    "state": (str,),
    "interval": _NUMBER,
    "grace": _NUMBER,
    "handlers": (dict,),
    "handled": (dict,),
}
_HELD_TYPES: dict[str, tuple[type, ...]] = {
    "task_id": (str,),
    "attempt": (int,),
    "since": (str,),
    "assigner": (str,),
}
_MOST_HELD = 10_000
"""More tasks than any instance holds at once (its consumers' ``max_ack_pending``)."""
_MOST_KEYS = 100


def _check(body: Any, types: Mapping[str, tuple[type, ...]]) -> None:
    """A record is what its instance wrote, so anyone's JSON until checked: its readers (the
    CLI, the dashboard, ``assign``'s liveness check) compare and format its fields as these
    types (``codec.typed``: a bool is neither a number nor a pid here)."""
    if not isinstance(body, dict):
        raise PayloadError("not a presence record: a held task is not an object")
    wrong = mistyped(body, types)
    if wrong is not None:
        raise PayloadError(f"not a presence record: {wrong} is a {type(body[wrong]).__name__}")
    for name in types:
        if type(body.get(name)) is dict and len(body[name]) > _MOST_KEYS:
            raise PayloadError(f"not a presence record: {name} has over {_MOST_KEYS} keys")


def judge(written: str, age: float, info: AgentInfo) -> str:
    """A record's state from what its instance wrote and how old its last renewal is."""
    if written == Liveness.STOPPED:
        return Liveness.STOPPED
    if age > info.grace:
        return Liveness.OFFLINE
    if age > 2 * info.interval:
        return Liveness.SUSPECT
    return written


@dataclass(frozen=True, slots=True)
class AgentChange:
    """What ``watch_agents`` yields: ``joined``, ``suspect``, ``back`` (from suspect),
    ``offline``, ``left`` (a clean stop, or its record aged out), with the agent as seen."""

    change: str
    agent: AgentInfo


def local_identity() -> tuple[str, int]:
    return socket.gethostname(), os.getpid()


class Presence:
    """Reads and writes presence records over ``conn``."""

    def __init__(self, conn: Connection, spec: FleetSpec) -> None:
        self.conn = conn
        self.spec = spec
        self.stream = spec.stream_for(spec.subjects.presence("r", "i"))

    # -- writing (an agent, for itself) ----------------------------------------------------

    async def renew(self, info: AgentInfo) -> None:
        """Publish ``info`` as the instance's record (not waited for: the next renewal
        follows in ``interval`` seconds)."""
        if not self.stream:
            return
        subject = self.spec.subjects.presence(info.role, info.instance)
        with contextlib.suppress(Exception):  # a closed connection: nothing to renew
            await self.conn.nc.publish(subject, info.record())

    # -- reading ---------------------------------------------------------------------------

    def _require(self) -> str:
        if not self.stream:
            raise FleetbusError(
                f"no stream of the fleet stores {self.spec.prefix}.presence.> (the template's"
                " AGENT_PRESENCE): add it to the fleet file and run `fleetbus provision`"
            )
        return self.stream

    async def agents(self, role: str | None = None, *, stopped: bool = False) -> list[AgentInfo]:
        """Every agent with a record (of ``role``), the newest start first; ``stopped``
        ones too with ``stopped=True``. Reading them all takes a consumer: the admin's."""
        stream = self._require()
        if role is not None:
            self.spec.role(role)
        where = self.spec.subjects.presence(role) if role else f"{self.spec.prefix}.presence.>"
        now = datetime.now(UTC)
        found: list[AgentInfo] = []
        async with StreamReader(self.conn, stream, where, deliver="last_per_subject") as reader:
            if reader.pending:
                async for msg in reader:
                    info = self._info(msg, now)
                    if info is not None and (stopped or info.state != Liveness.STOPPED):
                        found.append(info)
                    if msg.metadata.num_pending == 0:
                        break
        found.sort(key=lambda a: (a.role, a.started), reverse=False)
        return found

    async def latest(self, role: str) -> AgentInfo | None:
        """The most recently renewed record of ``role`` (a direct get: what a role that
        sends to ``role`` may read), judged now; None when there is none."""
        stream = self._require()
        stored = await JsApi(self.conn).last_for(stream, self.spec.subjects.presence(role))
        if stored is None:
            return None
        instance = stored.subject.rsplit(".", 1)[-1]
        when = _parse_time(stored.time)
        try:
            return AgentInfo.from_record(
                stored.data, role=role, instance=instance, stored=when, now=datetime.now(UTC)
            )
        except PayloadError:
            return None

    async def any_alive(self, role: str) -> bool:
        """Whether some agent of ``role`` is alive, as far as its latest record says."""
        latest = await self.latest(role)
        return latest is not None and latest.alive

    async def watch(
        self, role: str | None = None, every: float = 1.0
    ) -> AsyncIterator[AgentChange]:
        """Changes as they are seen, checking every ``every`` seconds."""
        seen: dict[str, AgentInfo] = {}
        while True:
            now_seen = {a.instance: a for a in await self.agents(role, stopped=True)}
            for instance, info in now_seen.items():
                before = seen.get(instance)
                change = _change(before, info)
                if change:
                    yield AgentChange(change, info)
            for instance, info in seen.items():
                if instance not in now_seen and info.state != Liveness.STOPPED:
                    yield AgentChange("left", info)
            seen = now_seen
            await asyncio.sleep(every)

    def _info(self, msg: Msg, now: datetime) -> AgentInfo | None:
        parts = msg.subject.split(".")
        if len(parts) < 2:
            return None
        role, instance = parts[-2:]
        if instance.rsplit("-", 1)[0] != role:
            # Not a name this role's agents take ({role}-{id}): a role may write records
            # under any instance name of its own subject, and one named after another
            # role's agent would be listed as that agent (and drained as it by name).
            return None
        try:
            return AgentInfo.from_record(
                msg.data, role=role, instance=instance, stored=msg.metadata.timestamp, now=now
            )
        except PayloadError:
            return None


def _change(before: AgentInfo | None, now: AgentInfo) -> str:
    if now.state == Liveness.STOPPED:
        return "left" if before is not None and before.state != Liveness.STOPPED else ""
    if before is None or before.state in (Liveness.STOPPED, Liveness.OFFLINE):
        if now.state == Liveness.OFFLINE:
            return "offline" if before is None else ""
        return "joined"
    if now.state == before.state:
        return ""
    if now.state == Liveness.SUSPECT:
        return "suspect"
    if now.state == Liveness.OFFLINE:
        return "offline"
    if before.state == Liveness.SUSPECT:
        return "back"
    return now.state  # running -> draining


def _parse_time(text: str) -> datetime:
    """A ``Nats-Time-Stamp`` (RFC 3339, nanoseconds) as an aware datetime; now when there is
    none."""
    try:
        return parse_iso(text or "")
    except ValueError:
        return datetime.now(UTC)
