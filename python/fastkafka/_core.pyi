"""Type stubs of the Rust extension module (``src/python.rs``); checked by mypy.stubtest."""

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, final

__all__ = [
    "Cluster",
    "ConsumerLoop",
    "KafkaBrokers",
    "KafkaTransport",
    "MemoryBroker",
    "Record",
    "__version__",
    "librdkafka_version",
    "stop_log_forwarding",
]

__version__: str

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

@final
class KafkaTransport:
    def __new__(cls, properties: Mapping[str, str] = ...) -> KafkaTransport: ...
    def cluster(
        self, bootstrap_servers: str, producer_properties: Mapping[str, str] = ...
    ) -> Cluster: ...

def librdkafka_version() -> str: ...
def stop_log_forwarding() -> None: ...

@final
class Cluster:
    @property
    def bootstrap_servers(self) -> str: ...
    def produce(
        self,
        topic: str,
        records: Sequence[tuple[bytes | None, bytes, Sequence[tuple[str, bytes]] | None]],
    ) -> None: ...
    def flush(self) -> None: ...
    def subscribe(
        self,
        topics: Sequence[str],
        on_batch: Callable[[list[Record]], Awaitable[None]],
        event_loop: asyncio.AbstractEventLoop,
        *,
        group_id: str | None = None,
        auto_offset_reset: str = "earliest",
        max_poll_records: int = 100,
        commit_interval_ms: int | None = ...,
        properties: Mapping[str, str] = ...,
    ) -> ConsumerLoop: ...

@final
class ConsumerLoop:
    def stop(self) -> None: ...
    @property
    def is_finished(self) -> bool: ...

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
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes: ...
    @property
    def headers(self) -> list[tuple[str, bytes]]: ...
