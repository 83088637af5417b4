"""``background``: run a coroutine without waiting for it, kept referenced until it ends
(the event loop holds only a weak reference to a task)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

__all__ = ["background"]

_RUNNING: set[asyncio.Future[Any]] = set()


def background(coro: Coroutine[Any, Any, Any]) -> asyncio.Future[Any]:
    """Run ``coro`` without waiting for it (kept referenced until it ends)."""
    task = asyncio.ensure_future(coro)
    _RUNNING.add(task)
    task.add_done_callback(_RUNNING.discard)
    return task
