from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from fleetbus.wire.clock import format_iso, iso_of_ns, now_iso, parse_iso

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
YEAR_9999 = 253_402_300_799_999_999_999
"""The last nanosecond ``datetime`` can hold."""


@given(st.lists(st.integers(min_value=0, max_value=YEAR_9999), min_size=1, max_size=5))
def test_a_time_is_written_as_its_datetime_is(moments: list[int]) -> None:
    # Several in a row: the second's text kept from one time must not leak into the next.
    for ns in moments:
        assert iso_of_ns(ns) == format_iso(EPOCH + timedelta(microseconds=ns // 1000))


def test_times_within_one_second_keep_their_milliseconds() -> None:
    second = 1_780_000_000 * 10**9
    assert iso_of_ns(second + 999_999_999) == "2026-05-28T20:26:40.999Z"
    assert iso_of_ns(second + 5_000_000) == "2026-05-28T20:26:40.005Z"
    assert iso_of_ns(second + 1_000_000_000) == "2026-05-28T20:26:41.000Z"


def test_now_is_now() -> None:
    before = datetime.now(UTC) - timedelta(milliseconds=1)
    written = parse_iso(now_iso())
    assert before <= written <= datetime.now(UTC)
