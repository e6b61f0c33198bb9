"""Executors: sequential by default, bounded concurrency with DynamicTaskExecutor, and
throw_exceptions stopping a consumer and surfacing where the app runs."""

from __future__ import annotations

import asyncio
import contextvars

import pytest
from kafka_helpers import TIMEOUT, committed_offsets, produce
from local_kafka import TansuBroker
from pydantic import BaseModel

from fastkafka import EventMetadata, FastKafka
from fastkafka._core import MemoryBroker
from fastkafka.executors import DynamicTaskExecutor, SequentialExecutor
from fastkafka.testing import Tester


class Job(BaseModel):
    n: int


async def test_the_dynamic_executor_runs_a_batch_concurrently_within_its_size() -> None:
    app = FastKafka()
    in_flight = peak = 0
    finished: list[int] = []
    all_started = asyncio.Event()
    release = asyncio.Event()

    @app.consumes(executor=DynamicTaskExecutor(size=4), max_poll_records=10)
    async def on_jobs(msg: Job) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        if in_flight == 4:
            all_started.set()
        await release.wait()
        in_flight -= 1
        finished.append(msg.n)

    async with Tester(app) as tester:
        await tester.to_jobs([Job(n=i) for i in range(10)])
        await asyncio.wait_for(all_started.wait(), TIMEOUT)
        release.set()
        await app.awaited_mocks.on_jobs.assert_called_with(Job(n=9), timeout=5)
        await tester.to_jobs(Job(n=99))
        await app.awaited_mocks.on_jobs.assert_called_with(Job(n=99), timeout=5)
    assert peak == 4, "at most `size` handlers run at once, and they do run concurrently"
    assert sorted(finished) == [*range(10), 99]


async def test_each_concurrent_call_is_a_task_of_its_own() -> None:
    """What a handler may rely on from a task: ``asyncio.timeout`` cancels only its own call,
    and a context variable it sets is not seen by the other calls."""
    app = FastKafka()
    tasks: set[asyncio.Task[object] | None] = set()
    timed_out: list[int] = []
    leaked: list[int] = []
    handled: list[int] = []
    all_handled = asyncio.Event()
    marker: contextvars.ContextVar[int | None] = contextvars.ContextVar("marker", default=None)

    @app.consumes(executor=DynamicTaskExecutor(), max_poll_records=10)
    async def on_jobs(msg: Job) -> None:
        tasks.add(asyncio.current_task())
        if marker.get() is not None:
            leaked.append(msg.n)
        marker.set(msg.n)
        if msg.n % 2 == 0:
            try:
                async with asyncio.timeout(0.01):
                    await asyncio.Event().wait()
            except TimeoutError:
                timed_out.append(msg.n)
        handled.append(msg.n)
        if len(handled) == 11:
            all_handled.set()

    async with Tester(app) as tester:
        await tester.to_jobs([Job(n=i) for i in range(10)])
        await tester.to_jobs(Job(n=10))
        await asyncio.wait_for(all_handled.wait(), TIMEOUT)
    assert len(tasks) == 11, "one task per call"
    assert sorted(timed_out) == [0, 2, 4, 6, 8, 10], "each timeout cancelled its own call only"
    assert leaked == []


@pytest.mark.parametrize("with_metadata", [False, True])
async def test_the_dynamic_executor_skips_what_cannot_be_decoded_and_handles_the_rest(
    with_metadata: bool,
) -> None:
    app = FastKafka()
    handled: dict[int, int | None] = {}
    all_handled = asyncio.Event()

    async def record(msg: Job, offset: int | None) -> None:
        handled[msg.n] = offset
        if len(handled) == 3:
            all_handled.set()

    if with_metadata:

        @app.consumes(topic="jobs", executor=DynamicTaskExecutor())
        async def on_jobs(msg: Job, meta: EventMetadata) -> None:
            await record(msg, meta.offset)

    else:

        @app.consumes(topic="jobs", executor=DynamicTaskExecutor())
        async def on_jobs(msg: Job) -> None:
            await record(msg, None)

    app.use_transport(broker := MemoryBroker())
    async with app:
        cluster = broker.cluster("localhost:9092")
        for payload in [b'{"n": 0}', b"not json", b'{"n": 2}', b'{"n": 3}']:
            cluster.send("jobs", payload)
        await asyncio.wait_for(all_handled.wait(), TIMEOUT)
    expected = {0: 0, 2: 2, 3: 3} if with_metadata else dict.fromkeys((0, 2, 3))
    assert handled == expected, "each decodable record handled, with its own metadata"


