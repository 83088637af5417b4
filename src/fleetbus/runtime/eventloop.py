"""The event loop an agent process serves on: uvloop's when it is installed (the ``speed``
extra, ``pip install 'fleetbus[speed]'``), else asyncio's.

``Agent.run()`` and ``fleetbus run`` use it; ``FLEETBUS_LOOP=asyncio`` keeps asyncio's loop
with uvloop installed (read there, at the edge). An agent started with ``await
agent.start()`` runs on whatever loop its program runs. Measured in docs/performance.md.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["loop_factory", "loop_name", "serve"]

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's ``new_event_loop`` when it is installed and not turned off, else None (the
    default loop)."""
    if os.environ.get("FLEETBUS_LOOP", "").strip().lower() == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def loop_name() -> str:
    """``uvloop`` or ``asyncio``: what ``serve`` runs on."""
    return "asyncio" if loop_factory() is None else "uvloop"


def serve(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on the loop ``loop_factory`` picks."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
