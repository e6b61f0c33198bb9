"""A mirror for tests: copies every record of a topic from one cluster to another with its
partition, key, headers and timestamp, as MirrorMaker 2 keeps a standby in step — what an app
failing over to a standby relies on (docs: production, *A standby for every cluster*)."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer


async def mirror(source: str, target: str, topic: str, copied: list[int]) -> None:
    """Copies ``topic`` from the cluster at ``source`` to the one at ``target`` (bootstrap
    servers) until cancelled, counting what it copied in ``copied[0]``. The topic must exist on
    both with as many partitions."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=source,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=50,
        max_partition_fetch_bytes=8 << 20,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=target, acks="all", linger_ms=5, max_request_size=8 << 20
    )
    await consumer.start()
    await producer.start()
    try:
        while True:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                sent = [
                    await producer.send(
                        topic,
                        value=record.value,
                        key=record.key,
                        partition=record.partition,
                        timestamp_ms=record.timestamp,
                        headers=list(record.headers),
                    )
                    for record in records
                ]
                await asyncio.gather(*sent)
                copied[0] += len(records)
    finally:
        await consumer.stop()
        await producer.stop()
