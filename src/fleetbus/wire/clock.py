"""Times on the wire: UTC, ISO 8601 with milliseconds and a ``Z`` (``2026-05-10T14:30:00.123Z``)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

__all__ = ["format_iso", "iso_of_ns", "now_iso", "parse_iso"]


def format_iso(moment: datetime) -> str:
    """An aware UTC time as fleetbus writes times into records: milliseconds, ``Z``."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


_second: tuple[int, str] = (-1, "")
"""The last second written, and its text up to the milliseconds: a process writes many
times within a second (a task's records write three), and the date and time of day are
worked out once for them all (1.3 → 0.4 µs a time). One tuple, replaced whole, so a thread
reading it sees a second and its own text."""


def iso_of_ns(ns: int) -> str:
    """``ns`` nanoseconds after the epoch as ``format_iso`` writes it (the milliseconds cut,
    not rounded, as ``isoformat`` cuts them)."""
    global _second
    second, milli = divmod(ns // 1_000_000, 1000)
    last = _second
    if last[0] != second:
        last = _second = (second, time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second)))
    return f"{last[1]}{milli:03d}Z"


def now_iso() -> str:
    """Now, as fleetbus writes times into updates, dead letters and meeting messages."""
    return iso_of_ns(time.time_ns())


def parse_iso(stamp: str) -> datetime:
    """A time fleetbus or the server wrote, as an aware datetime (``Z``, an offset, or none:
    UTC; the server's nanoseconds are cut to microseconds). ``ValueError`` for anything else."""
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
