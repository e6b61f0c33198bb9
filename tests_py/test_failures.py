"""Messages a consumer cannot process, as a FastKafka user tests them with the Tester: retried
in place by a RetryPolicy (order kept, other partitions going on), dead-lettered with headers
saying where they came from and why, never stopping the consumer."""

from __future__ import annotations

import asyncio
import random

import pytest
from delivery_helpers import Handled, Order
from kafka_helpers import TIMEOUT
from pydantic import BaseModel

from fastkafka import FastKafka, RetryPolicy
from fastkafka.exceptions import ConfigError
from fastkafka.executors import DynamicTaskExecutor
from fastkafka.failures import DEAD_LETTER_HEADERS
from fastkafka.testing import Tester

CLUSTER_1 = {"localhost": {"url": "one", "port": 9092}}
CLUSTER_2 = {"localhost": {"url": "two", "port": 9092}}


class Job(BaseModel):
    n: int


class Flaky(Exception):
    """A failure worth retrying (a timeout of a service the handler calls)."""


def quick(attempts: int = 3, **options: object) -> RetryPolicy:
    return RetryPolicy(attempts=attempts, backoff=0.001, max_backoff=0.002, **options)  # type: ignore[arg-type]


async def test_a_record_that_fails_twice_is_handled_once_after_its_retries_in_order() -> None:
    app = FastKafka(kafka_brokers=CLUSTER_1)
    attempts: dict[int, int] = {}
    handled = Handled()

    @app.consumes(group_id="jobs", retry=quick(attempts=3, retry_on=(Flaky,)))
    async def on_jobs(job: Job) -> None:
        attempts[job.n] = attempts.get(job.n, 0) + 1
        if job.n % 3 == 0 and attempts[job.n] <= 2:
            raise Flaky(f"job {job.n} times out")
        handled.add(job.n)

    async with Tester(app) as tester:
        for n in range(1, 31):
            await tester.to_jobs(Job(n=n))
        await handled.until(lambda ids: len(ids) == 30)
    assert handled.ids == list(range(1, 31)), "each handled once, in the partition's order"
    assert {n: a for n, a in attempts.items() if a != 1} == {n: 3 for n in range(3, 31, 3)}


async def test_an_error_the_policy_does_not_cover_is_dead_lettered_at_once() -> None:
    app = FastKafka(kafka_brokers=CLUSTER_1)
    attempts: list[int] = []

    @app.consumes(retry=quick(retry_on=(Flaky,)), dead_letter_topic="jobs_dlt")
    async def on_jobs(job: Job) -> None:
        attempts.append(job.n)
        raise ValueError(f"job {job.n} is invalid")

    async with Tester(app) as tester:
        await tester.to_jobs(Job(n=1))
        (letter,) = await tester.wait_for_dead_letters(on_jobs, timeout=TIMEOUT)
    assert attempts == [1]
    assert (letter.error_type, letter.error_message) == ("ValueError", "job 1 is invalid")
    assert (letter.topic, letter.partition, letter.offset) == ("jobs", 0, 0)
    assert (letter.consumer, letter.attempts) == ("on_jobs", 1)
    assert Job.model_validate_json(letter.value) == Job(n=1)


async def test_poison_records_are_dead_lettered_and_everything_else_handled() -> None:
    app = FastKafka(kafka_brokers=CLUSTER_1)
    handled = Handled()

    @app.consumes(group_id="jobs", retry=quick(), dead_letter_topic="jobs_dlt")
    async def on_jobs(job: Job) -> None:
        if job.n < 0:
            raise RuntimeError("negative jobs always fail")
        handled.add(job.n)

    rng = random.Random(6)
    noise = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40))) for _ in range(200)]
    poison: list[tuple[bytes | None, bytes, list[tuple[str, bytes]] | None]] = [
        (None, b"{not json", None),
        (None, b'{"n": "seven"}', None),
        (None, b"", None),  # a tombstone
        (b"key", b'{"n": -1}', [("origin", b"\xff\xfe not utf-8")]),
        *((None, value, None) for value in noise),
    ]
    good = [(None, Job(n=n).model_dump_json().encode(), None) for n in range(50)]
    stream = [record for pair in zip(good, poison, strict=False) for record in pair]
    stream += good[len(poison) :] + poison[len(good) :]
    async with Tester(app) as tester:
        assert tester.broker is not None
        tester.broker.cluster("one:9092").produce("jobs", stream)
        letters = await tester.wait_for_dead_letters(on_jobs, len(poison), timeout=TIMEOUT)
        await handled.until(lambda ids: len(ids) == len(good))
        await tester.to_jobs(Job(n=1000))  # the consumer is alive after all that
        await handled.until(lambda ids: 1000 in ids)
    assert len(letters) == len(poison)
    assert [letter.value for letter in letters] == [value for _, value, _ in poison]
    by_value = {letter.value: letter for letter in letters}
    assert by_value[b"{not json"].error_type == "ValidationError"
    assert "[type=json_invalid]" in by_value[b"{not json"].error_message
    assert "n: Input should be a valid integer" in by_value[b'{"n": "seven"}'].error_message
    assert by_value[b""].attempts == 1, "undecodable records are not retried"
    failing = by_value[b'{"n": -1}']
    assert (failing.error_type, failing.attempts, failing.key) == ("RuntimeError", 3, b"key")
    assert failing.headers["origin"] == b"\xff\xfe not utf-8", "its own headers are kept"
    assert failing.headers[DEAD_LETTER_HEADERS["topic"]] == b"jobs"
    assert sorted(handled.ids) == [*range(50), 1000]


