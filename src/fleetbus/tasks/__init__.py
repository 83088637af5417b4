"""A task's records on the wire: written by the agent that works it (and the admin's tools),
read by whoever follows it. Internal: import what you need from ``fleetbus``."""

from fleetbus.tasks.records import OutcomeWrite, TaskRecords, TaskRef

__all__ = ["OutcomeWrite", "TaskRecords", "TaskRef"]
