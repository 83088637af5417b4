"""The fleet file linter behind ``fleetbus check``: settings that validate but break at run time.

``lint(spec)`` returns one ``Finding`` per problem, each naming the key in the fleet file, what
goes wrong (with the server's error code when the server refuses it) and what to write instead.
An ``error`` is something the server refuses or a message that is lost or misrouted; a
``warning`` is a legal setting that probably does not do what the file's author wants. Every
finding comes from a place where the seed is naive (docs/seed-deviations.md); ``CODES`` lists them.

Pure: it reads the spec and nothing else. A live server's node count can be passed in as
``cluster_size``; the CLI renders the findings.

One piece: one small generator per check, all reading the same spec, and ``CODES`` beside
them so a new check cannot go undocumented.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import combinations
from typing import Literal

from fleetbus.fleet.model import ConsumerSpec
from fleetbus.fleet.topology import FleetSpec, ResolvedConsumer
from fleetbus.fleet.units import format_duration
from fleetbus.wire.subjects import FLEETBUS_FAMILIES, filter_within, subjects_overlap

__all__ = ["CODES", "Finding", "Severity", "errors", "lint", "privilege_errors", "summary"]

Severity = Literal["error", "warning"]

CODES: Mapping[str, str] = {
    "overlapping-streams": "two streams capture a common subject",
    "workqueue-overlapping-filters": "two consumers of a work-queue stream match a common subject",
    "workqueue-unfiltered-consumers": "two consumers take the whole of a work-queue stream",
    "workqueue-deliver-policy": "a consumer of a work-queue stream does not deliver all",
    "workqueue-task-updates": "a work-queue stream holds task updates, which are fan-out",
    "stream-captures-requests": "a stream captures the request subjects P.rpc.{role}",
    "stream-captures-meetings": "a stream captures live meeting traffic P.meetings.>",
    "stream-captures-outcome-notices": "a stream captures the server's notices P.outcomes.>",
    "replicas-over-cluster-size": "a stream asks for more replicas than the cluster has nodes",
    "ack-wait-long": "ack wait above 5 minutes: a crashed agent's message waits that long",
    "ack-wait-short": "ack wait below 3 seconds: heartbeats every ack_wait/3 get chatty",
    "backoff-replaces-ack-wait": "a backoff list whose first delay is not the ack wait",
    "task-budget-below-ack-wait": "the task budget is shorter than the tasks' ack wait",
    "discard-old-drops-work": "a full inbox or task queue silently deletes its oldest unread work",
    "processed-work-refuses-senders": "processed inbox and task messages count against a limit",
    "unbounded-stream": "a stream with no age, message or byte limit grows forever",
    "max-consumers-too-low": "a stream's max_consumers is below the consumers the fleet declares",
    "max-msg-size-no-room": "a consumed stream's max_msg_size leaves no room for a dead letter",
    "tasks-no-retry": "a task consumer with max_deliver 1 never retries",
    "no-dead-letter-stream": "no stream holds dead letters",
    "grant-escapes": "a role's publish or subscribe grant reaches past what its role may do",
    "reserved-role-name": "a role is named like fleetbus's own identities (admin, route)",
    "duplicate-window-short": "TASKS' duplicate window is shorter than a task may take",
    "no-consumer-for-subject": "an interest-retention stream stores what no consumer reads",
}
"""Every finding code with a one-line summary (for docs and ``fleetbus check --explain``)."""

LONG_ACK_WAIT = 300.0
"""Above this, a crashed agent's message (and the queue behind it) waits too long."""
SHORT_ACK_WAIT = 3.0
"""Below this, heartbeats every ack_wait/3 come more often than once a second."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem in a fleet file.

    ``where`` is the key path in the file (``streams.EVENTS.subjects``,
    ``roles.backend.tasks.ack_wait``); ``problem`` says what breaks and ``fix`` what to write.
    """

    code: str
    severity: Severity
    where: str
    problem: str
    fix: str