async def test_executor_names_are_accepted_and_unknown_ones_refused() -> None:
    app = FastKafka()

    @app.consumes(executor="DynamicTaskExecutor")
    async def on_a(msg: Job) -> None: ...

    @app.consumes(executor="SequentialExecutor")
    async def on_b(msg: Job) -> None: ...

    with pytest.raises(ValueError, match="Unknown executor 'ThreadPool'"):

        @app.consumes(executor="ThreadPool")  # type: ignore[arg-type]
        async def on_c(msg: Job) -> None: ...


async def test_by_default_a_failing_handler_is_logged_and_the_consumer_goes_on() -> None:
    app = FastKafka()
    handled: list[int] = []

    @app.consumes(executor=DynamicTaskExecutor())
    async def on_jobs(msg: Job) -> None:
        if msg.n == 1:
            raise RuntimeError("boom")
        handled.append(msg.n)

    async with Tester(app) as tester:
        await tester.to_jobs([Job(n=1), Job(n=2)])
        await tester.to_jobs(Job(n=3))
        await app.awaited_mocks.on_jobs.assert_called_with(Job(n=3), timeout=5)
    assert sorted(handled) == [2, 3]


@pytest.mark.parametrize("executor", [SequentialExecutor, DynamicTaskExecutor])
async def test_throw_exceptions_stops_the_consumer_and_raises_where_the_app_runs(
    executor: type[SequentialExecutor],
) -> None:
    app = FastKafka()
    handled: list[int] = []

    @app.consumes(executor=executor(throw_exceptions=True), max_poll_records=1)
    async def on_jobs(msg: Job) -> None:
        if msg.n == 1:
            raise RuntimeError("job 1 is broken")
        handled.append(msg.n)

    app.use_transport(broker := MemoryBroker())
    with pytest.raises(RuntimeError, match="job 1 is broken"):
        async with app:
            cluster = broker.cluster("localhost:9092")
            for n in (0, 1, 2):
                cluster.send("jobs", Job(n=n).model_dump_json().encode())
            failure = await asyncio.wait_for(app.wait_for_failure(), TIMEOUT)
            assert str(failure) == "job 1 is broken"
    assert handled == [0], "the consumer stopped at the failing message"


async def test_the_dynamic_executor_on_a_real_broker_commits_only_finished_batches(
    two_clusters: list[TansuBroker],
) -> None:
    cluster = two_clusters[0]
    cluster.create_topic("jobs", partitions=2)
    host, port = cluster.bootstrap_servers.split(":")
    app = FastKafka(
        kafka_brokers={"development": {"url": host, "port": port}},
        bootstrap_servers_id="development",
        fetch_max_wait_ms=20,
    )
    finished: set[int] = set()
    all_finished = asyncio.Event()

    @app.consumes(group_id="workers", executor=DynamicTaskExecutor(size=8))
    async def on_jobs(msg: Job) -> None:
        await asyncio.sleep(0)  # a real await point, so calls interleave
        finished.add(msg.n)
        if len(finished) == 50:
            all_finished.set()

    records = [(str(n).encode(), Job(n=n).model_dump_json().encode()) for n in range(50)]
    await produce(cluster.bootstrap_servers, "jobs", records)
    async with app:
        await asyncio.wait_for(all_finished.wait(), TIMEOUT)
    committed = await committed_offsets(cluster.bootstrap_servers, "workers", "jobs", 2)
    assert sum(offset or 0 for offset in committed.values()) == 50
