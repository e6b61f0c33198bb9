"""Helpers for tests on real brokers: an independent client (aiokafka) to feed and read topics."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

TIMEOUT = 60.0


async def produce(
    bootstrap_servers: str, topic: str, records: list[tuple[bytes | None, bytes]]
) -> None:
    """Send ``(key, value)`` records with aiokafka and wait until all are acknowledged."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all")
    await producer.start()
    try:
        sent = [await producer.send(topic, value=value, key=key) for key, value in records]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def read_all(
    bootstrap_servers: str,
    topic: str,
    count: int,
) -> list[tuple[bytes | None, bytes]]:
    """Read ``count`` records of ``topic`` from the beginning with aiokafka (no group)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=50,
    )
    await consumer.start()
    records: list[tuple[bytes | None, bytes]] = []
    try:
        async with asyncio.timeout(TIMEOUT):
            while len(records) < count:
                batches = await consumer.getmany(timeout_ms=200)
                for batch in batches.values():
                    records.extend((r.key, r.value) for r in batch)
    except TimeoutError:
        raise AssertionError(f"only {len(records)} of {count} records on {topic}") from None
    finally:
        await consumer.stop()
    return records


async def committed_offsets(
    bootstrap_servers: str, group_id: str, topic: str, partitions: int
) -> dict[int, int | None]:
    """The offsets ``group_id`` committed for each partition of ``topic``."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, group_id=group_id, enable_auto_commit=False
    )
    await consumer.start()
    try:
        return {p: await consumer.committed(TopicPartition(topic, p)) for p in range(partitions)}
    finally:
        await consumer.stop()


async def partitions_of(bootstrap_servers: str, topic: str, count: int) -> dict[bytes, int]:
    """The partition each key of ``topic``'s first ``count`` records landed on (aiokafka)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=50,
    )
    await consumer.start()
    landed: dict[bytes, int] = {}
    seen = 0
    try:
        async with asyncio.timeout(TIMEOUT):
            while seen < count:
                for batch in (await consumer.getmany(timeout_ms=200)).values():
                    for record in batch:
                        assert record.key is not None
                        landed[record.key] = record.partition
                        seen += 1
    finally:
        await consumer.stop()
    return landed
