"""One run of an app, and what it runs on.

:class:`AppRun` starts an app's runtime (``_core.Runtime``) on a transport, starts its
background tasks, keeps the first failure of its consumers for ``wait_for_failure`` and for
``async with app:`` to raise, and stops it all in order. The runtime does the work in Rust —
clusters checked, consumers subscribed with rollback, supervision, ordered stop with abandon,
flush; what is here is what only Python has: asyncio tasks, the exception object a handler
raised, and a start cancelled half-way.

The transport is the in-memory broker under ``Tester``, real Kafka otherwise
(:func:`default_transport`); :class:`InMemoryBroker` (public as
``fastkafka.testing.InMemoryBroker``) makes a shared in-memory broker the default.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from . import _core
from ._tasks import tie_tasks_to_inputs, untied_context
from ._threads import run_lifecycle
from .exceptions import (
    AppNotStartedError,
    ConfigError,
    ConsumerEndedError,
    HandlerError,
    TransportError,
)

__all__ = [
    "AppRun",
    "InMemoryBroker",
    "Transport",
    "check_token_provider",
    "default_transport",
    "set_default_transport",
]

logger = logging.getLogger("fastkafka.app")
consumer_logger = logging.getLogger("fastkafka.consumer")

# What an app runs on: the in-memory broker, or real Kafka through librdkafka.
Transport = _core.MemoryBroker | _core.KafkaTransport


# What apps without a transport of their own run on: real Kafka, unless
# fastkafka.testing.InMemoryBroker installed a process-wide in-memory broker.
_default_transport: Transport | None = None


def set_default_transport(transport: Transport | None) -> Transport | None:
    """Make ``transport`` what apps without their own run on; returns the previous one."""
    global _default_transport
    previous, _default_transport = _default_transport, transport
    return previous


def default_transport(token_provider: object | None = None) -> Transport:
    """What an app without a transport of its own runs on: the in-memory broker a
    ``fastkafka.testing.InMemoryBroker`` installed, else real Kafka — whose OAUTHBEARER
    clients get their tokens from ``token_provider`` (see :func:`token_function`). Call it on
    the app's event loop."""
    if _default_transport is not None:
        return _default_transport
    kafka_transport = getattr(_core, "KafkaTransport", None)
    if kafka_transport is None:
        raise TransportError(
            "this build of fastkafka-rs has no Kafka transport (it was built without the "
            "'kafka' feature); run the app under fastkafka.testing.Tester"
        )
    if token_provider is None:
        transport: Transport = kafka_transport()
    else:
        loop = asyncio.get_running_loop()
        transport = kafka_transport(token_function=token_function(token_provider, loop))
    return transport


# How long a client waits for the app's token provider before it reports a failure (and
# librdkafka asks again).
TOKEN_TIMEOUT_SECONDS = 30.0


def check_token_provider(provider: object) -> None:
    """``sasl_oauth_token_provider`` must be what aiokafka takes: an object whose ``token()``
    returns the token (a coroutine function in aiokafka's ``AbstractTokenProvider``)."""
    if not callable(getattr(provider, "token", None)):
        raise ConfigError(
            "sasl_oauth_token_provider must have a token() method (aiokafka's "
            f"AbstractTokenProvider), got {type(provider).__name__}"
        )


def token_function(provider: Any, loop: asyncio.AbstractEventLoop) -> Callable[[], str]:
    """A function librdkafka's threads call for a token: ``provider.token()``, awaited on the
    app's event loop ``loop`` when it is a coroutine, within ``TOKEN_TIMEOUT_SECONDS``.
    aiokafka's ``extensions()`` (SASL extensions) is not passed on: librdkafka's token API
    through rust-rdkafka takes none."""

    def get_token() -> str:
        token = provider.token()
        if inspect.isawaitable(token):

            async def awaited() -> Any:
                return await token

            future = asyncio.run_coroutine_threadsafe(awaited(), loop)
            token = future.result(TOKEN_TIMEOUT_SECONDS)
        if not isinstance(token, str):
            raise TypeError(
                f"{type(provider).__name__}.token() returned {type(token).__name__}, not a str"
            )
        return token

    return get_token