def lint(spec: FleetSpec, *, cluster_size: int | None = None) -> list[Finding]:
    """Every finding for ``spec``, errors and warnings, grouped by check in a stable order.

    ``cluster_size`` is the live server's node count; without it the fleet file's
    ``server.cluster.size`` is used.
    """
    nodes = spec.server.cluster.size if cluster_size is None else cluster_size
    consumers = spec.consumers()
    findings: list[Finding] = []
    findings += _overlapping_streams(spec)
    findings += _overlapping_subjects(spec)
    findings += _work_queues(spec, consumers)
    findings += _core_subjects_stored(spec)
    findings += _replicas(spec, nodes)
    findings += _discard_old(spec)
    findings += _processed_work_counts(spec)
    findings += _unbounded(spec)
    findings += _max_consumers(spec, consumers)
    findings += _message_room(spec)
    findings += _ack_waits(spec)
    findings += _dead_letters(spec)
    findings += _grants(spec)
    findings += _reserved_roles(spec)
    findings += _duplicate_window(spec)
    findings += _interest_without_consumer(spec)
    return findings


def errors(spec: FleetSpec) -> list[Finding]:
    """``lint``'s errors: a fleet file with any is not provisioned (``fleetbus.provision``)."""
    return [f for f in lint(spec) if f.severity == "error"]


def summary(findings: Iterable[Finding]) -> str:
    """``where: problem`` for each finding, in one line, for an error message."""
    return "; ".join(f"{f.where}: {f.problem}" for f in findings)


def privilege_errors(spec: FleetSpec) -> list[Finding]:
    """The findings that would let a role do more than its lines allow (a grant into
    fleetbus's families, a role named as one of fleetbus's identities): the server's
    permissions are never written for such a fleet."""
    return [*_grants(spec), *_reserved_roles(spec)]


# -- streams ---------------------------------------------------------------------------


def _overlapping_streams(spec: FleetSpec) -> Iterator[Finding]:
    names = list(spec.streams)
    for first, second in combinations(names, 2):
        pair = next(
            (
                (a, b)
                for a in spec.stream_subjects(first)
                for b in spec.stream_subjects(second)
                if subjects_overlap(a, b)
            ),
            None,
        )
        if pair is None:
            continue
        a, b = pair
        yield Finding(
            code="overlapping-streams",
            severity="error",
            where=f"streams.{second}.subjects",
            problem=(
                f"{b} (stream {second}) overlaps {a} (stream {first}): a subject may be stored "
                f"by one stream only, so the server refuses to create {second} "
                "(error 10065, subjects overlap with an existing stream)"
            ),
            fix=(
                f"narrow the subjects of {second} or {first} so that no subject matches both, "
                "e.g. one stream per top-level token: agents.>, events.>, tasks.>, dlq.>"
            ),
        )


_SERVER_APIS = (
    ("$JS.>", "$JS.EVENT.>"),
    ("$JSC.>", "$JS.EVENT.>"),
    ("$NRG.>", "$JS.EVENT.>"),
    ("$SYS.>", "$SYS.ACCOUNT.>"),
)
"""What nats-server refuses a stream (without no_ack) to capture, and what within it it
lets pass: its own API's subjects, the advisories excepted (nats-server's stream.go)."""


def _server_owned(subject: str) -> bool:
    return subject == ">" or any(
        subjects_overlap(subject, api) and not filter_within(subject, allowed)
        for api, allowed in _SERVER_APIS
    )


def _overlapping_subjects(spec: FleetSpec) -> Iterator[Finding]:
    """A stream whose own subjects overlap, or that takes the server's (``$``) subjects:
    ``check`` passed them, and the server refused the stream (10052) after making the
    streams before it."""
    for name, stream in spec.streams.items():
        subjects = [spec.subjects.absolute_pattern(s) for s in stream.subjects]  # as written
        server_owned = [s for s in subjects if _server_owned(s)]
        if server_owned:
            yield Finding(
                code="overlapping-streams",
                severity="error",
                where=f"streams.{name}.subjects",
                problem=(
                    f"{server_owned[0]} takes subjects of the server's own API: the server "
                    f"refuses to create {name} (error 10052)"
                ),
                fix="subjects are relative to the prefix: name the fleet's own, like tasks.>",
            )
            continue
        pair = next(((a, b) for a, b in combinations(subjects, 2) if subjects_overlap(a, b)), None)
        if pair is not None:
            yield Finding(
                code="overlapping-streams",
                severity="error",
                where=f"streams.{name}.subjects",
                problem=(
                    f"{pair[0]} and {pair[1]} overlap within {name}: the server refuses to"
                    " create it (error 10052)"
                ),
                fix="keep the wider one only",
            )


