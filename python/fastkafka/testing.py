"""Testing FastKafka apps: :class:`Tester` runs apps on a fresh in-memory broker.

The broker lives in Rust (``_core.MemoryBroker``) and keeps one isolated set of topics per
cluster, so a multi-cluster app is tested with its real topology: a message sent to
``preprocessed_signals`` on one cluster reaches only the consumer bound to that cluster.

The Tester swaps the app's transport through the seam (``app.use_transport``); nothing is
patched. As in FastKafka, the Tester is an app of its own whose functions are *mirrors*,
registered on an app runtime of their own (``_core.Runtime``, the one apps run on) and
started before the apps, so that nothing the apps produce is missed:

- for each (topic, cluster) the apps consume, a mirror producer ``to_<topic>``:
  ``tester.mirrors[app.on_x]`` sends what it is given there — an object of the consumer's
  declared type with the consumer's codec, anything else (another model, a dict, an
  unvalidated ``model_construct``) as JSON, ``bytes`` as they are — so tests can feed an app
  bad input;
- for each (topic, cluster) the apps produce to, a mirror consumer ``on_<topic>`` that reads it;
  ``tester.mirrors[app.to_x]`` is an :class:`~fastkafka._mocks.AwaitedMock` of what it
  received, decoded with the producer's codec.

``tester.mocks.<name>`` / ``tester.awaited_mocks.<name>`` record the mirrors' calls, and
``tester.to_<topic>(msg)`` / ``tester.on_<topic>`` are the mirrors themselves (``.`` and ``-``
in topic names read as ``_``). When a topic lives on several clusters its name is ambiguous:
reading it raises, naming the functions; ``tester.mirrors[app.function]`` always works.

Entering returns once every consumer is subscribed and assigned, so the first message a test
sends is already seen; there are no fixed sleeps.

``Tester(app).using_external_broker(bootstrap_servers_id=...)`` runs the same test on the apps'
default transport: the real clusters an environment names, or the broker of an enclosing
:class:`InMemoryBroker` (``use_in_memory_broker=False`` does the same for a plain
``async with``); mirrors then read only records produced after they started.
:class:`InMemoryBroker` makes every app started outside a Tester run in memory.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, TypeVar

from . import _core
from ._app import FastKafka
from ._codecs import make_decoder
from ._handlers import ConsumerSpec, ProducerSpec
from ._lifecycle import InMemoryBroker, Transport, default_transport
from ._mirrors import MirrorConsumer, MirrorProducer, mirror_codec
from ._mocks import AwaitedMock, MockNamespace
from ._threads import run_lifecycle
from .exceptions import ConfigError, ConsumerEndedError, HandlerError
from .failures import DeadLetter

__all__ = ["InMemoryBroker", "Tester", "tester_fixture"]

logger = logging.getLogger("fastkafka.testing")


S = TypeVar("S", ConsumerSpec, ProducerSpec)


def _consumers(app: FastKafka) -> Sequence[ConsumerSpec]:
    return app.consumer_specs


def _producers(app: FastKafka) -> Sequence[ProducerSpec]:
    return app.producer_specs


# FastKafka's Tester is itself an app; these parts of an app's API have no meaning on ours.
_APP_ONLY = frozenset(
    {
        "consumes",
        "produces",
        "run_in_background",
        "benchmark",
        "fastapi_lifespan",
        "create_docs",
        "use_transport",
        "use_default_groups",
        "wait_for_failure",
    }
)


class Tester:
    """Runs one app, or several, on a fresh in-memory broker for the ``async with`` block.

    As in FastKafka, the Tester is an app of its own: a mirror consumer ``on_<topic>`` for
    every (topic, cluster) the apps produce to and a mirror producer ``to_<topic>`` for every
    (topic, cluster) they consume from, with ``tester.mocks`` / ``tester.awaited_mocks``
    recording them, plus ``is_started``, ``set_kafka_broker``, ``benchmark_results``,
    ``get_topics``, ``kafka_brokers`` and ``bootstrap_servers_id``.
    """

    # Test modules import Tester by name; this keeps pytest from trying to collect it.
    __test__ = False

    def __init__(
        self,
        app: FastKafka | Sequence[FastKafka],
        *,
        use_in_memory_broker: bool = True,
    ) -> None:
        self.apps: list[FastKafka] = [app] if isinstance(app, FastKafka) else list(app)
        if not self.apps:
            raise ConfigError("Tester needs at least one app")
        self.use_in_memory_broker = use_in_memory_broker
        self._environment: str | None = None
        self.mirrors: dict[Callable[..., Any], Any] = {}
        self.mocks = MockNamespace({})
        self.awaited_mocks = MockNamespace({})
        # The in-memory broker of the current entry (None when testing on real clusters).
        self.broker: _core.MemoryBroker | None = None
        self._transport: Transport | None = None
        self._previous_environments: list[str] = []
        self._mirror_consumers: list[MirrorConsumer] = []
        self._mirror_producers: list[MirrorProducer] = []
        self._mirrors_running: _core.RunningRuntime | None = None
        self._previous_transports: list[Transport | None] = []
        self._started: list[FastKafka] = []
        self._is_started = False
        # Mirrors by name (to_<topic>, on_<topic>); a name with several is ambiguous.
        self._by_name: dict[str, list[MirrorProducer | MirrorConsumer]] = {}

    # -- what a test reads on an app -------------------------------------------------------

    @property
    def is_started(self) -> bool:
        """Whether the Tester is entered (its apps and mirrors running)."""
        return self._is_started

    @property
    def bootstrap_servers_id(self) -> str:
        """The environment the apps run in: the one selected with :meth:`set_kafka_broker`
        (or ``using_*_broker``), else the first app's."""
        return self._environment or self.apps[0].bootstrap_servers_id

    @property
    def kafka_brokers(self) -> _core.KafkaBrokers:
        """The first app's default clusters (FastKafka's Tester took them from it too)."""
        return self.apps[0].kafka_brokers

    def set_kafka_broker(self, kafka_broker_name: str) -> None:
        """Run the apps in environment ``kafka_broker_name`` from the next entry on."""
        if self._is_started:
            raise RuntimeError("set_kafka_broker() cannot be called while the Tester is running")
        for app in self.apps:
            known = app.kafka_brokers.environments()
            if kafka_broker_name not in known:
                raise ConfigError(
                    f"Given kafka_broker_name '{kafka_broker_name}' is not found in the "
                    f"kafka_brokers of {app!r}; known environments: {known}"
                )
        self._environment = kafka_broker_name

    @property
    def benchmark_results(self) -> dict[str, dict[str, Any]]:
        """The ``@app.benchmark`` results of the apps under test, by function (mirrors are
        not benchmarked)."""
        results: dict[str, dict[str, Any]] = {}
        for app in self.apps:
            results.update(app.benchmark_results)
        return results

    def get_topics(self) -> set[str]:
        """Every topic the mirrors read or write: those of the apps under test."""
        return set().union(*(app.get_topics() for app in self.apps))

    def create_mocks(self) -> None:
        """Nothing to do: a Tester's mirrors always record into ``tester.mocks``."""

    def dead_letters(self, consumer: Callable[..., Any] | str) -> list[DeadLetter]:
        """What ``consumer`` (the decorated function, or its name) sent to its dead-letter
        topic so far, oldest first per partition."""
        if self.broker is None:
            raise RuntimeError("dead_letters() reads the in-memory broker: enter the Tester first")
        name = consumer if isinstance(consumer, str) else consumer.__name__
        return _core.dead_letters([app._runtime for app in self.apps], self.broker, name)

    async def wait_for_dead_letters(
        self,
        consumer: Callable[..., Any] | str,
        count: int = 1,
        timeout: float = 5.0,  # noqa: ASYNC109 (FastKafka's assertion style)
    ) -> list[DeadLetter]:
        """Waits until ``consumer`` dead-lettered at least ``count`` messages and returns them
        all; raises ``TimeoutError`` naming what arrived if that takes over ``timeout`` s."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            letters = self.dead_letters(consumer)
            if len(letters) >= count:
                return letters
            if asyncio.get_running_loop().time() >= deadline:
                raise TimeoutError(
                    f"{len(letters)} dead letter(s) of {consumer!r} after {timeout} s, "
                    f"expected {count}: {letters}"
                )
            await asyncio.sleep(0.005)  # the broker is in this process: look again soon

    # -- entering and leaving ----------------------------------------------------------------

    @asynccontextmanager
    async def using_inmemory_broker(
        self, bootstrap_servers_id: str | None = None
    ) -> AsyncIterator[Tester]:
        """Run the test on a fresh in-memory broker (the default), optionally selecting the
        apps' environment; the previous settings are restored on exit."""
        async with self._configured(True, bootstrap_servers_id):
            yield self

    @asynccontextmanager
    async def using_external_broker(
        self, bootstrap_servers_id: str | None = None
    ) -> AsyncIterator[Tester]:
        """Run the same test on the apps' default transport — the real clusters the
        environment names (their topics must exist), or the broker of an enclosing
        :class:`InMemoryBroker`; mirrors read only what is produced after they start."""
        async with self._configured(False, bootstrap_servers_id):
            yield self

    @asynccontextmanager
    async def _configured(
        self, in_memory: bool, bootstrap_servers_id: str | None
    ) -> AsyncIterator[None]:
        previous = (self.use_in_memory_broker, self._environment)
        self.use_in_memory_broker = in_memory
        if bootstrap_servers_id is not None:
            self.set_kafka_broker(bootstrap_servers_id)
        try:
            async with self:
                yield
        finally:
            self.use_in_memory_broker, self._environment = previous

    async def __aenter__(self) -> Tester:
        if self._is_started:
            raise RuntimeError("the Tester is already running")
        if self.use_in_memory_broker:
            self.broker = _core.MemoryBroker()
            self._transport = self.broker
        else:
            self.broker = None
            self._transport = default_transport()
        self.mirrors = {}
        try:
            for app in self.apps:
                self._previous_transports.append(app.transport)
                self._previous_environments.append(app.bootstrap_servers_id)
                if self._environment is not None:
                    app.set_kafka_broker(self._environment)
                app.use_transport(self._transport)
                app.create_mocks()
            self._mirrors_running = await run_lifecycle(
                self._mirror_runtime().start,
                self._transport,
                asyncio.get_running_loop(),
                self._mirror_ended,
            )
            for app in self.apps:
                await app.__aenter__()
                self._started.append(app)
            self._name_mirrors()
        except BaseException:
            await self._teardown()
            raise
        self._is_started = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._teardown(exc_type, exc, traceback)

    def _mirror_runtime(self) -> _core.Runtime:
        """The mirrors the engine derives from the apps' registrations (one per role, cluster
        and topic, bound to the cluster of the functions it mirrors in the apps' current
        environment), on a runtime of their own; here each gets its recorder."""
        self._mirror_consumers, self._mirror_producers = [], []
        runtime, mirrors = _core.mirror_runtime(
            [app._runtime for app in self.apps], self.use_in_memory_broker, self._reader
        )
        for mirror in mirrors:
            if mirror.producer is not None:
                spec = self._served(mirror.serves[0], _consumers)
                producer = MirrorProducer(mirror, mirror.producer, spec)
                self._mirror_producers.append(producer)
                for served in mirror.serves:
                    self.mirrors[self._served(served, _consumers).function] = producer
        for consumer in self._mirror_consumers:
            for served in consumer.mirror.serves:
                self.mirrors[self._served(served, _producers).function] = consumer.awaited
        return runtime

    def _reader(self, mirror: _core.Mirror) -> Any:
        """A read mirror's batch handler: records what the first producer it serves would
        decode."""
        spec = self._served(mirror.serves[0], _producers)
        decode = make_decoder(mirror_codec(spec.codec), spec.message_type)
        consumer = MirrorConsumer(mirror, decode)
        self._mirror_consumers.append(consumer)
        return consumer.handle_batch

    def _served(self, served: tuple[int, str], specs: Callable[[FastKafka], Sequence[S]]) -> S:
        """The spec, among ``specs(app)``, of an app function a mirror serves: (the index of
        its app, its name)."""
        index, name = served
        return next(spec for spec in specs(self.apps[index]) if spec.name == name)

    def _mirror_ended(self, name: str, error: ConsumerEndedError) -> None:
        """A mirror consumer stopped (a mock's side effect raised): the test sees no more of
        its topic, so say why."""
        logger.error("mirror %s stopped: %s", name, error.__cause__ or error)

    def _name_mirrors(self) -> None:
        """``tester.mocks`` / ``tester.awaited_mocks`` and the ``to_<topic>`` / ``on_<topic>``
        shorthands, by mirror name; a name that mirrors on several clusters share is
        ambiguous."""
        self._by_name = {}
        mirrors: list[MirrorProducer | MirrorConsumer] = [
            *self._mirror_producers,
            *self._mirror_consumers,
        ]
        for mirror in mirrors:
            self._by_name.setdefault(mirror.recorder.name, []).append(mirror)
        unique = {name: found[0] for name, found in self._by_name.items() if len(found) == 1}
        ambiguous = {
            name: self._ambiguity(name) for name, found in self._by_name.items() if len(found) > 1
        }
        self.mocks = MockNamespace({n: m.recorder.mock for n, m in unique.items()}, ambiguous)
        self.awaited_mocks = MockNamespace(
            {n: AwaitedMock(m.recorder) for n, m in unique.items()}, ambiguous
        )

    def _ambiguity(self, name: str) -> str:
        mirrors = self._by_name[name]
        functions = [function for mirror in mirrors for function in mirror.functions]
        return (
            f"Ambiguous topic: {mirrors[0].topic}, for functions: {functions}\n"
            "Use Tester.mirrors[app.function] to resolve ambiguity"
        )

    async def _teardown(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        self._is_started = False
        try:
            while self._started:
                await self._started.pop().__aexit__(exc_type, exc, traceback)
        finally:
            mirrors, self._mirrors_running = self._mirrors_running, None
            try:
                if mirrors is not None:
                    await run_lifecycle(mirrors.stop)
            except HandlerError:
                pass  # a mirror that failed was reported when it stopped
            finally:
                self._restore_apps()

    def _restore_apps(self) -> None:
        """Give the apps back their transport, environment and unmocked functions."""
        restore = zip(
            self.apps, self._previous_transports, self._previous_environments, strict=False
        )
        for app, transport, environment in restore:
            app.use_transport(transport)
            app.remove_mocks()
            if app.bootstrap_servers_id != environment:
                try:
                    app.set_kafka_broker(environment)
                except ConfigError:
                    # Built with an environment its kafka_brokers lack, the app could not
                    # start outside the Tester anyway; it keeps the Tester's.
                    logger.warning(
                        "%r keeps environment %r: its own, %r, is not in its kafka_brokers",
                        app,
                        app.bootstrap_servers_id,
                        environment,
                    )
        self._previous_transports = []
        self._previous_environments = []

    def __getattr__(self, name: str) -> Any:
        if name.startswith(("to_", "on_")):
            found = self._by_name.get(name)
            if not found:
                kind = "consumes from" if name.startswith("to_") else "produces to"
                raise AttributeError(
                    f"'Tester' object has no attribute '{name}': no app {kind} a topic named "
                    f"'{name[3:]}' (is the Tester entered?)"
                )
            if len(found) > 1:
                raise RuntimeError(self._ambiguity(name))
            mirror = found[0]
            return mirror.awaited if isinstance(mirror, MirrorConsumer) else mirror
        if name in _APP_ONLY:
            raise AttributeError(
                f"'Tester' object has no attribute '{name}': a Tester's consumers and "
                f"producers are the mirrors of the apps it tests; use {name} on the app"
            )
        raise AttributeError(f"'Tester' object has no attribute '{name}'")


def tester_fixture(app: FastKafka | Sequence[FastKafka], name: str = "tester") -> Any:
    """A pytest fixture (needs pytest-asyncio) that yields an entered :class:`Tester` of
    ``app`` to each test that asks for ``name``. One line in a ``conftest.py``::

        tester = tester_fixture(app)

    then ``async def test_x(tester): await tester.to_topic(msg)``.
    """
    import pytest_asyncio  # imported here: only test suites need it

    async def fixture() -> AsyncIterator[Tester]:
        async with Tester(app) as tester:
            yield tester

    fixture.__name__ = name
    return pytest_asyncio.fixture(fixture, name=name)


# Its name starts with "test"; keep pytest from collecting it where it is imported.
tester_fixture.__test__ = False  # type: ignore[attr-defined]
