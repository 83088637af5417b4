"""Noticing an event loop that a handler blocked.

An ``async def`` handler that makes a synchronous call (``time.sleep``, ``requests.get``, a
CPU-bound parse) stops the whole loop: heartbeats stop, and after the ack wait the server
gives the agent's messages to other agents. Nothing inside the loop can see that while it
happens, so a thread watches a timestamp the loop refreshes; when it goes stale for longer
than ``threshold`` the thread logs, at once, which handlers are running and where the loop
thread is stuck (its innermost frames), and once more when the loop moves again.

One watchdog serves every agent of a loop (``fleetbus run`` serves several on one).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Iterable

__all__ = ["LoopWatchdog"]

log = logging.getLogger("fleetbus.runtime")

Running = Callable[[], Iterable[str]]
"""What a source says is running now: handler names."""

_watchdogs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopWatchdog] = (
    weakref.WeakKeyDictionary()
)


class LoopWatchdog:
    """Logs an event loop blocked longer than ``threshold`` seconds, naming the handlers."""

    def __init__(self, loop: asyncio.AbstractEventLoop, threshold: float) -> None:
        self.loop = loop
        self.threshold = threshold
        self.tick = time.monotonic()
        self.blocked_since: float | None = None
        self.reports = 0
        """How many blocked stretches were logged (for tests and metrics)."""
        self._sources: dict[int, Running] = {}
        self._next = 0
        self._lock = threading.Lock()
        self._loop_thread = threading.get_ident()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ticker: asyncio.Task[None] | None = None

    @classmethod
    def watch(cls, threshold: float, running: Running) -> Callable[[], None]:
        """Watch the running loop (one watchdog per loop); ``running`` names what is being
        handled. Returns the function that stops watching for this source."""
        loop = asyncio.get_running_loop()
        dog = _watchdogs.get(loop)
        if dog is None or dog._stop.is_set():
            dog = _watchdogs[loop] = cls(loop, threshold)
        return dog._add(running)

    def _add(self, running: Running) -> Callable[[], None]:
        with self._lock:
            key = self._next
            self._next += 1
            self._sources[key] = running
            if self._thread is None:
                self._ticker = self.loop.create_task(self._tick(), name="fleetbus-loop-tick")
                self._thread = threading.Thread(
                    target=self._watch, name="fleetbus-loop-watchdog", daemon=True
                )
                self._thread.start()

        def remove() -> None:
            with self._lock:
                self._sources.pop(key, None)
                if self._sources:
                    return
                self._stop.set()
            if self._ticker is not None:
                self._ticker.cancel()

        return remove

    async def _tick(self) -> None:
        interval = min(self.threshold / 4, 0.25)
        while True:
            self.tick = time.monotonic()
            await asyncio.sleep(interval)

    def _watch(self) -> None:
        interval = min(self.threshold / 4, 0.25)
        while not self._stop.wait(interval):
            stalled = time.monotonic() - self.tick
            if stalled > self.threshold and self.blocked_since is None:
                self.blocked_since = self.tick
                self.reports += 1
                log.warning(
                    "the event loop has been blocked for %.1fs, running %s; it is at: %s."
                    " A blocked loop sends no heartbeats: past the ack wait, other agents"
                    " get these messages. Make the call async, or make the handler a plain"
                    " def (run in a thread)",
                    stalled,
                    self._running() or "no handler",
                    self._where(),
                )
            elif stalled <= self.threshold and self.blocked_since is not None:
                log.warning(
                    "the event loop moves again after %.1fs blocked",
                    self.tick - self.blocked_since,
                )
                self.blocked_since = None

    def _running(self) -> str:
        with self._lock:
            sources = list(self._sources.values())
        names: list[str] = []
        for source in sources:
            try:
                names.extend(source())
            except RuntimeError:  # the set changed while we read it: next time
                continue
        return ", ".join(sorted(set(names)))

    def _where(self) -> str:
        frame = sys._current_frames().get(self._loop_thread)
        if frame is None:
            return "(unknown)"
        stack = traceback.extract_stack(frame)[-3:]
        return " <- ".join(f"{f.name} ({f.filename}:{f.lineno})" for f in reversed(stack))
