"""What the fleet file says: roles, streams, consumers, permissions, alerts, server.

Pydantic models, each forbidding unknown keys; durations read as ``30s``/``7d`` and sizes as
``2GB``. Subjects in the file are relative to ``prefix`` (``agents.>`` is
``genbrain.agents.>``), except the server's own ``$``-subjects. What the file *means* (which
stream stores a subject, each role's consumers) is ``fleet.topology``.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)

from fleetbus.errors import InvalidSubjectError
from fleetbus.fleet.units import (
    fits_int32,
    fits_int64,
    fits_nanoseconds,
    format_duration,
    format_size,
    parse_duration,
    parse_size,
)
from fleetbus.wire.subjects import MAX_SUBJECT, consumer_name, validate_role, validate_subject

__all__ = [
    "DEAD_LETTER_COPIER",
    "AlertSpec",
    "ClusterSpec",
    "ConsumerKind",
    "ConsumerSpec",
    "EventsSpec",
    "FleetFile",
    "InboxSpec",
    "RoleSpec",
    "ServerSpec",
    "StreamSpec",
    "UpdatesSpec",
    "data_dir_of_its_own",
]


def _no_negative(value: int) -> int:
    if value < -1:
        raise ValueError(f"{value} is not a limit: use a positive number, or -1 for unlimited")
    if value == 0:  # nats-server takes 0 for unlimited and says -1: a change on every provision
        raise ValueError("0 is not a limit (the server takes it for none): use -1 for unlimited")
    return value


def _positive(value: float) -> float:
    if value <= 0:
        raise ValueError("must be greater than zero")
    return value


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    AfterValidator(fits_nanoseconds),
    PlainSerializer(format_duration, return_type=str),
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
    AfterValidator(_no_negative),
    AfterValidator(fits_int64),
    PlainSerializer(_format_limit_size, return_type=int | str),
]
"""A size limit where ``-1`` means unlimited (and survives a dump and reload as ``-1``)."""
Limit = Annotated[int, AfterValidator(_no_negative), AfterValidator(fits_int64)]
Count = Annotated[int, Field(ge=-1), AfterValidator(fits_int64)]
"""A consumer's count (``max_deliver``, ``max_ack_pending``): ``-1`` for unlimited."""
MAX_PREFIX = 256
"""The longest prefix: a task's record subject adds a task id (128) and two roles to it."""
_STREAM_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_DELIVER = ("all", "new", "last", "last_per_subject")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


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
    max_msg_size: Annotated[Limit, AfterValidator(fits_int32)] = -1
    max_consumers: Limit = -1
    discard: Literal["old", "new"] = "old"
    discard_new_per_subject: bool = False
    duplicate_window: PositiveDuration = 120.0
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
    ack_wait: PositiveDuration = 4.0
    """The lease on a delivered message: the runtime renews it every ack_wait/3 while the
    handler runs (up to the role's task_budget); when an agent dies, its message goes to a
    peer within ack_wait."""
    max_deliver: Count = 3
    max_ack_pending: Count = 1
    backoff: list[PositiveDuration] | None = None
    """Redelivery delays after an ack wait expires; at most ``max_deliver`` entries."""

    @field_validator("deliver", mode="before")
    @classmethod
    def _deliver_time(cls, value: Any) -> Any:
        """YAML reads an unquoted ``2026-05-10T14:30:00Z`` as a time: the one meant."""
        if isinstance(value, datetime):
            moment = value if value.tzinfo else value.replace(tzinfo=UTC)
            return moment.isoformat().replace("+00:00", "Z")
        if isinstance(value, date):
            return f"{value.isoformat()}T00:00:00Z"
        return value

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
                " a delay for an attempt that is never made"
            )
        return self


class InboxSpec(ConsumerSpec):
    """An inbox or invitations consumer: five tries and five at a time, as the seed's inbox."""

    max_deliver: Count = 5
    max_ack_pending: Count = 5


class EventsSpec(ConsumerSpec):
    """The role's event consumer: one durable consumer over all its event filters."""

    filters: list[RelSubject] = Field(min_length=1)
    """Event patterns relative to ``P.events``: ``deployment.>``, ``security.*``."""
    max_ack_pending: Count = 100


class UpdatesSpec(ConsumerSpec):
    """A consumer over every task's updates (``P.tasks.*.updates``), e.g. for the CTO."""

    deliver: str = "new"
    max_ack_pending: Count = 100


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
    monitor_port: int | None = Field(default=None, ge=0, le=65535)
    """The HTTP monitoring port, off by default: it answers anyone who can reach it, and lists
    every connection and subscription (the reply subjects of pending asks included). Nothing
    in fleetbus needs it; turn it on for a dashboard like the NATS surveyor."""
    data_dir: str = ".fleetbus"
    """A directory of fleetbus's own: ``up`` makes it private (0700) and keeps the server's
    config, log, store and every credential in it."""
    max_memory: Size = 2 * 1000**3
    max_file: Size = 50 * 1000**3
    max_payload: Size = 1024 * 1024
    sync_always: bool = False
    """fsync every write. Off, the server fsyncs every 2 minutes: a lone node can lose the
    last seconds on power loss (replicas cover a node crash in a cluster)."""
    cluster: ClusterSpec = Field(default_factory=ClusterSpec)

    @field_validator("data_dir")
    @classmethod
    def _own_directory(cls, value: str) -> str:
        return data_dir_of_its_own(value)


def data_dir_of_its_own(value: str) -> str:
    """``value`` when it names a directory of its own (the file's ``server.data_dir`` and
    ``--data-dir`` alike); ``ValueError`` for the project's own directory."""
    if value.strip() in ("", ".", "./"):
        raise ValueError(
            f"{value!r} is the project's own directory: up would make it private (0700)"
            " and put credentials and the store beside your files; name a directory of"
            " its own, like .fleetbus"
        )
    return value


class AlertSpec(_Model):
    """Thresholds ``fleetbus status`` checks; crossing one makes it exit 1."""

    consumer_pending: int = Field(default=100, ge=0)
    ack_pending: int = Field(default=50, ge=0)
    dead_letters_growing: bool = True
    storage_percent: float = Field(default=80.0, gt=0, le=100)
    replicas_out_of_sync: bool = True


class FleetFile(_Model):
    """The root of the fleet file, as written. ``FleetSpec`` adds what it means."""

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
            validate_subject(value, wildcards=False)
        except InvalidSubjectError as exc:
            raise ValueError(str(exc)) from None
        if value.startswith("$"):
            raise ValueError(f"{value!r}: subjects starting with $ are the server's own")
        if len(value) > MAX_PREFIX:
            raise ValueError(
                f"{len(value)} characters long: at most {MAX_PREFIX} (every subject of the"
                " fleet starts with it, and a subject is at most "
                f"{MAX_SUBJECT} characters with its ids)"
            )
        return value

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
