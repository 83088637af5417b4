"""The sending side: ``Fleet``, ``TaskHandle`` and meetings. Internal modules; import from
``fleetbus``."""

from fleetbus.client.fleet import Fleet, Observed
from fleetbus.client.handle import TaskHandle
from fleetbus.client.meeting import Meeting, MeetingMessage

__all__ = ["Fleet", "Meeting", "MeetingMessage", "Observed", "TaskHandle"]