async def test_a_batch_consumer_dead_letters_the_batch_its_handler_failed() -> None:
    app = FastKafka(kafka_brokers=CLUSTER_1)

    @app.consumes(dead_letter_topic="jobs_dlt")
    async def on_jobs(jobs: list[Job]) -> None:
        raise RuntimeError(f"cannot take {len(jobs)} jobs")

    async with Tester(app) as tester:
        assert tester.broker is not None
        records = [(None, Job(n=n).model_dump_json().encode(), None) for n in range(3)]
        tester.broker.cluster("one:9092").produce("jobs", [*records, (None, b"x", None)])
        letters = await tester.wait_for_dead_letters(on_jobs, 4, timeout=TIMEOUT)
    assert sorted(letter.offset for letter in letters) == [0, 1, 2, 3]
    by_offset = {letter.offset: letter for letter in letters}
    assert by_offset[3].error_type == "ValidationError"
    assert by_offset[0].error_message == "cannot take 3 jobs"


async def test_outputs_that_cannot_be_delivered_send_the_input_to_the_dead_letter_topic() -> None:
    handled = Handled()
    app = FastKafka(kafka_brokers=CLUSTER_1)

    @app.produces(brokers=CLUSTER_2)
    async def to_shipments(order: Order) -> Order:
        return order

    @app.consumes(group_id="shipping", retry=quick(attempts=2), dead_letter_topic="orders_dlt")
    async def on_orders(order: Order) -> None:
        await to_shipments(order)
        handled.add(order.id)

    async with Tester(app) as tester:
        assert tester.broker is not None
        tester.broker.refuse_deliveries("two:9092", "cluster 2 is down")
        await tester.to_orders(Order(id=7))
        (letter,) = await tester.wait_for_dead_letters(on_orders, timeout=TIMEOUT)
    assert letter.error_type == "DeliveryFailed"
    assert "cluster 2 is down" in letter.error_message
    assert letter.attempts == 2
    assert handled.ids == [7, 7], "handled once more before giving up, as the policy says"


async def test_a_dead_letter_cluster_that_is_down_holds_the_input_back_until_it_takes_it() -> None:
    app = FastKafka(kafka_brokers=CLUSTER_1)
    attempts = Handled()

    @app.consumes(
        group_id="jobs",
        auto_commit_interval_ms=1,
        dead_letter_topic="jobs_dlt",
        dead_letter_brokers=CLUSTER_2,
    )
    async def on_jobs(job: Job) -> None:
        attempts.add(job.n)
        raise ValueError(f"job {job.n} is invalid")

    async with Tester(app) as tester:
        broker = tester.broker
        assert broker is not None
        broker.refuse_deliveries("two:9092", "the dead-letter cluster is down")
        await tester.to_jobs(Job(n=1))
        # Handled again and again while its letter cannot go, and meanwhile not committed.
        await attempts.until(lambda ids: len(ids) >= 3)
        assert broker.committed_offset("one:9092", "jobs", "jobs", 0) is None
        assert tester.dead_letters(on_jobs) == []
        broker.refuse_deliveries("two:9092", None)
        (letter,) = await tester.wait_for_dead_letters(on_jobs, timeout=TIMEOUT)
    assert (letter.error_type, letter.offset) == ("ValueError", 0)
    assert Job.model_validate_json(letter.value) == Job(n=1), "the letter carries the record"


async def test_the_dynamic_executor_counts_attempts_per_record_so_retries_end() -> None:
    # Two records of one partition that always fail, the later one failing first: failures
    # reach the loop in completion order, and each record still gets exactly its attempts.
    app = FastKafka(kafka_brokers=CLUSTER_1)
    attempts: dict[int, int] = {}

    @app.consumes(
        executor=DynamicTaskExecutor(size=2),
        retry=quick(attempts=3, retry_on=(Flaky,)),
        dead_letter_topic="jobs_dlt",
    )
    async def on_jobs(job: Job) -> None:
        attempts[job.n] = attempts.get(job.n, 0) + 1
        await asyncio.sleep(0.01 if job.n == 0 else 0)  # the later record fails first
        raise Flaky(f"job {job.n} times out")

    async with Tester(app) as tester:
        await tester.to_jobs([Job(n=0), Job(n=1)])
        letters = await tester.wait_for_dead_letters(on_jobs, count=2, timeout=TIMEOUT)
    assert sorted((letter.offset, letter.attempts) for letter in letters) == [(0, 3), (1, 3)]
    assert attempts == {0: 3, 1: 3}


def test_bad_failure_settings_fail_at_decoration_naming_the_value() -> None:
    app = FastKafka(kafka_brokers=CLUSTER_1)
    with pytest.raises(ConfigError, match="attempts must be >= 1"):

        @app.consumes(retry=RetryPolicy(attempts=0))
        async def on_jobs(job: Job) -> None: ...

    with pytest.raises(ConfigError, match="max_backoff"):

        @app.consumes(retry=RetryPolicy(backoff=5, max_backoff=1))
        async def on_more_jobs(job: Job) -> None: ...

    with pytest.raises(ConfigError, match="dead_letter_brokers without dead_letter_topic"):

        @app.consumes(dead_letter_brokers=CLUSTER_2)
        async def on_other_jobs(job: Job) -> None: ...