def _work_queues(spec: FleetSpec, consumers: list[ResolvedConsumer]) -> Iterator[Finding]:
    for name, stream in spec.streams.items():
        if stream.retention != "workqueue":
            continue
        mine = [c for c in consumers if c.stream == name]
        for c in mine:
            if c.spec.deliver != "all":
                yield Finding(
                    code="workqueue-deliver-policy",
                    severity="error",
                    where=f"{_key(c)}.deliver",
                    problem=(
                        f"{c.name} delivers {c.spec.deliver!r} but {name} is a work queue: "
                        "the server accepts only deliver all there (error 10101)"
                    ),
                    fix=f"write deliver: all, or give {name} retention: limits",
                )
        whole = spec.stream_subjects(name)
        for a, b in combinations(mine, 2):
            if _takes_all(a, whole) and _takes_all(b, whole):
                yield Finding(
                    code="workqueue-unfiltered-consumers",
                    severity="error",
                    where=_key(b),
                    problem=(
                        f"{a.name} and {b.name} both take every subject of the work-queue "
                        f"stream {name}: the server allows one unfiltered consumer (error 10099)"
                    ),
                    fix=(
                        f"give each consumer of {name} its own subjects, or give {name} "
                        "retention: limits so that both see every message"
                    ),
                )
                continue
            common = next(
                ((fa, fb) for fa in a.filters for fb in b.filters if subjects_overlap(fa, fb)),
                None,
            )
            if common:
                yield Finding(
                    code="workqueue-overlapping-filters",
                    severity="error",
                    where=_key(b),
                    problem=(
                        f"{b.name} filters {common[1]}, which overlaps {a.name}'s {common[0]} on "
                        f"the work-queue stream {name}: a work queue hands each message to one "
                        "consumer, so the server refuses overlapping filters (error 10100)"
                    ),
                    fix=(
                        f"make the filters on {name} disjoint, or give {name} retention: limits "
                        "(fan-out: every consumer sees every message)"
                    ),
                )
        updates = spec.subjects.task_records()
        captured = next((s for s in whole if subjects_overlap(s, updates)), None)
        if captured:
            yield Finding(
                code="workqueue-task-updates",
                severity="warning",
                where=f"streams.{name}.retention",
                problem=(
                    f"{name} is a work queue and captures task updates ({captured}): an update "
                    "is deleted as soon as one consumer acks it, so the assigner and a "
                    "dashboard cannot both see it, and the server refuses a second consumer "
                    "over the same updates"
                    + ("" if stream.max_age else "; with no max_age unconsumed updates pile up")
                ),
                fix="task updates are fan-out: write retention: limits with a max_age (e.g. 7d)",
            )


def _key(c: ResolvedConsumer) -> str:
    """The key in the fleet file that declares ``c``."""
    return f"roles.{c.role}.{c.kind}" if c.role else f"streams.{c.stream}.{c.kind}"


def _takes_all(consumer: ResolvedConsumer, stream_subjects: list[str]) -> bool:
    """True when the consumer's filters cover every subject the stream captures."""
    return all(
        any(filter_within(subject, f) for f in consumer.filters) for subject in stream_subjects
    )


