"""How a consumer runs its handler over the messages of a batch (FastKafka's executors).

- :class:`SequentialExecutor` (the default): one message after another, in offset order.
- :class:`DynamicTaskExecutor`: the messages of a batch concurrently, at most ``size`` handler
  calls in flight. The next batch starts when every call of the current one has finished, so a
  batch's offsets are stored only once none of its messages is unfinished: a crash never skips
  an unprocessed message. Raise ``max_poll_records`` for more concurrency.

``throw_exceptions=True`` makes the first handler exception stop its consumer and be raised
where the app runs (``async with app`` re-raises it on exit; a ``fastkafka run`` worker exits
with an error). Otherwise handler exceptions are logged and the consumer goes on.
``max_buffer_size`` caps how many messages are handed over at once (the effective
``max_poll_records`` is the smaller of the two).
"""

from __future__ import annotations

from .exceptions import ConfigError

__all__ = ["DynamicTaskExecutor", "Executor", "SequentialExecutor", "executor_from"]


class Executor:
    """What the two executors share."""

    concurrent = False

    def __init__(self, throw_exceptions: bool = False, max_buffer_size: int = 100_000) -> None:
        if max_buffer_size < 1:
            raise ConfigError(f"max_buffer_size must be at least 1, got {max_buffer_size}")
        self.throw_exceptions = throw_exceptions
        self.max_buffer_size = max_buffer_size

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(throw_exceptions={self.throw_exceptions}, "
            f"max_buffer_size={self.max_buffer_size})"
        )


class SequentialExecutor(Executor):
    """Handles one message after another."""


class DynamicTaskExecutor(Executor):
    """Handles the messages of a batch concurrently, at most ``size`` at a time."""

    concurrent = True

    def __init__(
        self, throw_exceptions: bool = False, max_buffer_size: int = 100_000, size: int = 100_000
    ) -> None:
        super().__init__(throw_exceptions, max_buffer_size)
        if size < 1:
            raise ConfigError(f"size must be at least 1, got {size}")
        self.size = size


_BY_NAME: dict[str, type[Executor]] = {
    "SequentialExecutor": SequentialExecutor,
    "DynamicTaskExecutor": DynamicTaskExecutor,
}


def executor_from(executor: str | Executor | None) -> Executor:
    """The executor a decorator's ``executor=`` names (default: sequential)."""
    if executor is None:
        return SequentialExecutor()
    if isinstance(executor, Executor):
        return executor
    if executor in _BY_NAME:
        return _BY_NAME[executor]()
    raise ConfigError(
        f"Unknown executor {executor!r}; use {', '.join(_BY_NAME)} or an instance of one"
    )
