"""A delivery's ack subject, read as nats-py's ``Msg.metadata`` reads it (pure: no server)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nats.aio.msg import Msg

from fleetbus.js.acks import delivered

counts = st.integers(0, 2**63 - 1)
names = st.text(st.characters(codec="ascii", exclude_characters=". *>"), min_size=1, max_size=8)


def _msg(reply: str) -> Msg:
    return Msg(_client=None, subject="p.events.x", reply=reply)  # type: ignore[arg-type]


@st.composite
def ack_subjects(draw: st.DrawFn) -> str:
    stream, consumer = draw(names), draw(names)
    numbers = [draw(counts) for _ in range(5)]
    delivered_, seq, consumer_seq, stored, pending = (str(n) for n in numbers)
    tail = [stream, consumer, delivered_, seq, consumer_seq, stored, pending]
    if draw(st.booleans()):
        return ".".join(["$JS", "ACK", *tail])
    head = ["$JS", "ACK", draw(st.sampled_from(["_", "hub"])), draw(names)]
    random = [draw(names)] if draw(st.booleans()) else []
    return ".".join(head + tail + random)


@given(ack_subjects())
def test_an_ack_subject_reads_as_nats_py_reads_it(reply: str) -> None:
    meta = _msg(reply).metadata
    found = delivered(reply)
    assert found is not None
    assert found.attempt == meta.num_delivered
    assert found.stream_seq == meta.sequence.stream
    # nats-py's datetime goes through a float: the same instant, to its microsecond
    assert abs(found.stored_ns / 1e9 - meta.timestamp.timestamp()) <= max(
        1e-6, found.stored_ns / 1e9 * 1e-15
    )


@given(st.text(max_size=80) | ack_subjects().map(lambda r: r.replace("ACK", "ACKS", 1)))
def test_what_is_not_an_ack_subject_is_said_so(reply: str) -> None:
    try:
        read = _msg(reply).metadata
    except Exception:
        assert delivered(reply) is None
    else:
        found = delivered(reply)
        assert found is not None
        assert (found.attempt, found.stream_seq) == (read.num_delivered, read.sequence.stream)


@pytest.mark.parametrize("reply", [None, "", "_INBOX.abc", "$JS.ACK.S.C.x.1.1.1.0"])
def test_no_ack_subject(reply: str | None) -> None:
    assert delivered(reply) is None
