"""``FastKafka``: the application object, its decorators and its lifecycle.

The app is a facade over the engine's app runtime (``_core.Runtime``, the same one Rust apps
run on): decorating builds a spec (``_handlers``) and registers the function with the runtime,
handing over its client options as given; starting and stopping are the runtime's — clusters
checked, consumers subscribed concurrently with rollback, supervision, ordered stop with
abandon, flush. What stays here is Python's: decorators, mocks, background tasks, lifespans,
and the error a failing handler raised.

The app runs on a *transport* — the in-memory broker under ``Tester``, real Kafka otherwise —
and never knows which one it got. Consumer loops run in Rust and hand records over a batch at
a time to :class:`ConsumerRunner`; what it cannot process goes to ``fastkafka.failures``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from . import _core
from ._benchmark import counted
from ._docs import message_doc
from ._handlers import ConsumerSpec, ProducerSpec, hand_over, topic_from_name
from ._lifecycle import AppRun, Transport, check_token_provider, default_transport
from ._mocks import AwaitedMock, CallRecorder, MockNamespace
from ._runner import ConsumerRunner, RebalanceHook
from ._sending import sending_function
from .exceptions import ConfigError
from .executors import Executor, executor_from
from .failures import RetryPolicy

if TYPE_CHECKING:
    from .tracing import Tracing

__all__ = ["FastKafka"]


F = TypeVar("F", bound=Callable[..., Any])
Lifespan = Callable[["FastKafka"], AbstractAsyncContextManager[Any]]


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
        polling_ttl: float | None = None,
        consuming_ttl: float | None = None,
        failover_after: float | None = None,
        failover_rewind: float | None = None,
        failback: bool | None = None,
        **kwargs: Any,
    ) -> None:
        self.title = title or ""
        self.description = description or ""
        self.version = version or ""
        self.contact = contact
        self.root_path = root_path
        self.lifespan = lifespan
        # aiokafka's token provider: every client of the app gets its tokens from it.
        self._token_provider = kwargs.pop("sasl_oauth_token_provider", None)
        # Where kafka_brokers names a standby: when to move to it and back, how far consumers
        # rewind there (docs: production). Options like the others: decorators override them.
        failover = {
            "failover_after": failover_after,
            "failover_rewind": failover_rewind,
            "failback": failback,
        }
        kwargs.update({name: value for name, value in failover.items() if value is not None})
        if self._token_provider is not None:
            check_token_provider(self._token_provider)
        self._kafka_brokers = (
            _core.KafkaBrokers.localhost()
            if kafka_brokers is None
            else _core.KafkaBrokers(kafka_brokers)
        )
        # Registrations, client options (checked here, in FastKafka's names), timeouts, start
        # and stop: the engine's app runtime, shared with Rust apps.
        self._runtime = _core.Runtime(
            self._kafka_brokers,
            bootstrap_servers_id,
            kwargs,
            start_timeout=start_timeout,
            stop_timeout=stop_timeout,
        )
        self._runtime.set_health_limits(polling_ttl, consuming_ttl)
        self.benchmark_results: dict[str, dict[str, Any]] = {}
        self._consumers: list[ConsumerSpec] = []
        self._producers: list[ProducerSpec] = []
        self._transport: Transport | None = None
        # The current run: started, supervised and stopped on the runtime.
        self._run = AppRun()
        self._recorders: dict[str, CallRecorder] | None = None
        # OpenTelemetry spans, once fastkafka.tracing.instrument(app) is called.
        self._tracing: Tracing | None = None
        self._background_functions: list[Callable[[], Coroutine[Any, Any, Any]]] = []
        self._lifespan_context: AbstractAsyncContextManager[Any] | None = None
        self.mocks = MockNamespace({})
        self.awaited_mocks = MockNamespace({})

    # -- configuration ---------------------------------------------------------------------

    @property
    def stop_timeout(self) -> float:
        """How long stopping may take in all, flushes included (seconds; docs: delivery)."""
        return self._runtime.stop_timeout

    @stop_timeout.setter
    def stop_timeout(self, seconds: float) -> None:
        self._runtime.stop_timeout = seconds

    @property
    def start_timeout(self) -> float:
        """How long starting may take in all: clusters answering, consumers subscribed (s)."""
        return self._runtime.start_timeout

    @start_timeout.setter
    def start_timeout(self, seconds: float) -> None:
        self._runtime.start_timeout = seconds

    @property
    def kafka_brokers(self) -> _core.KafkaBrokers:
        """The app's default clusters, by environment."""
        return self._kafka_brokers

    @property
    def bootstrap_servers_id(self) -> str:
        """The environment whose clusters the app uses."""
        return self._runtime.environment

    def set_kafka_broker(self, kafka_broker_name: str) -> None:
        """Select the environment (a key of ``kafka_brokers``) for every cluster of the app."""
        if self._run.is_started:
            raise RuntimeError("set_kafka_broker() cannot be called while the app is running")
        self._runtime.set_environment(kafka_broker_name)

    def cluster_id(self, brokers: _core.KafkaBrokers | None) -> str:
        """The bootstrap servers a handler with ``brokers`` uses in the chosen environment."""
        return self._runtime.cluster_id(brokers)

    def get_topics(self) -> set[str]:
        """Every topic the app consumes from or produces to."""
        return set(self._runtime.topics())

    @property
    def consumer_specs(self) -> tuple[ConsumerSpec, ...]:
        """What ``@app.consumes`` registered, in order (read by ``Tester`` for its mirrors)."""
        return tuple(self._consumers)

    @property
    def producer_specs(self) -> tuple[ProducerSpec, ...]:
        """What ``@app.produces`` registered, in order (read by ``Tester`` for its mirrors)."""
        return tuple(self._producers)

    def use_transport(self, transport: Transport | None) -> None:
        """Run on ``transport`` from the next start; ``None`` means real Kafka."""
        if self._run.is_started:
            raise RuntimeError("the transport cannot change while the app is running")
        self._transport = transport

    @property
    def transport(self) -> Transport | None:
        """The transport set with :meth:`use_transport`, or ``None`` for real Kafka."""
        return self._transport

    @staticmethod
    def _brokers(brokers: Mapping[str, Any] | None) -> _core.KafkaBrokers | None:
        """A decorator's ``brokers=`` as the engine reads it (it checks them at registration)."""
        return None if brokers is None else _core.KafkaBrokers(brokers)

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
        retry: RetryPolicy | None = None,
        dead_letter_topic: str | None = None,
        dead_letter_brokers: Mapping[str, Any] | None = None,
        on_partitions_assigned: RebalanceHook | None = None,
        on_partitions_revoked: RebalanceHook | None = None,
        **kwargs: Any,
    ) -> Callable[[F], F]:
        """Register a function that handles the messages of ``topic`` (default: the function's
        name without ``prefix``) on the app's cluster, or on ``brokers`` when given.

        What it cannot process (see ``fastkafka.failures``): a failure ``retry`` covers is
        retried in place; then, and at once for a message that cannot be decoded, the message
        goes to ``dead_letter_topic`` (on the consumer's cluster, or ``dead_letter_brokers``')
        or, without one, is logged and skipped. ``on_partitions_assigned`` and
        ``on_partitions_revoked`` are called (awaited if async) with a
        :class:`PartitionsChanged` between batches (see ``docs/handlers.md``)."""
        chosen_executor = executor_from(executor)
        override = self._brokers(brokers)
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise ConfigError(f"retry must be a fastkafka.RetryPolicy, got {type(retry).__name__}")
        dead_letter_override = self._brokers(dead_letter_brokers)

        def decorator(function: F) -> F:
            spec = ConsumerSpec.build(
                function,
                topic=topic_from_name(function, topic, prefix),
                decoder=decoder,
                executor=chosen_executor,
                retry=retry,
            )
            runner = ConsumerRunner(
                spec,
                functools.partial(self._recorder_of, spec.name),
                functools.partial(self._run.fail, spec.name),
                lambda: self._tracing,
                (on_partitions_assigned, on_partitions_revoked),
            )
            self._runtime.add_consumer(
                spec.name,
                spec.topic,
                runner.handle_batch,
                brokers=override,
                options=kwargs,
                on_abandon=runner.abandon,
                max_poll_records_cap=chosen_executor.max_buffer_size,
                hand_over=hand_over(spec, chosen_executor),
                retry=None if retry is None else retry.as_engine_args(),
                dead_letter_topic=dead_letter_topic,
                dead_letter_brokers=dead_letter_override,
                on_partitions_changed=runner.partitions_changed if runner.has_hooks else None,
                description=description or inspect.getdoc(function),
                message=functools.partial(message_doc, spec),
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
        override = self._brokers(brokers)

        def decorator(function: F) -> F:
            spec = ProducerSpec.build(
                function, topic=topic_from_name(function, topic, prefix), encoder=encoder
            )
            producer = self._runtime.add_producer(
                spec.name,
                spec.topic,
                brokers=override,
                options=kwargs,
                description=description or inspect.getdoc(function),
                message=functools.partial(message_doc, spec),
            )
            spec.producer = producer
            self._producers.append(spec)

            send_result = sending_function(self, spec, function)
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
            return counted(function, seconds, sliding_window_size, self.benchmark_results)

        return decorator

    def fastapi_lifespan(
        self, kafka_broker_name: str
    ) -> Callable[[Any], AbstractAsyncContextManager[None]]:
        """An ASGI lifespan running this app on ``kafka_broker_name``'s clusters for the web
        app's lifetime: ``FastAPI(lifespan=kafka_app.fastapi_lifespan("production"))``."""

        @asynccontextmanager
        async def lifespan(_web_app: Any) -> AsyncIterator[None]:
            self.set_kafka_broker(kafka_broker_name)
            async with self:
                yield

        return lifespan

    def create_docs(self, asyncapi_version: str = "2.6") -> None:
        """Write the app's AsyncAPI spec to ``<root_path>/asyncapi/spec/asyncapi.yml`` and its
        HTML page to ``<root_path>/asyncapi/docs/index.html`` (``root_path``: the app's, else
        the working directory): every cluster's servers, a channel per (topic, cluster)."""
        from ._docs import write_docs  # imported when asked: most runs never write docs

        write_docs(self, self.root_path, asyncapi_version)

    def use_default_groups(self, prefix: str | None) -> None:
        """Give every consumer without a ``group_id`` the group ``<prefix>.<function name>``.

        ``fastkafka run`` sets this so that its worker processes share the partitions of each
        consumer instead of each processing every message; ``None`` restores FastKafka's
        behaviour (no group: read every partition).
        """
        self._runtime.set_default_group_prefix(prefix)

    # -- mocks -------------------------------------------------------------------------------

    def create_mocks(self) -> None:
        """Record every call of the app's functions in ``app.mocks`` / ``app.awaited_mocks``."""
        self._recorders = {
            s.name: CallRecorder(s.name, is_async=s.is_async, decode=s.redecode)
            for s in self._consumers
        }
        self._recorders.update({s.name: CallRecorder(s.name) for s in self._producers})
        self.mocks = MockNamespace({n: r.mock for n, r in self._recorders.items()})
        self.awaited_mocks = MockNamespace({n: AwaitedMock(r) for n, r in self._recorders.items()})

    def remove_mocks(self) -> None:
        """Stop recording calls (what ``Tester`` does on exit); ``app.mocks`` keep what they
        recorded."""
        self._recorders = None

    def _recorder_of(self, name: str) -> CallRecorder | None:
        """The recorder of function ``name`` while mocks are on, else None."""
        return None if self._recorders is None else self._recorders[name]

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def is_started(self) -> bool:
        """Whether the app is running."""
        return self._run.is_started

    async def _start(self) -> None:
        transport = self._transport or default_transport(self._token_provider)
        await self._run.start(self._runtime, transport, self._background_functions)

    async def _stop(self) -> None:
        await self._run.stop()

    def seek(self, consumer: str, partition: int, offset: int) -> None:
        """Make consumer ``consumer`` (its function's name) read ``partition`` from ``offset``
        on — replay or skip — before it hands over another record of it; from a rebalance hook
        or anywhere while the app runs. Its stored and committed offsets follow."""
        self._run.seek(consumer, partition, offset)

    def health(self) -> dict[str, Any]:
        """Liveness and readiness now, and why, as a JSON-ready dict (``live``, ``ready``,
        ``state``, ``problems``, ``consumers``, ``clusters``); see ``fastkafka.health``."""
        return self._run.health()

    def set_health_limits(self, polling_ttl: float | None, consuming_ttl: float | None) -> None:
        """Liveness limits in seconds for the next start (``None``: max_poll_interval_ms)."""
        self._runtime.set_health_limits(polling_ttl, consuming_ttl)

    async def wait_for_failure(self) -> BaseException:
        """Wait until a consumer ends other than by stopping — its handler raised with
        ``throw_exceptions=True`` or raised a ``BaseException`` (``SystemExit``, a stray
        ``CancelledError``), or its loop failed — and return why."""
        return await self._run.wait_for_failure()

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
            f"FastKafka(title={self.title!r}, environment={self.bootstrap_servers_id!r}, "
            f"consumers={[s.name for s in self._consumers]}, "
            f"producers={[s.name for s in self._producers]})"
        )
