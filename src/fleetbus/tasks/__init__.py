"""A task's records on the wire: its updates, written by the agent that works it and read by
whoever follows it. Internal: import what you need from ``fleetbus``."""

from fleetbus.tasks.updates import publish_update, stored_updates, watch_updates

__all__ = ["publish_update", "stored_updates", "watch_updates"]
