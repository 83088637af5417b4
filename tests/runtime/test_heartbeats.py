"""Heartbeats: one sweep per agent sends ``+WPI`` for every delivery whose handler runs.

Timing is read on the loop's own clock and bounded only from below (a beat is never sent
before it is due) or by generous counts: a loaded machine may run the sweep late."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, cast

import pytest

from fleetbus.runtime.limits import TimeLimit
from fleetbus.runtime.settle import Delivery, Heartbeats


@dataclass(eq=False)
class Running:
    """What the sweep reads of a delivery: its ack wait."""

    ack_wait: float
    beats: list[float] = field(default_factory=list)
    limit: tuple[TimeLimit | None, float] | None = None
    late: TimeLimit | None = None
    worker: Any = None

    @property
    def d(self) -> Delivery:
        return cast(Delivery, self)


def sweeping() -> Heartbeats:
    loop = asyncio.get_running_loop()
    return Heartbeats(lambda d: cast(Running, d).beats.append(loop.time()))


async def test_a_running_delivery_beats_until_it_stops_and_never_early() -> None:
    beats = sweeping()
    slow = Running(ack_wait=0.3)  # a beat due every 0.1 s
    began = asyncio.get_running_loop().time()
    beats.start(slow.d)
    await asyncio.sleep(1.0)
    beats.stop(slow.d)
    count = len(slow.beats)
    await asyncio.sleep(0.3)
    assert count >= 2 and len(slow.beats) == count  # none after the stop
    # never early (a millisecond of slack: a beat is recorded a moment after its sweep began)
    assert slow.beats[0] >= began + 0.1 - 0.001
    assert all(b - a >= 0.1 - 0.001 for a, b in zip(slow.beats, slow.beats[1:], strict=False))
    assert beats.next_sweep is None  # nothing beats: the sweep stopped


async def test_a_handler_that_ends_within_the_interval_costs_no_beat_and_one_timer() -> None:
    beats = sweeping()
    quick = [Running(ack_wait=0.3) for _ in range(1000)]
    first_sweep = None
    for r in quick:
        beats.start(r.d)
        first_sweep = first_sweep or beats.next_sweep
        assert beats.next_sweep == first_sweep  # the same timer serves them all
        beats.stop(r.d)
    await asyncio.sleep(0.3)
    assert not any(r.beats for r in quick)


async def test_a_shorter_ack_wait_started_later_moves_the_sweep_up() -> None:
    beats = sweeping()
    long, short = Running(ack_wait=30.0), Running(ack_wait=0.3)
    beats.start(long.d)
    later = beats.next_sweep
    loop = asyncio.get_running_loop()
    began = loop.time()
    beats.start(short.d)
    ended = loop.time()
    soon = beats.next_sweep
    assert later is not None and soon is not None
    # half of the short interval (0.1 s), not of the long one
    assert began + 0.05 <= soon <= ended + 0.05 < later
    beats.stop(long.d)
    beats.stop(short.d)


async def test_a_time_limit_due_after_the_first_heartbeat_is_set_by_it_and_holds() -> None:
    """A handler's time limit is a timer of the loop's only once its delivery has had a
    heartbeat: most handlers end sooner, and a timer made and cancelled per delivery cost
    the event fan-out a fifth of its throughput. Set late, it still expires when due."""
    beats = sweeping()
    slow = Running(ack_wait=0.3)  # the first beat 0.1-0.15 s in
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(TimeoutError), TimeLimit() as timer:
        assert beats.start(slow.d, 0.5, timer) is None  # not to be set now
        assert timer.when is None and slow.limit is not None
        await asyncio.sleep(0.2)  # the sweep, due first, has run
        assert slow.limit is None and slow.beats
        assert timer.when == pytest.approx(began + 0.5, abs=0.05)
        await asyncio.sleep(30)
    assert timer.expired() and loop.time() >= began + 0.5
    beats.stop(slow.d)


async def test_a_time_limit_due_before_the_first_heartbeat_is_set_at_once() -> None:
    beats = sweeping()
    quick = Running(ack_wait=0.3)
    loop = asyncio.get_running_loop()
    with pytest.raises(TimeoutError), TimeLimit() as timer:
        due = beats.start(quick.d, 0.1, timer)  # 1.5 intervals would be 0.15 s
        assert quick.limit is None and due == pytest.approx(loop.time() + 0.1, abs=0.05)
        timer.set(due)
        await asyncio.sleep(30)
    beats.stop(quick.d)


async def test_a_time_limit_ends_only_its_block_and_lets_another_cancellation_through() -> None:
    """As ``asyncio.timeout``: its own cancellation becomes TimeoutError where it was
    entered and the task goes on; a stop's cancellation meanwhile stays a cancellation."""
    with contextlib.suppress(TimeoutError), TimeLimit() as limit:
        limit.set(asyncio.get_running_loop().time())  # due now
        await asyncio.sleep(30)
    assert limit.expired()
    await asyncio.sleep(0)  # nothing left pending on the task

    async def stopped_meanwhile() -> None:
        with TimeLimit() as limit:
            limit.set(asyncio.get_running_loop().time())
            task = asyncio.current_task()
            assert task is not None
            task.cancel()  # a stop, at the same time
            await asyncio.sleep(30)

    with pytest.raises(asyncio.CancelledError):
        await asyncio.create_task(stopped_meanwhile())

    with TimeLimit() as unused:
        pass
    unused.set(asyncio.get_running_loop().time())  # left already: nothing
    await asyncio.sleep(0.01)
    assert not unused.expired()


