"""Every subject and consumer name fleetbus uses, built and validated in one place.

With prefix ``P`` (the seed uses ``genbrain``)::

    P.agents.{role}.{kind}.{from}   a role's inbox, tasks and meeting invitations, sent by
                                    ``from`` (AGENT_COMMS); without ``.{from}`` from the admin
                                    or a plain NATS client
    P.events.{domain}.{type}        events, fan-out (EVENTS)
    P.tasks.{id}.updates.{A}.{R}    task ``id``'s state changes, written by its assignee ``R``
                                    (assigned by ``A``) (TASKS)
    P.tasks.{id}.outcome.{A}.{R}    its one terminal record: the first one stored wins (TASKS)
    P.outcomes.{id}.{A}.{R}         that outcome again, sent by the server once it is stored
                                    (the stream's republish): no client writes it
    P.tasks.{id}.cancel.{A}.{R}     ``A`` (or the admin) cancels it (TASKS)
    P.tasks.{id}.answer.{A}.{R}.{n} ``A``'s answer to the task's input request ``n`` (TASKS)
    P.meetings.{meeting_id}.{from}  live meeting traffic (core NATS, not stored)
    P.rpc.{role}.{from}             fast asks to ``role`` (core NATS, not stored)
    P.dlq.{stream}.{consumer}.{seq} the dead letter of message ``seq`` (AGENT_DLQ): the first
                                    one stored stands
    _INBOX_{from}.rpc.{role}.{id}   the answer to ``from``'s ask of ``role``

**An identity is a subject token the server enforces.** With auth on, a role may publish only
with its own name in the ``{from}``, ``{R}`` (updates, outcomes) or ``{A}`` (cancels, answers)
position, so a receiver trusts those tokens; a header or a body field is a claim. ``admin``
stands for the admin identity (and plain clients) where a token is needed: no role may be
called that.

Consumers are ``ROLE_KIND`` in upper case: ``BACKEND_TASKS``, ``DEVOPS_EVENTS``.

One piece: every subject, its tokens' rules and its parsing back live here together, so the
wire contract has one place to change and to read.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from fleetbus.errors import InvalidSubjectError
from fleetbus.wire.headers import STORED_SUBJECT

__all__ = [
    "ADMIN",
    "ADVISORY_MAX_DELIVERIES",
    "ADVISORY_TERMINATED",
    "FLEETBUS_FAMILIES",
    "MAX_ID",
    "MAX_SUBJECT",
    "MAX_TOKEN",
    "READER_DELIVERY",
    "Subjects",
    "TaskSubject",
    "check_length",
    "consumer_name",
    "filter_within",
    "inbox_prefix",
    "is_id",
    "is_valid_subject",
    "subject_matches",
    "subjects_overlap",
    "validate_id",
    "validate_subject",
    "validate_token",
]

ADVISORY_MAX_DELIVERIES = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES"
ADVISORY_TERMINATED = "$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED"

READER_DELIVERY = "_FLEETBUS_READER"
"""Where a stream reader's consumer delivers (``READER_DELIVERY.{id}``): one namespace,
whatever the reader's inbox prefix, so that the server forwards it from the account that
holds the streams (``fleetbus.security.render``). Only the admin creates readers."""

ADMIN = "admin"
"""The token of the admin identity (and of clients without a role) where one is needed."""

MAX_TOKEN = 256
"""The longest token fleetbus puts in a subject. The server closes a connection whose
control line (subject, reply and sizes) passes 4096 bytes, and nats-py then closes for good:
every token is bounded so that no subject fleetbus builds comes near it."""
MAX_ID = 128
"""The longest task, meeting or ask id."""
MAX_SUBJECT = 2048
"""The longest subject fleetbus publishes on: with a reply subject and the sizes it stays well
inside the server's 4096-byte control line (past it the server drops the connection)."""

