"""Testing FastKafka apps: :class:`Tester` runs apps on a fresh in-memory broker.

The broker lives in Rust (``_core.MemoryBroker``) and keeps one isolated set of topics per
cluster, so a multi-cluster app is tested with its real topology: a message sent to
``preprocessed_signals`` on one cluster reaches only the consumer bound to that cluster.

The Tester swaps the app's transport through the seam (``app.use_transport``); nothing is
patched. It adds *mirrors*:

- for each consumer ``app.on_x`` on (topic, cluster), ``tester.mirrors[app.on_x]`` is a coroutine
  function that sends a message there, encoded with that consumer's codec;
- for each producer ``app.to_x`` on (topic, cluster), a mirror consumer reads that topic on that
  cluster, and ``tester.mirrors[app.to_x]`` is an :class:`~fastkafka._mocks.AwaitedMock` of what
  it received, decoded with the producer's codec.

``tester.to_<topic>(msg)`` and ``tester.on_<topic>`` are shorthands for the mirrors of the one
consumer or producer on that topic (``.`` and ``-`` in topic names read as ``_``); when the topic
lives on several clusters the shorthand is ambiguous and raises, naming the functions.

Entering returns once every consumer is subscribed and assigned, so the first message a test
sends is already seen; there are no fixed sleeps.

``Tester(app).using_external_broker(bootstrap_servers_id=...)`` runs the same test against the
real clusters an environment names (``use_in_memory_broker=False`` does the same for a plain
``async with``); mirrors then read only records produced after they started.
:class:`InMemoryBroker` makes every app started outside a Tester run in memory.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any

from . import _core
from ._app import FastKafka, Transport, _kafka_transport, set_default_transport
from ._codecs import Decode, Encode, make_decoder, make_encoder
from ._handlers import ConsumerSpec, ProducerSpec
from ._mocks import AwaitedMock, CallRecorder

__all__ = ["InMemoryBroker", "Tester", "tester_fixture"]

logger = logging.getLogger("fastkafka.testing")


def _sugar_name(topic: str) -> str:
    return topic.replace(".", "_").replace("-", "_")


def _mirror_codec(codec: str | Callable[..., Any]) -> str:
    # A custom codec has no known inverse; mirrors then speak JSON.
    return codec if isinstance(codec, str) else "json"


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


class _MirrorProducer:
    """Sends messages to the (topic, cluster) an app consumer reads."""

    def __init__(self, cluster: _core.Cluster, topic: str, encode: Encode, names: str) -> None:
        self._cluster = cluster
        self._topic = topic
        self._encode = encode
        self.__name__ = f"mirror of {names}"

    @property
    def bootstrap_servers(self) -> str:
        """The cluster this mirror sends to."""
        return self._cluster.bootstrap_servers

    async def __call__(self, message: Any, key: bytes | None = None) -> Any:
        """Send ``message`` (a list is sent as one batch) and return it."""
        items = message if isinstance(message, list) else [message]
        self._cluster.produce(self._topic, [(key, self._encode(item), None) for item in items])
        return message


class _MirrorConsumer:
    """Reads the (topic, cluster) an app producer writes to and records each message."""

    def __init__(self, cluster: _core.Cluster, topic: str, decode: Decode, name: str) -> None:
        self.cluster = cluster
        self.topic = topic
        self._decode = decode
        self.recorder = CallRecorder(name)
        self.awaited = AwaitedMock(self.recorder)
        self.loop: _core.ConsumerLoop | None = None

    async def handle_batch(self, records: list[_core.Record]) -> None:
        for record in records:
            try:
                self._decode(record.value)
            except Exception as error:
                logger.error(
                    "%s: the app produced a record that cannot be decoded "
                    "(topic=%s partition=%d offset=%d): %s",
                    self.recorder.name,
                    record.topic,
                    record.partition,
                    record.offset,
                    error,
                )
                continue
            self.recorder.record_encoded(self._decode, record.value)


class Tester:
    """Runs one app, or several, on a fresh in-memory broker for the ``async with`` block."""

    # Test modules import Tester by name; this keeps pytest from trying to collect it.
    __test__ = False

    def __init__(
        self,
        app: FastKafka | Sequence[FastKafka],
        *,
        use_in_memory_broker: bool = True,
    ) -> None:
        self.apps: list[FastKafka] = [app] if isinstance(app, FastKafka) else list(app)
        self.use_in_memory_broker = use_in_memory_broker
        self.bootstrap_servers_id: str | None = None
        self.mirrors: dict[Callable[..., Any], Any] = {}
        # The in-memory broker of the current entry (None when testing on real clusters).
        self.broker: _core.MemoryBroker | None = None
        self._transport: Transport | None = None
        self._previous_environments: list[str] = []
        self._mirror_consumers: list[_MirrorConsumer] = []
        self._previous_transports: list[Transport | None] = []
        self._started: list[FastKafka] = []
        self._consumers_by_topic: dict[str, list[tuple[FastKafka, ConsumerSpec, str]]] = {}
        self._producers_by_topic: dict[str, list[tuple[FastKafka, ProducerSpec, str]]] = {}

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
        """Run the same test against the real clusters the environment names (their topics
        must exist); mirrors read only what is produced after they start."""
        async with self._configured(False, bootstrap_servers_id):
            yield self

    @asynccontextmanager
    async def _configured(
        self, in_memory: bool, bootstrap_servers_id: str | None
    ) -> AsyncIterator[None]:
        previous = (self.use_in_memory_broker, self.bootstrap_servers_id)
        self.use_in_memory_broker, self.bootstrap_servers_id = in_memory, bootstrap_servers_id
        try:
            async with self:
                yield
        finally:
            self.use_in_memory_broker, self.bootstrap_servers_id = previous

    async def __aenter__(self) -> Tester:
        if self.use_in_memory_broker:
            self.broker = _core.MemoryBroker()
            self._transport = self.broker
        else:
            self.broker = None
            self._transport = _kafka_transport()
        self.mirrors = {}
        self._consumers_by_topic = {}
        self._producers_by_topic = {}
        try:
            for app in self.apps:
                self._previous_transports.append(app.transport)
                self._previous_environments.append(app.bootstrap_servers_id)
                if self.bootstrap_servers_id is not None:
                    app.set_kafka_broker(self.bootstrap_servers_id)
                app.use_transport(self._transport)
                app.create_mocks()
            await self._start_mirror_consumers()
            for app in self.apps:
                await app.__aenter__()
                self._started.append(app)
            self._create_mirror_producers()
        except BaseException:
            await self._teardown()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._teardown(exc_type, exc, traceback)

    async def _start_mirror_consumers(self) -> None:
        assert self._transport is not None
        by_destination: dict[tuple[str, str], _MirrorConsumer] = {}
        for app in self.apps:
            for spec in app._producers:
                servers = app.cluster_of(spec.brokers)
                mirror = by_destination.get((servers, spec.topic))
                if mirror is None:
                    decode = make_decoder(_mirror_codec(spec.codec), spec.message_type)
                    mirror = _MirrorConsumer(
                        self._transport.cluster(servers),
                        spec.topic,
                        decode,
                        f"mirror of {spec.name}",
                    )
                    # On a real cluster, earlier runs' records are not this test's.
                    mirror.loop = await asyncio.to_thread(
                        mirror.cluster.subscribe,
                        [spec.topic],
                        mirror.handle_batch,
                        asyncio.get_running_loop(),
                        auto_offset_reset="earliest" if self.use_in_memory_broker else "latest",
                    )
                    by_destination[(servers, spec.topic)] = mirror
                    self._mirror_consumers.append(mirror)
                self.mirrors[spec.function] = mirror.awaited
                self._producers_by_topic.setdefault(_sugar_name(spec.topic), []).append(
                    (app, spec, servers)
                )

    def _create_mirror_producers(self) -> None:
        assert self._transport is not None
        for app in self.apps:
            for spec in app._consumers:
                servers = app.cluster_of(spec.brokers)
                encode = make_encoder(_mirror_codec(spec.codec), spec.message_type)
                self.mirrors[spec.function] = _MirrorProducer(
                    self._transport.cluster(servers), spec.topic, encode, spec.name
                )
                self._consumers_by_topic.setdefault(_sugar_name(spec.topic), []).append(
                    (app, spec, servers)
                )

    async def _teardown(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        try:
            while self._started:
                await self._started.pop().__aexit__(exc_type, exc, traceback)
        finally:
            mirrors, self._mirror_consumers = self._mirror_consumers, []
            for mirror in mirrors:
                if mirror.loop is not None:
                    await asyncio.to_thread(mirror.loop.stop)
            restore = zip(
                self.apps, self._previous_transports, self._previous_environments, strict=False
            )
            for app, transport, environment in restore:
                app.use_transport(transport)
                app._bootstrap_servers_id = environment
                app._remove_mocks()
            self._previous_transports = []
            self._previous_environments = []

    def __getattr__(self, name: str) -> Any:
        if name.startswith("to_"):
            return self._unambiguous(name[3:], self._consumers_by_topic, name)
        if name.startswith("on_"):
            return self._unambiguous(name[3:], self._producers_by_topic, name)
        raise AttributeError(f"'Tester' object has no attribute '{name}'")

    def _unambiguous(
        self,
        topic_key: str,
        bound: dict[str, list[tuple[FastKafka, Any, str]]],
        attribute: str,
    ) -> Any:
        candidates = bound.get(topic_key, [])
        if not candidates:
            raise AttributeError(
                f"'Tester' object has no attribute '{attribute}': no app "
                f"{'consumes from' if attribute.startswith('to_') else 'produces to'} a topic "
                f"named '{topic_key}' (is the Tester entered?)"
            )
        if len({servers for _, _, servers in candidates}) > 1:
            names = [spec.name for _, spec, _ in candidates]
            raise RuntimeError(
                f"Ambiguous topic: {candidates[0][1].topic}, for functions: {names}\n"
                "Use Tester.mirrors[app.function] to resolve ambiguity"
            )
        return self.mirrors[candidates[0][1].function]


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
