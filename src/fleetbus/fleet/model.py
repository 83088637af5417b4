"""The fleet file as pydantic models: roles, streams, consumers, permissions, alerts, server.

Every model forbids unknown keys; durations read as ``30s``/``7d`` and sizes as ``2GB``.
Subjects in the file are relative to ``prefix`` (``agents.>`` is ``genbrain.agents.>``),
except the server's own ``$``-subjects. Cross-references (a role sending to an unknown role,
a consumer whose subject no stream captures) are checked after the parts validate.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from fleetbus.errors import InvalidSubjectError, UnknownRoleError
from fleetbus.fleet.units import format_duration, format_size, parse_duration, parse_size
from fleetbus.wire.subjects import (
    ADVISORY_MAX_DELIVERIES,
    ADVISORY_TERMINATED,
    Subjects,
    consumer_name,
    filter_within,
    validate_role,
    validate_subject,
)

__all__ = [
    "AlertSpec",
    "ConsumerKind",
    "ConsumerSpec",
    "EventsSpec",
    "FleetSpec",
    "ResolvedConsumer",
    "RoleSpec",
    "ServerSpec",
    "StreamSpec",
]


def _no_negative(value: int) -> int:
    if value < -1:
        raise ValueError(f"{value} is not a limit: use a positive number, or -1 for unlimited")
    return value


def _positive(value: float) -> float:
    if value <= 0:
        raise ValueError("must be greater than zero")
    return value


Duration = Annotated[
    float, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)
]
PositiveDuration = Annotated[Duration, AfterValidator(_positive)]
Size = Annotated[int, BeforeValidator(parse_size), PlainSerializer(format_size, return_type=str)]


def _parse_limit_size(value: object) -> int:
    return -1 if value in (-1, "-1") else parse_size(value)


def _format_limit_size(size: int) -> int | str:
    return -1 if size == -1 else format_size(size)


LimitSize = Annotated[
    int,
    BeforeValidator(_parse_limit_size),
    PlainSerializer(_format_limit_size, return_type=int | str),
]
"""A size limit where ``-1`` means unlimited (and survives a dump and reload as ``-1``)."""
Limit = Annotated[int, AfterValidator(_no_negative)]
_STREAM_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_DELIVER = ("all", "new", "last", "last_per_subject")


@functools.lru_cache(maxsize=256)
def _subjects_for(prefix: str) -> Subjects:
    """One (immutable) ``Subjects`` per prefix: the runtime asks for it per message."""
    return Subjects(prefix)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _subject(value: str) -> str:
    try:
        return validate_subject(value)
    except InvalidSubjectError as exc:
        raise ValueError(str(exc)) from None


RelSubject = Annotated[str, AfterValidator(_subject)]


class StreamSpec(_Model):
    """One JetStream stream. Limits of ``-1`` (or ``0`` for ages) mean unlimited."""

    subjects: list[RelSubject] = Field(min_length=1)
    description: str = ""
    retention: Literal["limits", "interest", "workqueue"] = "limits"
    storage: Literal["file", "memory"] = "file"
    compression: Literal["none", "s2"] = "none"
    """``s2``: the server compresses the stream's stored blocks (nats-server 2.10+): less disk
    for JSON bodies, a little CPU. Changing it applies to blocks written afterwards."""
    replicas: int = Field(default=1, ge=1, le=5)
    max_age: Duration = 0.0
    max_msgs: Limit = -1
    max_bytes: LimitSize = -1
    max_msgs_per_subject: Limit = -1
    max_msg_size: Limit = -1
    max_consumers: Limit = -1
    discard: Literal["old", "new"] = "old"
    discard_new_per_subject: bool = False
    duplicate_window: Duration = 120.0
    allow_atomic_publish: bool = False
    """Accept atomic batch publishes (server 2.12+): ``Fleet.publish_many`` / ``emit_many``
    then confirm up to 1000 messages with one round trip; without it they go pipelined."""
    dead_letters: bool = False
    """Also capture the server's MAX_DELIVERIES / MSG_TERMINATED advisories of the fleet's
    other streams, so that no dead letter is lost while no copier runs."""

    @field_validator("retention", mode="before")
    @classmethod
    def _seed_spelling(cls, value: Any) -> Any:
        # The nats CLI (and the seed) write work-queue; the server's JSON says workqueue.
        return "workqueue" if value == "work-queue" else value

    @model_validator(mode="after")
    def _discard_new_per_subject_needs_limit(self) -> StreamSpec:
        if self.discard_new_per_subject and (
            self.discard != "new" or self.max_msgs_per_subject < 1
        ):
            raise ValueError(
                "discard_new_per_subject needs discard: new and a max_msgs_per_subject limit"
            )
        if self.max_age and self.duplicate_window > self.max_age:
            raise ValueError(
                "duplicate_window cannot be longer than max_age (the server refuses it)"
            )
        return self


class ConsumerSpec(_Model):
    """A durable pull consumer with explicit acks (the only kind fleetbus makes)."""

    deliver: str = "all"
    """``all``, ``new``, ``last``, ``last_per_subject``, or an ISO time to start from."""
    ack_wait: PositiveDuration = 30.0
    max_deliver: Annotated[int, Field(ge=-1)] = 3
    max_ack_pending: Annotated[int, Field(ge=-1)] = 1
    backoff: list[PositiveDuration] | None = None
    """Redelivery delays after an ack wait expires; at most ``max_deliver`` entries."""

    @field_validator("deliver")
    @classmethod
    def _deliver(cls, value: str) -> str:
        if value in _DELIVER:
            return value
        try:
            datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(
                f"{value!r} is not a deliver policy: use all, new, last, last_per_subject "
                "or an ISO time like 2026-05-10T14:30:00Z"
            ) from None
        return value

    @field_validator("max_deliver", "max_ack_pending")
    @classmethod
    def _not_zero(cls, value: int) -> int:
        if value == 0:
            raise ValueError("must be at least 1, or -1 for unlimited")
        return value

    @property
    def effective_ack_wait(self) -> float:
        """What the server uses: with a backoff list it replaces ack_wait by ``backoff[0]``."""
        return self.backoff[0] if self.backoff else self.ack_wait

    @model_validator(mode="after")
    def _backoff_fits(self) -> ConsumerSpec:
        if self.backoff and self.max_deliver != -1 and len(self.backoff) > self.max_deliver:
            raise ValueError(
                f"backoff has {len(self.backoff)} delays but max_deliver is {self.max_deliver}:"
                " the server refuses more delays than deliveries"
            )
        return self


class InboxSpec(ConsumerSpec):
    """An inbox or invitations consumer: five tries and five at a time, as the seed's inbox."""

    max_deliver: Annotated[int, Field(ge=-1)] = 5
    max_ack_pending: Annotated[int, Field(ge=-1)] = 5


