"""Times on the wire: UTC, ISO 8601 with milliseconds and a ``Z`` (``2026-05-10T14:30:00.123Z``)."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["now_iso"]


def now_iso() -> str:
    """Now, as fleetbus writes times into updates, dead letters and meeting messages."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
