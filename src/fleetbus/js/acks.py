"""What the server confirms: one ``PubAck`` per stored message, or one per atomic batch; and
what a delivery's ack subject says of it (``Delivered``).

Pure data, importing nothing from fleetbus (``fleetbus.errors`` builds on it).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

__all__ = ["BatchAck", "Delivered", "PubAck", "PublishManyResult", "delivered"]


@dataclass(frozen=True, slots=True)
class PubAck:
    """A stored message: the stream, its sequence there, and whether the stream already held
    it (same ``Nats-Msg-Id`` within the duplicate window: stored once)."""

    stream: str
    seq: int
    duplicate: bool


@dataclass(frozen=True, slots=True)
class BatchAck:
    """What the server stored for input positions ``start`` to ``stop - 1``."""

    stream: str
    start: int
    stop: int
    last_seq: int
    atomic: bool
    """True: one atomic batch, sequences ``last_seq - count + 1`` .. ``last_seq``."""
    seqs: tuple[int, ...] = ()
    """Per message when not atomic (a duplicate's is the sequence of the stored original)."""
    duplicates: frozenset[int] = field(default_factory=frozenset)
    """Input positions the stream already held (same ``Nats-Msg-Id``): stored once."""

    @property
    def count(self) -> int:
        return self.stop - self.start

    def ack(self, index: int) -> PubAck:
        seq = (
            self.seqs[index - self.start] if self.seqs else self.last_seq - (self.stop - 1 - index)
        )
        return PubAck(self.stream, seq, index in self.duplicates)


class PublishManyResult:
    """The PubAcks of a ``publish_many``, by input position, computed from the batch acks
    (no object per message until asked)."""

    def __init__(self, batches: Sequence[BatchAck]) -> None:
        self.batches = sorted(batches, key=lambda b: b.start)
        self._starts = [b.start for b in self.batches]

    def __len__(self) -> int:
        return sum(b.count for b in self.batches)

    def __getitem__(self, index: int) -> PubAck:
        pos = bisect.bisect_right(self._starts, index) - 1
        if pos < 0 or index >= self.batches[pos].stop:
            raise IndexError(f"message {index} was not stored")
        return self.batches[pos].ack(index)

    def __iter__(self) -> Iterator[PubAck]:
        for batch in self.batches:
            for index in range(batch.start, batch.stop):
                yield batch.ack(index)

    @property
    def duplicates(self) -> int:
        """How many messages the stream already held (dropped by its dedupe window)."""
        return sum(len(b.duplicates) for b in self.batches)

    def __repr__(self) -> str:
        return f"<PublishManyResult {len(self)} stored in {len(self.batches)} batch(es)>"


class Delivered(NamedTuple):
    """A JetStream delivery, as its ack subject describes it."""

    attempt: int
    """How many times the consumer has delivered it, this time included."""
    stream_seq: int
    stored_ns: int
    """When the stream stored it: nanoseconds since the epoch, by the server's clock."""


def delivered(reply: str | None) -> Delivered | None:
    """What the ack subject ``reply`` says: ``$JS.ACK.<stream>.<consumer>.<delivered>.<stream
    seq>.<consumer seq>.<stored ns>.<pending>``, or the same after a domain and an account
    hash (nats-server 2.9+ with a domain). None when ``reply`` is neither.

    nats-py's ``Msg.metadata`` reads the same, into a ``datetime`` and two objects: 2.8 µs
    of every delivery, where this takes 0.4 (a tenth of what an event handled costs the
    consume loop)."""
    if not reply:
        return None
    tokens = reply.split(".")
    count = len(tokens)
    if count == 9:
        at = 4
    elif count >= 11:
        at = 6
    else:
        return None
    if tokens[0] != "$JS" or tokens[1] != "ACK":
        return None
    try:
        return Delivered(int(tokens[at]), int(tokens[at + 1]), int(tokens[at + 3]))
    except ValueError:
        return None