class EventsSpec(ConsumerSpec):
    """The role's event consumer: one durable consumer over all its event filters."""

    filters: list[RelSubject] = Field(min_length=1)
    """Event patterns relative to ``P.events``: ``deployment.>``, ``security.*``."""
    max_ack_pending: Annotated[int, Field(ge=-1)] = 100


class UpdatesSpec(ConsumerSpec):
    """A consumer over every task's updates (``P.tasks.*.updates``), e.g. for the CTO."""

    deliver: str = "new"
    max_ack_pending: Annotated[int, Field(ge=-1)] = 100


ConsumerKind = Literal["tasks", "inbox", "meetings", "events", "updates", "dead_letters"]
DEAD_LETTER_COPIER = "DLQ_COPIER"
"""The shared consumer over the dead-letter stream's captured advisories."""


class RoleSpec(_Model):
    """One agent role: its consumers, whom it may talk to, and what it may see."""

    description: str = ""
    task_budget: PositiveDuration = 1800.0
    """The longest one task may run. Heartbeats keep it alive; ``check`` compares ack wait."""
    oversight: bool = False
    """May watch every inbox and every task's updates without consuming them (the seed's CEO)."""
    send_to: list[str] = Field(default_factory=list)
    """Roles whose inbox, tasks and meetings this role may publish to. ``"*"`` means all."""
    publish: list[RelSubject] = Field(default_factory=list)
    """Further subjects, relative to the prefix, this role may publish to."""
    subscribe: list[RelSubject] = Field(default_factory=list)
    """Further subjects, relative to the prefix, this role may subscribe to."""
    tasks: ConsumerSpec | None = Field(default_factory=ConsumerSpec)
    inbox: InboxSpec | None = Field(default_factory=lambda: InboxSpec())
    meetings: InboxSpec | None = Field(default_factory=lambda: InboxSpec())
    events: EventsSpec | None = None
    updates: UpdatesSpec | None = None


