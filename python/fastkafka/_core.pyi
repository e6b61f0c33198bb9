"""Type stubs of the Rust extension module (``src/python/``); checked by mypy.stubtest."""

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any, Literal, final

from .exceptions import ConsumerEndedError

__all__ = [
    "DEAD_LETTER_HEADERS",
    "BatchReport",
    "Cluster",
    "DeadLetter",
    "DeliveryTracker",
    "Failure",
    "KafkaBrokers",
    "KafkaTransport",
    "MemoryBroker",
    "Mirror",
    "Producer",
    "Record",
    "RecordBatch",
    "RunningRuntime",
    "Runtime",
    "Seeker",
    "__version__",
    "close_python_entries",
    "consumer_offsets",
    "dead_letters",
    "health_when_not_running",
    "librdkafka_version",
    "mirror_runtime",
    "render_metrics",
    "reset_offsets",
]

__version__: str

# How many records each call of a consumer's handler gets (the engine's `HandOver`).
_HandOver = Literal["up_to_max_poll_records", "one_partition", "sized_to_handler"]

@final
class KafkaBrokers:
    def __new__(cls, brokers: Mapping[str, Any]) -> KafkaBrokers: ...
    @staticmethod
    def localhost() -> KafkaBrokers: ...
    def environments(self) -> list[str]: ...
    def resolve(self, environment: str) -> str: ...
    def check_override_of(self, default: KafkaBrokers) -> None: ...

@final
class MemoryBroker:
    def __new__(cls, default_partitions: int = 1) -> MemoryBroker: ...
    def cluster(
        self, bootstrap_servers: str, producer_properties: Mapping[str, str] = ...
    ) -> Cluster: ...
    def create_topic(self, bootstrap_servers: str, topic: str, partitions: int) -> None: ...
    def refuse_deliveries(self, bootstrap_servers: str, reason: str | None = ...) -> None: ...
    def take_down(self, bootstrap_servers: str) -> None: ...
    def bring_back(self, bootstrap_servers: str) -> None: ...
    def mirror(self, source: str, target: str) -> None: ...
    def records(self, bootstrap_servers: str, topic: str) -> list[Record]: ...
    def committed_offset(
        self, bootstrap_servers: str, group_id: str, topic: str, partition: int
    ) -> int | None: ...

@final
class KafkaTransport:
    def __new__(
        cls,
        properties: Mapping[str, str] = ...,
        token_function: Callable[[], str] | None = None,
    ) -> KafkaTransport: ...
    def cluster(
        self, bootstrap_servers: str, producer_properties: Mapping[str, str] = ...
    ) -> Cluster: ...

def librdkafka_version() -> str: ...
def close_python_entries() -> None: ...

@final
class Cluster:
    @property
    def bootstrap_servers(self) -> str: ...
    def produce(
        self,
        topic: str,
        records: Sequence[
            tuple[bytes | None, bytes | None, Sequence[tuple[str, bytes | None]] | None]
        ],
    ) -> Awaitable[None] | None: ...
    def send(
        self, topic: str, value: bytes | None, key: bytes | None = None
    ) -> Awaitable[None] | None: ...

@final
class Runtime:
    def __new__(
        cls,
        kafka_brokers: KafkaBrokers,
        environment: str,
        options: Mapping[str, Any] | None = None,
        *,
        start_timeout: float = 30.0,
        stop_timeout: float = 30.0,
    ) -> Runtime: ...
    start_timeout: float
    stop_timeout: float
    @property
    def environment(self) -> str: ...
    def set_environment(self, environment: str) -> None: ...
    def set_health_limits(self, polling_ttl: float | None, consuming_ttl: float | None) -> None: ...
    @property
    def health_limits(self) -> tuple[float | None, float | None]: ...
    def set_default_group_prefix(self, prefix: str | None) -> None: ...
    def cluster_id(self, brokers: KafkaBrokers | None = None) -> str: ...
    def topics(self) -> list[str]: ...
    def add_consumer(
        self,
        name: str,
        topic: str,
        on_batch: Callable[[RecordBatch, DeliveryTracker], Awaitable[BatchReport | None]],
        *,
        brokers: KafkaBrokers | None = None,
        bootstrap_servers: str | None = None,
        options: Mapping[str, Any] | None = None,
        on_abandon: Callable[[float], object] | None = None,
        max_poll_records_cap: int | None = None,
        hand_over: _HandOver = "up_to_max_poll_records",
        retry: tuple[int, float, float] | None = None,
        dead_letter_topic: str | None = None,
        dead_letter_brokers: KafkaBrokers | None = None,
        on_partitions_changed: Callable[[str, str, list[tuple[str, int]], Seeker], Awaitable[None]]
        | None = None,
        description: str | None = None,
        message: Callable[[], Mapping[str, Any]] | None = None,
    ) -> None: ...
    def add_producer(
        self,
        name: str,
        topic: str,
        *,
        brokers: KafkaBrokers | None = None,
        bootstrap_servers: str | None = None,
        options: Mapping[str, Any] | None = None,
        description: str | None = None,
        message: Callable[[], Mapping[str, Any]] | None = None,
    ) -> Producer: ...
    def asyncapi_docs(
        self, info: Mapping[str, Any], asyncapi_version: str = "2.6"
    ) -> tuple[str, str]: ...
    def start(
        self,
        transport: MemoryBroker | KafkaTransport,
        event_loop: asyncio.AbstractEventLoop,
        on_failure: Callable[[str, ConsumerEndedError], object],
    ) -> RunningRuntime: ...

