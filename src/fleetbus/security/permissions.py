"""What each role may publish and subscribe to, derived from the fleet file. Pure.

The promise: **a role can do only what its lines in the fleet file allow** — send as itself
to the roles in its ``send_to``, work its own consumers, write its own records, and read what
is addressed to it. Every grant answers to one thing the runtime or the client does
(docs/security.md has the table); nothing else is granted.

The rules that hold it together:

- **Identity is a subject token the server enforces** (``wire.subjects``): a role publishes
  only with its own name as the sender (``P.agents.{to}.{kind}.{R}``, ``P.rpc.{to}.{R}``,
  ``P.meetings.{id}.{R}``), the assignee (``P.tasks.{id}.updates|outcome.{A}.{R}``) or the
  assigner (``P.tasks.{id}.cancel|answer.{R}.{to}``).
- **No role creates consumers**: a push consumer's deliver subject is not checked against its
  creator's permissions, and a literal ``>`` in a filtered-create subject widens a grant ending
  in ``*``. Roles read their own durable consumers, the last record of a subject by direct get
  (``$JS.API.DIRECT.GET.{stream}.{subject}``: the server refuses a body that would select
  anything else), and live traffic by core subscription.
- **No ``allow_responses``**: with it, a role that can publish and subscribe on one subject
  can publish once to any subject it names as a reply. Answers go to an explicit namespace,
  ``_INBOX_{asker}.rpc.{answerer}.*``, granted to the roles the asker may ask.
- Never granted: ``_INBOX.>`` or another identity's inbox, ``$JS.API.>``, another role's
  consumers, any stream or consumer change (only the admin provisions).
"""

from __future__ import annotations

from dataclasses import dataclass

from fleetbus.fleet import FleetSpec
from fleetbus.wire.subjects import ADMIN, inbox_prefix

__all__ = ["ADMIN", "Permissions", "inbox_prefix", "role_permissions", "senders_to"]

_AGENT_KINDS = ("inbox", "tasks", "meetings")


@dataclass(frozen=True, slots=True)
class Permissions:
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]


def senders_to(spec: FleetSpec, role: str) -> list[str]:
    """The roles whose ``send_to`` lets them message (and so ask) ``role``."""
    return [r for r, s in spec.roles.items() if "*" in s.send_to or role in s.send_to]


def role_permissions(spec: FleetSpec, role: str) -> Permissions:
    """The least privilege ``role`` needs for everything fleetbus does as that role."""
    rs = spec.role(role)
    sub = spec.subjects
    p = spec.prefix
    pub: list[str] = []
    subs: list[str] = [
        f"{inbox_prefix(role)}.>",  # its own replies: API answers, fetched messages, answers
        sub.rpc(role),
        f"{sub.rpc(role)}.*",  # fast asks to it
        f"{p}.meetings.*",
        f"{p}.meetings.*.*",  # meetings are rooms every role may join (docs/security.md)
    ]
    for c in (c for c in spec.consumers() if c.role == role):
        # bind (INFO), fetch (MSG.NEXT), ack / nak / +WPI / +TERM on its own consumers only
        pub += [
            f"$JS.API.CONSUMER.INFO.{c.stream}.{c.name}",
            f"$JS.API.CONSUMER.MSG.NEXT.{c.stream}.{c.name}",
            f"$JS.ACK.{c.stream}.{c.name}.>",
        ]
        if spec.dead_letter_stream is not None:
            pub.append(f"{sub.dead_letter(c.stream, c.name)}.*")  # its own dead letters
    targets = ["*"] if "*" in rs.send_to else sorted(set(rs.send_to))
    for target in targets:
        for kind in _AGENT_KINDS:
            pub.append(f"{p}.agents.{target}.{kind}.{role}")
        pub.append(f"{p}.rpc.{target}.{role}")
        # cancel the tasks it assigned, answer their input requests
        pub.append(f"{p}.tasks.*.cancel.{role}.{target}")
        pub.append(f"{p}.tasks.*.answer.{role}.{target}.*")
    pub += [sub.absolute(s) for s in rs.publish]
    subs += [sub.absolute(s) for s in rs.subscribe]
    pub.append(f"{p}.meetings.*.{role}")
    tasks = spec.stream_for(sub.task_records())
    get = f"$JS.API.DIRECT.GET.{tasks}"
    if rs.tasks is not None:
        # as the assignee: its tasks' state changes and outcome; read what the assigner wrote
        pub += [f"{p}.tasks.*.updates.*.{role}", f"{p}.tasks.*.outcome.*.{role}"]
        pub.append(sub.task_index(role))  # its tasks' entries in the task list
        memo = spec.stream_for(sub.memo(role))
        if memo:  # its own step results, nobody else's
            pub += [f"{sub.memo(role)}", f"$JS.API.DIRECT.GET.{memo}.{sub.memo(role)}"]
        subs += [f"{p}.tasks.*.cancel.*.{role}", f"{p}.tasks.*.answer.*.{role}.*"]
        if tasks:
            pub += [
                f"{get}.{p}.tasks.*.outcome.*.{role}",
                f"{get}.{p}.tasks.*.cancel.*.{role}",
                f"{get}.{p}.tasks.*.answer.*.{role}.*",
            ]
    if rs.send_to:
        # as the assigner: follow the tasks it assigned (live), read their last records,
        # enter them in the task list (submitted)
        subs += [
            f"{p}.tasks.*.updates.{role}.*",
            f"{p}.tasks.*.outcome.{role}.*",
            sub.stored_outcomes(role),  # the server's word that an outcome is stored
        ]
        pub.append(f"{p}.index.*.{role}.*")
        if tasks:
            pub += [f"{get}.{p}.tasks.*.updates.{role}.*", f"{get}.{p}.tasks.*.outcome.{role}.*"]
    # answer asks: into the namespace of each identity that may ask it, nothing else
    for asker in [*senders_to(spec, role), ADMIN]:
        pub.append(f"{inbox_prefix(asker)}.rpc.{role}.*")
    # presence: its own records; control requests to its instances, answered to the admin
    # and the roles with oversight (who may send them)
    pub.append(sub.presence(role))
    subs.append(sub.control(role))
    overseers = [r for r, s in spec.roles.items() if s.oversight]
    for asker in [ADMIN, *overseers]:
        pub.append(f"{sub.control_reply(asker, role)}.*")
    presence = spec.stream_for(sub.presence(role))
    if presence:  # is any agent of a role it sends to alive? (the latest record)
        for target in targets:
            pub.append(f"$JS.API.DIRECT.GET.{presence}.{p}.presence.{target}.*")
    if rs.oversight:
        # watch every inbox and every task's records live, without consuming anything;
        # ping, drain and cancel any agent process
        subs += [f"{p}.agents.>", f"{p}.tasks.>", sub.stored_outcomes()]
        pub.append(f"{p}.control.*.*")
        if tasks:
            pub.append(f"{get}.{p}.tasks.>")
    return Permissions(publish=tuple(dict.fromkeys(pub)), subscribe=tuple(dict.fromkeys(subs)))
