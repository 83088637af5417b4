"""Every subject and consumer name fleetbus uses, built and validated in one place.

With prefix ``P`` (the seed uses ``genbrain``)::

    P.agents.{role}.inbox        direct messages            (AGENT_COMMS)
    P.agents.{role}.tasks        task assignments           (AGENT_COMMS)
    P.agents.{role}.meetings     meeting invitations        (AGENT_COMMS)
    P.agents.{role}.{kind}.{from} the same, sent by role ``from``: with auth on, the server
                                 lets each role publish only its own ``from`` token, so the
                                 receiver trusts it (the ``Fleet-Sender`` header is forgeable)
    P.events.{domain}.{type}     events, fan-out            (EVENTS)
    P.tasks.{task_id}.updates    a task's lifecycle         (TASKS)
    P.meetings.{meeting_id}      live meeting traffic       (core NATS, not stored)
    P.rpc.{role}                 fast asks, answered by the agent (core NATS, not stored)
    P.dlq.{stream}.{consumer}    dead letters               (AGENT_DLQ)

Consumers are ``ROLE_KIND`` in upper case: ``BACKEND_TASKS``, ``DEVOPS_EVENTS``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fleetbus.errors import InvalidSubjectError

__all__ = [
    "ADVISORY_MAX_DELIVERIES",
    "ADVISORY_TERMINATED",
    "Subjects",
    "consumer_name",
    "filter_within",
    "is_valid_subject",
    "subject_matches",
    "subjects_overlap",
    "validate_subject",
    "validate_token",
]

ADVISORY_MAX_DELIVERIES = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES"
ADVISORY_TERMINATED = "$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED"

# A token is what sits between two dots. Names that become one token must not contain
# a dot, whitespace or a wildcard; ``$`` and other printable characters are NATS-legal.
_BAD_TOKEN = re.compile(r"[\s.*>]")
# Role names also become consumer names (upper-cased) and user names: keep them tame.
_ROLE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


def validate_token(value: str, what: str = "token") -> str:
    """Return ``value`` if it can stand as one subject token, else raise with the reason."""
    if not isinstance(value, str) or value == "":
        raise InvalidSubjectError(f"{what} must be a non-empty string, got {value!r}")
    bad = _BAD_TOKEN.search(value)
    if bad:
        char = bad.group()
        name = {" ": "a space", ".": "a dot", "*": "a wildcard", ">": "a wildcard"}.get(
            char, "whitespace"
        )
        raise InvalidSubjectError(
            f"{what} {value!r} contains {name}: it must be a single subject token"
        )
    return value


def validate_role(value: str) -> str:
    """Role names: lower case letter first, then letters, digits, ``_`` or ``-``."""
    validate_token(value, "role")
    if not _ROLE.match(value):
        raise InvalidSubjectError(
            f"role {value!r} must start with a lower-case letter and use only a-z, 0-9, _ and -"
        )
    return value


def is_valid_subject(subject: str, *, wildcards: bool = True) -> bool:
    try:
        validate_subject(subject, wildcards=wildcards)
    except InvalidSubjectError:
        return False
    return True


def validate_subject(subject: str, *, wildcards: bool = True) -> str:
    """Check a whole subject (or filter, when ``wildcards``) and return it."""
    if not subject:
        raise InvalidSubjectError("subject must not be empty")
    tokens = subject.split(".")
    for i, tok in enumerate(tokens):
        if tok in ("*", ">"):
            if not wildcards:
                raise InvalidSubjectError(f"subject {subject!r} must not contain wildcards")
            if tok == ">" and i != len(tokens) - 1:
                raise InvalidSubjectError(f"'>' must be the last token in {subject!r}")
            continue
        if tok == "":
            raise InvalidSubjectError(f"subject {subject!r} has an empty token")
        if re.search(r"\s", tok):
            raise InvalidSubjectError(f"subject {subject!r} contains whitespace")
        if "*" in tok or ">" in tok:
            raise InvalidSubjectError(f"wildcard inside the token {tok!r} of {subject!r}")
    return subject


def subject_matches(pattern: str, subject: str) -> bool:
    """True when the literal ``subject`` is matched by the filter ``pattern``."""
    p = pattern.split(".")
    s = subject.split(".")
    for i, tok in enumerate(p):
        if tok == ">":
            return len(s) > i
        if i >= len(s):
            return False
        if tok != "*" and tok != s[i]:
            return False
    return len(p) == len(s)


def subjects_overlap(a: str, b: str) -> bool:
    """True when some literal subject is matched by both filters ``a`` and ``b``."""
    ta = a.split(".")
    tb = b.split(".")
    for i in range(max(len(ta), len(tb))):
        x = ta[i] if i < len(ta) else None
        y = tb[i] if i < len(tb) else None
        if x == ">" and y is not None:
            return True
        if y == ">" and x is not None:
            return True
        if x is None or y is None:
            return False
        if x != y and x != "*" and y != "*":
            return False
    return True


def filter_within(inner: str, outer: str) -> bool:
    """True when every subject ``inner`` matches is also matched by ``outer``."""
    a = inner.split(".")
    b = outer.split(".")
    for i, tok in enumerate(b):
        if tok == ">":
            return len(a) > i
        if i >= len(a):
            return False
        if tok == "*":
            if a[i] == ">":
                return False
            continue
        if a[i] != tok:
            return False
    return len(a) == len(b)


def consumer_name(role: str, kind: str) -> str:
    """The durable consumer name the seed uses: ``BACKEND_TASKS``."""
    return f"{role}_{kind}".upper().replace("-", "_")


@dataclass(frozen=True, slots=True)
class Subjects:
    """Subject builder for one prefix. Every argument is validated as a single token."""

    prefix: str

    def __post_init__(self) -> None:
        validate_subject(self.prefix, wildcards=False)

    def agent(self, role: str, kind: str, sender: str | None = None) -> str:
        """``P.agents.{role}.{kind}``, or ``P.agents.{role}.{kind}.{sender}`` from a role."""
        base = f"{self.prefix}.agents.{validate_token(role, 'role')}.{kind}"
        return base if sender is None else f"{base}.{validate_token(sender, 'sender')}"

    def agent_filters(self, role: str, kind: str) -> list[str]:
        """What a role's consumer of ``kind`` receives: plain publishes and every sender's."""
        base = self.agent(role, kind)
        return [base, f"{base}.*"]

    def inbox(self, role: str, sender: str | None = None) -> str:
        return self.agent(role, "inbox", sender)

    def tasks(self, role: str, sender: str | None = None) -> str:
        return self.agent(role, "tasks", sender)

    def invitations(self, role: str, sender: str | None = None) -> str:
        return self.agent(role, "meetings", sender)

    def event(self, domain: str, type_: str) -> str:
        return (
            f"{self.prefix}.events.{validate_token(domain, 'event domain')}"
            f".{validate_token(type_, 'event type')}"
        )

    def events_filter(self, pattern: str) -> str:
        """``deployment.>`` → ``P.events.deployment.>``."""
        return validate_subject(f"{self.prefix}.events.{pattern}")

    def task_updates(self, task_id: str) -> str:
        return f"{self.prefix}.tasks.{validate_token(task_id, 'task id')}.updates"

    def all_task_updates(self) -> str:
        return f"{self.prefix}.tasks.*.updates"

    def rpc(self, role: str) -> str:
        """Fast asks to ``role``: core NATS, answered by the agent; no stream may capture it."""
        return f"{self.prefix}.rpc.{validate_token(role, 'role')}"

    def meeting(self, meeting_id: str) -> str:
        return f"{self.prefix}.meetings.{validate_token(meeting_id, 'meeting id')}"

    def dead_letter(self, stream: str, consumer: str) -> str:
        return (
            f"{self.prefix}.dlq.{validate_token(stream, 'stream')}"
            f".{validate_token(consumer, 'consumer')}"
        )

    def parse_agent(self, subject: str) -> tuple[str, str] | None:
        """``P.agents.{role}.{kind}[.{sender}]`` → ``(role, kind)``; anything else → None."""
        head = f"{self.prefix}.agents."
        if not subject.startswith(head):
            return None
        rest = subject[len(head) :].split(".")
        return (rest[0], rest[1]) if len(rest) in (2, 3) else None

    def sender_of(self, subject: str) -> str | None:
        """The sender token of ``P.agents.{role}.{kind}.{sender}``; None without one."""
        head = f"{self.prefix}.agents."
        if not subject.startswith(head):
            return None
        rest = subject[len(head) :].split(".")
        return rest[2] if len(rest) == 3 else None

    def absolute_pattern(self, pattern: str) -> str:
        """``pattern`` as the server sees it: kept when it already starts with the prefix (or
        is a ``$`` subject), else taken as relative to the prefix. Not validated."""
        if pattern.startswith((f"{self.prefix}.", "$")):
            return pattern
        return f"{self.prefix}.{pattern}"

    def tail_filters(self, pattern: str) -> list[str]:
        """The subscriptions that show what is published on ``pattern`` (absolute, or
        relative to the prefix) without taking part in anything.

        A subscriber on ``P.rpc.*`` counts as a responder: fast asks to a role with no agent
        would wait for their timeout instead of failing at once. So a pattern wider than the
        requests covers every other family of the prefix and leaves requests out (tail
        ``rpc.>`` to see them). An agents subject also gets its sender-token form
        (``P.agents.{role}.{kind}.{sender}``)."""
        subject = validate_subject(self.absolute_pattern(pattern))
        out: list[str] = []
        if subjects_overlap(subject, f"{self.prefix}.rpc.*") and not subject.startswith(
            f"{self.prefix}.rpc."
        ):
            for family in ("agents", "events", "tasks", "meetings", "dlq"):
                family_subject = f"{self.prefix}.{family}.>"
                if subjects_overlap(subject, family_subject):
                    out.append(family_subject)
        else:
            out.append(subject)
        if subject.startswith(f"{self.prefix}.agents.") and not subject.endswith(">"):
            out.append(f"{subject}.*")
        return out

    def absolute(self, relative: str) -> str:
        """A fleet-file subject (relative to the prefix) as the server sees it."""
        if relative.startswith("$"):
            return validate_subject(relative)
        return validate_subject(f"{self.prefix}.{relative}")
