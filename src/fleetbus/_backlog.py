"""``Backlog``: what came for a reader that may fall behind, bounded in count and in bytes.

What other roles say (meeting lines, tailed traffic) arrives whether or not anyone reads it,
and any role may say lines of a megabyte: a bound on the count alone would hold gigabytes.
Past either bound the oldest go first, so a reader that catches up gets the newest."""

from __future__ import annotations

import asyncio
import collections
from typing import Generic, TypeVar

__all__ = ["Backlog"]

T = TypeVar("T")


class Backlog(Generic[T]):
    """At most ``count`` items weighing at most ``size`` in all (each its own weight: its
    bytes, or what it takes once parsed); ``put`` never waits."""

    def __init__(self, count: int, size: int) -> None:
        self._items: asyncio.Queue[T] = asyncio.Queue(maxsize=count)
        self.size = size
        self.sizes: collections.deque[int] = collections.deque()
        """Each held item's weight, oldest first (in step with the items)."""
        self.held = 0
        """The weight of what is held."""

    def put(self, item: T, size: int = 0) -> None:
        while self._items.full() or (self.sizes and self.held + size > self.size):
            self._items.get_nowait()  # the oldest go first
            self.held -= self.sizes.popleft()
        self._items.put_nowait(item)
        self.sizes.append(size)
        self.held += size

    async def get(self) -> T:
        item = await self._items.get()
        self.held -= self.sizes.popleft()
        return item
