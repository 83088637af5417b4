"""Subject building and matching: every name is one token, every match agrees with overlap."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetbus.errors import InvalidSubjectError
from fleetbus.wire.subjects import (
    Subjects,
    TaskSubject,
    consumer_name,
    filter_within,
    is_valid_subject,
    subject_matches,
    subjects_overlap,
    validate_id,
    validate_role,
    validate_subject,
    validate_token,
)

# Anything printable but whitespace, dots and wildcards is a NATS token ($ and - included).
tokens = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp"), blacklist_characters=".*>"),
    min_size=1,
    max_size=20,
)
prefixes = st.lists(tokens, min_size=1, max_size=3).map(".".join)
# Task, meeting and ask ids: a small printable alphabet.
ids = st.text(
    st.sampled_from("abcXYZ019_-:+=@~"),
    min_size=1,
    max_size=40,
)
roles = st.from_regex(r"[a-z][a-z0-9_-]{0,10}", fullmatch=True)

# Filters and literals over a tiny alphabet, so that overlaps are common.
LETTERS = ("a", "b")
literal_tokens = st.sampled_from(LETTERS)
filters = (
    st.tuples(
        st.lists(st.sampled_from((*LETTERS, "*")), min_size=0, max_size=3),
        st.booleans(),
    )
    .map(lambda t: ".".join([*t[0], ">"] if t[1] else t[0]))
    .filter(bool)
)
literals = st.lists(literal_tokens, min_size=1, max_size=5).map(".".join)


def all_literals(max_tokens: int = 5) -> list[str]:
    return [
        ".".join(combo)
        for n in range(1, max_tokens + 1)
        for combo in itertools.product(LETTERS, repeat=n)
    ]


ALL_LITERALS = all_literals()

# -- building ---------------------------------------------------------------------------


@given(prefixes, tokens, tokens, ids)
def test_built_subjects_are_valid_literals(prefix: str, one: str, two: str, ident: str) -> None:
    s = Subjects(prefix)
    built = [
        s.inbox(one),
        s.tasks(one, two),
        s.invitations(one),
        s.event(one, two),
        s.rpc(one, two),
        s.dead_letter(one, two),
    ]
    for subject in built:
        assert validate_subject(subject, wildcards=False) == subject
        assert subject.startswith(prefix + ".")
        assert one in subject.split(".")
    for subject in (s.task(ident, "outcome", one, two), s.meeting(ident, one)):
        assert validate_subject(subject, wildcards=False) == subject
        assert ident in subject.split(".")


@given(prefixes, tokens)
def test_each_kind_has_its_own_subject(prefix: str, role: str) -> None:
    s = Subjects(prefix)
    built = {s.inbox(role), s.tasks(role), s.invitations(role), s.rpc(role)}
    assert len(built) == 4


@given(prefixes, ids, tokens, tokens)
def test_task_records_parse_back_and_match_the_updates_filters(
    prefix: str, task_id: str, assigner: str, assignee: str
) -> None:
    s = Subjects(prefix)
    for kind in ("updates", "outcome", "cancel"):
        subject = s.task(task_id, kind, assigner, assignee)  # type: ignore[arg-type]
        parts = s.parse_task(subject)
        assert parts is not None
        assert (parts.task_id, parts.kind, parts.assigner, parts.assignee) == (
            task_id,
            kind,
            assigner,
            assignee,
        )
        assert subject_matches(s.task_records(task_id, assigner, assignee), subject)
        matched = any(subject_matches(f, subject) for f in s.all_task_updates())
        assert matched == (kind != "cancel")  # the updates consumer sees no controls
    answer = s.task(task_id, "answer", assigner, assignee, "1")
    assert s.parse_task(answer) == TaskSubject(task_id, "answer", assigner, assignee, "1")
    assert s.parse_task(s.task_updates(task_id)) is None  # the first format names no writer


@given(prefixes, tokens, st.lists(tokens, min_size=1, max_size=3).map(".".join))
def test_event_subjects_parse_back(prefix: str, domain: str, type_: str) -> None:
    s = Subjects(prefix)
    assert s.parse_event(f"{prefix}.events.{domain}.{type_}") == (domain, type_)
    if "." not in type_:
        assert s.parse_event(s.event(domain, type_)) == (domain, type_)


@given(ids, roles, roles)
def test_an_answer_goes_only_to_the_asker_s_namespace_for_the_role_asked(
    ask_id: str, asker: str, answerer: str
) -> None:
    s = Subjects("genbrain")
    good = f"{s.answer_to(asker, answerer)}.{ask_id}"
    assert good == f"_INBOX_{asker}.rpc.{answerer}.{ask_id}"
    assert s.answer_allowed(good, asker, answerer)
    for bad in (
        f"genbrain.agents.devops.tasks.{answerer}",  # a confused deputy's stored task
        "$JS.API.STREAM.DELETE.EVENTS",
        f"_INBOX_{asker}.rpc.{answerer}",  # no id
        f"_INBOX_{asker}.rpc.{answerer}.{ask_id}.more",  # deeper
        f"_INBOX_{asker}x.rpc.{answerer}.{ask_id}",  # another identity's inbox
        f"_INBOX.rpc.{answerer}.{ask_id}",  # nats-py's prefix: only the admin's, without auth
        "",
    ):
        assert not s.answer_allowed(bad, asker, answerer), bad
    if asker != answerer:
        assert not s.answer_allowed(f"{s.answer_to(answerer, asker)}.{ask_id}", asker, answerer)
    assert s.answer_allowed(f"_INBOX.rpc.{answerer}.{ask_id}", "admin", answerer)
    assert s.rpc_asker(s.rpc(answerer, asker)) == asker
    assert s.rpc_asker(s.rpc(answerer)) == "admin"


@given(st.text(st.sampled_from("0123456789abcdef"), min_size=1, max_size=32), roles, roles)
def test_an_agent_answers_control_only_at_a_control_reply_for_its_role(
    token: str, asker: str, role: str
) -> None:
    s = Subjects("genbrain")
    good = f"{s.control_reply(asker, role)}.{token}"
    assert good == f"_INBOX_{asker}.control.{role}.{token}"
    assert s.control_reply_allowed(good, role)
    for bad in (
        f"genbrain.presence.{role}.{role}-0a1b2c3d",  # a confused deputy's stored record
        "$JS.API.STREAM.DELETE.AGENT_COMMS",
        f"_INBOX_{asker}.control.{role}",  # no request token
        f"_INBOX_{asker}.control.{role}.",
        f"_INBOX_{asker}.control.{role}.{token}.more",  # deeper
        f"_INBOX_{asker}.control.{role}x.{token}",  # another role's
        f"_INBOX_{asker}.rpc.{role}.{token}",  # an ask's answer, not a control reply
        f"_INBOX_.control.{role}.{token}",  # nobody's inbox
        f"_INBOX.control.{role}.{token}",  # nats-py's prefix
        "",
    ):
        assert not s.control_reply_allowed(bad, role), bad


@pytest.mark.parametrize("task_id", ["a/b", "a b", "é", "x" * 129, "", "{task_id}"])
def test_ids_are_bounded_and_printable(task_id: str) -> None:
    with pytest.raises(InvalidSubjectError):
        validate_id(task_id)
    with pytest.raises(InvalidSubjectError):
        Subjects("p").task(task_id, "outcome", "cto", "backend")


def test_a_token_longer_than_a_subject_can_carry_is_refused() -> None:
    with pytest.raises(InvalidSubjectError, match="5000 characters long"):
        validate_token("z" * 5000, "task id")
    with pytest.raises(InvalidSubjectError, match="at most 128"):
        validate_id("z" * 200)


def test_seed_subjects() -> None:
    s = Subjects("genbrain")
    assert s.inbox("cso") == "genbrain.agents.cso.inbox"
    assert s.tasks("backend") == "genbrain.agents.backend.tasks"
    assert s.invitations("cto") == "genbrain.agents.cto.meetings"
    assert s.event("deployment", "completed") == "genbrain.events.deployment.completed"
    assert s.events_filter("deployment.>") == "genbrain.events.deployment.>"
    assert s.task_updates("task-001") == "genbrain.tasks.task-001.updates"
    assert s.task("task-001", "updates", "cto", "backend") == (
        "genbrain.tasks.task-001.updates.cto.backend"
    )
    assert s.task("task-001", "answer", "cto", "backend", "2") == (
        "genbrain.tasks.task-001.answer.cto.backend.2"
    )
    assert s.meeting("m-1") == "genbrain.meetings.m-1"
    assert s.meeting("m-1", "cto") == "genbrain.meetings.m-1.cto"
    assert s.rpc("cso") == "genbrain.rpc.cso"
    assert s.rpc("cso", "backend") == "genbrain.rpc.cso.backend"
    assert s.dead_letter("AGENT_COMMS", "BACKEND_TASKS") == "genbrain.dlq.AGENT_COMMS.BACKEND_TASKS"


def test_absolute_keeps_server_subjects() -> None:
    s = Subjects("genbrain")
    assert s.absolute("agents.>") == "genbrain.agents.>"
    assert s.absolute("$JS.EVENT.ADVISORY.>") == "$JS.EVENT.ADVISORY.>"
    with pytest.raises(InvalidSubjectError):
        s.absolute("agents..inbox")


@pytest.mark.parametrize("prefix", ["", "a..b", "gen brain", "genbrain.>", "*"])
def test_bad_prefix_is_refused(prefix: str) -> None:
    with pytest.raises(InvalidSubjectError):
        Subjects(prefix)


def test_consumer_names_follow_the_seed() -> None:
    assert consumer_name("backend", "tasks") == "BACKEND_TASKS"
    assert consumer_name("devops", "events") == "DEVOPS_EVENTS"
    assert consumer_name("data-eng", "inbox") == "DATA_ENG_INBOX"


# -- refusing bad tokens ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("back end", "a space"),
        ("back.end", "a dot"),
        ("back*", "a wildcard"),
        (">", "a wildcard"),
        ("back\tend", "whitespace"),
        ("", "non-empty"),
    ],
)
def test_bad_tokens_are_refused_with_the_reason(value: str, problem: str) -> None:
    s = Subjects("genbrain")
    for build in (s.inbox, s.tasks, s.rpc, s.meeting, s.task_updates, validate_id):
        with pytest.raises(InvalidSubjectError) as info:
            build(value)
        assert problem in str(info.value)
        assert repr(value) in str(info.value)


@given(tokens, st.sampled_from([" ", ".", "*", ">", "\n"]), tokens)
def test_any_token_with_a_separator_or_wildcard_is_refused(left: str, bad: str, right: str) -> None:
    with pytest.raises(InvalidSubjectError):
        validate_token(left + bad + right, "task id")


def test_token_error_names_what_it_is() -> None:
    with pytest.raises(InvalidSubjectError, match=r"^task id 'a b' contains a space"):
        Subjects("p").task_updates("a b")
    with pytest.raises(InvalidSubjectError, match=r"^event domain"):
        Subjects("p").event("a.b", "c")


@given(tokens)
def test_valid_tokens_pass(token: str) -> None:
    assert validate_token(token) == token


@pytest.mark.parametrize("role", ["backend", "cso", "data-eng", "qa_2", "a" * 64])
def test_valid_roles(role: str) -> None:
    assert validate_role(role) == role


@pytest.mark.parametrize(
    ("role", "problem"),
    [
        ("back.end", "a dot"),
        ("back end", "a space"),
        ("Backend", "lower-case"),
        ("2nd", "lower-case"),
        ("$sys", "lower-case"),
        ("a" * 65, "lower-case"),
    ],
)
def test_invalid_roles(role: str, problem: str) -> None:
    with pytest.raises(InvalidSubjectError, match=problem):
        validate_role(role)


@pytest.mark.parametrize(
    ("subject", "problem"),
    [
        ("", "must not be empty"),
        ("a..b", "empty token"),
        ("a.", "empty token"),
        ("a.>.b", "last token"),
        ("a.b*", "wildcard inside"),
        ("a.b c", "whitespace"),
    ],
)
def test_invalid_subjects(subject: str, problem: str) -> None:
    with pytest.raises(InvalidSubjectError, match=problem):
        validate_subject(subject)
    assert not is_valid_subject(subject)


@pytest.mark.parametrize("subject", ["a.*", "a.>", ">", "*.b"])
def test_wildcards_only_where_allowed(subject: str) -> None:
    assert validate_subject(subject) == subject
    with pytest.raises(InvalidSubjectError, match="must not contain wildcards"):
        validate_subject(subject, wildcards=False)
    assert not is_valid_subject(subject, wildcards=False)


# -- matching and overlap ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "subject", "matches"),
    [
        ("genbrain.agents.*.inbox", "genbrain.agents.cso.inbox", True),
        ("genbrain.agents.*.inbox", "genbrain.agents.cso.tasks", False),
        ("genbrain.events.>", "genbrain.events.deployment.completed", True),
        ("genbrain.events.>", "genbrain.events", False),
        ("genbrain.tasks.*.updates", "genbrain.tasks.t1.updates", True),
        ("genbrain.tasks.*.updates", "genbrain.tasks.t1.updates.x", False),
        (">", "anything.at.all", True),
        ("a.b", "a.b", True),
        ("a.b", "a.b.c", False),
    ],
)
def test_subject_matches(pattern: str, subject: str, matches: bool) -> None:
    assert subject_matches(pattern, subject) is matches


@given(filters, filters, literals)
def test_a_subject_both_match_means_overlap(a: str, b: str, subject: str) -> None:
    if subject_matches(a, subject) and subject_matches(b, subject):
        assert subjects_overlap(a, b)


@given(filters, filters)
def test_overlap_means_some_subject_matches_both(a: str, b: str) -> None:
    witnesses = [s for s in ALL_LITERALS if subject_matches(a, s) and subject_matches(b, s)]
    assert subjects_overlap(a, b) is bool(witnesses)


@given(filters)
def test_a_filter_overlaps_itself(a: str) -> None:
    assert subjects_overlap(a, a)


@given(filters, filters)
def test_overlap_is_symmetric(a: str, b: str) -> None:
    assert subjects_overlap(a, b) is subjects_overlap(b, a)


@given(literals, literals)
def test_a_literal_pattern_matches_only_itself(a: str, b: str) -> None:
    assert subject_matches(a, b) is (a == b)
    assert subjects_overlap(a, b) is (a == b)


@given(literals)
def test_full_wildcard_matches_everything(subject: str) -> None:
    assert subject_matches(">", subject)
    assert subjects_overlap(">", subject)


@given(filters, filters)
def test_a_filter_within_another_matches_only_what_the_other_matches(a: str, b: str) -> None:
    """filter_within(a, b) holds exactly when every literal a matches, b matches too.

    Filters have at most 4 tokens, so a literal of a that escapes b shows within 5."""
    inside = all(subject_matches(b, s) for s in ALL_LITERALS if subject_matches(a, s))
    assert filter_within(a, b) == inside


# -- heard as sent ----------------------------------------------------------------------


@given(prefixes, ids, roles, roles, ids, roles)
def test_only_the_outcome_a_notice_names_is_heard_as_its_republish(
    prefix: str, task: str, assigner: str, assignee: str, other: str, writer: str
) -> None:
    """A notice carries the server's ``Nats-Subject``: taken when it names the outcome the
    notice is about, not when a role had a record of its own read back onto it."""
    s = Subjects(prefix)
    notice = f"{prefix}.outcomes.{task}.{assigner}.{assignee}"
    outcome = s.task(task, "outcome", assigner, assignee)
    assert s.heard_as_sent(notice, {"Nats-Subject": outcome})
    read_back = s.task(other, "outcome", assigner, writer)
    assert s.heard_as_sent(notice, {"Nats-Subject": read_back}) == (read_back == outcome)
    live = s.task(task, "updates", assigner, assignee)
    assert s.heard_as_sent(live, None) and s.heard_as_sent(live, {"Fleet-Sender": writer})
    assert not s.heard_as_sent(live, {"Nats-Subject": read_back})
    # an id no task may have (a writer's own record, republished): told apart, never raised
    odd = f"{prefix}.outcomes.{task}!.{assigner}.{assignee}"
    assert not s.heard_as_sent(odd, {"Nats-Subject": outcome})
    odd_outcome = f"{prefix}.tasks.{task}!.outcome.{assigner}.{assignee}"
    assert s.heard_as_sent(odd, {"Nats-Subject": odd_outcome})


@given(filters, literals)
def test_a_message_outside_the_subscribed_filters_is_not_heard(pattern: str, subject: str) -> None:
    """A pulled message keeps the subject it was stored on, whatever reply it was sent to."""
    s = Subjects("p")
    assert s.heard_as_sent(subject, None, [pattern]) == subject_matches(pattern, subject)
    assert s.heard_as_sent(subject, None)  # no filters: not checked
