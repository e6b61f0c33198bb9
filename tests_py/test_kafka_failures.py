"""Retries in place and dead letters on two real clusters (Tansu) through librdkafka: the
partition is paused and rewound to the failed record (the others going on), poison goes to the
dead-letter topic on the other cluster, and the inputs commit only then. Read back with an
independent client (aiokafka)."""

from __future__ import annotations

from delivery_helpers import Handled
from kafka_helpers import committed_offsets, produce, read_records
from local_kafka import TansuBroker
from pydantic import BaseModel

from fastkafka import FastKafka, RetryPolicy
from fastkafka.failures import DEAD_LETTER_HEADERS

FAST = {"fetch_max_wait_ms": 20, "session_timeout_ms": 6000, "heartbeat_interval_ms": 500}


class Job(BaseModel):
    n: int


def brokers_of(cluster: TansuBroker) -> dict[str, dict[str, object]]:
    host, port = cluster.bootstrap_servers.split(":")
    return {"development": {"url": host, "port": int(port)}}


async def test_retries_keep_each_partitions_order_and_poison_is_dead_lettered_on_the_other_cluster(
    two_clusters: list[TansuBroker],
) -> None:
    source, other = two_clusters
    source.create_topic("jobs", partitions=2)
    other.create_topic("jobs_dlt", partitions=1)
    app = FastKafka(kafka_brokers=brokers_of(source), bootstrap_servers_id="development", **FAST)
    attempts: dict[int, int] = {}
    handled = Handled()
    handled_in: dict[int, list[int]] = {0: [], 1: []}

    @app.consumes(
        group_id="workers",
        retry=RetryPolicy(attempts=3, backoff=0.05, max_backoff=0.1),
        dead_letter_topic="jobs_dlt",
        dead_letter_brokers=brokers_of(other),
    )
    async def on_jobs(job: Job) -> None:
        attempts[job.n] = attempts.get(job.n, 0) + 1
        if job.n % 10 == 3 and attempts[job.n] <= 2:
            raise TimeoutError(f"job {job.n}: the service timed out")
        if job.n % 25 == 24:
            raise ValueError(f"job {job.n} can never be done")
        handled_in[job.n % 2].append(job.n)
        handled.add(job.n)

    jobs = [(str(n % 2).encode(), Job(n=n).model_dump_json().encode()) for n in range(200)]
    poison = [(b"0", b"{not json"), (b"1", b'{"n": "x"}'), (b"0", b"")]
    async with app:
        await produce(source.bootstrap_servers, "jobs", jobs[:100] + poison + jobs[100:])
        letters = await read_records(other.bootstrap_servers, "jobs_dlt", len(poison) + 8)
        await handled.until(lambda ids: len(ids) == 200 - 8)
    failing = {n for n in range(200) if n % 25 == 24}
    assert sorted(handled.ids) == sorted(set(range(200)) - failing), "each handled once"
    for key, partition_jobs in handled_in.items():
        expected = [n for n in range(200) if n % 2 == key and n not in failing]
        # Keys 0 and 1 may share a partition; within each key the order is the stream's.
        assert partition_jobs == expected, f"order of key {key}"
    assert {n: a for n, a in attempts.items() if a != 1} == {
        **{n: 3 for n in range(200) if n % 10 == 3},
        **{n: 3 for n in failing},
    }
    headers = [{name: value for name, value in letter.headers} for letter in letters]
    by_value = {letter.value: header for letter, header in zip(letters, headers, strict=True)}
    assert set(by_value) == {value for _, value in poison} | {
        Job(n=n).model_dump_json().encode() for n in failing
    }
    never_done = by_value[Job(n=24).model_dump_json().encode()]
    assert never_done[DEAD_LETTER_HEADERS["error_type"]] == b"ValueError"
    assert never_done[DEAD_LETTER_HEADERS["attempts"]] == b"3"
    assert never_done[DEAD_LETTER_HEADERS["topic"]] == b"jobs"
    assert by_value[b"{not json"][DEAD_LETTER_HEADERS["attempts"]] == b"1"
    committed = await committed_offsets(source.bootstrap_servers, "workers", "jobs", 2)
    assert sum(offset or 0 for offset in committed.values()) == len(jobs) + len(poison)
