"""The two types FastKafka apps annotate handlers with, beyond their pydantic models.

- :class:`KafkaEvent` — what a producer returns to send its message(s) with a key (all records
  with one key land on one partition, in order) and headers.
- :class:`EventMetadata` — what a consumer asks for, by annotating a parameter with it, to see
  where a message came from: topic, partition, offset, timestamp, key, headers, raw bytes.

And :class:`PartitionsChanged`, what a consumer's rebalance hooks are given (ours, not
FastKafka's: ``@app.consumes(on_partitions_assigned=..., on_partitions_revoked=...)``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from . import _core

__all__ = ["EventMetadata", "KafkaEvent", "PartitionsChanged", "normalize_headers"]

T = TypeVar("T")

Headers = Sequence[tuple[str, bytes]] | Mapping[str, bytes]


@dataclass
class KafkaEvent(Generic[T]):
    """A message (or a list of messages, sent as one batch) with a key and headers."""

    message: T
    key: bytes | None = None
    headers: Headers | None = None


def normalize_headers(headers: Headers | None) -> list[tuple[str, bytes]] | None:
    """Headers as ``(name, value)`` pairs, checking their types once per send."""
    if not headers:
        return None
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    for name, value in pairs:
        if not isinstance(name, str) or not isinstance(value, bytes):
            raise TypeError(f"a header is a (str, bytes) pair, got ({name!r}, {value!r})")
    return pairs


@dataclass(frozen=True)
class EventMetadata:
    """Where a consumed message came from (FastKafka's fields, from aiokafka's records)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    timestamp_type: int
    key: bytes | None
    value: bytes | None  # None for a tombstone
    checksum: int | None
    serialized_key_size: int
    serialized_value_size: int
    headers: Sequence[tuple[str, bytes | None]]

    @staticmethod
    def create_event_metadata(record: Any) -> EventMetadata:
        """The metadata of a consumed record (ours, or anything with aiokafka's fields)."""
        key = record.key
        value = record.value
        return EventMetadata(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            timestamp=record.timestamp,
            timestamp_type=record.timestamp_type,
            key=key,
            value=value,
            checksum=getattr(record, "checksum", None),
            serialized_key_size=-1 if key is None else len(key),
            serialized_value_size=-1 if value is None else len(value),
            headers=list(record.headers),
        )


@dataclass(frozen=True)
class PartitionsChanged:
    """Partitions a consumer was given (``on_partitions_assigned``) or lost
    (``on_partitions_revoked``). Revoked partitions are reported after their offsets were
    committed; assigned ones before any of their records is handled, and a :meth:`seek` asked
    for in the hook applies first."""

    consumer: str
    cluster: str
    topic: str
    partitions: list[int]
    _seeker: _core.Seeker = field(repr=False, compare=False)

    def seek(self, partition: int, offset: int) -> None:
        """Make the consumer read ``partition`` from ``offset`` on — replay or skip — before
        it hands over another record of it (its stored and committed offsets follow). Works
        while the app is still starting, unlike ``app.seek``."""
        self._seeker.seek(self.topic, partition, offset)