def _core_subjects_stored(spec: FleetSpec) -> Iterator[Finding]:
    """Subjects that are core NATS by design, captured by a stream: one finding each."""
    rpc = f"{spec.prefix}.rpc.>"  # P.rpc.{role} and the roles' P.rpc.{role}.{asker}
    meetings = f"{spec.prefix}.meetings.>"
    notices = f"{spec.prefix}.outcomes.>"
    for name in spec.streams:
        kept = {
            rpc: (
                "stream-captures-requests",
                f"the request subjects {rpc}: a request to a stored subject is answered at "
                f'once by the stream\'s PubAck {{"stream":"{name}","seq":...}}, never by the '
                'agent, and never with "no responders" when no agent listens',
                f"list only what {name} should store (agents.>, events.>, tasks.>, dlq.>) "
                "instead of a wildcard over the whole prefix; requests stay on core NATS",
            ),
            meetings: (
                "stream-captures-meetings",
                f"live meeting traffic {meetings}, which is core NATS: storing it turns every "
                "meeting message into a stored, acknowledged publish and keeps chatter nobody "
                "replays",
                f"leave meetings.> out of {name}'s subjects; meeting invitations are stored "
                "already under agents.{role}.meetings",
            ),
            notices: (
                "stream-captures-outcome-notices",
                f"{notices}, where the server sends each task outcome again once it is stored "
                "(the task stream's republish): stored a second time here, or refused as a "
                "cycle by the stream that republishes them",
                f"leave outcomes.> out of {name}'s subjects",
            ),
        }
        for subject in spec.stream_subjects(name):
            for family, (code, what, fix) in kept.items():
                if subjects_overlap(subject, family):
                    yield Finding(
                        code=code,
                        severity="error",
                        where=f"streams.{name}.subjects",
                        problem=f"{subject} captures {what}",
                        fix=fix,
                    )


def _replicas(spec: FleetSpec, nodes: int) -> Iterator[Finding]:
    """One finding for every stream that asks for more replicas than there are nodes (the
    template's R3 streams on one development node): one line, not one per stream."""
    over = {name: s.replicas for name, s in spec.streams.items() if s.replicas > nodes}
    if not over:
        return
    names = list(over)
    most = max(over.values())
    asked = sorted(set(over.values()))
    shown = ", ".join(names)
    yield Finding(
        code="replicas-over-cluster-size",
        severity="warning",
        where=f"streams.{names[0]}.replicas"
        + (f" (and {len(names) - 1} more)" if len(names) > 1 else ""),
        problem=(
            f"{shown} ask{'s' if len(names) == 1 else ''} for"
            f" {' or '.join(str(r) for r in asked)} replicas on a cluster of {nodes}"
            f" node{'s' if nodes != 1 else ''}: the server refuses that (error 10074), so"
            f" fleetbus provisions {'it' if len(names) == 1 else 'them'} as R{nodes}"
        ),
        fix=(
            f"fine for development; write replicas: {nodes} to silence this, or run "
            f"{most} nodes (`fleetbus up --cluster {most}`)"
        ),
    )


def _limited_work(spec: FleetSpec, name: str) -> tuple[list[str], str] | None:
    """The message limits stream ``name`` sets (``max_msgs 1000``, ...) and one subject of
    it that holds inboxes or task queues; None when it has no limit or holds no work."""
    stream = spec.streams[name]
    limits = [
        f"{key} {value}"
        for key, value in (
            ("max_msgs_per_subject", stream.max_msgs_per_subject),
            ("max_msgs", stream.max_msgs),
            ("max_bytes", stream.max_bytes),
        )
        if value > 0
    ]
    work = f"{spec.prefix}.agents.>"
    held = next((s for s in spec.stream_subjects(name) if subjects_overlap(s, work)), None)
    if not limits or held is None:
        return None
    return limits, held


def _discard_old(spec: FleetSpec) -> Iterator[Finding]:
    for name, stream in spec.streams.items():
        if stream.discard != "old":
            continue
        found = _limited_work(spec, name)
        if found is None:
            continue
        limits, held = found
        per_subject = stream.max_msgs_per_subject > 0
        yield Finding(
            code="discard-old-drops-work",
            severity="warning",
            where=f"streams.{name}.discard",
            problem=(
                f"{name} holds inboxes and task queues ({held}) with discard: old and "
                f"{', '.join(limits)}: when one fills up the server silently deletes its "
                "oldest messages, read or not, so unread work is lost and nobody is told"
            ),
            fix=(
                "write discard: new"
                + (" and discard_new_per_subject: true" if per_subject else "")
                + ": the sender is refused (error 10077) — backpressure instead of loss"
            ),
        )


