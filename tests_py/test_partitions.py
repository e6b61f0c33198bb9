"""Rebalance hooks and seeks as users rely on them: ``on_partitions_assigned`` runs before any
record of its partitions is handled and may seek (replay or skip); ``on_partitions_revoked``
runs after the partitions' offsets were committed; ``app.seek`` replays while the app runs; a
failing hook is logged and the consumer goes on. In memory, and on Tansu with librdkafka."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from kafka_helpers import TIMEOUT, committed_offsets, eventually, produce
from local_kafka import TansuBroker
from pydantic import BaseModel

from fastkafka import FastKafka, PartitionsChanged
from fastkafka.exceptions import AppNotStartedError, ConfigError
from fastkafka.testing import InMemoryBroker, Tester

FAST = {"fetch_max_wait_ms": 20, "session_timeout_ms": 6000, "heartbeat_interval_ms": 500}


class Job(BaseModel):
    n: int


class Seen:
    """What an app saw, in order, and a way to wait for it."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.changed = asyncio.Condition()

    async def add(self, item: Any) -> None:
        async with self.changed:
            self.items.append(item)
            self.changed.notify_all()

    async def until(self, count: int, within: float = TIMEOUT) -> list[Any]:
        try:
            async with asyncio.timeout(within), self.changed:
                await self.changed.wait_for(lambda: len(self.items) >= count)
                return list(self.items)
        except TimeoutError:
            raise AssertionError(f"saw only {self.items}") from None


def job_app(seen: Seen, brokers: dict[str, Any] | None = None, **consumes: Any) -> FastKafka:
    app = FastKafka(kafka_brokers=brokers or {"localhost": {"url": "server_1", "port": 9092}})

    @app.consumes(topic="jobs", **consumes)
    async def on_jobs(job: Job) -> None:
        await seen.add(job.n)

    @app.produces(topic="jobs")
    async def to_jobs(job: Job) -> Job:
        return job

    return app


async def test_an_assigned_hook_seeks_before_any_record_of_the_partition_is_handled() -> None:
    seen = Seen()

    async def skip_to_3(change: PartitionsChanged) -> None:
        await seen.add(("assigned", change.topic, change.partitions))
        for partition in change.partitions:
            change.seek(partition, 3)

    app = job_app(seen, on_partitions_assigned=skip_to_3)
    async with Tester(app):
        for n in range(5):
            await app.to_jobs(Job(n=n))  # type: ignore[attr-defined]
        assert await seen.until(3) == [("assigned", "jobs", [0]), 3, 4]


async def test_a_running_app_replays_a_partition_when_asked_to_seek() -> None:
    seen = Seen()
    app = job_app(seen)
    async with Tester(app):
        for n in range(3):
            await app.to_jobs(Job(n=n))  # type: ignore[attr-defined]
        await seen.until(3)
        app.seek("on_jobs", 0, 1)
        assert (await seen.until(5))[3:] == [1, 2]
        with pytest.raises(ConfigError, match="the app's consumers: on_jobs"):
            app.seek("on_nothing", 0, 0)
    with pytest.raises(AppNotStartedError):
        app.seek("on_jobs", 0, 0)


async def test_a_failing_hook_is_logged_with_its_traceback_and_the_consumer_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen = Seen()

    def broken(change: PartitionsChanged) -> None:
        raise RuntimeError("hook bug")

    app = job_app(seen, on_partitions_assigned=broken)
    async with Tester(app):
        await app.to_jobs(Job(n=7))  # type: ignore[attr-defined]
        assert await seen.until(1) == [7]
    [record] = [r for r in caplog.records if "on_partitions_assigned failed" in r.message]
    assert record.levelno == logging.ERROR and record.exc_info is not None
    assert "on_jobs" in record.message


async def test_revoked_partitions_are_reported_when_a_second_member_takes_one() -> None:
    first_seen, second_seen = Seen(), Seen()

    async def told(change: PartitionsChanged) -> None:
        await first_seen.add(("revoked", change.partitions))

    with InMemoryBroker(default_partitions=2):
        first = job_app(first_seen, group_id="g", on_partitions_revoked=told)
        second = job_app(second_seen, group_id="g")
        async with first:
            async with second:
                [(kind, partitions)] = await first_seen.until(1)
                assert kind == "revoked" and len(partitions) == 1


async def test_on_a_real_cluster_a_new_member_replays_from_its_hook_and_revokes_after_commit(
    two_clusters: list[TansuBroker],
) -> None:
    cluster = two_clusters[0]
    cluster.create_topic("jobs", partitions=2)
    host, port = cluster.bootstrap_servers.split(":")
    brokers = {"localhost": {"url": host, "port": int(port)}}
    records = [(str(n).encode(), Job(n=n).model_dump_json().encode()) for n in range(20)]
    await produce(cluster.bootstrap_servers, "jobs", records)

    # A first run handles and commits everything.
    seen = Seen()
    async with job_app(seen, brokers, group_id="g", **FAST):
        await seen.until(20)
    committed = await committed_offsets(cluster.bootstrap_servers, "g", "jobs", 2)
    assert sum(offset or 0 for offset in committed.values()) == 20, committed

    # The next run's hook replays every partition it is given from the start, and is told
    # of a revocation only once the offsets of what it handled were committed.
    replayed = Seen()
    at_revoke: list[dict[int, int | None]] = []

    async def replay(change: PartitionsChanged) -> None:
        for partition in change.partitions:
            change.seek(partition, 0)

    async def revoked(change: PartitionsChanged) -> None:
        at_revoke.append(await committed_offsets(cluster.bootstrap_servers, "g", "jobs", 2))

    app = job_app(
        replayed,
        brokers,
        group_id="g",
        on_partitions_assigned=replay,
        on_partitions_revoked=revoked,
        **FAST,
    )
    async with app:
        assert sorted(await replayed.until(20, 20)) == list(range(20)), "everything again"
    assert at_revoke, "leaving the group revokes its partitions"
    assert sum(offset or 0 for offset in at_revoke[0].values()) == 20, at_revoke


async def test_cooperative_sticky_members_split_the_partitions_and_lose_nothing(
    two_clusters: list[TansuBroker],
) -> None:
    cluster = two_clusters[0]
    cluster.create_topic("jobs", partitions=4)
    host, port = cluster.bootstrap_servers.split(":")
    brokers = {"localhost": {"url": host, "port": int(port)}}
    options: dict[str, Any] = {
        "group_id": "g",
        "partition_assignment_strategy": "cooperative-sticky",
        **FAST,
    }
    seen = Seen()

    def jobs(numbers: range) -> list[tuple[bytes | None, bytes]]:
        return [(str(n).encode(), Job(n=n).model_dump_json().encode()) for n in numbers]

    def held(app: FastKafka) -> list[int]:
        [consumer] = app.health()["consumers"]
        return list(consumer["partitions"])

    first, second = job_app(seen, brokers, **options), job_app(seen, brokers, **options)
    async with first:
        await produce(cluster.bootstrap_servers, "jobs", jobs(range(100)))
        await seen.until(100)
        assert sorted(held(first)) == [0, 1, 2, 3]
        async with second:
            await eventually(
                lambda: first.health()["ready"] and second.health()["ready"], "both ready"
            )
            await eventually(
                lambda: sorted(held(first) + held(second)) == [0, 1, 2, 3],
                "each partition held by one member",
            )
            assert held(first) and held(second), "each holds some"
            await produce(cluster.bootstrap_servers, "jobs", jobs(range(100, 200)))
            await seen.until(200)
    assert sorted(set(seen.items)) == list(range(200)), "nothing lost"
