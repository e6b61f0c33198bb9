"""Mocks that record what an app's functions were called with, and assertions that wait.

Each consumer and producer of an app (and each Tester mirror) gets one :class:`CallRecorder`:
an ``AsyncMock`` that is awaited with deep copies of the call's arguments (so a handler that
mutates its message cannot rewrite history), plus a signal fired after every call.

Two views sit over a recorder, as in FastKafka:

- ``app.mocks.<fn>`` (:class:`ObservedMock`): the mock itself. Its ``assert_*`` methods work
  synchronously as usual; given ``timeout=``, they return an awaitable that waits until the
  assertion holds.
- ``app.awaited_mocks.<fn>`` and ``tester.mirrors[app.to_x]`` (:class:`AwaitedMock`): every
  ``assert_*`` method is a coroutine that waits until the assertion holds or ``timeout``
  (default 60 s, FastKafka's) passes, then raises the last ``AssertionError``.

Waiting is driven by the signal: an assertion is re-checked after each new call, never on a
timer, so a test takes as long as the app needs and no longer.
"""

from __future__ import annotations

import asyncio
import copy
import threading
from collections.abc import Callable, Iterator
from typing import Any
from unittest.mock import AsyncMock

__all__ = ["DEFAULT_TIMEOUT", "AwaitedMock", "CallRecorder", "MockNamespace", "ObservedMock"]

DEFAULT_TIMEOUT = 60.0


class CallRecorder:
    """An ``AsyncMock`` for one function and a signal fired after each recorded call.

    Calls are snapshotted when they happen but reach the mock only when someone looks at it
    (:meth:`flush`): a mock call costs tens of microseconds, and most recorded calls of a busy
    test are never examined. A consumed message is snapshotted as its raw bytes and decoded
    again on flush, which is cheaper than a deep copy and just as independent of the handler.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._mock = AsyncMock(name=name)
        self._lock = threading.Lock()
        self._pending: list[Callable[[], tuple[tuple[Any, ...], dict[str, Any]]]] = []
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def mock(self) -> AsyncMock:
        """The mock, with every call recorded so far."""
        self.flush()
        return self._mock

    def record(self, *args: Any, **kwargs: Any) -> None:
        """Record a call with deep copies of its arguments."""
        snapshot = (copy.deepcopy(args), copy.deepcopy(kwargs))
        self._add(lambda: snapshot)

    def record_encoded(self, decode: Callable[[bytes], Any], raw: bytes) -> None:
        """Record a call with one argument, the message ``decode(raw)``."""
        self._add(lambda: ((decode(raw),), {}))

    def flush(self) -> None:
        """Replay the pending calls into the mock, in order, as awaited calls."""
        with self._lock:
            pending, self._pending = self._pending, []
        for snapshot in pending:
            args, kwargs = snapshot()
            _run_to_completion(self._mock(*args, **kwargs))

    def next_call(self) -> asyncio.Future[None]:
        """A future resolved by the next recorded call."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._lock:
            self._waiters.append(future)
        return future

    def _add(self, snapshot: Callable[[], tuple[tuple[Any, ...], dict[str, Any]]]) -> None:
        with self._lock:
            self._pending.append(snapshot)
            waiters, self._waiters = self._waiters, []
        for future in waiters:
            future.get_loop().call_soon_threadsafe(_resolve, future)


def _run_to_completion(coroutine: Any) -> None:
    """Finish an ``AsyncMock`` call, which completes without suspending (no side effects are
    configured on these mocks), so that it counts as awaited."""
    try:
        coroutine.send(None)
    except StopIteration:
        return
    coroutine.close()
    raise RuntimeError("a recorded mock call suspended; mocks of fastkafka take no side_effect")


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def wait_until_holds(
    recorder: CallRecorder, assertion: Callable[[], Any], within: float
) -> Any:
    """Run ``assertion`` after each call until it passes; raise its error after ``within`` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        next_call = recorder.next_call()
        try:
            return assertion()
        except AssertionError:
            remaining = deadline - loop.time()
            if remaining <= 0:
                next_call.cancel()
                raise
        try:
            await asyncio.wait_for(next_call, remaining)
        except TimeoutError:
            # One last look: the assertion raises its own, descriptive error if it still fails.
            return assertion()


class _MockView:
    """Delegates to a recorder's mock; subclasses decide how ``assert_*`` methods wait."""

    _always_wait = False

    def __init__(self, recorder: CallRecorder) -> None:
        self._recorder = recorder

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._recorder.mock, name)
        if not (name.startswith("assert_") and callable(attribute)):
            return attribute
        recorder = self._recorder
        always_wait = self._always_wait

        def assertion(*args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
            def check() -> Any:
                return getattr(recorder.mock, name)(*args, **kwargs)

            if timeout is None and not always_wait:
                return check()
            return wait_until_holds(
                recorder, check, DEFAULT_TIMEOUT if timeout is None else timeout
            )

        assertion.__name__ = name
        assertion.__doc__ = attribute.__doc__
        return assertion

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self._recorder.name}>"


class ObservedMock(_MockView):
    """``app.mocks.<fn>``: the mock itself.

    ``assert_*`` methods check at once; given ``timeout=``, they return an awaitable that waits.
    """


class AwaitedMock(_MockView):
    """``app.awaited_mocks.<fn>``: each ``assert_*`` is a coroutine waiting up to ``timeout``."""

    _always_wait = True


class MockNamespace:
    """``app.mocks`` / ``app.awaited_mocks``: one view per function, by function name."""

    def __init__(self, views: dict[str, _MockView]) -> None:
        self._views = views

    def __getattr__(self, name: str) -> Any:
        try:
            return self._views[name]
        except KeyError:
            raise AttributeError(
                f"no mock named {name!r}; the app's functions are: {sorted(self._views)}"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._views)

    def __dir__(self) -> list[str]:
        return sorted(self._views)