def _processed_work_counts(spec: FleetSpec) -> Iterator[Finding]:
    """Inboxes and task queues under limits retention with discard new: processed messages
    count against the limits until they age out, so a sender whose role keeps up is refused
    (the seed: 1000 per subject for 7 days)."""
    for name, stream in spec.streams.items():
        if stream.retention != "limits" or stream.discard != "new":
            continue
        found = _limited_work(spec, name)
        if found is None:
            continue
        limits, held = found
        age = format_duration(stream.max_age) if stream.max_age else "ever"
        yield Finding(
            code="processed-work-refuses-senders",
            severity="warning",
            where=f"streams.{name}.retention",
            problem=(
                f"{name} keeps processed messages ({held}) until max_age ({age}), and they"
                f" count against {', '.join(limits)}: a busy sender is refused (error"
                " 10077) although its role has processed everything"
            ),
            fix=(
                "write retention: interest (a message stays until its consumer acknowledges"
                " it) and drop max_age, so that the limits count unprocessed messages only;"
                " `fleetbus provision --force` migrates the stream in place"
            ),
        )


def _unbounded(spec: FleetSpec) -> Iterator[Finding]:
    for name, stream in spec.streams.items():
        if stream.retention == "interest":
            continue  # messages go once every consumer has acked them
        if stream.max_age > 0 or stream.max_msgs > 0 or stream.max_bytes > 0:
            continue
        why = (
            "a message no consumer takes stays forever"
            if stream.retention == "workqueue"
            else "every message is kept forever"
        )
        per_subject = (
            " (max_msgs_per_subject bounds each subject, not the number of subjects: every "
            "new task id or event type adds more)"
            if stream.max_msgs_per_subject > 0
            else ""
        )
        yield Finding(
            code="unbounded-stream",
            severity="warning",
            where=f"streams.{name}",
            problem=(
                f"{name} has no max_age, max_msgs or max_bytes: {why}{per_subject}, until "
                "the server's storage is full"
            ),
            fix="add a max_age (e.g. 7d or 30d), or a max_bytes the server's storage can hold",
        )


def _max_consumers(spec: FleetSpec, consumers: list[ResolvedConsumer]) -> Iterator[Finding]:
    """-1 is sized from the fleet at provisioning; a number below what the fleet declares is
    refused by the server."""
    for name, stream in spec.streams.items():
        count = sum(1 for c in consumers if c.stream == name)
        if 0 < stream.max_consumers < count:
            yield Finding(
                code="max-consumers-too-low",
                severity="error",
                where=f"streams.{name}.max_consumers",
                problem=(
                    f"the fleet declares {count} consumers on {name} but max_consumers is "
                    f"{stream.max_consumers}: the server refuses the rest (error 10026)"
                ),
                fix=f"leave max_consumers out (fleetbus sizes it) or write at least {count + 100}",
            )


def _message_room(spec: FleetSpec) -> Iterator[Finding]:
    """A message stored at the server's max_payload could not be dead-lettered: provisioning
    lowers such a max_msg_size (``FleetSpec.message_cap``); say so where it is written."""
    max_payload = spec.server.max_payload
    for name, stream in spec.streams.items():
        cap = spec.message_cap(name, max_payload)
        if stream.max_msg_size != -1 and cap < stream.max_msg_size:
            yield Finding(
                code="max-msg-size-no-room",
                severity="warning",
                where=f"streams.{name}.max_msg_size",
                problem=(
                    f"{stream.max_msg_size} leaves no room under the server's max_payload"
                    f" ({max_payload}) for a dead letter's headers: a message that size could"
                    " not be dead-lettered, so provisioning sets it to"
                    f" {cap} (max_payload less {max_payload - cap} bytes)"
                ),
                fix=f"leave max_msg_size out (fleetbus sizes it) or write at most {cap}",
            )


# -- roles ------------------------------------------------------------------------------


