"""Helpers for tests on real brokers: an independent client (aiokafka) to feed and read topics."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

TIMEOUT = 60.0


async def eventually(condition: Callable[[], bool], what: str) -> None:
    """Check ``condition`` every 50 ms until it holds, failing after ``TIMEOUT`` s: for figures
    that change without notifying anyone (metrics refreshed on a clock)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"{what}: not within {TIMEOUT} s")
        await asyncio.sleep(0.05)


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


async def read_records(bootstrap_servers: str, topic: str, count: int) -> list[ConsumerRecord]:
    """Read ``count`` records of ``topic`` from the beginning with aiokafka (no group)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=50,
    )
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        async with asyncio.timeout(TIMEOUT):
            while len(records) < count:
                batches = await consumer.getmany(timeout_ms=200)
                for batch in batches.values():
                    records.extend(batch)
    except TimeoutError:
        raise AssertionError(f"only {len(records)} of {count} records on {topic}") from None
    finally:
        await consumer.stop()
    return records


async def read_all(
    bootstrap_servers: str, topic: str, count: int
) -> list[tuple[bytes | None, bytes]]:
    """The ``(key, value)`` of ``topic``'s first ``count`` records."""
    return [(r.key, r.value) for r in await read_records(bootstrap_servers, topic, count)]


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
    """The partition each key of ``topic``'s first ``count`` records landed on."""
    records = await read_records(bootstrap_servers, topic, count)
    assert all(r.key is not None for r in records), "every record has a key"
    return {r.key: r.partition for r in records if r.key is not None}
