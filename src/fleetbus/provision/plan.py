"""The provisioning plan: what the fleet file wants versus what the server has. Pure.

Configs are compared in the JetStream API's own JSON form (durations in nanoseconds), and only
on the fields fleetbus manages; the server's own additions (metadata, defaults of fields
fleetbus never sets) are not drift.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from fleetbus.fleet import ConsumerSpec, FleetSpec, ResolvedConsumer
from fleetbus.wire.clock import parse_iso
from fleetbus.wire.headers import DEAD_LETTER_ROOM
from fleetbus.wire.subjects import subjects_overlap

__all__ = [
    "Action",
    "Change",
    "LiveState",
    "Plan",
    "build_plan",
    "consumer_cap",
    "desired_consumer",
    "desired_stream",
]

NS = 1_000_000_000
Op = Literal["create", "update", "migrate", "unchanged", "recreate", "unmanaged"]
"""``migrate``: an update in place that removes stored messages (a stream moving from limits
to interest retention drops what its consumers have processed): like ``recreate``, only with
``--force``, but what is unprocessed stays."""

# Changing these needs the stream/consumer deleted and made again (the server refuses them).
_STREAM_IMMUTABLE = ("retention", "storage")
_CONSUMER_IMMUTABLE = ("deliver_policy", "opt_start_time", "ack_policy", "replay_policy")


@dataclass(frozen=True, slots=True)
class Change:
    field: str
    live: Any
    desired: Any


@dataclass(frozen=True, slots=True)
class Action:
    """One line of the plan, for one stream or consumer."""

    kind: Literal["stream", "consumer"]
    stream: str
    name: str
    op: Op
    config: Mapping[str, Any] = field(default_factory=dict)
    changes: tuple[Change, ...] = ()
    messages: int = 0
    """What a recreate drops: stored messages (streams), pending + unacked (consumers); what
    a migrate drops: the stream's processed messages (about: stored minus unprocessed)."""

    @property
    def label(self) -> str:
        return self.name if self.kind == "stream" else f"{self.stream} > {self.name}"


@dataclass(frozen=True, slots=True)
class LiveState:
    """What the server has: stream and consumer configs (API JSON) and their message counts."""

    streams: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    stream_messages: Mapping[str, int] = field(default_factory=dict)
    consumers: Mapping[tuple[str, str], Mapping[str, Any]] = field(default_factory=dict)
    consumer_pending: Mapping[tuple[str, str], int] = field(default_factory=dict)
    cluster_size: int = 1
    max_payload: int = 0
    """The server's, from its INFO (0: not known; the fleet file's ``server.max_payload``)."""


@dataclass(frozen=True, slots=True)
class Plan:
    actions: tuple[Action, ...]
    warnings: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()
    """Why the plan cannot be applied at all (a stream the fleet file does not name holds its
    subjects): nothing is applied, rather than the streams before the refused one."""

    @property
    def pending(self) -> tuple[Action, ...]:
        """Actions that change something on the server."""
        return tuple(a for a in self.actions if a.op in ("create", "update", "migrate", "recreate"))

    @property
    def needs_force(self) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if a.op in ("recreate", "migrate"))

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for action in self.actions:
            out[action.op] = out.get(action.op, 0) + 1
        return out


CONSUMER_HEADROOM = 100
"""Room on each stream beyond the consumers the fleet declares, for the admin's readers
(``fleetbus task``, ``dlq list``, a dashboard): no role creates consumers."""


def consumer_cap(spec: FleetSpec, name: str) -> int:
    """A stream's ``max_consumers``: the fleet file's, or (-1) the consumers the fleet
    declares on it plus ``CONSUMER_HEADROOM``, never the server's default cap of 1000."""
    stated = spec.streams[name].max_consumers
    if stated != -1:
        return stated
    return sum(1 for c in spec.consumers() if c.stream == name) + CONSUMER_HEADROOM


def desired_stream(
    spec: FleetSpec, name: str, replicas: int, max_payload: int = 0
) -> dict[str, Any]:
    """``max_payload``: the server's (0: the fleet file's ``server.max_payload``)."""
    s = spec.streams[name]
    config: dict[str, Any] = {
        "name": name,
        "subjects": spec.stream_subjects(name),
        "retention": s.retention,
        "storage": s.storage,
        "compression": s.compression,
        "num_replicas": replicas,
        "max_age": int(s.max_age * NS),
        "max_msgs": s.max_msgs,
        "max_bytes": s.max_bytes,
        "max_msgs_per_subject": s.max_msgs_per_subject,
        "max_msg_size": spec.message_cap(name, max_payload or spec.server.max_payload),
        "max_consumers": consumer_cap(spec, name),
        "discard": s.discard,
        "discard_new_per_subject": s.discard_new_per_subject,
        "duplicate_window": int(s.duplicate_window * NS),
        "allow_direct": True,
        "allow_atomic": s.allow_atomic_publish,
        # Always stated, so that a description removed from the fleet file is cleared too.
        "description": s.description,
        "republish": _republish(spec, name),
    }
    return config


