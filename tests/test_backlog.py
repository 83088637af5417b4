"""``Backlog``: bounded by count and by weight, the oldest going first, read in order."""

from __future__ import annotations

import asyncio

from hypothesis import given
from hypothesis import strategies as st

from fleetbus._backlog import Backlog


@given(
    st.integers(1, 6),
    st.integers(0, 40),
    st.lists(st.integers(0, 15), max_size=30),
)
def test_it_keeps_the_newest_items_within_both_bounds(
    count: int, size: int, weights: list[int]
) -> None:
    backlog: Backlog[int] = Backlog(count, size)
    for n, weight in enumerate(weights):
        backlog.put(n, weight)
    kept = [n for n, _ in backlog._items]
    assert backlog.weights == [weights[n] for n in kept]
    # What is kept is the newest, in the order put; the newest item is always kept.
    assert kept == list(range(len(weights) - len(kept), len(weights)))
    assert bool(kept) == bool(weights)
    assert len(kept) <= count
    assert backlog.held == sum(weights[n] for n in kept)
    # Over the weight only with one item: one that weighs more than the bound by itself.
    assert backlog.held <= size or len(kept) == 1


async def test_a_reader_waits_for_the_next_item_and_reads_in_order() -> None:
    backlog: Backlog[str] = Backlog(10, 100)
    reading = asyncio.ensure_future(backlog.get())
    await asyncio.sleep(0)
    assert not reading.done()
    backlog.put("first", 3)
    backlog.put("second", 4)
    assert await asyncio.wait_for(reading, 5) == "first"
    assert await backlog.get() == "second"
    assert backlog.held == 0 and len(backlog) == 0


async def test_an_item_whose_woken_reader_is_cancelled_goes_to_the_next_reader() -> None:
    backlog: Backlog[str] = Backlog()
    first = asyncio.ensure_future(backlog.get())
    second = asyncio.ensure_future(backlog.get())
    await asyncio.sleep(0)
    backlog.put("only")  # wakes the first reader...
    first.cancel()  # ...which is cancelled before it runs
    assert await asyncio.wait_for(second, 5) == "only"
    assert first.cancelled() and len(backlog) == 0
