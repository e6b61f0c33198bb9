"""`make bench` (real broker): one process consuming, validating, handling and producing.

On one local Tansu broker (in-memory storage), 100,000 JSON records are consumed, validated
with pydantic, passed to a trivial async handler and produced to another topic — by a
fastkafka-rs app with its metrics on (the default) and off (``FASTKAFKA_METRICS=off``), and by
the baseline: a hand-written confluent-kafka loop doing the same work (the fastest code a user
would write by hand against librdkafka). Each run is a fresh process with its own consumer
group reading the same input; the contenders alternate for three rounds and the table gives the
median throughput and CPU time per message and the ratios against the baseline and between
metrics on and off.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from confluent_kafka import Consumer, Producer
from pydantic import BaseModel

from fastkafka import FastKafka

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from local_kafka import local_clusters

RECORDS = 100_000
ROUNDS = 3


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


async def run_fastkafka(servers: str, group: str) -> tuple[float, float]:
    host, port = servers.split(":")
    app = FastKafka(
        kafka_brokers={"bench": {"url": host, "port": port}},
        bootstrap_servers_id="bench",
        fetch_max_wait_ms=10,
        linger_ms=5,
    )
    handled = 0
    all_handled = asyncio.Event()

    @app.consumes(topic="bench_in", group_id=group)
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


async def run_confluent(servers: str, group: str) -> tuple[float, float]:
    consumer = Consumer(
        {
            "bootstrap.servers": servers,
            "group.id": group,
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


CONTENDERS = {
    "confluent": ("hand-written confluent-kafka loop (baseline)", run_confluent, {}),
    "fastkafka": ("fastkafka-rs app (metrics on, the default)", run_fastkafka, {}),
    "fastkafka-no-metrics": (
        "fastkafka-rs app, FASTKAFKA_METRICS=off",
        run_fastkafka,
        {"FASTKAFKA_METRICS": "off"},
    ),
}


def run_in_process(contender: str, servers: str, group: str) -> tuple[float, float]:
    """One run of ``contender`` in a fresh process (metrics are switched per process)."""
    _, _, env = CONTENDERS[contender]
    done = subprocess.run(
        [sys.executable, __file__, "--run", contender, servers, group],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    wall, cpu = json.loads(done.stdout.strip().splitlines()[-1])
    return wall, cpu


def main() -> None:
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in CONTENDERS}
    with local_clusters(1, storage="memory://tansu/") as (broker,):
        for topic in ("bench_in", "bench_out", "bench_out_baseline"):
            broker.create_topic(topic)
        fill(broker.bootstrap_servers)
        for round_ in range(ROUNDS):
            for name in CONTENDERS:
                group = f"bench-{name}-{round_}"
                results[name].append(run_in_process(name, broker.bootstrap_servers, group))
    medians = {
        name: (
            statistics.median(wall for wall, _ in runs),
            statistics.median(cpu for _, cpu in runs),
        )
        for name, runs in results.items()
    }
    baseline = medians["confluent"][0]
    print(f"{RECORDS:,} records: consume -> validate -> async handler -> produce, one process")
    print(f"medians of {ROUNDS} alternating runs, each in a fresh process")
    print(f"{'':<46} {'msg/s':>9} {'us CPU/msg':>11} {'throughput vs baseline':>23}")
    for name, (wall, cpu) in medians.items():
        print(
            f"{CONTENDERS[name][0]:<46} {RECORDS / wall:>9,.0f} {cpu / RECORDS * 1e6:>11.1f} "
            f"{baseline / wall:>22.2f}x"
        )
    on, off = medians["fastkafka"], medians["fastkafka-no-metrics"]
    print(
        f"metrics on vs off: throughput {off[0] / on[0]:.3f}x, CPU per message "
        f"{on[1] / off[1]:.3f}x (1.000 = no cost)"
    )


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--run":
        _, _, contender, servers, group = sys.argv
        runner = CONTENDERS[contender][1]
        print(json.dumps(asyncio.run(runner(servers, group))))
    else:
        main()
