"""The sending side: ``Fleet``."""

from fleetbus.client.fleet import Fleet, Observed, TaskHandle
from fleetbus.client.meeting import Meeting, MeetingMessage

__all__ = ["Fleet", "Meeting", "MeetingMessage", "Observed", "TaskHandle"]
