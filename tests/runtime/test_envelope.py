"""What a delivery's headers say, read once: anyone's headers, so only what parses cleanly."""

from __future__ import annotations

import time

import pytest

from fleetbus.runtime.envelope import Envelope, timeout_of
from fleetbus.wire import headers as h


@pytest.mark.parametrize(
    ("value", "deadline"),
    [
        ("1733000000.5", 1733000000.5),
        ("", None),
        ("soon", None),
        ("nan", None),  # a NaN task budget would go into the event loop's timer heap
        ("inf", None),
        ("-inf", None),
        ("1e400", None),  # inf once parsed
    ],
)
def test_a_deadline_is_a_finite_unix_time_or_none(value: str, deadline: float | None) -> None:
    envelope = Envelope(
        body={},
        headers={h.DEADLINE: value},
        subject="s",
        sender=None,
        sender_verified=False,
        attempt=1,
        stream_seq=1,
    )
    assert envelope.deadline == deadline


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("2.5", 2.5), ("", None), ("soon", None), ("nan", None), ("inf", None), ("0", None),
     ("-3", None), ("1e400", None)],
)  # fmt: skip
def test_a_fast_asks_timeout_is_counted_from_when_it_is_heard(
    value: str, seconds: float | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Relative, so the asker's clock does not count: an agent whose clock ran ahead of the
    asker's by more than the timeout stopped every fast ask's handler at once."""
    monkeypatch.setattr(time, "time", lambda: 5000.0)  # this host's clock, whatever it says
    ends = timeout_of({h.TIMEOUT: value})
    assert ends == (None if seconds is None else 5000.0 + seconds)
