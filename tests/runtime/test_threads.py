"""Plain ``def`` handlers' threads: results, errors and log fields come back to the event
loop; a handler that never returns holds one thread, not the others, nor the process."""

from __future__ import annotations

import asyncio
import contextvars
import subprocess
import sys
import threading

import pytest

from fleetbus.runtime.threads import HandlerThreads, in_thread

FIELD: contextvars.ContextVar[str] = contextvars.ContextVar("field", default="")


async def test_a_call_gives_its_value_its_error_and_sees_its_callers_context() -> None:
    FIELD.set("task-1")
    assert await in_thread(lambda a, b: (a + b, FIELD.get()), 1, 2) == (3, "task-1")
    with pytest.raises(ZeroDivisionError):
        await in_thread(lambda: 1 / 0)


async def test_a_call_that_never_returns_holds_one_thread_and_nothing_else() -> None:
    threads = HandlerThreads(4, name="test")
    loop = asyncio.get_running_loop()
    release = threading.Event()
    try:
        hung, _ = threads.submit(loop, release.wait)
        for n in range(10):  # one after another: the idle thread serves them all
            assert await threads.submit(loop, lambda n=n: n * 2)[0] == n * 2
        assert threads.started == 2
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await asyncio.shield(hung)
    finally:
        release.set()
    assert await hung is True


def test_a_hung_handler_thread_does_not_keep_the_process_alive() -> None:
    """A `def` handler blocked for good (a socket read without a timeout): `agent.run()`
    stopped on SIGTERM, and then the interpreter waited for the thread at exit, forever;
    ThreadPoolExecutor's threads are joined at exit, these are daemon threads."""
    script = (
        "import asyncio, threading\n"
        "from fleetbus.runtime.threads import in_thread\n"
        "async def main():\n"
        "    hung = asyncio.ensure_future(in_thread(threading.Event().wait))\n"
        "    await asyncio.sleep(0.2)\n"
        "    hung.cancel()\n"
        "asyncio.run(main())\n"
        "print('stopped')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "stopped"


async def test_a_handler_raising_stopiteration_is_an_error_not_a_hang() -> None:
    """A future cannot hold StopIteration: the call's future never settled, and the handler
    hung until its budget."""

    def bad() -> None:
        raise StopIteration("empty")

    async with asyncio.timeout(10):
        with pytest.raises(RuntimeError, match="StopIteration"):
            await in_thread(bad)
