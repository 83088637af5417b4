"""Threads for plain ``def`` handlers (and ``task.step`` functions), shared by a process's
agents and apart from the event loop's default executor.

A handler that never returns keeps one of these, not one of the few the connection needs
(nats-py resolves the server's name in the default executor on a reconnect) or that
``asyncio.to_thread`` callers wait for. They are daemon threads: ``ThreadPoolExecutor``'s are
joined when the interpreter exits, so one hung handler kept the process of ``agent.run()`` or
``fleetbus run`` alive after a graceful stop (until a supervisor's SIGKILL).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["HANDLER_THREADS", "LEFT", "HandlerThreads", "in_thread"]

T = TypeVar("T")

HANDLER_THREADS = 256
"""The most handler threads one process runs."""

_Call = tuple[
    asyncio.AbstractEventLoop, "asyncio.Future[Any]", "asyncio.Future[None]", Callable[[], Any]
]

LEFT: contextvars.ContextVar[Callable[[asyncio.Future[None]], None] | None] = (
    contextvars.ContextVar("fleetbus_left_behind", default=None)
)
"""Who is told of a call given up while its thread runs it (a thread cannot be interrupted):
given the future done when the call ends. The settler sets it around a handler's run
(``settle.LeftBehind``)."""


class HandlerThreads:
    """Up to ``most`` daemon threads, started as calls find none idle (as
    ``ThreadPoolExecutor`` does), that run calls and hand each result to its event loop."""

    def __init__(self, most: int, name: str = "handler") -> None:
        self.most = most
        self.name = name
        self._calls: queue.SimpleQueue[_Call] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def submit(
        self, loop: asyncio.AbstractEventLoop, call: Callable[[], T]
    ) -> tuple[asyncio.Future[T], asyncio.Future[None]]:
        """The call's outcome, and a future done when its thread is through with it: later,
        for a call given up while it runs."""
        future: asyncio.Future[T] = loop.create_future()
        ended: asyncio.Future[None] = loop.create_future()
        self._calls.put((loop, future, ended, call))
        if self._idle.acquire(blocking=False):
            return future, ended  # an idle thread takes it
        with self._lock:
            if len(self._threads) < self.most:
                thread = threading.Thread(
                    target=self._work, name=f"{self.name}_{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
        return future, ended

    @property
    def started(self) -> int:
        return len(self._threads)

    def _work(self) -> None:
        while True:
            loop, future, ended, call = self._calls.get()
            outcome: tuple[Any, BaseException | None] | None = None
            if not future.cancelled():  # given up before it started (the state is one read)
                try:
                    outcome = (call(), None)
                except StopIteration as exc:  # a future cannot hold one: it would never settle
                    outcome = (None, RuntimeError(f"the handler raised StopIteration: {exc}"))
                except BaseException as exc:  # the handler's, to its caller
                    outcome = (None, exc)
            # Idle before the caller hears: its next call finds this thread, not a new one.
            self._idle.release()
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                if outcome is not None:
                    loop.call_soon_threadsafe(_settle, future, *outcome)
                loop.call_soon_threadsafe(_settle, ended, None, None)
            del loop, future, ended, call, outcome


def _settle(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.done():
        return  # cancelled while it ran: its outcome is nobody's
    if error is None:
        future.set_result(value)
    else:
        future.set_exception(error)


_handler_threads = HandlerThreads(HANDLER_THREADS)


async def in_thread(fn: Callable[..., T], /, *args: Any) -> T:
    """``fn(*args)`` in a handler thread, with the caller's context (its log fields). A
    caller cancelled while it runs leaves it running: ``LEFT`` is told."""
    call = functools.partial(contextvars.copy_context().run, fn, *args)
    future, ended = _handler_threads.submit(asyncio.get_running_loop(), call)
    try:
        return await future
    except asyncio.CancelledError:
        left = LEFT.get()
        if left is not None and not ended.done():
            left(ended)
        raise
