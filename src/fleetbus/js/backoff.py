"""The one retry schedule: a delay that doubles from ``first`` up to ``most``, until a deadline.

Every loop that retries in fleetbus (a publish through an election, a JetStream API read, a
batch, a consumer's fetch, the dead-letter copier) waits with this, so they all behave alike:
a quick first retry, then calmer ones, woken early when there is a reason to try again now.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

__all__ = ["Backoff", "Waitable"]


class Waitable(Protocol):
    """What ``Backoff.wait`` can be woken by: an ``asyncio.Event``, a consumer's signal."""

    async def wait(self) -> object: ...


class Backoff:
    """``while True: try ... except transient: if not await backoff.wait(): raise``."""

    def __init__(self, first: float, most: float, *, deadline: float | None = None) -> None:
        """``deadline``: seconds from now after which ``wait`` gives up (None: never)."""
        self.first = first
        self.most = most
        self._delay = first
        self._give_up = None if deadline is None else asyncio.get_running_loop().time() + deadline

    @property
    def next_delay(self) -> float:
        return self._delay

    def expired(self) -> bool:
        """Whether waiting the next delay would pass the deadline."""
        if self._give_up is None:
            return False
        return asyncio.get_running_loop().time() + self._delay >= self._give_up

    def reset(self) -> None:
        """Back to the first delay (after a success)."""
        self._delay = self.first

    async def wait(self, wake: Waitable | None = None) -> bool:
        """Sleep the next delay (ended early by ``wake``); False, without sleeping, when that
        would pass the deadline."""
        if self.expired():
            return False
        delay = self._delay
        self._delay = min(self._delay * 2, self.most)
        if wake is None:
            await asyncio.sleep(delay)
        else:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await wake.wait()
        return True