def _ack_waits(spec: FleetSpec) -> Iterator[Finding]:
    for role, rspec in spec.roles.items():
        kinds: list[tuple[str, ConsumerSpec | None]] = [
            ("tasks", rspec.tasks),
            ("inbox", rspec.inbox),
            ("meetings", rspec.meetings),
            ("events", rspec.events),
            ("updates", rspec.updates),
        ]
        for kind, cspec in kinds:
            if cspec is None:
                continue
            where = f"roles.{role}.{kind}"
            wait = format_duration(cspec.ack_wait)
            if cspec.ack_wait > LONG_ACK_WAIT:
                queue = (
                    ", and with max_ack_pending 1 so does every message queued behind it"
                    if cspec.max_ack_pending == 1
                    else ""
                )
                yield Finding(
                    code="ack-wait-long",
                    severity="warning",
                    where=f"{where}.ack_wait",
                    problem=(
                        f"ack_wait {wait}: when an agent crashes, its unacked message waits "
                        f"{wait} before another agent gets it{queue}"
                    ),
                    fix=(
                        "write ack_wait: 4s (the default; 4–30s): a lease the runtime "
                        "renews with a heartbeat every ack_wait/3 while a handler runs, so "
                        "long tasks stay alive up to the role's task_budget"
                    ),
                )
            elif cspec.ack_wait < SHORT_ACK_WAIT:
                yield Finding(
                    code="ack-wait-short",
                    severity="warning",
                    where=f"{where}.ack_wait",
                    problem=(
                        f"ack_wait {wait}: the runtime heartbeats every ack_wait/3, i.e. every "
                        f"{format_duration(cspec.ack_wait / 3)} for each running handler, and "
                        "a short pause (GC, a slow network) triggers a redelivery"
                    ),
                    fix="write ack_wait: 4s (the default; 4–30s)",
                )
            if kind == "tasks" and rspec.task_budget < cspec.ack_wait:
                yield Finding(
                    code="task-budget-below-ack-wait",
                    severity="warning",
                    where=f"roles.{role}.task_budget",
                    problem=(
                        f"task_budget {format_duration(rspec.task_budget)} is shorter than the "
                        f"tasks' ack_wait {wait}: no heartbeat is ever needed, so either the "
                        "budget is wrong or the ack wait is far too long"
                    ),
                    fix=(
                        "set task_budget to the longest a task may really run (e.g. 30m) and "
                        "keep ack_wait short (4s)"
                    ),
                )
            if cspec.backoff and cspec.backoff[0] != cspec.ack_wait:
                first = format_duration(cspec.backoff[0])
                yield Finding(
                    code="backoff-replaces-ack-wait",
                    severity="warning",
                    where=f"{where}.backoff",
                    problem=(
                        f"with a backoff list the server uses its first delay ({first}) as the "
                        f"ack wait, not ack_wait {wait}: heartbeats and crash recovery follow "
                        f"{first}"
                    ),
                    fix=f"write ack_wait: {first}, or start backoff with {wait}",
                )
            if kind == "tasks" and cspec.max_deliver == 1:
                yield Finding(
                    code="tasks-no-retry",
                    severity="warning",
                    where=f"{where}.max_deliver",
                    problem=(
                        "max_deliver 1: a task whose agent crashes or fails once is never "
                        "retried; it goes straight to the dead letters"
                    ),
                    fix=(
                        "write max_deliver: 3 (with a backoff such as [10s, 1m]); raise Reject "
                        "in the handler for the tasks that must not be retried"
                    ),
                )


# -- the fleet ------------------------------------------------------------------------------


def _dead_letters(spec: FleetSpec) -> Iterator[Finding]:
    if spec.dead_letter_stream is None:
        yield Finding(
            code="no-dead-letter-stream",
            severity="warning",
            where="streams",
            problem=(
                "no stream has dead_letters: true: NATS has no dead-letter queue, so a "
                "message that exhausts max_deliver or is rejected is lost without a trace"
            ),
            fix=(
                'add a stream AGENT_DLQ with subjects: ["dlq.>"], dead_letters: true and a '
                "max_age (e.g. 30d), as `fleetbus init` writes"
            ),
        )


# -- what a role may do -----------------------------------------------------------------

RESERVED_ROLES = ("admin", "route")


