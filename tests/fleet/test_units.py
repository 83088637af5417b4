"""Durations and sizes as people write them in a fleet file."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetbus.fleet.units import format_duration, format_size, parse_duration, parse_size

# -- durations --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("5m", 300.0),
        ("2h", 7200.0),
        ("7d", 604800.0),
        ("2w", 1209600.0),
        ("500ms", 0.5),
        ("1h30m", 5400.0),
        ("1m30s", 90.0),
        ("1.5h", 5400.0),
        ("0s", 0.0),
        (" 5 m ", 300.0),
        ("30S", 30.0),
    ],
)
def test_parse_duration_text(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("value", "seconds"), [(30, 30.0), (0.25, 0.25), (timedelta(minutes=2), 120.0)]
)
def test_parse_duration_numbers_and_timedeltas(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("text", ["30 seconds", "s30", "30", "5x", "", "1h 30", "-5s", "1,5h"])
def test_parse_duration_rejects_bad_text(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration") as info:
        parse_duration(text)
    assert repr(text) in str(info.value)
    assert "30s" in str(info.value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (True, "true/false"),
        (-5, "cannot be negative"),
        (timedelta(seconds=-1), "cannot be negative"),
        (None, "not a duration"),
        ([30], "not a duration"),
    ],
)
def test_parse_duration_rejects_other_values(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_duration(value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.5, "500ms"),
        (0.001, "1ms"),
        (1, "1s"),
        (90, "1m30s"),
        (3600, "1h"),
        (5400, "1h30m"),
        (604800, "7d"),
        (86401, "1d1s"),
        (30 * 86400, "30d"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


whole_seconds = st.integers(min_value=0, max_value=10 * 365 * 86400)


@given(whole_seconds)
def test_duration_round_trip_whole_seconds(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


@given(whole_seconds, st.sampled_from(["s", "m", "h", "d", "w"]))
def test_format_of_parsed_text_is_canonical(number: int, unit: str) -> None:
    seconds = parse_duration(f"{number}{unit}")
    text = format_duration(seconds)
    assert parse_duration(text) == seconds
    assert format_duration(parse_duration(text)) == text


@given(st.integers(min_value=1, max_value=999))
def test_duration_round_trip_milliseconds(ms: int) -> None:
    assert format_duration(ms / 1000) == f"{ms}ms"
    assert parse_duration(format_duration(ms / 1000)) == pytest.approx(ms / 1000)


@given(st.lists(st.tuples(st.integers(0, 1000), st.sampled_from(["s", "m", "h", "d"])), min_size=1))
def test_compound_durations_add_up(parts: list[tuple[int, str]]) -> None:
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = "".join(f"{n}{u}" for n, u in parts)
    assert parse_duration(text) == sum(n * unit[u] for n, u in parts)


# -- sizes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("2GB", 2 * 1000**3),
        ("50GB", 50 * 1000**3),
        ("512MiB", 512 * 1024**2),
        ("1KiB", 1024),
        ("1TB", 1000**4),
        ("10k", 10_000),
        ("10 KB", 10_000),
        ("1.5GB", 1_500_000_000),
        ("2gb", 2 * 1000**3),
        ("100", 100),
        ("100B", 100),
        ("0", 0),
    ],
)
def test_parse_size_text(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_parse_size_int() -> None:
    assert parse_size(1_048_576) == 1_048_576


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2 gigs", "is not a size"),
        ("GB", "is not a size"),
        ("-1GB", "is not a size"),
        ("", "is not a size"),
        (-1, "cannot be negative"),
        (True, "true/false"),
        (1.5, "is not a size"),
        (None, "is not a size"),
    ],
)
def test_parse_size_rejects(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_size(value)


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0B"),
        (999, "999B"),
        (1000, "1KB"),
        (2 * 1000**3, "2GB"),
        (1500 * 1000**2, "1500MB"),
        (1_048_576, "1048576B"),
        (3 * 1000**4, "3TB"),
    ],
)
def test_format_size(size: int, text: str) -> None:
    assert format_size(size) == text


@given(st.integers(min_value=0, max_value=10**15))
def test_size_round_trip(size: int) -> None:
    assert parse_size(format_size(size)) == size


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(["B", "KB", "MB", "GB", "TB"]))
def test_size_text_round_trip(number: int, unit: str) -> None:
    size = parse_size(f"{number}{unit}")
    assert parse_size(format_size(size)) == size
