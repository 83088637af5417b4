"""The event loop an agent process serves on: uvloop's when it is installed (the ``speed``
extra, ``pip install 'fleetbus[speed]'``), else asyncio's.

``Agent.run()`` and ``fleetbus run`` use it; ``FLEETBUS_LOOP=asyncio`` keeps asyncio's loop
with uvloop installed (read there, at the edge). An agent started with ``await
agent.start()`` runs on whatever loop its program runs. Measured in docs/performance.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["loop_factory", "loop_name", "run", "serve"]

T = TypeVar("T")

log = logging.getLogger("fleetbus.runtime")


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


LEFTOVERS_WAIT = 5.0
"""How long the tasks still running when ``main`` returns get to end once cancelled."""


def serve(main: Coroutine[Any, Any, T]) -> T:
    """``run(main)`` on the loop ``loop_factory`` picks."""
    return run(main, loop_factory())


def run(main: Coroutine[Any, Any, T], factory: Callable[[], asyncio.AbstractEventLoop] | None) -> T:
    """``asyncio.run(main)`` on ``factory``'s loop (None: asyncio's), except for how it ends.

    ``asyncio.run`` cancels the tasks still running and waits for every one of them, for as
    long as it takes: a handler left behind because it catches ``CancelledError`` and goes on
    kept the process from exiting after a graceful stop (until a supervisor's SIGKILL). Here
    they get ``LEFTOVERS_WAIT`` seconds, and then the loop is closed without them."""
    runner = asyncio.Runner(loop_factory=factory)
    try:
        return runner.run(main)
    finally:
        _close(runner)


def _close(runner: asyncio.Runner) -> None:
    loop = runner.get_loop()
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.wait(pending, timeout=LEFTOVERS_WAIT))
    stuck = [task for task in pending if not task.done()]
    if not stuck:
        runner.close()  # what asyncio.run does: async generators, the default executor
        return
    log.error(
        "%d task(s) went on after they were cancelled (a handler that catches"
        " CancelledError): the process exits without them",
        len(stuck),
    )
    with contextlib.suppress(Exception):
        loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()
