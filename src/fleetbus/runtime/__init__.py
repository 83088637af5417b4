"""The agent runtime: ``Agent`` and what its handlers receive. Internal modules; import from
``fleetbus``."""

from fleetbus.runtime.agent import Agent
from fleetbus.runtime.messages import Event, Message, Reject, Request, Retry, Task
from fleetbus.runtime.settings import RuntimeSettings

__all__ = ["Agent", "Event", "Message", "Reject", "Request", "Retry", "RuntimeSettings", "Task"]
