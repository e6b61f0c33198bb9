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

from dataclasses import dataclass

from . import _core

__all__ = ["DEAD_LETTER_HEADERS", "DeadLetter", "RetryPolicy"]

# The headers a dead letter carries besides the message's own, by meaning: the engine's list
# (src/consumer_loop/failures.rs), the one both APIs write and read.
DEAD_LETTER_HEADERS: dict[str, str] = _core.DEAD_LETTER_HEADERS

# A message as the dead-letter topic received it: the original key, value (None for a
# tombstone, or a record too large to carry: see its headers) and headers, and where it came
# from and why it failed — read from the headers by the engine, as Rust's harness reads them.
DeadLetter = _core.DeadLetter


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
