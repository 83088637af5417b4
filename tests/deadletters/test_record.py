"""A dead letter's headers: the facts of where a message died, within the room every stream
the fleet's agents read keeps free under max_payload, however long the texts."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from fleetbus.deadletters import DeadLetter, DeadLetterEntry
from fleetbus.js._natspy import header_block_size
from fleetbus.wire import headers as h
from fleetbus.wire.subjects import MAX_SUBJECT, MAX_TOKEN

texts = st.text(max_size=50) | st.builds(
    lambda piece, times: piece * times,  # long text from a short draw: one of up to 40,000
    st.text(min_size=1, max_size=8),
    st.integers(1_000, 5_000),
)
PUBLISHED_WITH = {  # what the publisher adds: a message id, the write-once check, a trace
    h.MSG_ID: "f" * 32,
    "Nats-Expected-Last-Subject-Sequence": "0",
    h.TRACEPARENT: "00-" + "a" * 32 + "-" + "b" * 16 + "-01",
}


@given(
    reason=texts,
    error=texts,
    trace=texts,
    long_names=st.booleans(),
)
def test_what_a_dead_letter_adds_fits_its_room(
    reason: str, error: str, trace: str, long_names: bool
) -> None:
    letter = DeadLetter(
        subject="s" * (MAX_SUBJECT if long_names else 20),
        stream="S" * (MAX_TOKEN if long_names else 6),
        seq=2**63,
        consumer="C" * (MAX_TOKEN if long_names else 6),
        deliveries=2**31,
        reason=reason,
        error=error,
        traceback=trace,
    )
    added = letter.headers({}) | PUBLISHED_WITH
    assert header_block_size(added) - len("NATS/1.0\r\n\r\n") <= h.DEAD_LETTER_ROOM


def test_a_long_traceback_keeps_its_end_and_reads_back() -> None:
    trace = "".join(f'  File "agent.py", line {i}, in step_{i}\n' for i in range(2000))
    trace += 'ValueError: "the last line" ü\n'
    letter = DeadLetter(
        subject="s", stream="S", seq=1, consumer="C", deliveries=1, reason="r", traceback=trace
    )
    hdrs = letter.headers({h.MSG_ID: "original", "Fleet-Task-Id": "t-1"})
    assert h.MSG_ID not in hdrs and hdrs["Fleet-Task-Id"] == "t-1"
    assert hdrs[h.DLQ_TRACEBACK].isascii()  # one header line, whatever the traceback holds
    shown = DeadLetterEntry.from_message(1, b"{}", hdrs).traceback
    assert shown.startswith("...\n") and shown.endswith('ValueError: "the last line" ü\n')
    assert len(shown) < len(trace)
    assert shown[4:] in trace


def test_a_long_reason_is_cut_to_one_line_with_an_ellipsis() -> None:
    letter = DeadLetter(
        subject="s", stream="S", seq=1, consumer="C", deliveries=1, reason="bad\n" + "é" * 5000
    )
    reason = letter.headers({})[h.DLQ_REASON]
    assert reason.startswith("bad é") and reason.endswith("...") and "\n" not in reason
    assert len(reason.encode()) <= 1000
    assert json.dumps(reason)  # valid text: no half of a UTF-8 sequence