def _republish(spec: FleetSpec, name: str) -> dict[str, str] | None:
    """The stream that holds task outcomes sends each one, once stored, to
    ``P.outcomes.{id}.{A}.{R}``: a waiting ``result()`` takes it from there, without reading
    the stream back. None for every other stream (so a stray republish is cleared)."""
    outcomes = spec.subjects.outcomes()
    return spec.subjects.stored_outcome_republish() if spec.stream_for(outcomes) == name else None


def desired_consumer(consumer: ResolvedConsumer) -> dict[str, Any]:
    """A consumer's server config. ``max_deliver`` is -1 for the fleet's own consumers: the
    fleet file's ``max_deliver`` is the number of attempts the runtime makes before it
    dead-letters a message (with its body, after storing the dead letter), so the server never
    stops delivering a message whose dead letter could not be stored (``runtime.settle``)."""
    c: ConsumerSpec = consumer.spec
    config: dict[str, Any] = {
        "durable_name": consumer.name,
        "name": consumer.name,
        "ack_policy": "explicit",
        "ack_wait": int(c.effective_ack_wait * NS),
        "max_deliver": -1,
        "max_ack_pending": c.max_ack_pending,
        "replay_policy": "instant",
    }
    if c.deliver in ("all", "new", "last", "last_per_subject"):
        config["deliver_policy"] = c.deliver
    else:
        config["deliver_policy"] = "by_start_time"
        config["opt_start_time"] = _rfc3339(c.deliver)
    if len(consumer.filters) == 1:
        config["filter_subject"] = consumer.filters[0]
    else:
        config["filter_subjects"] = list(consumer.filters)
    # Always stated (null when none), so that a backoff removed from the fleet file is cleared.
    config["backoff"] = [int(d * NS) for d in c.backoff] if c.backoff else None
    return config


def build_plan(spec: FleetSpec, live: LiveState) -> Plan:
    """Compare the fleet with the live server. Replicas are capped at the cluster size."""
    actions: list[Action] = []
    warnings: list[str] = []
    capped: list[str] = []
    roomless: list[str] = []
    max_payload = live.max_payload or spec.server.max_payload
    for name, stream in spec.streams.items():
        replicas = min(stream.replicas, live.cluster_size)
        if replicas < stream.replicas:
            capped.append(f"{name} ({stream.replicas})")
        desired = desired_stream(spec, name, replicas, max_payload)
        if stream.max_msg_size != -1 and desired["max_msg_size"] < stream.max_msg_size:
            roomless.append(f"{name} ({stream.max_msg_size})")
        action = _compare(
            "stream",
            name,
            name,
            desired,
            live.streams.get(name),
            _STREAM_IMMUTABLE,
            live.stream_messages.get(name, 0),
        )
        actions.append(_retention_in_place(action, live))
    for consumer in spec.consumers():
        key = (consumer.stream, consumer.name)
        actions.append(
            _compare(
                "consumer",
                consumer.stream,
                consumer.name,
                desired_consumer(consumer),
                live.consumers.get(key),
                _CONSUMER_IMMUTABLE,
                live.consumer_pending.get(key, 0),
            )
        )
    if capped:
        warnings.append(
            f"replicas above the server's {live.cluster_size} node(s) for {', '.join(capped)}:"
            f" provisioned with {live.cluster_size} (run a cluster for replication)"
        )
    if roomless:
        warnings.append(
            f"max_msg_size leaves no room for a dead letter's headers in {', '.join(roomless)}:"
            f" provisioned with {max_payload - DEAD_LETTER_ROOM} (the server's max_payload of"
            f" {max_payload} less {DEAD_LETTER_ROOM} bytes)"
        )
    declared_consumers = {(c.stream, c.name) for c in spec.consumers()}
    for stream_name in sorted(live.streams):
        if stream_name not in spec.streams:
            actions.append(Action("stream", stream_name, stream_name, "unmanaged"))
    for stream_name, consumer_name in sorted(live.consumers):
        if stream_name in spec.streams and (stream_name, consumer_name) not in declared_consumers:
            actions.append(Action("consumer", stream_name, consumer_name, "unmanaged"))
    return Plan(tuple(actions), tuple(warnings), tuple(_taken(spec, live)))


