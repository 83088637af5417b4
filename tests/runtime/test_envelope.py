"""What a delivery's headers say, read once: anyone's headers, so only what parses cleanly."""

from __future__ import annotations

import pytest

from fleetbus.runtime.envelope import Envelope
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
