"""A task-list entry as the admin reads it: a role wrote it, so its types are checked."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetbus.errors import PayloadError
from fleetbus.tasks import TaskSummary
from fleetbus.tasks.index import _FIELD_TYPES
from fleetbus.wire.updates import TaskUpdate

WHO = {"role": "backend", "assigner": "cto", "task_id": "t-1"}
ENTRY = {"state": "progress", "created": "2026-01-01T00:00:00Z", "updated": "2026-01-01T00:00:01Z"}


def decode(body: dict[str, object]) -> TaskSummary:
    return TaskSummary.decode(json.dumps(body).encode(), **WHO)


def test_every_field_a_body_holds_has_a_type() -> None:
    assert set(_FIELD_TYPES) == set(TaskSummary.__dataclass_fields__) - set(WHO)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("percent", "x"),
        ("percent", True),
        ("attempt", "1"),
        ("attempt", 1.5),
        ("message", ["[/]"]),
        ("worker", 7),
        ("deadline", "soon"),
        ("request", 3),
    ],
)
def test_a_field_of_the_wrong_type_is_dropped(field: str, value: object) -> None:
    summary = decode({**ENTRY, field: value, "error": "kept"})
    assert summary.error == "kept"
    assert getattr(summary, field) == TaskSummary.__dataclass_fields__[field].default


@pytest.mark.parametrize("field", ["state", "created", "updated"])
@pytest.mark.parametrize("value", [None, 5, ["2026"], {"a": 1}])
def test_an_entry_without_its_state_or_times_as_text_is_refused(field: str, value: object) -> None:
    with pytest.raises(PayloadError, match=field):
        decode({**ENTRY, field: value})


def test_who_comes_from_the_subject() -> None:
    summary = decode({**ENTRY, "role": "cso", "task_id": "t-other", "percent": 50})
    assert (summary.role, summary.task_id, summary.percent) == ("backend", "t-1", 50)


_TEXT = st.none() | st.text(max_size=8)
_NUMBER = st.none() | st.floats(0, 100, allow_nan=False)


@given(
    st.builds(
        TaskSummary,
        task_id=st.just("t-1"),
        role=st.just("backend"),
        assigner=st.just("cto"),
        state=st.sampled_from(["submitted", "accepted", "progress"]),
        created=st.just("2026-01-01T00:00:00.000Z"),
        updated=st.just("2026-01-01T00:00:00.000Z"),
        attempt=st.integers(0, 5),
        worker=st.text(max_size=8),
        message=_TEXT,
        percent=_NUMBER,
        error=_TEXT,
        deadline=_NUMBER,
        request=_TEXT,
    ),
    st.builds(
        TaskUpdate,
        task_id=st.just("t-1"),
        state=st.sampled_from(["accepted", "progress", "input-required", "failed", "completed"]),
        agent=st.just("backend"),
        assigner=st.just("cto"),
        attempt=st.integers(1, 5),
        time=st.just("2026-01-01T00:00:01.000Z"),
        worker=st.text(max_size=8),
        message=_TEXT,
        percent=_NUMBER,
        error=_TEXT,
        request=_TEXT,
    ),
)
def test_an_entry_after_an_update_is_the_entry_moved_by_it(
    entry: TaskSummary, update: TaskUpdate
) -> None:
    """``after`` (one constructor call, at every task's end) says what ``moved`` says: the
    update's state, attempt, worker, error and request, its message and percent where it
    has them, and the rest of the entry as it was."""
    moved = entry.moved(
        update.state,
        attempt=update.attempt,
        worker=update.worker,
        message=update.message if update.message is not None else entry.message,
        percent=update.percent if update.percent is not None else entry.percent,
        error=update.error,
        request=update.request,
    )
    after = entry.after(update)
    assert replace(after, updated=moved.updated) == moved
