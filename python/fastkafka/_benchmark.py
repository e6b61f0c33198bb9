"""``@app.benchmark``: the wrapper that counts calls, and its counter — FastKafka's throughput
log lines and ``benchmark_results``."""

from __future__ import annotations

import functools
import inspect
import logging
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

__all__ = ["Throughput", "counted"]

F = TypeVar("F", bound=Callable[..., Any])

benchmark_logger = logging.getLogger("fastkafka.benchmark")


class Throughput:
    """Counts the calls of one benchmarked function and logs its throughput per interval."""

    def __init__(
        self,
        name: str,
        interval: float,
        sliding_window_size: int | None,
        results: dict[str, dict[str, Any]],
    ) -> None:
        self._name = name
        self._interval = interval
        self._window = sliding_window_size
        self._results = results

    def count(self) -> None:
        now = datetime.now(UTC)
        result = self._results.get(self._name)
        if result is None:
            result = self._results[self._name] = {
                "count": 0,
                "last_count": 0,
                "start": now,
                "last_start": now,
                "history": deque(maxlen=self._window) if self._window is not None else [],
            }
        result["count"] += 1
        elapsed = (now - result["last_start"]).total_seconds()
        if elapsed < self._interval:
            return
        throughput = (result["count"] - result["last_count"]) / elapsed
        message = f"Throughput = {throughput:5,.0f}"
        if self._window is not None:
            history = result["history"]
            history.append(throughput)
            message += f", Avg throughput = {sum(history) / len(history):5,.0f}"
        benchmark_logger.info(
            "%s - For %s(interval=%s,sliding_window_size=%s)",
            message,
            self._name,
            self._interval,
            self._window,
        )
        result["last_start"], result["last_count"] = now, result["count"]


def counted(
    function: F,
    interval: float,
    sliding_window_size: int | None,
    results: dict[str, dict[str, Any]],
) -> F:
    """``function`` (sync or async) counting its calls in ``results``."""
    counter = Throughput(
        f"{function.__module__}.{function.__qualname__}", interval, sliding_window_size, results
    )
    if inspect.iscoroutinefunction(function):

        @functools.wraps(function)
        async def counted_async(*args: Any, **kwargs: Any) -> Any:
            counter.count()
            return await function(*args, **kwargs)

        return counted_async  # type: ignore[return-value]

    @functools.wraps(function)
    def counted_sync(*args: Any, **kwargs: Any) -> Any:
        counter.count()
        return function(*args, **kwargs)

    return counted_sync  # type: ignore[return-value]
