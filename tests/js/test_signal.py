"""``Signal``: asyncio.Event's behaviour for its one waiter, without its list of waiters."""

from __future__ import annotations

import asyncio

import pytest

from fleetbus.js.signal import Signal


async def test_a_signal_wakes_its_waiter_and_stays_set_until_cleared() -> None:
    signal = Signal()
    waiting = asyncio.ensure_future(signal.wait())
    await asyncio.sleep(0)
    assert not waiting.done()
    signal.set()
    await asyncio.wait_for(waiting, 5)
    assert signal.is_set()
    await asyncio.wait_for(signal.wait(), 5)  # set: returns at once
    signal.clear()
    assert not signal.is_set()


async def test_a_signal_refuses_a_second_waiter_and_survives_a_cancelled_one() -> None:
    signal = Signal()
    first = asyncio.ensure_future(signal.wait())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="one waiter"):
        await signal.wait()
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    again = asyncio.ensure_future(signal.wait())  # the cancelled waiter left no trace
    await asyncio.sleep(0)
    signal.set()
    await asyncio.wait_for(again, 5)


async def test_a_signal_wait_ends_after_its_timeout_unset() -> None:
    signal = Signal()
    loop = asyncio.get_running_loop()
    began = loop.time()
    await asyncio.wait_for(signal.wait(0.05), 5)
    assert loop.time() - began >= 0.05 - 0.001  # never early (the loop's clock)
    assert not signal.is_set()
