"""What one identity may do, read from the fleet file: the roles it may assign to, message
and ask, the events it may publish, whether it has an inbox to read. Pure.

The MCP server offers a tool, and a role in a tool's ``role`` enum, only where this says so.
It is the same reading of the fleet file that the server's permissions are rendered from
(``security.permissions``), so with auth on the NATS server refuses what is not offered
here; without auth, this is the only check.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleetbus.fleet import FleetSpec
from fleetbus.wire.subjects import ADMIN, subject_matches, subjects_overlap

__all__ = ["ADMIN", "Reach"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Reach:
    """What ``identity`` (a role of the fleet, or ``admin``) may do."""

    identity: str
    tasks: tuple[str, ...] = ()
    """Roles it may assign tasks to (in its ``send_to``, with a tasks consumer)."""
    messages: tuple[str, ...] = ()
    """Roles whose inbox it may write (in its ``send_to``, with an inbox consumer)."""
    asks: tuple[str, ...] = ()
    """Roles it may ask (its ``send_to``)."""
    events: tuple[str, ...] = ()
    """The absolute subject patterns of its ``publish`` grants that reach events."""
    inbox: bool = False
    """It has an inbox consumer (``ROLE_INBOX``) to read."""
    inbox_batch: int = 0
    """How many inbox messages it may hold unacknowledged (the consumer's max_ack_pending)."""
    dead_letters: bool = False
    """It may read the dead-letter stream (the admin, when the fleet has one)."""
    descriptions: tuple[tuple[str, str], ...] = ()
    """Each role's ``description`` from the fleet file, for tool descriptions."""

    @property
    def admin(self) -> bool:
        return self.identity == ADMIN

    @classmethod
    def of(cls, spec: FleetSpec, identity: str) -> Reach:
        """``identity``'s reach; ``UnknownRoleError`` for a name that is neither."""
        events_all = f"{spec.prefix}.events.>"
        captured = bool(spec.stream_for(events_all))
        if identity == ADMIN:
            targets = list(spec.roles)
            grants: tuple[str, ...] = (events_all,) if captured else ()
        else:
            role = spec.role(identity)
            targets = list(spec.roles) if "*" in role.send_to else list(dict.fromkeys(role.send_to))
            absolute = (spec.subjects.absolute(s) for s in role.publish)
            grants = tuple(g for g in absolute if captured and subjects_overlap(g, events_all))
        inbox = None if identity == ADMIN else spec.roles[identity].inbox
        return cls(
            identity=identity,
            tasks=tuple(r for r in targets if spec.roles[r].tasks is not None),
            messages=tuple(r for r in targets if spec.roles[r].inbox is not None),
            asks=tuple(targets),
            events=grants,
            inbox=inbox is not None,
            inbox_batch=_batch(inbox.max_ack_pending) if inbox is not None else 0,
            dead_letters=identity == ADMIN and spec.dead_letter_stream is not None,
            descriptions=tuple((name, r.description) for name, r in spec.roles.items()),
        )

    def about(self, role: str) -> str:
        """What ``role`` does, as the fleet file describes it ('' when it does not)."""
        return dict(self.descriptions).get(role, "")

    def may_emit(self, subject: str) -> bool:
        return any(subject_matches(grant, subject) for grant in self.events)


def _batch(max_ack_pending: int) -> int:
    return 100 if max_ack_pending < 0 else min(max_ack_pending, 100)
