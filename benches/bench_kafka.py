"""`make bench` (real broker): one process consuming, validating, handling and producing.

On one local Tansu broker (in-memory storage), 100,000 JSON records are consumed, validated
with pydantic, passed to a trivial async handler and produced to another topic — by a
fastkafka-rs app, and by the baseline: a hand-written confluent-kafka loop doing the same work
(the fastest code a user would write by hand against librdkafka). Both run in this process, one
after the other, on the same input; the table gives throughput and CPU time per message and the
ratio against the baseline.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from confluent_kafka import Consumer, Producer
from pydantic import BaseModel

from fastkafka import FastKafka

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from local_kafka import local_clusters

RECORDS = 100_000


class TestMsg(BaseModel):
    msg: str


def fill(servers: str) -> None:
    producer = Producer({"bootstrap.servers": servers, "linger.ms": 5})
    for i in range(RECORDS):
        while True:
            try:
                producer.produce("bench_in", TestMsg(msg=f"signal {i}").model_dump_json())
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    producer.flush(60)


async def run_fastkafka(servers: str) -> tuple[float, float]:
    host, port = servers.split(":")
    app = FastKafka(
        kafka_brokers={"bench": {"url": host, "port": port}},
        bootstrap_servers_id="bench",
        fetch_max_wait_ms=10,
        linger_ms=5,
    )
    handled = 0
    all_handled = asyncio.Event()

    @app.consumes(topic="bench_in", group_id="bench-fastkafka")
    async def on_bench_in(msg: TestMsg) -> None:
        nonlocal handled
        await to_bench_out(msg)
        handled += 1
        if handled == RECORDS:
            all_handled.set()

    @app.produces(topic="bench_out")
    async def to_bench_out(msg: TestMsg) -> TestMsg:
        return msg

    wall, cpu = time.perf_counter(), time.process_time()
    async with app:
        await asyncio.wait_for(all_handled.wait(), 600)
    return time.perf_counter() - wall, time.process_time() - cpu


async def handle(msg: TestMsg) -> TestMsg:
    return msg


async def run_confluent(servers: str) -> tuple[float, float]:
    consumer = Consumer(
        {
            "bootstrap.servers": servers,
            "group.id": "bench-confluent",
            "auto.offset.reset": "earliest",
            "enable.auto.offset.store": False,
            "fetch.wait.max.ms": 10,
        }
    )
    producer = Producer({"bootstrap.servers": servers, "linger.ms": 5})
    wall, cpu = time.perf_counter(), time.process_time()
    consumer.subscribe(["bench_in"])
    handled = 0
    while handled < RECORDS:
        for message in consumer.consume(num_messages=100, timeout=1.0):
            if message.error():
                continue
            result = await handle(TestMsg.model_validate_json(message.value()))
            producer.produce("bench_out_baseline", result.model_dump_json())
            consumer.store_offsets(message)
            handled += 1
        producer.poll(0)
    producer.flush(60)
    consumer.close()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    with local_clusters(1, storage="memory://tansu/") as (broker,):
        for topic in ("bench_in", "bench_out", "bench_out_baseline"):
            broker.create_topic(topic)
        fill(broker.bootstrap_servers)
        baseline = asyncio.run(run_confluent(broker.bootstrap_servers))
        ours = asyncio.run(run_fastkafka(broker.bootstrap_servers))
    rows = [("hand-written confluent-kafka loop (baseline)", baseline), ("fastkafka-rs app", ours)]
    print(f"{RECORDS:,} records: consume -> validate -> async handler -> produce, one process")
    print(f"{'':<46} {'msg/s':>9} {'us CPU/msg':>11} {'throughput vs baseline':>23}")
    for name, (wall, cpu) in rows:
        print(
            f"{name:<46} {RECORDS / wall:>9,.0f} {cpu / RECORDS * 1e6:>11.1f} "
            f"{baseline[0] / wall:>22.2f}x"
        )


if __name__ == "__main__":
    main()
