"""``Signal``: a flag one task waits on, woken by others (a consumer loop's "something
changed", and its "ask again now")."""

from __future__ import annotations

import asyncio

__all__ = ["Signal"]


class Signal:
    """A flag that one task waits on, as ``asyncio.Event`` without its list of waiters: an
    empty deque is 600 bytes, and a process of thousands of idle agents holds two signals a
    consumer. ``wait`` refuses a second waiter."""

    __slots__ = ("_set", "_timer", "_waiter")

    def __init__(self) -> None:
        self._set = False
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        if self._waiter is not None:
            _wake_up(self._waiter)

    def clear(self) -> None:
        self._set = False

    async def wait(self, timeout: float | None = None) -> None:
        """Until set, or ``timeout`` seconds have passed (returning either way)."""
        if self._set:
            return
        if self._waiter is not None:
            raise RuntimeError("a Signal has one waiter")
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        if timeout is not None:
            self._timer = loop.call_later(timeout, _wake_up, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def rearm(self, timeout: float) -> None:
        """While a task waits: end its wait ``timeout`` seconds from now instead, without
        waking it to wait again."""
        if self._waiter is None:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(timeout, _wake_up, self._waiter)


def _wake_up(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