class ClusterSpec(_Model):
    name: str = "fleetbus"
    size: int = Field(default=1, ge=1, le=9)
    port: int = Field(default=6222, ge=0, le=65535)


class ServerSpec(_Model):
    """The embedded nats-server (``fleetbus up``). Ignored when connecting elsewhere."""

    host: str = "127.0.0.1"
    port: int = Field(default=4222, ge=0, le=65535)
    monitor_port: int = Field(default=8222, ge=0, le=65535)
    data_dir: str = ".fleetbus"
    max_memory: Size = 2 * 1000**3
    max_file: Size = 50 * 1000**3
    max_payload: Size = 1024 * 1024
    sync_always: bool = False
    """fsync every write. Off, the server fsyncs every 2 minutes: a lone node can lose the
    last seconds on power loss (replicas cover a node crash in a cluster)."""
    cluster: ClusterSpec = Field(default_factory=ClusterSpec)


class AlertSpec(_Model):
    """Thresholds ``fleetbus status`` checks; crossing one makes it exit 1."""

    consumer_pending: int = Field(default=100, ge=0)
    ack_pending: int = Field(default=50, ge=0)
    dead_letters_growing: bool = True
    storage_percent: float = Field(default=80.0, gt=0, le=100)
    replicas_out_of_sync: bool = True


class ResolvedConsumer(_Model):
    """A consumer as provisioning and the runtime see it: stream, name, absolute filters."""

    role: str
    kind: ConsumerKind
    stream: str
    name: str
    filters: list[str]
    spec: ConsumerSpec