# A token is what sits between two dots. Names that become one token must not contain
# a dot, whitespace or a wildcard; ``$`` and other printable characters are NATS-legal.
_BAD_TOKEN = re.compile(r"[\s.*>]")
# Role names also become consumer names (upper-cased) and user names: keep them tame.
_ROLE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
# Ids (tasks, meetings, asks) come from users and from bodies: a small, printable alphabet.
_ID = re.compile(r"^[A-Za-z0-9_:+=@~-]+$")


def validate_token(value: str, what: str = "token") -> str:
    """Return ``value`` if it can stand as one subject token, else raise with the reason."""
    if not isinstance(value, str) or value == "":
        raise InvalidSubjectError(f"{what} must be a non-empty string, got {value!r}")
    if len(value) > MAX_TOKEN:
        raise InvalidSubjectError(
            f"{what} is {len(value)} characters long: at most {MAX_TOKEN} fit in a subject"
        )
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


def check_length(subject: str) -> str:
    """``subject`` if fleetbus may publish on it, else ``InvalidSubjectError``: a longer one
    would make the server drop the connection (nats-py then closes for good)."""
    if len(subject) > MAX_SUBJECT:
        raise InvalidSubjectError(
            f"subject {subject[:60]}... is {len(subject)} characters long: at most"
            f" {MAX_SUBJECT} (the server drops a connection whose protocol line passes 4096)"
        )
    return subject


def validate_id(value: object, what: str = "task id") -> str:
    """A task, meeting or ask id: 1 to 128 of ``A-Z a-z 0-9 _ - : + = @ ~``."""
    if not isinstance(value, str):
        raise InvalidSubjectError(f"{what} must be a non-empty string, got {value!r}")
    validate_token(value, what)  # says what is wrong with a space, a dot, a wildcard
    if len(value) > MAX_ID:
        raise InvalidSubjectError(f"{what} is {len(value)} characters long: at most {MAX_ID}")
    if not _ID.match(value):
        shown = value if len(value) <= 40 else value[:40] + "..."
        raise InvalidSubjectError(
            f"{what} {shown!r} may use only letters, digits and _ - : + = @ ~"
        )
    return value


def is_id(value: str) -> bool:
    """Whether ``value`` is a valid task, meeting or ask id (``validate_id``)."""
    try:
        validate_id(value)
    except InvalidSubjectError:
        return False
    return True


def inbox_prefix(identity: str) -> str:
    """An identity's own reply-subject prefix (``_INBOX_backend``): with auth on it may
    subscribe only there, so it never sees another client's PubAcks, fetched messages or
    answers; the answers to its asks go under it too."""
    return f"_INBOX_{identity}"


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


FLEETBUS_FAMILIES = (
    "agents", "tasks", "outcomes", "rpc", "meetings", "dlq", "index", "memo", "presence",
    "control",
)  # fmt: skip
"""The subject families under the prefix that fleetbus grants per role (each role its own
part of them), or to no role at all (``outcomes``: only the server writes it)."""

TaskKind = Literal["updates", "outcome", "cancel", "answer"]
_TASK_KINDS = ("updates", "outcome", "cancel", "answer")


@dataclass(frozen=True, slots=True)
class TaskSubject:
    """The parts of a task record's subject (``P.tasks.{id}.{kind}.{A}.{R}[.{n}]``)."""

    task_id: str
    kind: str
    assigner: str
    """Who assigned the task: a role, or ``admin``."""
    assignee: str
    """The role that works it."""
    extra: str = ""
    """The input request number of an ``answer``."""


def _task_record(prefix: str, task_id: str, kind: str, assigner: str, assignee: str) -> str:
    """A task record's subject from its tokens, as they are (``Subjects.task`` validates
    them first)."""
    return f"{prefix}.tasks.{task_id}.{kind}.{assigner}.{assignee}"