class AppRun:
    """The running part of an app: its started runtime, background tasks and first failure."""

    def __init__(self) -> None:
        self._running: _core.RunningRuntime | None = None
        # The runtime being stopped: its health says "stopping" until the stop is over.
        self._stopping: _core.RunningRuntime | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        # The first error that ended a consumer: a handler's own exception when it raised
        # with throw_exceptions=True (or a BaseException), else the runtime's report.
        self._failure: BaseException | None = None
        self._failed: asyncio.Event | None = None
        # Undoes tie_tasks_to_inputs while the app runs.
        self._untie: Callable[[], None] | None = None

    @property
    def is_started(self) -> bool:
        """Whether the app is running."""
        return self._running is not None

    async def start(
        self,
        runtime: _core.Runtime,
        transport: Transport,
        background: list[Callable[[], Coroutine[Any, Any, Any]]],
    ) -> None:
        """Start ``runtime`` on ``transport``, then the ``background`` functions as tasks."""
        if self.is_started:
            raise RuntimeError("the app is already running")
        self._failure, self._failed = None, asyncio.Event()
        # Before the first batch can arrive: tasks its handler starts hold it open (_tasks).
        untie = tie_tasks_to_inputs()
        starting = asyncio.ensure_future(
            run_lifecycle(runtime.start, transport, asyncio.get_running_loop(), self.consumer_ended)
        )
        try:
            self._running = await asyncio.shield(starting)
        except asyncio.CancelledError:
            # The start goes on in its thread: let it finish, then undo it (the runtime rolls
            # back a start that fails by itself).
            started = await asyncio.gather(starting, return_exceptions=True)
            if isinstance(started[0], _core.RunningRuntime):
                await run_lifecycle(started[0].stop)
            untie()
            raise
        except BaseException:
            untie()
            raise
        self._untie = untie
        for function in background:
            # Tied to no input, even when an app is started from inside a handler.
            task = asyncio.create_task(
                function(),
                name=f"fastkafka background {function.__name__}",
                context=untied_context(),
            )
            task.add_done_callback(_log_background_end)
            self._tasks.append(task)
        if self._tasks:
            # Tasks run their first step in the order they were scheduled, before whatever is
            # scheduled after them: one yield to the loop lets each run up to its first
            # suspension, so a caller of `async with app:` finds every task started.
            await asyncio.sleep(0)

    async def stop(self) -> None:
        """Cancel the background tasks, then stop the runtime: consumers finish (or abandon)
        their batches in flight and commit, producers flush. Raises the error that ended a
        consumer, if any."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        running, self._running = self._running, None
        self._stopping = running
        try:
            if running is not None:
                await run_lifecycle(running.stop)
        except HandlerError:
            pass  # logged by the runtime; the app's own failure, if any, is raised below
        finally:
            self._stopping = None
            untie, self._untie = self._untie, None
            if untie is not None:
                untie()
            failure, self._failure = self._failure, None
        if failure is not None:
            raise failure

    def seek(self, consumer: str, partition: int, offset: int) -> None:
        """Ask a consumer of this run to seek (``FastKafka.seek``)."""
        if self._running is None:
            raise AppNotStartedError("the app is not running: there is nothing to seek")
        self._running.seek(consumer, partition, offset)

    def health(self) -> dict[str, Any]:
        """The engine's health report of this run (``fastkafka.health``)."""
        running = self._running or self._stopping
        if running is None:
            return _core.health_when_not_running()
        return running.health()

    def fail(self, name: str, error: BaseException) -> None:
        """Consumer ``name`` is ending on ``error`` (its handler raised with
        throw_exceptions=True, or raised a ``BaseException``)."""
        consumer_logger.error("%s: stopping this consumer: %r", name, error)
        self._record(error)

    def consumer_ended(self, name: str, error: ConsumerEndedError) -> None:
        """Called on the event loop when the runtime saw a consumer end without being
        stopped (its batch failed, its loop panicked, its cluster refused it for good);
        ``error.__cause__`` says why."""
        if self._failure is None:
            self.fail(name, error)

    def _record(self, error: BaseException) -> None:
        if self._failure is None:
            self._failure = error
        if self._failed is not None:
            self._failed.set()

    async def wait_for_failure(self) -> BaseException:
        """Wait until a consumer ends other than by stopping, and return why."""
        if self._failed is None:
            raise AppNotStartedError("the app is not running")
        await self._failed.wait()
        assert self._failure is not None
        return self._failure


def _log_background_end(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("%s failed", task.get_name(), exc_info=task.exception())


class InMemoryBroker:
    """While entered (``with`` or ``async with``), every app that starts without a transport of
    its own runs on one shared in-memory broker — to drive apps outside a Tester, e.g. through a
    web framework's lifespan in a test. Nothing is patched: it sets the process-wide default
    transport and restores the previous one on exit.
    """

    def __init__(self, default_partitions: int = 1) -> None:
        self.broker = _core.MemoryBroker(default_partitions)
        self._previous: list[Transport | None] = []

    def __enter__(self) -> _core.MemoryBroker:
        self._previous.append(set_default_transport(self.broker))
        return self.broker

    def __exit__(self, *exc_info: object) -> None:
        set_default_transport(self._previous.pop())

    async def __aenter__(self) -> _core.MemoryBroker:
        return self.__enter__()

    async def __aexit__(self, *exc_info: object) -> None:
        self.__exit__(*exc_info)
