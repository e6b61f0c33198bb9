"""Mocks that record what an app's functions were called with, and assertions that wait.

Each consumer and producer of an app (and each Tester mirror) gets one :class:`CallRecorder`
that owns a real ``unittest.mock`` object: an ``AsyncMock`` for an ``async def`` function, a
``MagicMock`` for a plain ``def`` consumer. Two views sit over it, as in FastKafka:

- ``app.mocks.<fn>`` is the mock itself: ``isinstance``, ``call_args_list``,
  ``assert_called_once_with``, ``reset_mock`` and the rest behave as the standard library
  documents;
- ``app.awaited_mocks.<fn>`` and ``tester.mirrors[app.to_x]`` (:class:`AwaitedMock`): every
  ``assert_*`` method is a coroutine that waits until the assertion holds or ``timeout``
  (default 60 s, FastKafka's) passes, then raises the last ``AssertionError``.

Recording is lazy because a mock call costs tens of microseconds and most recorded calls of a
busy test are never examined: a call is snapshotted when it happens (a copy of its arguments,
or a consumed record's raw bytes, decoded again later) and replayed into the mock
the moment anything reads the mock's call state (:data:`_CALL_STATE`), so every reader —
including one holding a reference taken before the calls — sees all calls in order. A mock
given a ``side_effect`` is called at once instead, so the side effect runs when the function
is called, as it would with a plain mock.

What a pending call keeps is ``fastkafka._snapshots``'s business: a busy test keeps them all,
so their shape is what a test pays for.

Waiting is driven by a signal fired after each recorded call: an assertion is re-checked after
each new call, never on a timer, so a test takes as long as the app needs and no longer.
"""

from __future__ import annotations

import asyncio
import collections
import copy
import functools
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

from ._snapshots import Snapshot, fields_snapshot, flat_snapshot, restore

if TYPE_CHECKING:
    from unittest.mock import AsyncMock, MagicMock

__all__ = ["DEFAULT_TIMEOUT", "AwaitedMock", "CallRecorder", "MockNamespace"]

DEFAULT_TIMEOUT = 60.0

# A call waiting to be replayed, one of (never a closure: that would be an object per call):
# - raw bytes: one argument, what the recorder's decode makes of them (record_raw);
# - a fields snapshot (_snapshots.fields_snapshot): one flat model, record()'s usual case;
# - (_FLAT, parts, None): flat models and immutable values (_snapshots.flat_snapshot);
# - (_DECODED_OR, raw, message): one argument, decode(raw), or message if that fails;
# - (None, args, kwargs): deep-copied arguments.
_FLAT = object()
_DECODED_OR = object()
# Reading any of these replays the pending calls first. The standard library's own assertions
# read the call state through these public names too, so they see every call as well.
_CALL_STATE = frozenset(
    {
        "called",
        "call_count",
        "call_args",
        "call_args_list",
        "mock_calls",
        "await_count",
        "await_args",
        "await_args_list",
        "reset_mock",
    }
)
_RECORDER = "_fastkafka_recorder"


class _ReplaysPendingCalls:
    """Mixed into the mock classes: replays the recorder's pending calls before any call state
    is read. Child mocks (attributes of the mock) have no recorder and behave as usual."""

    def __getattribute__(self, name: str) -> Any:
        if name in _CALL_STATE:
            recorder = object.__getattribute__(self, "__dict__").get(_RECORDER)
            if recorder is not None:
                recorder.flush()
        return super().__getattribute__(name)


@functools.cache
def _recording_mock_classes() -> tuple[type[AsyncMock], type[MagicMock]]:
    """The mock classes whose calls may arrive lazily from a :class:`CallRecorder`, made on
    first use: a worker that never records spares importing ``unittest`` (~1.4 MB of RSS)."""
    from unittest.mock import AsyncMock, MagicMock

    class RecordingAsyncMock(_ReplaysPendingCalls, AsyncMock):
        """An ``AsyncMock`` whose calls may arrive lazily from a :class:`CallRecorder`."""

    class RecordingMagicMock(_ReplaysPendingCalls, MagicMock):
        """A ``MagicMock`` whose calls may arrive lazily from a :class:`CallRecorder`."""

    return RecordingAsyncMock, RecordingMagicMock


