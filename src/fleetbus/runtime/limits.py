"""``TimeLimit``: a handler's time limit, with no timer until one is needed.

What ``asyncio.timeout`` does for a handler (cancel the task running it when the limit
falls due, and turn that cancellation into ``TimeoutError`` where the limit was entered),
with two differences. The due time is set after entering (``set``), so the settler sets it
at a delivery's first heartbeat: most handlers end well before, and a timer made and
cancelled for every delivery cost the event fan-out a fifth of its throughput (the loop's
timer heap holds each cancelled one until it is cleaned). It is a plain context manager:
entering it awaits nothing. And it can be made for a block already running in a task
(``around``, ended by ``leave``): a handler run in place in its consumer's worker gets one
only if it still runs at its first heartbeat, and a task's handler gets one that falls due
at once (``expire``) when a cancel request reaches it. Measured in docs/performance.md.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any

__all__ = ["TimeLimit"]


class TimeLimit:
    """Use as ``with TimeLimit() as limit:`` in a task; ``limit.set(when)`` (the loop's
    clock) from anywhere on its loop while it is entered; afterwards ``expired()`` says
    whether the limit ended the block (it then raised ``TimeoutError``)."""

    __slots__ = ("_cancelling", "_expired", "_handle", "_task", "when")

    def __init__(self) -> None:
        self._task: asyncio.Task[Any] | None = None
        self._cancelling = 0
        self._handle: asyncio.TimerHandle | None = None
        self._expired = False
        self.when: float | None = None

    def __enter__(self) -> TimeLimit:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a TimeLimit is entered in a task")
        self._task = task
        self._cancelling = task.cancelling()
        return self

    @classmethod
    def around(cls, task: asyncio.Task[Any]) -> TimeLimit | None:
        """A limit for a block already running in ``task`` (not entered: whoever runs the
        block calls ``leave`` as it ends); None while a cancellation of the task is pending
        (a stop, which ends the block by itself)."""
        if task.done() or task.cancelling():
            return None
        limit = cls()
        limit._task = task
        return limit

    def set(self, when: float) -> None:
        """Cancel the block at ``when`` (past: at the loop's next turn); once left, nothing."""
        if self._task is None or self._expired:
            return
        if self._handle is not None:
            self._handle.cancel()
        self.when = when
        self._handle = asyncio.get_running_loop().call_at(when, self._expire)

    def expired(self) -> bool:
        return self._expired

    def expire(self) -> None:
        """Fall due now: cancel the block at once (a cancel request, say)."""
        if self._handle is not None:
            self._handle.cancel()
        self._expire()

    def _expire(self) -> None:
        self._handle = None
        if self._task is not None:
            self._expired = True
            self._task.cancel()

    def leave(self, exc: BaseException | None) -> bool:
        """The block ends (raising ``exc``, or None): whether ``exc`` is the limit's own
        cancellation, to be said as ``TimeoutError``. As ``asyncio.timeout``: a cancellation
        that is ours, and no one else's since, is the limit's; another's (a stop) goes on
        as it came."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        task, self._task = self._task, None
        return (
            self._expired
            and task is not None
            and task.uncancel() <= self._cancelling
            and type(exc) is asyncio.CancelledError
        )

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.leave(exc):
            raise TimeoutError from exc
