"""Lists of events for ``on_events`` handlers: decoded, run and settled event by event.

- Each delivery is decoded as for ``on_event``. One that cannot be (not a JSON object), or
  one past its last attempt, is dead-lettered on its own; the others go to the handlers.
- A handler gets the events its pattern matches, in the order they arrived, at most its
  ``batch`` per call. While it runs, every event of the call gets its ``+WPI`` heartbeat.
- **Acknowledged only after the handlers return**, each event once every handler that had
  it returned. The acks are not waited for and go out in one write.
- A handler that runs past its role's ``task_budget`` is cancelled, and so fails its call.
- A handler that raises fails the events of that call, each on its own attempt count: a
  retry with its own delay, or on its last attempt a dead letter with the error (the
  others of the list are not held back). ``Retry(delay)`` retries them all after
  ``delay``; ``Reject(reason)`` dead-letters them all.

The consumer's ack policy stays explicit, one ack per event: a cumulative ("all") ack of the
last event would also acknowledge an earlier one whose handler failed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from fleetbus.runtime.messages import Event, Reject, Retry
from fleetbus.runtime.routes import BatchHandler, is_async
from fleetbus.runtime.settle import (
    Delivery,
    Settler,
    TaskBudgetExceeded,
    error_text,
    trace_text,
)
from fleetbus.runtime.threads import in_thread
from fleetbus.telemetry import METRICS, pop_log_context, push_log_context
from fleetbus.wire.subjects import subject_matches
from fleetbus.wire.updates import bounded

__all__ = ["run_batch"]

log = logging.getLogger("fleetbus.runtime")


@dataclass(slots=True)
class _Failure:
    error: str
    delay: float | None = None
    trace: str | None = None
    rejected: bool = False


async def run_batch(
    settler: Settler,
    routes: list[tuple[str, BatchHandler, int]],
    ready: list[tuple[Delivery, Event]],
) -> None:
    """Run every ``on_events`` handler over the events it matches, then settle each one."""
    if not ready:
        return
    failed: dict[Delivery, _Failure] = {}
    for pattern, handler, size in routes:
        mine = [(d, e) for d, e in ready if subject_matches(pattern, d.msg.subject)]
        for start in range(0, len(mine), size):
            chunk = mine[start : start + size]
            failure = await _call(settler, handler, chunk)
            if failure is not None:
                for d, _ in chunk:
                    if failure.rejected or d not in failed:
                        failed[d] = failure
    for d, _ in ready:
        failure = failed.get(d)
        if failure is None:
            await settler.ack(d)
        elif failure.rejected:
            await settler.give_up(d, f"rejected: {failure.error}", failure.error, state="rejected")
        else:
            await settler.fail(d, failure.error, failure.delay, failure.trace)


async def _call(
    settler: Settler, handler: BatchHandler, chunk: list[tuple[Delivery, Event]]
) -> _Failure | None:
    """One call of ``handler``: None when it returned, else how its events failed."""
    ds = [d for d, _ in chunk]
    name = getattr(handler, "__qualname__", None) or repr(handler)
    for d in ds:
        d.handler = name
    first = ds[0]
    for d in ds:
        settler.beats.start(d)
    settler.running.add(first)  # what the watchdog names while the loop is blocked
    context = push_log_context(
        role=settler.role, worker=settler.worker, consumer=first.consumer.name, batch=len(ds)
    )
    began = time.perf_counter()
    limit, _ = settler.time_limit(None)
    timer = asyncio.timeout(limit)
    running: asyncio.Future[None] | None = None
    try:
        events = [e for _, e in chunk]
        async with timer:  # the role's task_budget: heartbeats would hold the list for good
            if is_async(handler):
                # a task of its own: one that catches its cancellation is left behind
                running = asyncio.ensure_future(handler(events))
                await asyncio.shield(running)
            else:
                with settler.left_behind.counting_threads(first.ack_wait):
                    value = await in_thread(handler, events)
                if asyncio.iscoroutine(value):
                    await value
    except Reject as exc:
        return _Failure(bounded(exc.reason), rejected=True)
    except Retry as exc:
        return _Failure(bounded(exc.reason), exc.delay)
    except asyncio.CancelledError:  # the agent stops: the handler ends first (or is left)
        if running is not None:
            await settler.end_or_leave(running, first.ack_wait, name, "events")
        raise
    except Exception as exc:
        if isinstance(exc, TimeoutError) and timer.expired():  # not the handler's own
            if running is not None:
                await settler.end_or_leave(running, first.ack_wait, name, "events")
            exc = TaskBudgetExceeded.of(limit or 0.0)
        log.error(
            "%s: %s raised on a list of %d events (seq %d..%d)",
            settler.worker,
            name,
            len(ds),
            ds[0].stream_seq,
            ds[-1].stream_seq,
            exc_info=exc,
        )
        return _Failure(error_text(exc), None, trace_text(exc))
    finally:
        for d in ds:
            settler.beats.stop(d)
        settler.running.discard(first)
        pop_log_context(context)
        if METRICS.enabled:
            METRICS.handler_ran(settler.role, first.consumer.kind, time.perf_counter() - began)
    return None
