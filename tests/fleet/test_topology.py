"""The fleet's derived topology: which stream would drop a subject no consumer reads."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fleetbus.fleet import FleetSpec, seed_fleet
from fleetbus.wire.subjects import subject_matches


def interest_fleet() -> FleetSpec:
    """The seed with its messages and events kept only while some consumer wants them, so
    both literal (inboxes, tasks) and wildcard (event patterns) filters decide."""
    seed = seed_fleet()
    streams = {
        name: s.model_copy(update={"retention": "interest"})
        if name in ("AGENT_COMMS", "EVENTS")
        else s
        for name, s in seed.streams.items()
    }
    return seed.model_copy(update={"streams": streams})


SPEC = interest_fleet()
ROLES = [*SPEC.roles, "nobody"]


def scanned(spec: FleetSpec, subject: str) -> str:
    """``dropped_unread`` by its definition: every consumer of the stream, one by one."""
    name = spec.stream_for(subject)
    if not name or spec.streams[name].retention != "interest":
        return ""
    readers = [c for c in spec.consumers() if c.stream == name]
    if any(subject_matches(f, subject) for c in readers for f in c.filters):
        return ""
    return name


subjects = st.one_of(
    st.builds(
        SPEC.subjects.agent,
        st.sampled_from(ROLES),
        st.sampled_from(["tasks", "inbox", "meetings", "requests"]),
    ),
    st.builds(
        SPEC.subjects.event,
        st.sampled_from(["deploy", "security", "build", "ci", "x"]),
        st.sampled_from(["started", "failed", "finished", "alert"]),
    ),
)


@given(subjects)
def test_dropped_unread_agrees_with_a_scan_of_every_consumer(subject: str) -> None:
    assert SPEC.dropped_unread(subject) == scanned(SPEC, subject)


def test_both_answers_occur() -> None:
    """The property above sees subjects some consumer reads and subjects none reads."""
    tasks = SPEC.subjects.agent("backend", "tasks")
    assert SPEC.dropped_unread(tasks) == ""
    unread = SPEC.subjects.agent("nobody", "tasks")
    assert SPEC.dropped_unread(unread) == SPEC.stream_for(unread) != ""
    read_events = [
        SPEC.subjects.event(d, t)
        for d in ("deploy", "security", "build", "ci")
        for t in ("started", "failed", "finished", "alert")
    ]
    assert any(SPEC.dropped_unread(s) == "" for s in read_events)
