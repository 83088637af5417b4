"""A presence record as an agent writes it and a reader takes it back (pure: no server)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from fleetbus.presence import AgentInfo, HeldTask

text = st.text(max_size=12)
held = st.builds(HeldTask, task_id=text, attempt=st.integers(0, 99), since=text, assigner=text)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
infos = st.builds(
    AgentInfo,
    role=st.just("backend"),
    instance=st.just("backend-0a1b2c3d"),
    host=text,
    pid=st.integers(1, 2**22),
    version=text,
    started=text,
    renewed=st.just(""),
    state=st.sampled_from(["running", "draining", "stopped"]),
    interval=st.floats(0.1, 60),
    grace=st.floats(1, 600),
    handlers=st.dictionaries(text, json_values, max_size=6),
    tasks=st.lists(held, max_size=4).map(tuple),
    handled=st.dictionaries(text, st.integers(0, 10**6), max_size=5),
)


def _nested(value: Any) -> list[Any]:
    """Every dict and list inside ``value``."""
    if isinstance(value, dict):
        return [value, *(c for v in value.values() for c in _nested(v))]
    if isinstance(value, list):
        return [value, *(c for v in value for c in _nested(v))]
    return []


@given(infos)
def test_as_json_is_asdict_in_containers_of_its_own(info: AgentInfo) -> None:
    data = info.to_json()
    expected = asdict(info)
    expected["tasks"] = [asdict(t) for t in info.tasks]
    assert data == expected
    # nothing a caller changes in it reaches the record (the handlers' lists least of all)
    mine = {id(c) for c in _nested(info.handlers) + _nested(info.handled)}
    assert not {id(c) for c in _nested(data)} & mine


@given(infos)
def test_a_record_reads_back_as_written(info: AgentInfo) -> None:
    stored = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    back = AgentInfo.from_record(
        info.record(), role=info.role, instance=info.instance, stored=stored, now=stored
    )
    assert back.to_json() == {**info.to_json(), "renewed": "2026-12-02T12:00:00.000Z"}
