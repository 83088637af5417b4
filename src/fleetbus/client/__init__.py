"""The sending side: ``Fleet``."""

from fleetbus.client.fleet import Fleet, TaskHandle

__all__ = ["Fleet", "TaskHandle"]
