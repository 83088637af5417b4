"""The task index: every task's latest state, folded from its records in stream order."""

from __future__ import annotations

from fleetbus.dashboard.data import TaskIndex
from fleetbus.wire.subjects import Subjects
from fleetbus.wire.updates import TaskUpdate

S = Subjects("genbrain")


def record(task_id: str, state: str, *, attempt: int = 1, **fields: object) -> bytes:
    return TaskUpdate(
        task_id=task_id,
        state=state,  # type: ignore[arg-type]
        agent="whoever-the-body-says",
        attempt=attempt,
        time=f"2026-12-01T10:00:{attempt:02d}.000Z",
        worker="backend-1234abcd",
        **fields,  # type: ignore[arg-type]
    ).encode()


def stored(seq: int) -> str:
    """The time the server stored record ``seq``."""
    return f"2026-12-01T10:01:{seq:02d}.000Z"


def fold(*records: tuple[str, bytes]) -> TaskIndex:
    index = TaskIndex(S)
    for seq, (kind, data) in enumerate(records, 1):
        index.apply(f"genbrain.tasks.t1.{kind}.cto.backend", data, seq, stored(seq))
    return index


def test_the_latest_record_wins_and_progress_is_kept_while_it_runs() -> None:
    index = fold(
        ("updates", record("t1", "accepted")),
        ("updates", record("t1", "progress", percent=40.0, message="tests")),
    )
    [row] = index.rows.values()
    assert (row.state, row.percent, row.message) == ("progress", 40.0, "tests")
    assert (row.role, row.assigner) == ("backend", "cto")  # the subject's word, not the body's


def test_the_outcome_stands_against_a_late_update_but_a_new_attempt_reopens() -> None:
    index = fold(
        ("updates", record("t1", "accepted")),
        ("outcome", record("t1", "dead_lettered", error="boom")),
        ("updates", record("t1", "progress", percent=90.0)),  # a late, lease-less attempt
    )
    assert next(iter(index.rows.values())).state == "dead_lettered"
    index.apply(
        "genbrain.tasks.t1.updates.cto.backend", record("t1", "accepted"), 10, stored(10)
    )  # replayed
    assert next(iter(index.rows.values())).state == "accepted"


def test_foreign_messages_on_record_subjects_say_nothing() -> None:
    index = TaskIndex(S)
    assert index.apply("genbrain.tasks.t1.updates.cto.backend", b"<script>", 1, stored(1)) is None
    assert (
        index.apply("genbrain.tasks.t1.cancel.cto.backend", record("t1", "canceled"), 2, stored(2))
        is None
    )
    assert index.apply("genbrain.tasks.t1.updates", record("t1", "accepted"), 3, stored(3)) is None
    assert len(index) == 0


def test_select_filters_and_orders_by_the_last_update() -> None:
    index = TaskIndex(S)
    for i, state in enumerate(["accepted", "completed", "failed"]):
        index.apply(
            f"genbrain.tasks.t{i}.updates.cto.backend",
            record(f"t{i}", state, attempt=i + 1),
            i + 1,
            stored(i + 1),
        )
    rows, matching = index.select(state="active")
    assert [r.task_id for r in rows] == ["t2", "t0"] and matching == 2
    assert index.select(text="1")[0][0].task_id == "t1"
    assert index.select(role="cso") == ([], 0)
    assert index.counts() == {"accepted": 1, "completed": 1, "failed": 1}
