"""What a consumer does with messages it cannot process: :class:`RetryPolicy` (retry in place),
and :class:`DeadLetter`, a message as its consumer's dead-letter topic received it.

The decisions are the engine's (``src/consumer_loop/failures.rs``), the same for Rust apps:
a retryable failure pauses its partition and reads the message again after the backoff, other
partitions going on; once the attempts are used up — or at once for a message that cannot be
decoded — the message goes to the consumer's ``dead_letter_topic`` if it has one, else it is
logged and skipped (FastKafka's behaviour). A dead letter is delivery-tracked: the input's
offset is committed only once the dead-letter topic acknowledged it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import _core

__all__ = ["DEAD_LETTER_HEADERS", "DeadLetter", "RetryPolicy"]

# The headers a dead letter carries besides the message's own, by meaning.
DEAD_LETTER_HEADERS = {
    "topic": "fastkafka.dlt.topic",
    "partition": "fastkafka.dlt.partition",
    "offset": "fastkafka.dlt.offset",
    "timestamp": "fastkafka.dlt.timestamp",
    "consumer": "fastkafka.dlt.consumer",
    "error_type": "fastkafka.dlt.error.type",
    "error_message": "fastkafka.dlt.error.message",
    "attempts": "fastkafka.dlt.attempts",
}


@dataclass(frozen=True)
class RetryPolicy:
    """Retry a message whose handler raised one of ``retry_on``, in place.

    ``attempts`` counts every handling, the first included; before attempt *n* (n ≥ 2) the
    partition waits ``backoff * 2**(n-2)`` seconds, at most ``max_backoff``. The count is kept
    while this worker keeps the partition; a restart or a rebalance that moves the partition
    to another worker starts it again from 1.
    """

    attempts: int = 3
    backoff: float = 0.1
    max_backoff: float = 30.0
    retry_on: tuple[type[BaseException], ...] = (Exception,)

    def as_engine_args(self) -> tuple[int, float, float]:
        """What the engine checks and keeps: (attempts, backoff, max_backoff)."""
        return (self.attempts, self.backoff, self.max_backoff)

    def covers(self, error: BaseException) -> bool:
        return isinstance(error, self.retry_on)


@dataclass(frozen=True)
class DeadLetter:
    """A message as the dead-letter topic received it: the original key, value and headers,
    and where it came from and why it failed (from fastkafka's headers)."""

    key: bytes | None
    value: bytes | None  # None: the record was a tombstone, or too large to carry (see headers)
    headers: dict[str, bytes | None] = field(repr=False)
    topic: str
    partition: int
    offset: int
    consumer: str
    error_type: str
    error_message: str
    attempts: int

    @classmethod
    def from_record(cls, record: _core.Record) -> DeadLetter:
        headers = {name: value for name, value in record.headers}

        def text(meaning: str) -> str:
            return (headers.get(DEAD_LETTER_HEADERS[meaning]) or b"").decode("utf-8", "replace")

        return cls(
            key=record.key,
            value=record.value,
            headers=headers,
            topic=text("topic"),
            partition=int(text("partition") or -1),
            offset=int(text("offset") or -1),
            consumer=text("consumer"),
            error_type=text("error_type"),
            error_message=text("error_message"),
            attempts=int(text("attempts") or 0),
        )
