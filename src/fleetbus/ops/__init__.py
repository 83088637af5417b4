"""Operating a fleet: dead-letter tools, status and alert thresholds."""

from fleetbus.ops.deadletters import DeadLetterEntry, DeadLetters

__all__ = ["DeadLetterEntry", "DeadLetters"]
