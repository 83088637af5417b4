"""Times on the wire: UTC, ISO 8601 with milliseconds and a ``Z`` (``2026-05-10T14:30:00.123Z``)."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["format_iso", "now_iso", "parse_iso"]


def format_iso(moment: datetime) -> str:
    """An aware UTC time as fleetbus writes times into records: milliseconds, ``Z``."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_iso() -> str:
    """Now, as fleetbus writes times into updates, dead letters and meeting messages."""
    return format_iso(datetime.now(UTC))


def parse_iso(stamp: str) -> datetime:
    """A time fleetbus or the server wrote, as an aware datetime (``Z``, an offset, or none:
    UTC; the server's nanoseconds are cut to microseconds). ``ValueError`` for anything else."""
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
