"""Step results kept per task, so a retried attempt does not pay twice (``task.step``).

A key-value store on JetStream: one subject per key, ``P.memo.{role}.{assigner}.{task
id}.{step}``, in
the fleet's memo stream (the seed's ``TASK_MEMO``: one message per subject, bounded in age and
bytes). A role writes and reads only its own keys (permissions on the subject, and direct gets
on the subject form), so one role's memo is nobody else's business.
"""

from __future__ import annotations

from typing import Any

from fleetbus.errors import FleetbusError, PayloadError
from fleetbus.fleet import FleetSpec
from fleetbus.js.api import JsApi
from fleetbus.js.connection import Connection
from fleetbus.js.publish import Publisher
from fleetbus.tasks.records import TaskRef
from fleetbus.wire.codec import decode, encode

__all__ = ["StepMemo"]

_MISSING: Any = object()


class StepMemo:
    """Stored step results of ``role``'s tasks."""

    def __init__(self, conn: Connection, spec: FleetSpec, publisher: Publisher) -> None:
        self.spec = spec
        self.api = JsApi(conn)
        self.publisher = publisher
        self.stream = spec.stream_for(spec.subjects.memo("r", "a", "t", "s"))

    def _require(self) -> str:
        if not self.stream:
            raise FleetbusError(
                f"task.step needs a stream storing {self.spec.prefix}.memo.> (the template's"
                " TASK_MEMO): add it to the fleet file and run `fleetbus provision`"
            )
        return self.stream

    async def get(self, task: TaskRef, step: str) -> Any:
        """The stored result, or ``StepMemo.MISSING``."""
        stored = await self.api.last_for(self._require(), self._subject(task, step))
        if stored is None:
            return _MISSING
        try:
            return decode(stored.data)["value"]
        except (PayloadError, KeyError):
            return _MISSING  # unreadable: the step runs again

    async def put(self, task: TaskRef, step: str, value: Any) -> None:
        """Store ``value`` (JSON): ``PayloadError`` when it is not JSON."""
        await self.publisher.publish(self._subject(task, step), encode({"value": value}))

    def _subject(self, task: TaskRef, step: str) -> str:
        return self.spec.subjects.memo(task.assignee, task.assigner, task.task_id, step)

    MISSING = _MISSING
