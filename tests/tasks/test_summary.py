"""A task-list entry as the admin reads it: a role wrote it, so its types are checked."""

from __future__ import annotations

import json

import pytest

from fleetbus.errors import PayloadError
from fleetbus.tasks import TaskSummary
from fleetbus.tasks.index import _FIELD_TYPES

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