def _taken(spec: FleetSpec, live: LiveState) -> list[str]:
    """The fleet's streams whose subjects a stream it does not name already holds (a stream
    renamed in the file, another application's): the server refuses the create (10065)."""
    taken: list[str] = []
    for name in spec.streams:
        for other, config in sorted(live.streams.items()):
            if other in spec.streams:
                continue
            theirs = [str(subject) for subject in config.get("subjects") or ()]
            pair = next(
                (
                    (mine, subject)
                    for mine in spec.stream_subjects(name)
                    for subject in theirs
                    if subjects_overlap(mine, subject)
                ),
                None,
            )
            if pair is None:
                continue
            messages = live.stream_messages.get(other, 0)
            taken.append(
                f"stream {name}: {pair[0]} overlaps {pair[1]} of stream {other}, which the"
                f" server has and the fleet file does not name (renamed? another"
                f" application's?); the server stores a subject in one stream only. Name the"
                f" stream {other} again, or delete {other} (its {messages} messages with it,"
                f" `nats stream rm {other}`) and provision again"
            )
    return taken


_IN_PLACE_RETENTION = {("limits", "interest"), ("interest", "limits")}
"""Retention changes the server makes in place (a work queue's it refuses)."""


def _retention_in_place(action: Action, live: LiveState) -> Action:
    """A stream recreate whose only immutable change is limits <-> interest retention is an
    update: to interest it removes the processed messages (a ``migrate``, with ``--force``),
    and keeps every message some consumer has not acknowledged; back to limits it removes
    nothing."""
    if action.op != "recreate" or action.kind != "stream":
        return action
    immutable = [c for c in action.changes if c.field in _STREAM_IMMUTABLE]
    if len(immutable) != 1 or immutable[0].field != "retention":
        return action
    change = immutable[0]
    if (change.live, change.desired) not in _IN_PLACE_RETENTION:
        return action
    if change.desired == "limits":
        return replace(action, op="update", messages=0)
    unprocessed = sum(
        n for (stream, _), n in live.consumer_pending.items() if stream == action.name
    )
    return replace(action, op="migrate", messages=max(0, action.messages - unprocessed))


def _compare(
    kind: Literal["stream", "consumer"],
    stream: str,
    name: str,
    desired: dict[str, Any],
    live: Mapping[str, Any] | None,
    immutable: tuple[str, ...],
    messages: int,
) -> Action:
    if live is None:
        return Action(kind, stream, name, "create", desired)
    changes = tuple(
        Change(key, _live_value(live, key), value)
        for key, value in desired.items()
        if not _same(key, _live_value(live, key), value)
    )
    if not changes:
        return Action(kind, stream, name, "unchanged", desired)
    op: Op = "recreate" if any(c.field in immutable for c in changes) else "update"
    return Action(kind, stream, name, op, desired, changes, messages)


# Fields the server omits from its JSON when they hold their default value.
_SERVER_DEFAULTS: dict[str, Any] = {
    "max_msgs_per_subject": 0,
    "discard_new_per_subject": False,
    "allow_direct": False,
    "allow_atomic": False,
    "compression": "none",
    "description": "",
    "backoff": None,
    "republish": None,
    "filter_subject": None,
    "filter_subjects": None,
    "opt_start_time": None,
    "max_msg_size": -1,
}


def _live_value(live: Mapping[str, Any], key: str) -> Any:
    return live.get(key, _SERVER_DEFAULTS.get(key))


def _same(key: str, live: Any, desired: Any) -> bool:
    if key == "subjects" and isinstance(live, list) and isinstance(desired, list):
        return sorted(live) == sorted(desired)
    if key == "max_msgs_per_subject":
        # The server reports "no limit" as 0 or -1 depending on how it was set.
        return bool(_unlimited(live) == _unlimited(desired))
    if key == "opt_start_time" and live and desired:
        return parse_iso(live) == parse_iso(desired)
    same: bool = live == desired
    return same


def _unlimited(value: Any) -> Any:
    return -1 if value in (0, -1, None) else value


def _rfc3339(value: str) -> str:
    return parse_iso(value).isoformat().replace("+00:00", "Z")
