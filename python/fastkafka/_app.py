"""``FastKafka``: the application object, its decorators and its lifecycle.

The app is built against a *transport* — anything with ``cluster(bootstrap_servers)`` that
returns a ``_core.Cluster`` — and never knows which one it got: the in-memory broker under
``Tester``, real Kafka otherwise. Decorating only records specs (``_handlers``); starting binds
each spec to its cluster (resolved from ``kafka_brokers`` and the chosen environment),
subscribes every consumer and returns when all of them are ready; stopping stops the consumer
loops (each finishes its batch in flight and commits) and flushes the producers.

Consumer loops run in Rust and hand records over a batch at a time; :class:`ConsumerRunner`
decodes each record and awaits the handler, one message after another. A record that cannot be
decoded, or whose handler raises, is logged with its topic, partition and offset, and the
consumer goes on with the next one.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import timedelta
from types import TracebackType
from typing import Any, Protocol, TypeVar

from . import _core
from ._benchmark import Throughput
from ._handlers import ConsumerSpec, ProducerSpec, topic_from_name
from ._mocks import AwaitedMock, CallRecorder, MockNamespace
from ._options import (
    CONSUMER_OPTIONS,
    PRODUCER_OPTIONS,
    check_options,
    consumer_settings,
    producer_properties,
)
from ._runner import ConsumerRunner
from ._threads import run_lifecycle
from .exceptions import AppNotStartedError, ConfigError, HandlerError, TransportError
from .executors import Executor, executor_from

__all__ = ["FastKafka", "Transport"]

logger = logging.getLogger("fastkafka.app")
benchmark_logger = logging.getLogger("fastkafka.benchmark")
consumer_logger = logging.getLogger("fastkafka.consumer")

F = TypeVar("F", bound=Callable[..., Any])
Lifespan = Callable[["FastKafka"], AbstractAsyncContextManager[Any]]


class Transport(Protocol):
    """How an app reaches its clusters (``_core.MemoryBroker`` or the Kafka transport)."""

    def cluster(
        self, bootstrap_servers: str, producer_properties: dict[str, str] = ...
    ) -> _core.Cluster: ...


# What apps without a transport of their own run on: real Kafka, unless
# fastkafka.testing.InMemoryBroker installed a process-wide in-memory broker.
_default_transport: Transport | None = None


def set_default_transport(transport: Transport | None) -> Transport | None:
    """Make ``transport`` what apps without their own run on; returns the previous one."""
    global _default_transport
    previous, _default_transport = _default_transport, transport
    return previous


def default_transport() -> Transport:
    """What an app without a transport of its own runs on: the in-memory broker a
    ``fastkafka.testing.InMemoryBroker`` installed, else real Kafka."""
    if _default_transport is not None:
        return _default_transport
    kafka_transport = getattr(_core, "KafkaTransport", None)
    if kafka_transport is None:
        raise TransportError(
            "this build of fastkafka-rs has no Kafka transport (it was built without the "
            "'kafka' feature); run the app under fastkafka.testing.Tester"
        )
    transport: Transport = kafka_transport()
    return transport


class FastKafka:
    """A Kafka application: consumers and producers, each bound to a topic on a cluster."""

    def __init__(
        self,
        *,
        title: str | None = None,
        description: str | None = None,
        version: str | None = None,
        contact: dict[str, str] | None = None,
        kafka_brokers: Mapping[str, Any] | None = None,
        root_path: str | None = None,
        lifespan: Lifespan | None = None,
        bootstrap_servers_id: str = "localhost",
        stop_timeout: float = 30.0,
        start_timeout: float = 30.0,
        **kwargs: Any,
    ) -> None:
        check_options(kwargs, CONSUMER_OPTIONS | PRODUCER_OPTIONS, "FastKafka()")
        for name, seconds in (("stop_timeout", stop_timeout), ("start_timeout", start_timeout)):
            if seconds < 0:
                raise ConfigError(f"{name} must be >= 0 seconds, got {seconds!r}")
        # How long stopping waits for a batch in flight before abandoning it.
        self.stop_timeout = stop_timeout
        # How long starting waits for each cluster to answer.
        self.start_timeout = start_timeout
        self.title = title or ""
        self.description = description or ""
        self.version = version or ""
        self.contact = contact
        self.root_path = root_path
        self.lifespan = lifespan
        self._kafka_brokers = (
            _core.KafkaBrokers.localhost()
            if kafka_brokers is None
            else _core.KafkaBrokers(kafka_brokers)
        )
        self._bootstrap_servers_id = bootstrap_servers_id
        self._client_options = dict(kwargs)
        self._default_group_prefix: str | None = None
        self.benchmark_results: dict[str, dict[str, Any]] = {}
        self._consumers: list[ConsumerSpec] = []
        self._producers: list[ProducerSpec] = []
        self._transport: Transport | None = None
        self._consumer_loops: list[tuple[ConsumerSpec, ConsumerRunner, _core.ConsumerLoop]] = []
        self._is_started = False
        self._recorders: dict[str, CallRecorder] | None = None
        self._background_functions: list[Callable[[], Coroutine[Any, Any, Any]]] = []
        self._background_tasks: list[asyncio.Task[Any]] = []
        # The first exception of a handler whose executor has throw_exceptions=True.
        self._failure: BaseException | None = None
        self._failed: asyncio.Event | None = None
        self._lifespan_context: AbstractAsyncContextManager[Any] | None = None
        self.mocks = MockNamespace({})
        self.awaited_mocks = MockNamespace({})

    # -- configuration ---------------------------------------------------------------------

    @property
    def kafka_brokers(self) -> _core.KafkaBrokers:
        """The app's default clusters, by environment."""
        return self._kafka_brokers

    @property
    def bootstrap_servers_id(self) -> str:
        """The environment whose clusters the app uses."""
        return self._bootstrap_servers_id

    def set_kafka_broker(self, kafka_broker_name: str) -> None:
        """Select the environment (a key of ``kafka_brokers``) for every cluster of the app."""
        known = self._kafka_brokers.environments()
        if kafka_broker_name not in known:
            raise ConfigError(
                f"Given kafka_broker_name '{kafka_broker_name}' is not found in kafka_brokers; "
                f"known environments: {known}"
            )
        if self._is_started:
            raise RuntimeError("set_kafka_broker() cannot be called while the app is running")
        self._bootstrap_servers_id = kafka_broker_name

    def cluster_of(self, brokers: _core.KafkaBrokers | None) -> str:
        """The bootstrap servers a handler with ``brokers`` uses in the chosen environment."""
        return (brokers or self._kafka_brokers).resolve(self._bootstrap_servers_id)

    def get_topics(self) -> set[str]:
        """Every topic the app consumes from or produces to."""
        return {s.topic for s in self._consumers} | {s.topic for s in self._producers}

    def use_transport(self, transport: Transport | None) -> None:
        """Run on ``transport`` from the next start; ``None`` means real Kafka."""
        if self._is_started:
            raise RuntimeError("the transport cannot change while the app is running")
        self._transport = transport

    @property
    def transport(self) -> Transport | None:
        """The transport set with :meth:`use_transport`, or ``None`` for real Kafka."""
        return self._transport

    def _override(self, brokers: Mapping[str, Any] | None) -> _core.KafkaBrokers | None:
        if brokers is None:
            return None
        override = _core.KafkaBrokers(brokers)
        override.check_override_of(self._kafka_brokers)
        return override

    # -- decorators --------------------------------------------------------------------------

    def consumes(
        self,
        topic: str | None = None,
        decoder: str | Callable[..., Any] = "json",
        *,
        executor: str | Executor | None = None,
        brokers: Mapping[str, Any] | None = None,
        prefix: str = "on_",
        description: str | None = None,
        **kwargs: Any,
    ) -> Callable[[F], F]:
        """Register a function that handles the messages of ``topic`` (default: the function's
        name without ``prefix``) on the app's cluster, or on ``brokers`` when given."""
        check_options(kwargs, CONSUMER_OPTIONS, "consumes()")
        chosen_executor = executor_from(executor)
        override = self._override(brokers)

        def decorator(function: F) -> F:
            spec = ConsumerSpec.build(
                function,
                topic=topic_from_name(function, topic, prefix),
                brokers=override,
                decoder=decoder,
                settings=consumer_settings({**self._options_for(CONSUMER_OPTIONS), **kwargs}),
                description=description,
                executor=chosen_executor,
            )
            self._consumers.append(spec)
            setattr(self, function.__name__, function)
            return function

        return decorator

    def produces(
        self,
        topic: str | None = None,
        encoder: str | Callable[..., Any] = "json",
        *,
        prefix: str = "to_",
        brokers: Mapping[str, Any] | None = None,
        description: str | None = None,
        **kwargs: Any,
    ) -> Callable[[F], F]:
        """Register an ``async def`` whose return value is sent to ``topic`` (default: the
        function's name without ``prefix``); a returned list is sent as one batch."""
        check_options(kwargs, PRODUCER_OPTIONS, "produces()")
        override = self._override(brokers)

        def decorator(function: F) -> F:
            spec = ProducerSpec.build(
                function,
                topic=topic_from_name(function, topic, prefix),
                brokers=override,
                encoder=encoder,
                properties=producer_properties({**self._options_for(PRODUCER_OPTIONS), **kwargs}),
                description=description,
            )
            self._producers.append(spec)

            @functools.wraps(function)
            async def send_result(*args: Any, **kwargs: Any) -> Any:
                if spec.cluster is None:
                    raise AppNotStartedError(
                        f"producer '{spec.name}' was called while its app is not running; "
                        f"start it with `async with app:` (or fastkafka.testing.Tester)"
                    )
                returned = await function(*args, **kwargs)
                if self._recorders is not None:
                    side_effect = self._recorders[spec.name].record(*args, **kwargs)
                    if side_effect is not None:
                        await side_effect
                cluster = spec.cluster
                if cluster is None:
                    raise AppNotStartedError(
                        f"producer '{spec.name}': the app stopped before the message was sent"
                    )
                backpressure = spec.send(cluster, returned)
                if backpressure is not None:
                    await backpressure  # the producer queue is full: wait for room
                return returned

            spec.function = send_result
            setattr(self, function.__name__, send_result)
            return send_result  # type: ignore[return-value]

        return decorator

    def run_in_background(self) -> Callable[[F], F]:
        """Register a coroutine function that starts with the app (after its consumers are
        ready, so it can call producers) and is cancelled and awaited when the app stops."""

        def decorator(function: F) -> F:
            if not inspect.iscoroutinefunction(function):
                raise ConfigError(
                    f"run_in_background needs an `async def` function, got '{function.__name__}'"
                )
            self._background_functions.append(function)
            setattr(self, function.__name__, function)
            return function

        return decorator

    def benchmark(
        self, interval: int | float | timedelta = 1, *, sliding_window_size: int | None = None
    ) -> Callable[[F], F]:
        """Count calls of a consumer or producer and log its throughput on the
        ``fastkafka.benchmark`` logger (at the first call after each ``interval`` seconds);
        ``app.benchmark_results[name]`` keeps the counts. Put it under ``@app.consumes`` /
        ``@app.produces``."""
        seconds = interval.total_seconds() if isinstance(interval, timedelta) else interval
        if seconds <= 0:
            raise ConfigError(f"benchmark interval must be positive, got {interval!r}")

        def decorator(function: F) -> F:
            name = f"{function.__module__}.{function.__qualname__}"
            counter = Throughput(name, seconds, sliding_window_size, self.benchmark_results)
            if inspect.iscoroutinefunction(function):

                @functools.wraps(function)
                async def counted_async(*args: Any, **kwargs: Any) -> Any:
                    counter.count()
                    return await function(*args, **kwargs)

                return counted_async  # type: ignore[return-value]

            @functools.wraps(function)
            def counted(*args: Any, **kwargs: Any) -> Any:
                counter.count()
                return function(*args, **kwargs)

            return counted  # type: ignore[return-value]

        return decorator

    def fastapi_lifespan(
        self, kafka_broker_name: str
    ) -> Callable[[Any], AbstractAsyncContextManager[None]]:
        """A FastAPI (or any ASGI framework's) lifespan that runs this app, on the clusters of
        ``kafka_broker_name``, for the web app's lifetime:
        ``FastAPI(lifespan=kafka_app.fastapi_lifespan("production"))``."""

        @asynccontextmanager
        async def lifespan(_web_app: Any) -> AsyncIterator[None]:
            self.set_kafka_broker(kafka_broker_name)
            async with self:
                yield

        return lifespan

    def _options_for(self, client: frozenset[str]) -> dict[str, Any]:
        """The app-level options that apply to one kind of client (raw properties to both)."""
        return {k: v for k, v in self._client_options.items() if k in client or "." in k}

    def use_default_groups(self, prefix: str | None) -> None:
        """Give every consumer without a ``group_id`` the group ``<prefix>.<function name>``.

        ``fastkafka run`` sets this so that its worker processes share the partitions of each
        consumer instead of each processing every message; ``None`` restores FastKafka's
        behaviour (no group: read every partition).
        """
        self._default_group_prefix = prefix

    def _group_of(self, spec: ConsumerSpec) -> str | None:
        if spec.settings.group_id is not None or self._default_group_prefix is None:
            return spec.settings.group_id
        return f"{self._default_group_prefix}.{spec.name}"

    def _producer_properties_by_cluster(self) -> dict[str, dict[str, str]]:
        """Producers to one cluster share its client, so they must agree on its properties."""
        by_cluster: dict[str, tuple[ProducerSpec, dict[str, str]]] = {}
        for spec in self._producers:
            servers = self.cluster_of(spec.brokers)
            first = by_cluster.setdefault(servers, (spec, spec.properties))
            differing = sorted(
                name
                for name in first[1].keys() | spec.properties.keys()
                if first[1].get(name) != spec.properties.get(name)
            )
            if differing:
                # Names only: a value may be a password.
                raise ConfigError(
                    f"producers '{first[0].name}' and '{spec.name}' send to cluster {servers} "
                    f"with different values for {', '.join(differing)}; they share one "
                    f"producer client, so give them the same options"
                )
        return {servers: properties for servers, (_, properties) in by_cluster.items()}

    # -- mocks -------------------------------------------------------------------------------

    def create_mocks(self) -> None:
        """Record every call of the app's functions in ``app.mocks`` / ``app.awaited_mocks``."""
        self._recorders = {
            s.name: CallRecorder(s.name, is_async=s.is_async) for s in self._consumers
        }
        self._recorders.update({s.name: CallRecorder(s.name) for s in self._producers})
        self.mocks = MockNamespace({n: r.mock for n, r in self._recorders.items()})
        self.awaited_mocks = MockNamespace({n: AwaitedMock(r) for n, r in self._recorders.items()})

    def _remove_mocks(self) -> None:
        self._recorders = None

    def _recorder_of(self, name: str) -> CallRecorder | None:
        """The recorder of function ``name`` while mocks are on, else None."""
        return None if self._recorders is None else self._recorders[name]

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def is_started(self) -> bool:
        """Whether the app is running."""
        return self._is_started

    async def _start(self) -> None:
        if self._is_started:
            raise RuntimeError("the app is already running")
        try:
            self._failure, self._failed = None, asyncio.Event()
            transport = self._transport or default_transport()
            producer_properties = self._producer_properties_by_cluster()

            clusters: dict[str, _core.Cluster] = {}
            used_by: dict[str, list[str]] = {}
            specs: list[ConsumerSpec | ProducerSpec] = [*self._producers, *self._consumers]
            for spec in specs:
                servers = self.cluster_of(spec.brokers)
                if servers not in clusters:
                    properties = producer_properties.get(servers, {})
                    clusters[servers] = transport.cluster(servers, properties)
                used_by.setdefault(servers, []).append(spec.name)
            # Every cluster must answer before anything starts: an unreachable one fails the
            # start within start_timeout, naming it, instead of hanging or retrying forever.
            await _all_or_first_error(
                run_lifecycle(
                    clusters[servers].check_at_start,
                    self._bootstrap_servers_id,
                    names,
                    self.start_timeout,
                )
                for servers, names in used_by.items()
            )
            for producer in self._producers:
                producer.cluster = clusters[self.cluster_of(producer.brokers)]
            await _all_or_first_error(
                self._start_consumer(clusters[self.cluster_of(consumer.brokers)], consumer)
                for consumer in self._consumers
            )
        except BaseException:
            await self._stop()
            raise
        self._is_started = True
        for function in self._background_functions:
            task = asyncio.create_task(function(), name=f"fastkafka background {function.__name__}")
            task.add_done_callback(_log_background_end)
            self._background_tasks.append(task)
        if self._background_tasks:
            # Tasks run their first step in the order they were scheduled, before whatever is
            # scheduled after them: one yield to the loop lets each run up to its first
            # suspension, so a caller of `async with app:` finds every task started.
            await asyncio.sleep(0)

    async def _start_consumer(self, cluster: _core.Cluster, spec: ConsumerSpec) -> None:
        settings = spec.settings
        group_id = self._group_of(spec)
        runner = ConsumerRunner(
            spec,
            functools.partial(self._recorder_of, spec.name),
            functools.partial(self._fail, spec),
        )
        consumer_loop = await run_lifecycle(
            cluster.subscribe,
            [spec.topic],
            runner.handle_batch,
            asyncio.get_running_loop(),
            group_id=group_id,
            auto_offset_reset=settings.auto_offset_reset,
            max_poll_records=min(settings.max_poll_records, spec.executor.max_buffer_size),
            commit_interval_ms=settings.commit_interval_ms,
            properties=settings.properties,
            on_failure=functools.partial(self._consumer_ended, spec),
            name=spec.name,
        )
        self._consumer_loops.append((spec, runner, consumer_loop))
        consumer_logger.info(
            "%s: consuming topic '%s' from %s (group_id=%s, auto_offset_reset=%s, "
            "max_poll_records=%s)",
            spec.name,
            spec.topic,
            cluster.bootstrap_servers,
            group_id,
            settings.auto_offset_reset,
            settings.max_poll_records,
        )

    async def _stop(self) -> None:
        tasks, self._background_tasks = self._background_tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        loops, self._consumer_loops = self._consumer_loops, []
        await self._stop_consumers(loops)
        clusters = {id(p.cluster): p.cluster for p in self._producers if p.cluster is not None}
        for producer in self._producers:
            producer.cluster = None
        # Flushing also warns with the number of records that were not delivered.
        await asyncio.gather(*(run_lifecycle(c.flush) for c in clusters.values()))
        self._is_started = False
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure

    async def _stop_consumers(
        self, loops: list[tuple[ConsumerSpec, ConsumerRunner, _core.ConsumerLoop]]
    ) -> None:
        """Stop every consumer loop; each finishes its batch in flight and commits. A batch
        still running after ``stop_timeout`` seconds is abandoned (logged, cancelled, its
        offsets not committed) so that stopping never hangs on a handler that does not
        return."""
        stopping = {
            asyncio.ensure_future(run_lifecycle(consumer_loop.stop)): (spec, runner)
            for spec, runner, consumer_loop in loops
        }
        if not stopping:
            return
        _, pending = await asyncio.wait(stopping, timeout=self.stop_timeout)
        if pending:
            for future in pending:
                stopping[future][1].abandon(self.stop_timeout)
            _, pending = await asyncio.wait(pending, timeout=self.stop_timeout)
        for future, (spec, _) in stopping.items():
            if future in pending:
                consumer_logger.error(
                    "%s: did not stop even after its batch was cancelled; leaving it behind",
                    spec.name,
                )
            elif future.exception() is not None:
                consumer_logger.error(
                    "%s: consumer ended with an error: %s", spec.name, future.exception()
                )
            else:
                consumer_logger.info("%s: stopped consuming topic '%s'", spec.name, spec.topic)

    def _fail(self, spec: ConsumerSpec, error: BaseException) -> None:
        """A consumer is ending on an error (its handler raised with throw_exceptions=True, or
        raised a ``BaseException``): remember the first such error for ``wait_for_failure``
        and for ``async with app:`` to raise on exit."""
        consumer_logger.error("%s: stopping this consumer: %r", spec.name, error)
        if self._failure is None:
            self._failure = error
        if self._failed is not None:
            self._failed.set()

    def _consumer_ended(self, spec: ConsumerSpec, message: str) -> None:
        """Called on the event loop when a consumer loop ended without being stopped."""
        if self._failure is None:
            self._fail(spec, HandlerError(f"consumer '{spec.name}' ended: {message}"))

    async def wait_for_failure(self) -> BaseException:
        """Wait until a consumer ends other than by stopping — its handler raised with
        ``throw_exceptions=True`` or raised a ``BaseException`` (``SystemExit``, a stray
        ``CancelledError``), or its loop failed — and return why."""
        if self._failed is None:
            raise AppNotStartedError("the app is not running")
        await self._failed.wait()
        assert self._failure is not None
        return self._failure

    async def __aenter__(self) -> FastKafka:
        if self.lifespan is not None:
            context = self.lifespan(self)
            await context.__aenter__()
            self._lifespan_context = context
        try:
            await self._start()
        except BaseException as error:
            await self._exit_lifespan(type(error), error, error.__traceback__)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            await self._stop()
        finally:
            await self._exit_lifespan(exc_type, exc, traceback)

    async def _exit_lifespan(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        context, self._lifespan_context = self._lifespan_context, None
        if context is not None:
            await context.__aexit__(exc_type, exc, traceback)

    def __repr__(self) -> str:
        return (
            f"FastKafka(title={self.title!r}, environment={self._bootstrap_servers_id!r}, "
            f"consumers={[s.name for s in self._consumers]}, "
            f"producers={[s.name for s in self._producers]})"
        )


async def _all_or_first_error(steps: Iterable[Awaitable[Any]]) -> None:
    """Run ``steps`` concurrently, let every one finish (so a rollback sees all that
    started), then raise the first error."""
    results = await asyncio.gather(*steps, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


def _log_background_end(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("%s failed", task.get_name(), exc_info=task.exception())
