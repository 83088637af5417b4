"""What each role may publish and subscribe to, derived from the fleet file. Pure.

Every grant answers to one thing the runtime or the client does (docs/security.md has the
table). Nothing is granted by default: a role with an empty ``publish`` list publishes no
events, and a role that sends to nobody gets no ``P.agents.*`` publish at all. Never granted
to a role: ``_INBOX.>`` (other clients' replies), ``$JS.API.>``, another role's consumers,
stream or consumer create/delete/update (only the admin provisions).
"""

from __future__ import annotations

from dataclasses import dataclass

from fleetbus.fleet import DEAD_LETTER_COPIER, FleetSpec

__all__ = ["ADMIN", "Permissions", "inbox_prefix", "role_permissions", "senders_to"]

ADMIN = "admin"
"""The identity that provisions, runs the dead-letter copier and that the CLI uses."""

_AGENT_KINDS = ("inbox", "tasks", "meetings")


def inbox_prefix(identity: str) -> str:
    """Each identity's own reply-subject prefix (``_INBOX_backend``): it may subscribe only
    there, so it never sees another client's PubAcks, fetched messages or answers."""
    return f"_INBOX_{identity}"


@dataclass(frozen=True, slots=True)
class Permissions:
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    publish_deny: tuple[str, ...] = ()
    allow_responses: bool = True


def senders_to(spec: FleetSpec, role: str) -> list[str]:
    """The roles whose ``send_to`` lets them message (and so ask) ``role``."""
    return [r for r, s in spec.roles.items() if "*" in s.send_to or role in s.send_to]


def role_permissions(spec: FleetSpec, role: str) -> Permissions:
    """The least privilege ``role`` needs for everything fleetbus does as that role."""
    rs = spec.role(role)
    sub = spec.subjects
    p = spec.prefix
    pub: list[str] = []
    subs: list[str] = [f"{inbox_prefix(role)}.>", sub.rpc(role), f"{p}.meetings.*"]
    deny: list[str] = []
    dlq = spec.dead_letter_stream
    own = [c for c in spec.consumers() if c.role == role]
    for c in own:
        # bind (INFO), fetch (MSG.NEXT), ack / nak / +WPI / +TERM on its own consumers only
        pub += [
            f"$JS.API.CONSUMER.INFO.{c.stream}.{c.name}",
            f"$JS.API.CONSUMER.MSG.NEXT.{c.stream}.{c.name}",
            f"$JS.ACK.{c.stream}.{c.name}.>",
        ]
        if dlq is not None:
            pub.append(sub.dead_letter(c.stream, c.name))  # the runtime's own dead letters
    targets = "*" if "*" in rs.send_to else sorted(set(rs.send_to))
    for target in [targets] if targets == "*" else targets:
        for kind in _AGENT_KINDS:
            # Only with its own sender token: the receiver trusts P.agents.{to}.{kind}.{from}
            pub.append(f"{p}.agents.{target}.{kind}.{role}")
        pub.append(f"{p}.rpc.{target}")
    pub += [sub.absolute(s) for s in rs.publish]
    subs += [sub.absolute(s) for s in rs.subscribe]
    pub.append(f"{p}.meetings.*")
    if rs.tasks is not None:
        pub.append(sub.all_task_updates())  # accepted / progress / completed / failed
    if rs.inbox is not None:
        # Durable asks: answer to the asker's ``ask`` namespace, nothing else of its inbox.
        for asker in [*senders_to(spec, role), ADMIN]:
            pub.append(f"{inbox_prefix(asker)}.ask.*")
    readable: list[tuple[str, str]] = []
    updates_stream = spec.stream_for(sub.all_task_updates())
    if rs.send_to and updates_stream:
        readable.append((updates_stream, sub.all_task_updates()))  # TaskHandle.updates()
        subs.append(sub.all_task_updates())  # TaskHandle.result(): the live updates
    if rs.oversight:
        readable += [(name, ">") for name in spec.streams if name != dlq]
    for stream, filter_ in readable:
        # Fleet.watch / observe: a consumer on the narrow create subject, one filter only
        pub.append(f"$JS.API.CONSUMER.CREATE.{stream}.*.{filter_}")
    for stream in sorted({s for s, _ in readable}):
        for c in spec.consumers():
            if c.stream == stream:
                deny.append(f"$JS.API.CONSUMER.CREATE.{stream}.{c.name}.>")
        if stream == dlq:
            deny.append(f"$JS.API.CONSUMER.CREATE.{stream}.{DEAD_LETTER_COPIER}.>")
    return Permissions(
        publish=tuple(dict.fromkeys(pub)),
        subscribe=tuple(dict.fromkeys(subs)),
        publish_deny=tuple(dict.fromkeys(deny)),
    )
