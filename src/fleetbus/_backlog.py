"""``Backlog``: what came for a reader that may fall behind, bounded in count and in bytes.

What other roles say (meeting lines, tailed traffic) arrives whether or not anyone reads it,
and any role may say lines of a megabyte: a bound on the count alone would hold gigabytes.
Past either bound the oldest go first, so a reader that catches up gets the newest."""

from __future__ import annotations

import asyncio
import collections
import sys
from typing import Generic, TypeVar

__all__ = ["Backlog"]

T = TypeVar("T")


class Backlog(Generic[T]):
    """At most ``count`` items weighing at most ``size`` in all (each its own weight: its
    bytes, or what it takes once parsed); ``put`` never waits, ``get`` waits for one.

    Not an ``asyncio.Queue``: that is four deques and an event, and a few microseconds of
    bookkeeping per item, paid by every listener of a meeting for every line said. This is
    a deque and the readers waiting, woken one per item."""

    __slots__ = ("_items", "_waiting", "count", "held", "size")

    def __init__(self, count: int = sys.maxsize, size: int = sys.maxsize) -> None:
        self._items: collections.deque[tuple[T, int]] = collections.deque()
        """Each held item and its weight, oldest first."""
        self._waiting: list[asyncio.Future[None]] = []
        """The readers waiting for an item, first come first woken."""
        self.count = count
        self.size = size
        self.held = 0
        """The weight of what is held."""

    def __len__(self) -> int:
        return len(self._items)

    @property
    def weights(self) -> list[int]:
        """Each held item's weight, oldest first."""
        return [weight for _, weight in self._items]

    def put(self, item: T, size: int = 0) -> None:
        items = self._items
        while items and (len(items) >= self.count or self.held + size > self.size):
            self.held -= items.popleft()[1]  # the oldest go first
        items.append((item, size))
        self.held += size
        self._wake_one()

    async def get(self) -> T:
        while not self._items:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiting.append(waiter)
            try:
                await waiter
            except BaseException:
                self._waiting.remove(waiter)
                if self._items:  # woken, then cancelled: the item waits for another reader
                    self._wake_one()
                raise
            self._waiting.remove(waiter)
        item, size = self._items.popleft()
        self.held -= size
        return item

    def _wake_one(self) -> None:
        for waiter in self._waiting:
            if not waiter.done():
                waiter.set_result(None)
                return