@functools.lru_cache(maxsize=4096)
def _event_parts(prefix: str, subject: str) -> tuple[str, str]:
    """Once per event subject, not per delivery."""
    tokens = subject.split(".")
    at = prefix.count(".") + 2  # the domain's token, after the prefix's and "events"
    domain = tokens[at] if len(tokens) > at else ""
    return domain, ".".join(tokens[at + 1 :])


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

    def parse_event(self, subject: str) -> tuple[str, str]:
        """``P.events.{domain}.{type...}`` → ``(domain, type)``; the inverse of ``event``
        (a type of several tokens is kept whole, as a plain publish may send one)."""
        return _event_parts(self.prefix, subject)

    def events_filter(self, pattern: str) -> str:
        """``deployment.>`` → ``P.events.deployment.>``."""
        return validate_subject(f"{self.prefix}.events.{pattern}")

    def task(
        self, task_id: str, kind: TaskKind, assigner: str, assignee: str, extra: str = ""
    ) -> str:
        """``P.tasks.{id}.{kind}.{assigner}.{assignee}[.{extra}]``: one of a task's records.
        ``updates`` and ``outcome`` are written by the assignee, ``cancel`` and ``answer``
        by the assigner; the server holds each role to its own token."""
        subject = _task_record(
            self.prefix,
            validate_id(task_id),
            kind,
            validate_token(assigner, "assigner"),
            validate_token(assignee, "assignee"),
        )
        return f"{subject}.{validate_token(extra, 'input request')}" if extra else subject

    def task_records(
        self, task_id: str | None = None, assigner: str | None = None, assignee: str | None = None
    ) -> str:
        """A filter over tasks' records: ``*`` where an argument is None (``>`` for the
        trailing input request number of answers is not included: ``*`` kinds only)."""
        tid = validate_id(task_id) if task_id is not None else "*"
        a = validate_token(assigner, "assigner") if assigner is not None else "*"
        r = validate_token(assignee, "assignee") if assignee is not None else "*"
        return f"{self.prefix}.tasks.{tid}.*.{a}.{r}"

    def cancels(self, assignee: str) -> str:
        """Every cancel request for ``assignee``'s tasks: what its agents listen to."""
        return f"{self.prefix}.tasks.*.cancel.*.{validate_token(assignee, 'assignee')}"

    def outcomes(self) -> str:
        """Every task's outcome record: what the stream holding them republishes."""
        return f"{self.prefix}.tasks.*.outcome.*.*"

    def stored_outcomes(self, assigner: str | None = None) -> str:
        """``P.outcomes.*.{A}.*``: the outcomes of the tasks ``assigner`` gave (every
        assigner's with None), each sent by the server once the stream has stored it."""
        a = validate_token(assigner, "assigner") if assigner is not None else "*"
        return f"{self.prefix}.outcomes.*.{a}.*"

    def heard_as_sent(
        self, subject: str, headers: Mapping[str, str] | None, filters: Sequence[str] = ()
    ) -> bool:
        """Whether a message heard live on ``subject`` is what a client published there, or
        the task stream's republish of the outcome the subject names. Not so for what a role
        had the server send (a direct get and a pull answer on the reply subject their
        requester names): a record read back carries the server's ``Nats-Subject``, and a
        pulled message keeps the subject it was stored on, outside the ``filters`` a
        receiver subscribed to (docs/security.md)."""
        if filters and not any(subject_matches(f, subject) for f in filters):
            return False
        read_from = (headers or {}).get(STORED_SUBJECT)
        if read_from is None:
            return True
        parts = self.parse_stored_outcome(subject)
        # The tokens of a subject heard are tokens already: compared, not validated again
        # (an id the writer made up is then no record of any task, not an error).
        return parts is not None and read_from == _task_record(
            self.prefix, parts.task_id, "outcome", parts.assigner, parts.assignee
        )

    def stored_outcome_republish(self) -> dict[str, str]:
        """The stream's ``republish`` that sends ``P.tasks.{id}.outcome.{A}.{R}``, once
        stored, to ``P.outcomes.{id}.{A}.{R}`` (the server's tokens, in order)."""
        tokens = ".".join(f"{{{{wildcard({n})}}}}" for n in (1, 2, 3))
        return {"src": self.outcomes(), "dest": f"{self.prefix}.outcomes.{tokens}"}

    def parse_stored_outcome(self, subject: str) -> TaskSubject | None:
        """The parts of ``P.outcomes.{id}.{A}.{R}``; None for anything else."""
        head = f"{self.prefix}.outcomes."
        if not subject.startswith(head):
            return None
        rest = subject[len(head) :].split(".")
        if len(rest) != 3:
            return None
        return TaskSubject(rest[0], "outcome", rest[1], rest[2])

    def task_updates(self, task_id: str) -> str:
        """The subject of the first format (``P.tasks.{id}.updates``), where updates carried
        no writer: still read (for history stored before), never written."""
        return f"{self.prefix}.tasks.{validate_id(task_id)}.updates"

    def all_task_updates(self) -> list[str]:
        """Every task's updates and outcomes (the ``updates`` consumer's filters), and the
        first format's updates."""
        p = self.prefix
        return [f"{p}.tasks.*.updates.*.*", self.outcomes(), f"{p}.tasks.*.updates"]

    def task_index(
        self, assignee: str | None = None, assigner: str | None = None, task_id: str | None = None
    ) -> str:
        """``P.index.{assignee}.{assigner}.{id}``: the task list's entry of one task (its latest
        state), written by the assigner (``submitted``) and then by the assignee's agents;
        with an argument None, a filter (``*`` there)."""
        r = validate_token(assignee, "assignee") if assignee is not None else "*"
        a = validate_token(assigner, "assigner") if assigner is not None else "*"
        tid = validate_id(task_id) if task_id is not None else "*"
        return f"{self.prefix}.index.{r}.{a}.{tid}"

    def memo(
        self,
        role: str,
        assigner: str | None = None,
        task_id: str | None = None,
        step: str | None = None,
    ) -> str:
        """``P.memo.{role}.{assigner}.{id}.{step}``: a step's stored result (``task.step``)
        for the task ``assigner`` gave ``role``, keyed as every other task record is (by id
        alone, another assigner's task of the same id read this one's); with ``assigner``,
        ``task_id`` or ``step`` None, a filter."""
        a = validate_token(assigner, "assigner") if assigner is not None else "*"
        tid = validate_id(task_id) if task_id is not None else "*"
        name = validate_id(step, "step name") if step is not None else "*"
        return f"{self.prefix}.memo.{validate_token(role, 'role')}.{a}.{tid}.{name}"

    def presence(self, role: str | None = None, instance: str | None = None) -> str:
        """``P.presence.{role}.{instance}``: an agent process's presence record; with an
        argument None, a filter."""
        r = validate_token(role, "role") if role is not None else "*"
        i = validate_token(instance, "instance") if instance is not None else "*"
        return f"{self.prefix}.presence.{r}.{i}"

    def control(self, role: str, instance: str | None = None) -> str:
        """``P.control.{role}.{instance}``: an agent process's control requests (ping,
        drain, cancel), from the admin and the roles with oversight."""
        i = validate_token(instance, "instance") if instance is not None else "*"
        return f"{self.prefix}.control.{validate_token(role, 'role')}.{i}"

    @staticmethod
    def control_reply(asker: str, role: str) -> str:
        """Where ``role``'s agents answer ``asker``'s control requests:
        ``_INBOX_{asker}.control.{role}`` (one more token: the request)."""
        return f"{inbox_prefix(asker)}.control.{validate_token(role, 'role')}"

    @staticmethod
    def control_reply_allowed(reply: str, role: str) -> bool:
        """Whether ``reply`` is an address ``control_reply`` makes for ``role``'s agents (any
        asker's), with the request's token after it: the only place they answer a control
        request. JetStream answers a direct get or a pull on whatever subject the requester
        names, without a reply like these (docs/security.md, "the server's answers")."""
        parts = reply.split(".")
        return (
            len(parts) == 4
            and len(parts[0]) > len(inbox_prefix(""))
            and parts[0].startswith(inbox_prefix(""))
            and parts[1] == "control"
            and parts[2] == role
            and bool(parts[3])
        )

    def parse_task(self, subject: str) -> TaskSubject | None:
        """The parts of a task record's subject; None for anything else (the first format
        included: it names no writer)."""
        head = f"{self.prefix}.tasks."
        if not subject.startswith(head):
            return None
        rest = subject[len(head) :].split(".")
        if len(rest) not in (4, 5) or rest[1] not in _TASK_KINDS:
            return None
        return TaskSubject(rest[0], rest[1], rest[2], rest[3], rest[4] if len(rest) == 5 else "")

    def rpc(self, role: str, asker: str | None = None) -> str:
        """Fast asks to ``role`` from ``asker`` (core NATS, answered by an agent of the role;
        no stream may capture it). Without an asker: the admin's, or a plain client's."""
        base = f"{self.prefix}.rpc.{validate_token(role, 'role')}"
        return base if asker is None else f"{base}.{validate_token(asker, 'asker')}"

    def rpc_asker(self, subject: str) -> str:
        """Who asked, from a fast ask's subject: its asker token, else ``admin``."""
        rest = subject[len(self.prefix) + 1 :].split(".")
        return rest[2] if len(rest) == 3 else ADMIN

    def meeting(self, meeting_id: str, sender: str | None = None) -> str:
        """A meeting's live subject, as said by ``sender`` (its token: who said it)."""
        base = f"{self.prefix}.meetings.{validate_id(meeting_id, 'meeting id')}"
        return base if sender is None else f"{base}.{validate_token(sender, 'sender')}"

    def meeting_sender(self, subject: str) -> str | None:
        """The sender token of ``P.meetings.{id}.{sender}``; None without one."""
        rest = subject[len(self.prefix) + 1 :].split(".")
        return rest[2] if len(rest) == 3 and rest[0] == "meetings" else None

    def answer_to(self, asker: str, answerer: str) -> str:
        """The namespace of the answers ``answerer`` gives ``asker``: ``asker``'s own inbox
        prefix, then ``rpc.{answerer}``. With auth on, ``answerer`` may publish there and in
        no other inbox; an agent answers to nothing else (never to a subject an asker chose)."""
        return f"{inbox_prefix(asker)}.rpc.{validate_token(answerer, 'role')}"

    def answer_allowed(self, reply: str, asker: str, answerer: str) -> bool:
        """Whether ``reply`` is a place ``answerer`` may answer ``asker``: one token (at most
        ``MAX_ID``) under ``answer_to(asker, answerer)`` (plain clients, asking as the admin
        without auth, use nats-py's ``_INBOX`` prefix)."""
        prefixes = [self.answer_to(asker, answerer)]
        if asker == ADMIN:
            prefixes.append(f"_INBOX.rpc.{answerer}")
        for prefix in prefixes:
            if reply.startswith(prefix + "."):
                token = reply[len(prefix) + 1 :]
                return bool(token) and len(token) <= MAX_ID and _ID.match(token) is not None
        return False

    def dead_letter(self, stream: str, consumer: str, seq: int | None = None) -> str:
        """``P.dlq.{stream}.{consumer}.{seq}``: the dead letter of message ``seq`` of
        ``stream``, given up by ``consumer`` (without ``seq``: the consumer's family)."""
        base = (
            f"{self.prefix}.dlq.{validate_token(stream, 'stream')}"
            f".{validate_token(consumer, 'consumer')}"
        )
        return base if seq is None else f"{base}.{int(seq)}"

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