class FleetSpec(_Model):
    """A whole fleet: the root of the fleet file."""

    version: Literal[1] = 1
    prefix: str = "genbrain"
    server: ServerSpec = Field(default_factory=ServerSpec)
    streams: dict[str, StreamSpec]
    roles: dict[str, RoleSpec]
    alerts: AlertSpec = Field(default_factory=AlertSpec)

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        try:
            return validate_subject(value, wildcards=False)
        except InvalidSubjectError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("streams")
    @classmethod
    def _stream_names(cls, value: dict[str, StreamSpec]) -> dict[str, StreamSpec]:
        for name in value:
            if not _STREAM_NAME.match(name):
                raise ValueError(
                    f"stream name {name!r} may use only letters, digits, _ and - "
                    "(no spaces, dots or wildcards), at most 64 characters"
                )
        return value

    @field_validator("roles")
    @classmethod
    def _role_names(cls, value: dict[str, RoleSpec]) -> dict[str, RoleSpec]:
        if not value:
            raise ValueError("a fleet needs at least one role")
        seen: dict[str, str] = {}
        for name in value:
            try:
                validate_role(name)
            except InvalidSubjectError as exc:
                raise ValueError(str(exc)) from None
            key = consumer_name(name, "")
            if key in seen:
                raise ValueError(
                    f"roles {seen[key]!r} and {name!r} would share consumer names"
                    f" ({consumer_name(name, 'tasks')}): rename one"
                )
            seen[key] = name
        return value

    @model_validator(mode="after")
    def _references(self, info: ValidationInfo) -> FleetSpec:
        # The loader asks to defer these, to report each with its own key path.
        if not (info.context or {}).get("defer_references"):
            problems = self.reference_problems()
            if problems:
                raise ValueError("; ".join(f"{key}: {reason}" for key, reason in problems))
        return self

    def reference_problems(self) -> list[tuple[str, str]]:
        """Cross-references that do not hold, as ``(key path, reason)`` pairs."""
        problems: list[tuple[str, str]] = []
        for role, spec in self.roles.items():
            for i, target in enumerate(spec.send_to):
                if target != "*" and target not in self.roles:
                    problems.append(
                        (
                            f"roles.{role}.send_to[{i}]",
                            f"unknown role {target!r} (the fleet declares {', '.join(self.roles)})",
                        )
                    )
        dead = [name for name, s in self.streams.items() if s.dead_letters]
        if len(dead) > 1:
            problems.append(("streams", f"only one stream may hold dead letters, got {dead}"))
        for consumer in self._consumers_unchecked():
            if consumer.stream == "":
                problems.append(
                    (
                        f"roles.{consumer.role}.{consumer.kind}",
                        f"no stream captures {consumer.filters[0]}; add it to a stream's subjects",
                    )
                )
        return problems

    # -- derived topology -------------------------------------------------------------

    _resolved_cache: (
        tuple[tuple[ResolvedConsumer, ...], dict[tuple[str, str], ResolvedConsumer]] | None
    ) = PrivateAttr(default=None)

    @property
    def subjects(self) -> Subjects:
        return _subjects_for(self.prefix)

    def stream_subjects(self, name: str) -> list[str]:
        """The stream's subjects as the server sees them (advisories added for dead letters)."""
        spec = self.streams[name]
        out = [self.subjects.absolute(s) for s in spec.subjects]
        if spec.dead_letters:
            for other in self.streams:
                if other != name:
                    out.append(f"{ADVISORY_MAX_DELIVERIES}.{other}.*")
                    out.append(f"{ADVISORY_TERMINATED}.{other}.*")
        return out

    def stream_for(self, subject: str) -> str:
        """The name of the stream that captures the literal or filter ``subject``, or ''."""
        for name in self.streams:
            for pattern in self.stream_subjects(name):
                # A literal, or a filter like P.events.> inside a stream capturing P.events.>
                # (subject_matches would let a stream's * swallow a filter's >)
                if filter_within(subject, pattern):
                    return name
        return ""

    @property
    def dead_letter_stream(self) -> str | None:
        return next((n for n, s in self.streams.items() if s.dead_letters), None)

    def role(self, name: str) -> RoleSpec:
        try:
            return self.roles[name]
        except KeyError:
            raise UnknownRoleError(name, list(self.roles)) from None

    def consumers(self) -> list[ResolvedConsumer]:
        """Every durable consumer the fleet declares, in file order."""
        return list(self._resolved()[0])

    def consumer(self, role: str, kind: ConsumerKind) -> ResolvedConsumer | None:
        self.role(role)
        return self._resolved()[1].get((role, kind))

    def _resolved(
        self,
    ) -> tuple[tuple[ResolvedConsumer, ...], dict[tuple[str, str], ResolvedConsumer]]:
        """Resolved once per (frozen) fleet: a fleet of 1,000 roles asks this 3,000 times."""
        cached = self._resolved_cache
        if cached is None:
            consumers = tuple(self._consumers_unchecked())
            index: dict[tuple[str, str], ResolvedConsumer] = {
                (c.role, c.kind): c for c in consumers
            }
            cached = self._resolved_cache = (consumers, index)
        return cached

    def __eq__(self, other: object) -> bool:
        """Equal fleets have equal fields; the derived-topology cache does not count."""
        if not isinstance(other, FleetSpec):
            return NotImplemented
        return type(self) is type(other) and self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]  # dict fields: never hashable

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy with ``update`` applied; its derived topology is worked out afresh."""
        copy = super().model_copy(update=update, deep=deep)
        copy._resolved_cache = None
        return copy

    def _consumers_unchecked(self) -> list[ResolvedConsumer]:
        out: list[ResolvedConsumer] = []
        subjects = self.subjects
        for role, spec in self.roles.items():
            pairs: list[tuple[ConsumerKind, ConsumerSpec | None, list[str]]] = [
                # plain publishes (sender unknown) and P.agents.{role}.{kind}.{sender}
                ("tasks", spec.tasks, subjects.agent_filters(role, "tasks")),
                ("inbox", spec.inbox, subjects.agent_filters(role, "inbox")),
                ("meetings", spec.meetings, subjects.agent_filters(role, "meetings")),
                (
                    "events",
                    spec.events,
                    [subjects.events_filter(f) for f in spec.events.filters] if spec.events else [],
                ),
                ("updates", spec.updates, [subjects.all_task_updates()]),
            ]
            for kind, cspec, filters in pairs:
                if cspec is None:
                    continue
                streams = {self.stream_for(f) for f in filters}
                stream = streams.pop() if len(streams) == 1 else ""
                out.append(
                    ResolvedConsumer(
                        role=role,
                        kind=kind,
                        stream=stream,
                        name=consumer_name(role, kind),
                        filters=filters,
                        spec=cspec,
                    )
                )
        dlq = self.dead_letter_stream
        if dlq is not None:
            out.append(
                ResolvedConsumer(
                    role="",
                    kind="dead_letters",
                    stream=dlq,
                    name=DEAD_LETTER_COPIER,
                    filters=["$JS.EVENT.ADVISORY.CONSUMER.>"],
                    spec=ConsumerSpec(max_deliver=-1, max_ack_pending=256, ack_wait=30.0),
                )
            )
        return out
