"""Durations (``30s``, ``7d``, ``1h30m``) and sizes (``2GB``, ``512MiB``) as people write them,
and the largest numbers the server holds."""

from __future__ import annotations

import re
from datetime import timedelta

__all__ = [
    "INT32",
    "INT64",
    "fits_int32",
    "fits_int64",
    "fits_nanoseconds",
    "format_duration",
    "format_size",
    "parse_duration",
    "parse_size",
]

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?$", re.IGNORECASE)


def parse_duration(value: object) -> float:
    """Seconds from a number, a ``timedelta`` or text like ``30s``, ``7d``, ``1h30m``."""
    if isinstance(value, bool):
        raise ValueError("a duration cannot be true/false")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        pos = 0
        seconds = 0.0
        for match in _DURATION_PART.finditer(text):
            if match.start() != pos:
                break
            seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
            pos = match.end()
        if pos != len(text) or not text:
            raise ValueError(
                f"{value!r} is not a duration: write a number and a unit, like 30s, 5m, 2h, 7d"
            )
    else:
        raise ValueError(f"{value!r} is not a duration")
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        raise ValueError(f"{value!r} is not a finite duration")
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative, got {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact text for ``seconds``: 604800 → ``7d``, 90 → ``1m30s``."""
    if seconds == 0:
        return "0s"
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    out = []
    rest = round(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            out.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(out)


def parse_size(value: object) -> int:
    """Bytes from a number or text like ``2GB`` (10^9) or ``512MiB`` (2^20)."""
    if isinstance(value, bool):
        raise ValueError("a size cannot be true/false")
    if isinstance(value, int):
        size = value
    elif isinstance(value, str):
        match = _SIZE.match(value.strip())
        if not match:
            raise ValueError(f"{value!r} is not a size: write a number and a unit, like 2GB")
        number, unit = match.groups()
        unit = (unit or "").lower()
        base = 1024 if "i" in unit else 1000
        letter = unit[:1] if unit not in ("", "b") else ""
        factor = base ** " kmgt".index(letter) if letter else 1
        size = int(float(number) * factor)
    else:
        raise ValueError(f"{value!r} is not a size")
    if size < 0:
        raise ValueError(f"a size cannot be negative, got {value!r}")
    return size


def format_size(size: int) -> str:
    for unit, factor in (("TB", 1000**4), ("GB", 1000**3), ("MB", 1000**2), ("KB", 1000)):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size}B"


INT64 = 2**63 - 1
"""The server holds its limits (and durations, in nanoseconds) as 64-bit integers: a larger
number is refused by the stream or consumer create as invalid JSON."""
INT32 = 2**31 - 1
"""And a stream's ``max_msg_size`` as a 32-bit one."""


def fits_int64(value: int) -> int:
    if value > INT64:
        raise ValueError(f"{value} is over the server's largest limit, {INT64} (64 bits)")
    return value


def fits_int32(value: int) -> int:
    if value > INT32:
        raise ValueError(f"{value} is over the server's largest message size, {INT32} (32 bits)")
    return value


def fits_nanoseconds(seconds: float) -> float:
    if seconds * 1e9 > INT64:
        raise ValueError(
            f"{format_duration(seconds)} is over the longest duration the server holds, "
            f"{INT64 // 10**9}s (about 292 years, in nanoseconds on 64 bits)"
        )
    return seconds