async def test_a_cancel_requests_interrupt_is_taken_back_and_a_stop_meanwhile_is_not() -> None:
    """What a cancel request does to a task's handler running in place: a limit around the
    worker's task, due at once. The handler's end takes that cancellation back (the worker
    goes on and settles the task ``canceled``); a stop at the same time stays a stop, and
    while one is pending no interrupt is made at all."""
    task = asyncio.current_task()
    assert task is not None
    interrupt = TimeLimit.around(task)
    assert interrupt is not None
    interrupt.expire()
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError as exc:
        assert interrupt.leave(exc)  # its own, and no one else's
    else:
        raise AssertionError("the interrupt did not end the block")
    assert task.cancelling() == 0
    await asyncio.sleep(0)  # the task goes on

    async def stopped_meanwhile() -> None:
        me = asyncio.current_task()
        assert me is not None
        interrupt = TimeLimit.around(me)
        assert interrupt is not None
        interrupt.expire()
        me.cancel()  # a stop, at the same time
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError as exc:
            assert not interrupt.leave(exc)
            raise

    with pytest.raises(asyncio.CancelledError):
        await asyncio.create_task(stopped_meanwhile())

    async def stopping() -> None:
        me = asyncio.current_task()
        assert me is not None
        me.cancel()
        assert TimeLimit.around(me) is None
        await asyncio.sleep(0)

    with pytest.raises(asyncio.CancelledError):
        await asyncio.create_task(stopping())


async def test_a_handler_run_in_place_gets_a_limit_only_if_it_runs_at_its_first_heartbeat() -> None:
    """An ``async def`` event or message handler runs in its consumer's worker task: its
    limit is made at the first heartbeat, around that task, and none at all for the many
    that end before (no object, no timer per delivery)."""
    beats = sweeping()
    loop = asyncio.get_running_loop()
    quick = Running(ack_wait=0.3, worker=SimpleNamespace(task=asyncio.current_task()))
    assert beats.start(quick.d, 0.5) is None and quick.limit is not None
    beats.stop(quick.d)  # it ended within the interval
    await asyncio.sleep(0.3)
    assert quick.late is None

    slow = Running(ack_wait=0.3, worker=SimpleNamespace(task=asyncio.current_task()))
    began = loop.time()
    beats.start(slow.d, 0.5)
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError as exc:
        assert slow.late is not None and slow.late.leave(exc)  # the limit's own
    else:
        raise AssertionError("the limit did not end the handler")
    assert loop.time() >= began + 0.5 and slow.late.expired()
    beats.stop(slow.d)
    await asyncio.sleep(0)  # the task goes on: its cancellation was the limit's, and handled
