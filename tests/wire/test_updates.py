"""Task updates as read: who wrote them is the subject's word, whatever the body claims."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetbus.errors import PayloadError
from fleetbus.wire.updates import TaskUpdate

roles = st.sampled_from(["cto", "backend", "admin", "", "ceo"])


@given(claimed_assigner=roles, claimed_agent=roles, assigner=roles, agent=roles)
def test_written_by_takes_the_subjects_identities_and_keeps_the_rest(
    claimed_assigner: str, claimed_agent: str, assigner: str, agent: str
) -> None:
    update = TaskUpdate(
        task_id="task-1",
        state="completed",
        agent=claimed_agent,
        assigner=claimed_assigner,
        attempt=2,
        time="2026-12-01T00:00:00Z",
        result={"ok": True},
    )
    read = update.written_by(assigner, agent)
    assert (read.assigner, read.agent) == (assigner, agent)
    assert read == replace(update, assigner=assigner, agent=agent)


def test_decoding_keeps_known_fields_and_drops_the_rest() -> None:
    raw = (
        b'{"task_id":"t","state":"failed","agent":"backend","attempt":1,"time":"now",'
        b'"error":"boom","extra":"ignored"}'
    )
    update = TaskUpdate.decode(raw)
    assert (update.state, update.error) == ("failed", "boom")
    assert not hasattr(update, "extra")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("reason", [{}] * 3),
        ("error", {"a": 1}),
        ("message", 5),
        ("time", 1733000000),
        ("worker", None),
        ("attempt", None),
        ("percent", "40"),
        ("percent", True),
        ("retry_in", [1]),
        ("data", "text"),
        ("attempt", True),
        ("attempt", 1.5),
    ],
)
def test_a_field_of_the_wrong_type_is_not_a_task_update(field: str, value: object) -> None:
    """Records are anyone's JSON until checked; readers (an agent keeping cancel reasons, the
    admin's tools) take each field as its type."""
    body = {"task_id": "t-1", "state": "progress", "agent": "backend", "attempt": 1, "time": "x"}
    raw = json.dumps(body | {field: value}).encode()
    with pytest.raises(PayloadError, match=f"not a task update: {field}"):
        TaskUpdate.decode(raw)