class CallRecorder:
    """The mock of one function, the calls not yet replayed into it, and a signal fired after
    each recorded call.

    ``decode`` turns the raw bytes given to :meth:`record_raw` and :meth:`record_message` into
    the message; it must be pure, as it runs again whenever a test looks.
    """

    def __init__(
        self,
        name: str,
        *,
        is_async: bool = True,
        decode: Callable[[bytes | None], Any] | None = None,
    ) -> None:
        self.name = name
        recording_async, recording_magic = _recording_mock_classes()
        mock_class = recording_async if is_async else recording_magic
        self._mock: AsyncMock | MagicMock = mock_class(name=name)
        # Read per call to spot a side_effect; taken once, as every attribute read through
        # the mock itself pays for the replaying __getattribute__.
        self._mock_state: dict[str, Any] = self._mock.__dict__
        self._mock_state[_RECORDER] = self
        self._is_async = is_async
        self._decode = decode
        # Calls are recorded from the event loop and from handler threads, without a lock: an
        # uncontended threading.Lock costs ~300 ns here, more than recording itself, and a
        # deque's append and popleft are atomic. The lock serialises what is rare: taking
        # the pending calls to replay them, and the waiters.
        self._pending: collections.deque[Snapshot] = collections.deque()
        self._lock = threading.Lock()
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def mock(self) -> AsyncMock | MagicMock:
        """The mock; reading its call state shows every call recorded so far."""
        return self._mock

    def record(self, *args: Any, **kwargs: Any) -> Awaitable[Any] | None:
        """Record a call with copies of its arguments (deep copies, or for the usual
        message of plain fields a copy of its fields, which is as good and 8x cheaper).

        Returns an awaitable to await at once when the mock has a ``side_effect`` (so it runs
        now, and what it raises reaches the caller), else None.
        """
        if self._mock_state.get("_mock_side_effect") is not None:
            return self._call_now(args, kwargs)
        if len(args) == 1 and not kwargs:
            fields = fields_snapshot(args[0])
            if fields is not None:
                self._add(fields)
                return None
        flat = None if kwargs else flat_snapshot(args)
        if flat is not None:
            self._add((_FLAT, flat, None))
        else:
            self._add((None, copy.deepcopy(args), copy.deepcopy(kwargs)))
        return None

    def record_raw(self, raw: bytes | None) -> Awaitable[Any] | None:
        """Record a call with one argument, the message the recorder's ``decode`` makes of
        ``raw`` (a consumed record's value, None for a tombstone); returns what
        :meth:`record` returns."""
        assert self._decode is not None, "record_raw needs a recorder made with decode="
        if self._mock_state.get("_mock_side_effect") is not None:
            return self._call_now((self._decode(raw),), {})
        # A tombstone's message is kept decoded (there are no bytes to decode again).
        self._add(raw if raw is not None else (None, (self._decode(None),), {}))
        return None

    def record_message(self, message: Any, raw: bytes) -> Awaitable[Any] | None:
        """Record a call with one argument, ``message``, whose encoding is ``raw``: a copy of
        its fields when it is a flat model, else ``raw`` decoded again when a test looks (or
        ``message`` itself, if an unvalidated ``model_construct()`` does not decode); returns
        what :meth:`record` returns."""
        assert self._decode is not None, "record_message needs a recorder made with decode="
        if self._mock_state.get("_mock_side_effect") is not None:
            return self._call_now((_decoded(self._decode, raw, message),), {})
        fields = fields_snapshot(message)
        self._add((_DECODED_OR, raw, message) if fields is None else fields)
        return None

    def flush(self) -> None:
        """Replay the pending calls into the mock, in order (as awaited calls for an
        ``AsyncMock``)."""
        pending = self._pending
        if not pending:
            return
        # Taken before replaying: a replayed mock call reads its own call state, which
        # flushes again and must find nothing left to replay.
        with self._lock:
            taken = [pending.popleft() for _ in range(len(pending))]
        for snapshot in taken:
            kwargs: dict[str, Any] = {}
            if type(snapshot) is bytes:
                assert self._decode is not None
                args: tuple[Any, ...] = (self._decode(snapshot),)
            elif snapshot[0] is None:
                _, args, kwargs = snapshot
            elif snapshot[0] is _FLAT:
                args = tuple(restore(part) for part in snapshot[1])
            elif snapshot[0] is _DECODED_OR:
                assert self._decode is not None
                args = (_decoded(self._decode, snapshot[1], snapshot[2]),)
            else:
                args = (restore(snapshot),)
            called = self._mock(*args, **kwargs)
            if self._is_async:
                _run_to_completion(called)

    def next_call(self) -> asyncio.Future[None]:
        """A future resolved by the next recorded call."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._lock:
            self._waiters.append(future)
        return future

    def _call_now(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Awaitable[Any]:
        self.flush()
        try:
            called = self._mock(*args, **kwargs)
        finally:
            self._signal()
        if self._is_async:
            awaitable: Awaitable[Any] = called
            return awaitable
        return _completed(called)

    def _add(self, snapshot: Snapshot) -> None:
        self._pending.append(snapshot)
        # Read after the append: a waiter added after this read runs its assertion after
        # registering, so it sees this call (wait_until_holds).
        if self._waiters:  # rare: someone waits on this mock
            self._signal()

    def _signal(self) -> None:
        with self._lock:
            waiters, self._waiters = self._waiters, []
        _wake(waiters)


def _decoded(decode: Callable[[bytes | None], Any], raw: bytes, undecodable: Any) -> Any:
    try:
        return decode(raw)
    except Exception:
        if undecodable is None:
            raise
        return undecodable


def _wake(waiters: list[asyncio.Future[None]]) -> None:
    for future in waiters:
        future.get_loop().call_soon_threadsafe(_resolve, future)


async def _completed(value: Any) -> Any:
    return value


def _run_to_completion(coroutine: Any) -> None:
    """Finish an ``AsyncMock`` call being replayed. Replayed mocks have no side effect (those
    with one are called at once instead), so the call completes without suspending and counts
    as awaited."""
    try:
        coroutine.send(None)
    except StopIteration:
        return
    coroutine.close()
    raise RuntimeError(f"a replayed mock call suspended: {coroutine!r}")


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


class AwaitedMock:
    """``app.awaited_mocks.<fn>``: each ``assert_*`` method of the mock as a coroutine that
    waits up to ``timeout`` seconds (default 60) for the assertion to hold; every other
    attribute is the mock's own."""

    def __init__(self, recorder: CallRecorder) -> None:
        self._recorder = recorder

    def __getattr__(self, name: str) -> Any:
        mock = self._recorder.mock
        attribute = getattr(mock, name)
        if not (name.startswith("assert_") and callable(attribute)):
            return attribute
        recorder = self._recorder

        # FastKafka's signature: `timeout=` is how long the assertion may take to hold.
        async def waiting_assertion(
            *args: Any,
            timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109
            **kwargs: Any,
        ) -> Any:
            return await wait_until_holds(
                recorder, lambda: getattr(mock, name)(*args, **kwargs), timeout
            )

        waiting_assertion.__name__ = name
        waiting_assertion.__doc__ = attribute.__doc__
        return waiting_assertion

    def __repr__(self) -> str:
        return f"<AwaitedMock of {self._recorder.name}>"


class MockNamespace:
    """``app.mocks`` / ``app.awaited_mocks``: one entry per function, by function name.

    ``ambiguous`` maps names that several entries would share (a Tester's mirrors of one topic
    on several clusters) to the error that reading them raises.
    """

    def __init__(self, entries: dict[str, Any], ambiguous: dict[str, str] | None = None) -> None:
        self._entries = entries
        self._ambiguous = ambiguous or {}

    def __getattr__(self, name: str) -> Any:
        try:
            return self._entries[name]
        except KeyError:
            pass
        if name in self._ambiguous:
            raise RuntimeError(self._ambiguous[name])
        raise AttributeError(f"no mock named {name!r}; the functions are: {sorted(self._entries)}")

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __dir__(self) -> list[str]:
        return sorted(self._entries)
