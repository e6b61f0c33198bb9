"""Batches, keys, headers and metadata: consumers that take lists and EventMetadata, producers
that return KafkaEvent — in memory, and on a real broker."""

# ruff: noqa: UP006, UP035 - FastKafka apps write typing.List[...]; this file keeps that spelling.
from __future__ import annotations

import asyncio
from typing import Any, List

import pytest
from aiokafka import AIOKafkaProducer
from kafka_helpers import TIMEOUT, read_records
from local_kafka import TansuBroker
from pydantic import BaseModel

from fastkafka import EventMetadata, FastKafka, KafkaEvent
from fastkafka.testing import InMemoryBroker, Tester


class Reading(BaseModel):
    sensor: str
    value: float


async def test_a_batch_consumer_gets_lists_of_at_most_max_poll_records() -> None:
    app = FastKafka()
    batches: list[list[Reading]] = []
    done = asyncio.Event()

    @app.consumes(max_poll_records=100)
    async def on_readings(readings: List[Reading]) -> None:
        batches.append(readings)
        if sum(map(len, batches)) == 250:
            done.set()

    async with Tester(app) as tester:
        await tester.to_readings([Reading(sensor="s", value=i) for i in range(250)])
        await asyncio.wait_for(done.wait(), TIMEOUT)
    assert all(1 <= len(batch) <= 100 for batch in batches)
    assert [r.value for batch in batches for r in batch] == [float(i) for i in range(250)]


async def test_keys_and_headers_reach_the_consumer_metadata_by_type() -> None:
    app = FastKafka()
    seen: list[tuple[Reading, EventMetadata]] = []
    done = asyncio.Event()

    @app.produces()
    async def to_readings(reading: Reading) -> KafkaEvent[Reading]:
        return KafkaEvent(reading, key=reading.sensor.encode(), headers=[("unit", b"C")])

    # Any parameter names; metadata found by its annotation, in any position.
    @app.consumes()
    async def on_readings(meta: EventMetadata, payload: Reading) -> None:
        seen.append((payload, meta))
        if len(seen) == 2:
            done.set()

    async with Tester(app):
        returned = await to_readings(Reading(sensor="kitchen", value=21.5))
        assert returned == KafkaEvent(
            Reading(sensor="kitchen", value=21.5), key=b"kitchen", headers=[("unit", b"C")]
        )
        await to_readings(Reading(sensor="attic", value=9.0))
        await asyncio.wait_for(done.wait(), TIMEOUT)
        await app.awaited_mocks.on_readings.assert_called(timeout=5)

    (first, first_meta), (_, second_meta) = seen
    assert first == Reading(sensor="kitchen", value=21.5)
    assert first_meta.key == b"kitchen"
    assert first_meta.headers == [("unit", b"C")]
    assert first_meta.topic == "readings"
    assert first_meta.value == first.model_dump_json().encode()
    assert first_meta.serialized_key_size == len(b"kitchen")
    assert first_meta.serialized_value_size == len(first_meta.value)
    assert (first_meta.offset, second_meta.offset) == (0, 1)
    assert first_meta.timestamp > 0 and first_meta.timestamp_type == 0


async def test_a_keyed_batch_lands_on_one_partition_with_aligned_metadata() -> None:
    app = FastKafka()
    received: list[tuple[list[Reading], list[EventMetadata]]] = []
    done = asyncio.Event()

    @app.produces()
    async def to_readings(readings: list[Reading]) -> KafkaEvent[List[Reading]]:
        return KafkaEvent(readings, key=b"one-key")

    @app.consumes()
    async def on_readings(readings: List[Reading], metadata: List[EventMetadata]) -> None:
        received.append((readings, metadata))
        if sum(len(r) for r, _ in received) == 5:
            done.set()

    async with Tester(app) as tester:
        assert tester.broker is not None
        await to_readings([Reading(sensor="s", value=i) for i in range(5)])
        await asyncio.wait_for(done.wait(), TIMEOUT)
    for readings, metadata in received:
        assert len(readings) == len(metadata)
        for reading, meta in zip(readings, metadata, strict=True):
            assert meta.key == b"one-key"
            assert meta.value == reading.model_dump_json().encode()
    assert len({meta.partition for _, metas in received for meta in metas}) == 1


async def test_a_batch_consumer_sees_one_partition_per_call() -> None:
    """A polled batch spanning partitions reaches a batch handler one partition at a time, in
    order, so per-key ordering holds within every call."""
    app = FastKafka()
    calls: list[list[EventMetadata]] = []
    done = asyncio.Event()

    @app.consumes(max_poll_records=500)
    async def on_readings(readings: List[Reading], metadata: List[EventMetadata]) -> None:
        calls.append(metadata)
        if sum(map(len, calls)) == 200:
            done.set()

    with InMemoryBroker(default_partitions=4) as broker:
        cluster = broker.cluster("localhost:9092")
        async with app:
            cluster.produce(
                "readings",
                [
                    (
                        f"key-{i % 7}".encode(),
                        Reading(sensor="s", value=i).model_dump_json().encode(),
                        None,
                    )
                    for i in range(200)
                ],
            )
            await asyncio.wait_for(done.wait(), TIMEOUT)
    assert all(len({meta.partition for meta in call}) == 1 for call in calls), [
        sorted({meta.partition for meta in call}) for call in calls
    ]
    assert len({call[0].partition for call in calls}) == 4, "every partition was read"
    for call in calls:
        offsets = [meta.offset for meta in call]
        assert offsets == sorted(offsets)