def _grants(spec: FleetSpec) -> Iterator[Finding]:
    """A ``publish`` / ``subscribe`` grant may add subjects of the team's own (events, custom
    families), never reach into fleetbus's: those it derives per role from ``send_to`` and the
    role's consumers, and the one promise — a role does only what its lines allow — rests on
    nothing else being granted there."""
    p = spec.prefix
    for role, rs in spec.roles.items():
        for what, grants in (("publish", rs.publish), ("subscribe", rs.subscribe)):
            for i, grant in enumerate(grants):
                problem = _escape(grant, spec.subjects.absolute(grant), p)
                if problem:
                    yield Finding(
                        code="grant-escapes",
                        severity="error",
                        where=f"roles.{role}.{what}[{i}]",
                        problem=f"{grant!r} {problem}",
                        fix=(
                            "grant only events (events.>, events.deployment.*) or subjects of"
                            " your own family (custom.>): messages, tasks, asks, meetings and"
                            " task records come from send_to and the role's consumers"
                        ),
                    )


def _escape(grant: str, subject: str, prefix: str) -> str:
    """Why ``grant`` (``subject`` once made absolute) escapes the model, or "" if it does not."""
    if subject.startswith("$"):
        return "is a server subject ($JS, $SYS, ...): only the admin may use those"
    if grant.startswith("_INBOX") or subject.startswith("_INBOX"):
        return (
            "names an inbox: reply subjects are granted per identity (its own, and the answer"
            " namespaces of those it may answer), never by hand"
        )
    if not subject.startswith(prefix + ".") and subject not in (prefix,):
        return f"is outside the fleet's prefix {prefix!r}"
    for family in FLEETBUS_FAMILIES:
        if subjects_overlap(subject, f"{prefix}.{family}.>"):
            return (
                f"reaches {prefix}.{family}.>, where fleetbus grants each role only its own"
                " subjects"
            )
    return ""


def _reserved_roles(spec: FleetSpec) -> Iterator[Finding]:
    for role in spec.roles:
        if role in RESERVED_ROLES:
            yield Finding(
                code="reserved-role-name",
                severity="error",
                where=f"roles.{role}",
                problem=(
                    f"{role!r} is an identity of fleetbus's own (the admin that provisions, the"
                    " cluster routes), and names the admin in subjects: with auth on it cannot"
                    " also be a role"
                ),
                fix=f"rename the role ({role}-agent, say)",
            )


def _duplicate_window(spec: FleetSpec) -> Iterator[Finding]:
    """A redelivery repeats a task's updates: the dedupe window should cover a whole task.
    (Outcomes do not depend on it: the first one stored stands, however late another comes.)"""
    stream = spec.stream_for(spec.subjects.task_records())
    if not stream:
        return
    longest = max(
        (
            rs.task_budget + rs.tasks.effective_ack_wait
            for rs in spec.roles.values()
            if rs.tasks is not None
        ),
        default=0.0,
    )
    window = spec.streams[stream].duplicate_window
    if window < longest:
        yield Finding(
            code="duplicate-window-short",
            severity="warning",
            where=f"streams.{stream}.duplicate_window",
            problem=(
                f"{format_duration(window)} is shorter than the longest task_budget plus its"
                f" ack wait ({format_duration(longest)}): an update repeated by a redelivery"
                " after that is stored twice"
            ),
            fix=f"duplicate_window: {format_duration(longest)} (or more)",
        )


def _interest_without_consumer(spec: FleetSpec) -> Iterator[Finding]:
    """An interest-retention stream acknowledges, but does not store, what no consumer's
    filter matches: a task to a role without a tasks consumer would be gone."""
    for role in spec.roles:
        for kind in ("tasks", "inbox", "meetings"):
            subject = spec.subjects.agent(role, kind)
            name = spec.dropped_unread(subject)
            if name:
                yield Finding(
                    code="no-consumer-for-subject",
                    severity="warning",
                    where=f"roles.{role}.{kind}",
                    problem=(
                        f"{name} keeps a message only while a consumer wants it, and no"
                        f" consumer reads {subject}: what a plain client sends there is"
                        " acknowledged and dropped (fleetbus's own clients refuse to send it)"
                    ),
                    fix=f"give roles.{role} a {kind} consumer, or leave it out of send_to",
                )
