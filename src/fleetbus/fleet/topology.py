"""What the fleet file means: the subjects of each stream, which stream stores a subject, and
each role's durable consumers (``ResolvedConsumer``), worked out once per fleet.

``FleetSpec`` is the fleet file (``FleetFile``) with these derived views and the checks of
its cross-references (a role sending to an unknown role, a consumer whose subject no stream
captures), which the loader reports with their own key paths.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Self

from pydantic import PrivateAttr, ValidationInfo, model_validator

from fleetbus.errors import UnknownRoleError
from fleetbus.fleet.model import (
    DEAD_LETTER_COPIER,
    ConsumerKind,
    ConsumerSpec,
    FleetFile,
    RoleSpec,
    _Model,
)
from fleetbus.wire.headers import DEAD_LETTER_ROOM
from fleetbus.wire.subjects import (
    ADVISORY_MAX_DELIVERIES,
    ADVISORY_TERMINATED,
    Subjects,
    consumer_name,
    filter_within,
    subject_matches,
)

__all__ = ["FleetSpec", "ResolvedConsumer"]


@functools.lru_cache(maxsize=256)
def _subjects_for(prefix: str) -> Subjects:
    """One (immutable) ``Subjects`` per prefix: the runtime asks for it per message."""
    return Subjects(prefix)


class ResolvedConsumer(_Model):
    """A consumer as provisioning and the runtime see it: stream, name, absolute filters."""

    role: str
    kind: ConsumerKind
    stream: str
    name: str
    filters: list[str]
    spec: ConsumerSpec


_NO_FILTERS: tuple[frozenset[str], tuple[str, ...]] = (frozenset(), ())


@dataclass(frozen=True, slots=True)
class _Resolved:
    """A fleet's consumers, by role and kind, and each stream's consumer filters: literal
    ones in a set (a fleet of 10,000 roles asks whether some consumer reads a subject 30,000
    times), wildcards in a list."""

    consumers: tuple[ResolvedConsumer, ...]
    by_role: dict[tuple[str, str], ResolvedConsumer]
    filters: dict[str, tuple[frozenset[str], tuple[str, ...]]]

    @classmethod
    def of(cls, consumers: list[ResolvedConsumer]) -> _Resolved:
        literal: dict[str, set[str]] = {}
        wildcards: dict[str, list[str]] = {}
        for c in consumers:
            for f in c.filters:
                tokens = f.split(".")
                if "*" in tokens or ">" in tokens:
                    wildcards.setdefault(c.stream, []).append(f)
                else:
                    literal.setdefault(c.stream, set()).add(f)
        return cls(
            tuple(consumers),
            {(c.role, c.kind): c for c in consumers},
            {
                name: (frozenset(literal.get(name, ())), tuple(wildcards.get(name, ())))
                for name in {*literal, *wildcards}
            },
        )


class FleetSpec(FleetFile):
    """A whole fleet: the fleet file and what it means."""

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
        for consumer in self._resolved().consumers:
            if consumer.stream == "":
                problems.append(
                    (
                        f"roles.{consumer.role}.{consumer.kind}",
                        f"no stream captures {consumer.filters[0]}; add it to a stream's subjects",
                    )
                )
        return problems

    # -- derived topology -------------------------------------------------------------

    _resolved_cache: _Resolved | None = PrivateAttr(default=None)
    _by_subject: dict[tuple[str, str], str] = PrivateAttr(default_factory=dict)
    """``stream_for`` and ``dropped_unread`` per subject: a sender asks for every message."""
    _captured: dict[str, tuple[str, ...]] = PrivateAttr(default_factory=dict)
    """``stream_subjects`` per stream: resolving the consumers of 10,000 roles asks 60,000
    times."""

    @property
    def subjects(self) -> Subjects:
        return _subjects_for(self.prefix)

    def stream_subjects(self, name: str) -> list[str]:
        """The stream's subjects as the server sees them (advisories added for dead letters)."""
        return list(self._captured_by(name))

    def _captured_by(self, name: str) -> tuple[str, ...]:
        captured = self._captured.get(name)
        if captured is None:
            spec = self.streams[name]
            out = [self.subjects.absolute(s) for s in spec.subjects]
            if spec.dead_letters:
                for other in self.streams:
                    if other != name:
                        out.append(f"{ADVISORY_MAX_DELIVERIES}.{other}.*")
                        out.append(f"{ADVISORY_TERMINATED}.{other}.*")
            captured = self._captured[name] = tuple(out)
        return captured

    def stream_for(self, subject: str) -> str:
        """The name of the stream that captures the literal or filter ``subject``, or ''."""
        return self._remembered("stream", subject, self._stream_for)

    def _remembered(self, what: str, subject: str, find: Callable[[str], str]) -> str:
        found = self._by_subject.get((what, subject))
        if found is None:
            if len(self._by_subject) >= 4096:  # many distinct subjects: start over
                self._by_subject.clear()
            found = self._by_subject[(what, subject)] = find(subject)
        return found

    def _stream_for(self, subject: str) -> str:
        for name in self.streams:
            for pattern in self._captured_by(name):
                # A literal, or a filter like P.events.> inside a stream capturing P.events.>
                # (subject_matches would let a stream's * swallow a filter's >)
                if filter_within(subject, pattern):
                    return name
        return ""

    def dropped_unread(self, subject: str) -> str:
        """The interest-retention stream that would acknowledge a publish on the literal
        ``subject`` and store nothing, because no consumer of it reads that subject; ''
        when it is stored (or no stream captures it)."""
        return self._remembered("unread", subject, self._dropped_unread)

    def _dropped_unread(self, subject: str) -> str:
        name = self.stream_for(subject)
        if not name or self.streams[name].retention != "interest":
            return ""
        literal, wildcards = self._resolved().filters.get(name, _NO_FILTERS)
        if subject in literal or any(subject_matches(f, subject) for f in wildcards):
            return ""
        return name

    @property
    def dead_letter_stream(self) -> str | None:
        return next((n for n, s in self.streams.items() if s.dead_letters), None)

    def message_cap(self, stream: str, max_payload: int) -> int:
        """``stream``'s ``max_msg_size`` as provisioned on a server with ``max_payload``: the
        fleet file's, but at most ``max_payload`` less ``DEAD_LETTER_ROOM`` on a stream the
        fleet's consumers read, so that whatever they take can be dead-lettered whole (a
        message over ``max_payload`` with its dead letter's headers would be refused, and the
        server would close the connection that sent it). The dead-letter stream holds that
        room's use: a dead letter's own dead letter replaces its ``Fleet-Dlq-*`` headers."""
        stated = self.streams[stream].max_msg_size
        if (
            max_payload <= 2 * DEAD_LETTER_ROOM
            or stream == self.dead_letter_stream
            or not any(c.stream == stream for c in self._resolved().consumers)
        ):
            return stated
        cap = max_payload - DEAD_LETTER_ROOM
        return cap if stated == -1 or stated > cap else stated

    def role(self, name: str) -> RoleSpec:
        try:
            return self.roles[name]
        except KeyError:
            raise UnknownRoleError(name, list(self.roles)) from None

    def consumers(self) -> list[ResolvedConsumer]:
        """Every durable consumer the fleet declares, in file order."""
        return list(self._resolved().consumers)

    def consumer(self, role: str, kind: ConsumerKind) -> ResolvedConsumer | None:
        self.role(role)
        return self._resolved().by_role.get((role, kind))

    def _resolved(self) -> _Resolved:
        """Resolved once per (frozen) fleet: a fleet of 1,000 roles asks this 3,000 times."""
        cached = self._resolved_cache
        if cached is None:
            cached = self._resolved_cache = _Resolved.of(self._consumers_unchecked())
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
        copy._by_subject = {}
        copy._captured = {}
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
                ("updates", spec.updates, subjects.all_task_updates()),
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
