"""What a running task can do beyond its fields: report progress, run a step once, ask back.

- ``progress``: an update on the task's records (also a heartbeat).
- ``step(name, fn)``: ``fn``'s result stored per task and step name (``tasks.memo``); a later
  attempt of the same task gets the stored result without calling ``fn`` again — a model
  call already paid for is not paid again.
- ``request_input(question)``: the task goes ``input-required`` with the question; the
  assigner's answer (``handle.respond``) is stored under the request's number, so an attempt
  that reaches the same request after a restart gets the stored answer without asking again.
- ``cancelled``: set when a cancel request reached the task (for plain ``def`` handlers; a
  coroutine handler is cancelled outright).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from nats.errors import TimeoutError as NatsTimeoutError

from fleetbus.errors import FleetbusError, PayloadError
from fleetbus.fleet.units import format_duration
from fleetbus.js.connection import unsubscribe
from fleetbus.runtime.settle import Delivery, Settler
from fleetbus.runtime.threads import in_thread
from fleetbus.tasks import StepMemo

__all__ = ["RunningTask"]


class RunningTask:
    """The runtime's side of a ``Task`` while its handler runs."""

    def __init__(self, settler: Settler, d: Delivery, memo: StepMemo | None) -> None:
        self.settler = settler
        self.d = d
        self.memo = memo
        self.loop = asyncio.get_running_loop()

    @property
    def cancelled(self) -> bool:
        # read from a plain def handler's thread: one attribute, set once by the loop
        return self.d.canceled is not None

    async def progress(
        self, message: str, percent: float | None, data: Mapping[str, Any] | None
    ) -> None:
        await self.d.msg.in_progress()
        await self.settler.update(
            self.d,
            "progress",
            message=message,
            percent=percent,
            data=dict(data) if data else None,
        )

    def progress_threadsafe(
        self, message: str, percent: float | None, data: Mapping[str, Any] | None
    ) -> None:
        if _running_loop() is self.loop:  # it would wait for the loop it blocks: for good
            raise FleetbusError(
                "task.progress_sync() from the event loop (an async def handler) would block"
                " it for good: await task.progress() there"
            )
        asyncio.run_coroutine_threadsafe(self.progress(message, percent, data), self.loop).result()

    async def step(
        self, name: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if self.memo is None:
            raise FleetbusError("task.step needs the fleet's memo stream (TASK_MEMO)")
        task = self.d.task
        assert task is not None
        stored = await self.memo.get(task, name)
        if stored is not StepMemo.MISSING:
            return stored
        if inspect.iscoroutinefunction(fn):
            value = await fn(*args, **kwargs)
        else:
            value = await in_thread(functools.partial(fn, *args, **kwargs))
            if inspect.isawaitable(value):
                value = await value
        await self.memo.put(task, name, value)
        return value

    async def request_input(self, question: Mapping[str, Any], timeout: float | None) -> Any:
        records = self.settler.records
        task = self.d.task
        assert records is not None and task is not None
        self.d.requests += 1
        request = str(self.d.requests)
        stored = await records.answer(task, request)
        if stored is not None:  # answered before (an earlier attempt asked it)
            return stored
        subject = records.subject(task, "answer", request)
        sub = await self.settler.conn.nc.subscribe(subject, max_msgs=1)
        try:
            stored = await records.answer(task, request)  # answered while we subscribed
            if stored is None:
                await self.settler.update(
                    self.d, "input-required", request=request, data=dict(question)
                )
                stored = await self._answer(sub.next_msg, task, request, timeout)
        finally:
            await unsubscribe(sub)
        await self.settler.update(self.d, "progress", message=f"input request {request} answered")
        return stored

    async def _answer(
        self,
        next_msg: Callable[..., Awaitable[Any]],
        task: Any,
        request: str,
        timeout: float | None,
    ) -> Any:
        records = self.settler.records
        assert records is not None
        try:
            await next_msg(timeout=timeout)
        except NatsTimeoutError:
            shown = format_duration(timeout) if timeout else "the wait"
            raise TimeoutError(f"input request {request} was not answered within {shown}") from None
        # What counts is the stored answer (a live one may be a second answer the stream
        # refused: the first answer stands).
        stored = await records.answer(task, request)
        if stored is None:
            raise PayloadError(f"the answer to input request {request} could not be read")
        return stored


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:  # a worker thread: no loop runs there
        return None