@final
class RunningRuntime:
    def stop(self) -> None: ...
    def seek(self, consumer: str, partition: int, offset: int) -> None: ...
    def health(self) -> dict[str, Any]: ...

def health_when_not_running() -> dict[str, Any]: ...
def consumer_offsets(runtime: Runtime, consumer: str | None = None) -> list[dict[str, Any]]: ...
def reset_offsets(
    runtime: Runtime,
    to: str,
    value: int = 0,
    *,
    consumer: str | None = None,
    dry_run: bool = False,
) -> list[dict[str, Any]]: ...

@final
class Seeker:
    def seek(self, topic: str, partition: int, offset: int) -> None: ...

@final
class Producer:
    @property
    def name(self) -> str: ...
    @property
    def topic(self) -> str: ...
    @property
    def is_bound(self) -> bool: ...
    @property
    def bootstrap_servers(self) -> str | None: ...
    def produce(
        self,
        records: Sequence[
            tuple[bytes | None, bytes | None, Sequence[tuple[str, bytes | None]] | None]
        ],
        tracker: DeliveryTracker | None = None,
    ) -> Awaitable[None] | None: ...
    def send(
        self,
        value: bytes | None,
        key: bytes | None = None,
        tracker: DeliveryTracker | None = None,
    ) -> Awaitable[None] | None: ...

@final
class DeliveryTracker:
    @property
    def pending(self) -> int: ...
    @property
    def failed(self) -> bool: ...
    def take_refusal(self) -> str | None: ...
    def work_started(self) -> None: ...
    def work_finished(self) -> None: ...

@final
class Record:
    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def timestamp_type(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> list[tuple[str, bytes | None]]: ...

@final
class RecordBatch:
    @property
    def values(self) -> list[bytes | None]: ...
    def __len__(self) -> int: ...
    def __getitem__(self, index: int, /) -> Record: ...
    def __iter__(self) -> Iterator[Record]: ...

def render_metrics() -> str: ...

@final
class Mirror:
    @property
    def role(self) -> Literal["feeds", "reads"]: ...
    @property
    def name(self) -> str: ...
    @property
    def topic(self) -> str: ...
    @property
    def bootstrap_servers(self) -> str: ...
    @property
    def serves(self) -> list[tuple[int, str]]: ...
    @property
    def producer(self) -> Producer | None: ...

def mirror_runtime(
    apps: Sequence[Runtime],
    in_memory: bool,
    reader: Callable[[Mirror], Callable[[RecordBatch, DeliveryTracker], Awaitable[None]]],
) -> tuple[Runtime, list[Mirror]]: ...

@final
class DeadLetter:
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> dict[str, bytes | None]: ...
    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def consumer(self) -> str: ...
    @property
    def error_type(self) -> str: ...
    @property
    def error_message(self) -> str: ...
    @property
    def attempts(self) -> int: ...

def dead_letters(
    apps: Sequence[Runtime], broker: MemoryBroker, consumer: str
) -> list[DeadLetter]: ...

DEAD_LETTER_HEADERS: dict[str, str]

@final
class Failure:
    @staticmethod
    def handler(
        indices: list[int],
        error_type: str,
        message: str,
        details: str | None,
        *,
        retryable: bool,
    ) -> Failure: ...
    @staticmethod
    def undecodable(index: int, into: str, error_type: str, message: str) -> Failure: ...
    @staticmethod
    def undelivered(indices: list[int], message: str) -> Failure: ...
    @property
    def error_type(self) -> str: ...
    @property
    def message(self) -> str: ...
    @property
    def details(self) -> str | None: ...
    @property
    def retryable(self) -> bool: ...

@final
class BatchReport:
    def __new__(cls, stopped_after: int | None, failures: Sequence[Failure]) -> BatchReport: ...