def test_metadata_must_match_the_consumer_kind() -> None:
    app = FastKafka()
    with pytest.raises(ValueError, match="a batch consumer takes list\\[EventMetadata\\]"):

        @app.consumes()
        async def on_readings(readings: List[Reading], meta: EventMetadata) -> None: ...


async def test_keys_headers_and_metadata_on_a_real_broker(
    two_clusters: list[TansuBroker],
) -> None:
    cluster = two_clusters[0]
    cluster.create_topic("readings", partitions=3)
    host, port = cluster.bootstrap_servers.split(":")
    app = FastKafka(
        kafka_brokers={"development": {"url": host, "port": port}},
        bootstrap_servers_id="development",
        fetch_max_wait_ms=20,
    )
    received: list[tuple[Reading, EventMetadata]] = []
    done = asyncio.Event()

    @app.produces()
    async def to_readings(readings: list[Reading]) -> KafkaEvent[List[Reading]]:
        return KafkaEvent(readings, key=readings[0].sensor.encode(), headers={"unit": b"C"})

    @app.consumes()
    async def on_readings(readings: List[Reading], metadata: List[EventMetadata]) -> None:
        received.extend(zip(readings, metadata, strict=True))
        if len(received) == 6:
            done.set()

    async with app:
        await to_readings([Reading(sensor="kitchen", value=i) for i in range(3)])
        await to_readings([Reading(sensor="attic", value=i) for i in range(3)])
        await asyncio.wait_for(done.wait(), TIMEOUT)

    by_sensor: dict[str, set[int]] = {}
    for reading, meta in received:
        assert meta.key == reading.sensor.encode()
        assert meta.headers == [("unit", b"C")]
        by_sensor.setdefault(reading.sensor, set()).add(meta.partition)
    assert {sensor: len(partitions) for sensor, partitions in by_sensor.items()} == {
        "kitchen": 1,
        "attic": 1,
    }, "one key, one partition"
    values = [r.value for r, _ in received if r.sensor == "kitchen"]
    assert values == [0.0, 1.0, 2.0], "a key's records keep their order"


class Account(BaseModel):
    owner: str


def tombstone_app(
    kafka_brokers: dict[str, dict[str, object]] | None = None,
) -> tuple[FastKafka, list[tuple[Account | None, EventMetadata]], asyncio.Event, Any]:
    """An app reading tombstones on ``accounts`` (typed ``Account | None``: it sees None) and
    on ``ledger`` (typed ``Account``: cannot decode one; dead-letters it to ``ledger_dlt``)."""
    app = FastKafka(kafka_brokers=kafka_brokers, fetch_max_wait_ms=20)
    seen: list[tuple[Account | None, EventMetadata]] = []
    both = asyncio.Event()

    @app.consumes()
    async def on_accounts(account: Account | None, meta: EventMetadata) -> None:
        seen.append((account, meta))
        if len(seen) == 2:
            both.set()

    @app.consumes(dead_letter_topic="ledger_dlt")
    async def on_ledger(account: Account) -> None: ...

    return app, seen, both, on_ledger


TOMBSTONE = (b"account-1", None, [("deleted-by", None), ("note", b"")])
ACCOUNT = (b"account-2", Account(owner="ann").model_dump_json().encode(), None)


def assert_tombstones_stay_tombstones(
    seen: list[tuple[Account | None, EventMetadata]],
    letter_value: bytes | None,
    letter_headers: list[tuple[str, bytes | None]],
) -> None:
    (tombstone, meta), (account, _) = seen
    assert tombstone is None and account == Account(owner="ann")
    assert (meta.key, meta.value, meta.serialized_value_size) == (b"account-1", None, -1)
    assert list(meta.headers) == [("deleted-by", None), ("note", b"")]
    assert letter_value is None, "a tombstone's dead letter is a tombstone"
    assert letter_headers[:2] == [("deleted-by", None), ("note", b"")]


async def test_a_tombstone_is_none_to_its_handler_and_a_tombstone_in_its_dead_letter() -> None:
    """A null value (a tombstone: "this key was deleted" on a compacted topic) and a null
    header value stay null — never empty bytes — in what handlers see and in dead letters."""
    app, seen, both, on_ledger = tombstone_app()
    async with Tester(app) as tester:
        cluster = tester.broker.cluster("localhost:9092")
        cluster.produce("accounts", [TOMBSTONE, ACCOUNT])
        cluster.produce("ledger", [TOMBSTONE])
        await asyncio.wait_for(both.wait(), TIMEOUT)
        (letter,) = await tester.wait_for_dead_letters(on_ledger, timeout=TIMEOUT)
    assert letter.error_type == "ValidationError"
    assert_tombstones_stay_tombstones(seen, letter.value, list(letter.headers.items()))


async def test_tombstones_on_a_real_broker(two_clusters: list[TansuBroker]) -> None:
    cluster = two_clusters[0]
    for topic in ("accounts", "ledger", "ledger_dlt"):
        cluster.create_topic(topic)
    host, port = cluster.bootstrap_servers.split(":")
    app, seen, both, _ = tombstone_app({"localhost": {"url": host, "port": port}})
    producer = AIOKafkaProducer(bootstrap_servers=cluster.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for topic, records in (("accounts", [TOMBSTONE, ACCOUNT]), ("ledger", [TOMBSTONE])):
            for key, value, headers in records:
                await (await producer.send(topic, value=value, key=key, headers=headers))
    finally:
        await producer.stop()
    async with app:
        await asyncio.wait_for(both.wait(), TIMEOUT)
        (letter,) = await read_records(cluster.bootstrap_servers, "ledger_dlt", 1)
    assert_tombstones_stay_tombstones(seen, letter.value, list(letter.headers))
