"""A keyed record lands on the partition the Java client, aiokafka and FastKafka choose —
``murmur2(key) % partitions`` — whether it goes through librdkafka to a real broker or through
the in-memory broker, so moving an app between them (or from FastKafka) keeps per-key order
and co-partitioning."""

from __future__ import annotations

import asyncio

from aiokafka.partitioner import DefaultPartitioner
from kafka_helpers import TIMEOUT, partitions_of, produce
from local_kafka import TansuBroker
from pydantic import BaseModel

from fastkafka import EventMetadata, FastKafka, KafkaEvent
from fastkafka.testing import InMemoryBroker

PARTITIONS = 4
KEYS = [f"customer-{i}".encode() for i in range(40)]


class Order(BaseModel):
    customer: str


def keyed_app(kafka_brokers: dict[str, object]) -> FastKafka:
    app = FastKafka(kafka_brokers=kafka_brokers, bootstrap_servers_id="development")

    @app.produces(topic="orders")
    async def to_orders(order: Order) -> KafkaEvent[Order]:
        return KafkaEvent(order, key=order.customer.encode())

    return app


def java_partition(key: bytes) -> int:
    """What aiokafka's (kafka-python's, Java's) default partitioner picks."""
    everything = list(range(PARTITIONS))
    chosen: int = DefaultPartitioner()(key, everything, everything)
    return chosen


async def send_all(app: FastKafka) -> None:
    async with app:
        for key in KEYS:
            await app.to_orders(Order(customer=key.decode()))  # type: ignore[attr-defined]


async def test_librdkafka_and_aiokafka_put_a_key_on_the_same_partition(
    two_clusters: list[TansuBroker],
) -> None:
    cluster = two_clusters[0]
    cluster.create_topic("orders", partitions=PARTITIONS)
    cluster.create_topic("orders_by_aiokafka", partitions=PARTITIONS)
    host, port = cluster.bootstrap_servers.split(":")
    await send_all(keyed_app({"development": {"url": host, "port": int(port)}}))
    await produce(cluster.bootstrap_servers, "orders_by_aiokafka", [(k, b"{}") for k in KEYS])

    expected = {key: java_partition(key) for key in KEYS}
    assert len(set(expected.values())) == PARTITIONS, "the keys should cover every partition"
    assert await partitions_of(cluster.bootstrap_servers, "orders", len(KEYS)) == expected
    assert await partitions_of(cluster.bootstrap_servers, "orders_by_aiokafka", len(KEYS)) == (
        expected
    )


async def test_the_in_memory_broker_puts_a_key_on_the_same_partition() -> None:
    brokers = {"development": {"url": "memory", "port": 9092}}
    landed: dict[bytes, int] = {}
    all_read = asyncio.Event()
    reader = FastKafka(kafka_brokers=brokers, bootstrap_servers_id="development")

    @reader.consumes(topic="orders")
    async def on_orders(order: Order, meta: EventMetadata) -> None:
        assert meta.key is not None
        landed[meta.key] = meta.partition
        if len(landed) == len(KEYS):
            all_read.set()

    with InMemoryBroker(default_partitions=PARTITIONS):
        async with reader:
            await send_all(keyed_app(brokers))
            await asyncio.wait_for(all_read.wait(), TIMEOUT)
    assert landed == {key: java_partition(key) for key in KEYS}
