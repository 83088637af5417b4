"""The receiving side: ``Agent`` and what its handlers receive."""

from fleetbus.runtime.agent import Agent, RuntimeSettings
from fleetbus.runtime.messages import Event, Message, Reject, Request, Retry, Task

__all__ = ["Agent", "Event", "Message", "Reject", "Request", "Retry", "RuntimeSettings", "Task"]
