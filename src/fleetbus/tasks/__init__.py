"""A task's records on the wire: written by the agent that works it (and the admin's tools),
read by whoever follows it; the task list; step results. Internal: import what you need from
``fleetbus``."""

from fleetbus.tasks.index import LateEntries, TaskIndex, TaskSummary
from fleetbus.tasks.memo import StepMemo
from fleetbus.tasks.records import OutcomeWrite, TaskRecords, TaskRef

__all__ = [
    "LateEntries",
    "OutcomeWrite",
    "StepMemo",
    "TaskIndex",
    "TaskRecords",
    "TaskRef",
    "TaskSummary",
]
