"""What the server confirms: one ``PubAck`` per stored message, or one per atomic batch.

Pure data, importing nothing from fleetbus (``fleetbus.errors`` builds on it).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

__all__ = ["BatchAck", "PubAck", "PublishManyResult"]


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
