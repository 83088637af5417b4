"""Dead letters: their record on the wire, the copier that writes the ones no agent held, and
the store behind ``fleetbus dlq``. Internal: import what you need from ``fleetbus``."""

from fleetbus.deadletters.copier import COPIER_CONSUMER, AdvisoryCopier
from fleetbus.deadletters.record import REASON_MARK, DeadLetter, DeadLetterEntry, write_dead_letter
from fleetbus.deadletters.store import DeadLetters

__all__ = [
    "COPIER_CONSUMER",
    "REASON_MARK",
    "AdvisoryCopier",
    "DeadLetter",
    "DeadLetterEntry",
    "DeadLetters",
    "write_dead_letter",
]
