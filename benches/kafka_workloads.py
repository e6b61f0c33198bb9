"""One contender of `benches/bench_kafka.py`, run in a fresh process: prints one JSON line.

`python benches/kafka_workloads.py CONTENDER SERVERS GROUP [OUT_SERVERS]`. Each contender
consumes the RECORDS JSON records of `bench_in` (its own consumer group), validates them with
pydantic, awaits a trivial handler and produces the result to its own output topic — or, for
the `*_produce` contenders, only produces. The FastKafka app uses FastKafka's public API only,
so the same code runs on fastkafka-rs and on FastKafka 0.8.0 (each from its own virtual
environment). No `from __future__ import annotations`: FastKafka 0.8.0 reads annotations as
objects.

Every consumer asks the broker to hold a fetch for at most FETCH_WAIT_MS (`fetch_max_wait_ms`,
librdkafka's `fetch.wait.max.ms`): the one setting the bench gives every contender alike, because
of the broker. Tansu 0.6.0 holds every fetch for its whole wait — for half of it when that is
250 ms or more, so 250 ms at the clients' 500 ms default — even when it has records to return,
where a Kafka broker answers as soon as it has any. A 10 ms wait makes a fetch on Tansu cost
about what it does on Kafka; `BENCH_FETCH_WAIT_MS=500` measures at the clients' default (the
bench's `*_500` rows).

Measured inside the process: wall and CPU time (all threads) from before the app or client
starts to the last record handled; the same from the STEADY_FROM-th record (a tenth in) on
(steady state, after start-up and group join); peak RSS; and the wall-clock times of the first
and the last record, from which `bench_kafka.py` measures from the process's start (interpreter,
imports and all: a user's clock).
"""

import asyncio
import json
import os
import resource
import sys
import time

from pydantic import BaseModel

RECORDS = int(os.environ.get("BENCH_RECORDS", 100_000))
# The input topic: `bench_in`, filled before the run, or a paced run's own (`bench_paced.py`).
IN_TOPIC = os.environ.get("BENCH_IN", "bench_in")
FETCH_WAIT_MS = int(os.environ.get("BENCH_FETCH_WAIT_MS", 10))
STEADY_FROM = RECORDS // 10


class TestMsg(BaseModel):
    msg: str


# What kind of work each thread of a contender does, by its name (threads of one kind summed).
THREAD_KINDS = {
    "python": "Python thread",
    "tokio-rt-worker": "tokio workers",
    "fastkafka-send": "send lane",
    "fastkafka-repor": "delivery reports",
    "rdk:": "librdkafka",
}
TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def threads() -> dict[str, tuple[float, int]]:
    """CPU seconds and context switches (voluntary and not: how often a thread slept and was
    woken, or was preempted, which is what small batches cost) of every thread of this process
    so far, summed by kind of thread (THREAD_KINDS)."""
    kinds: dict[str, tuple[float, int]] = {}
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/stat") as stat:
                name, fields = stat.read().split(" (", 1)[1].rsplit(") ", 1)
            with open(f"/proc/self/task/{task}/status") as status:
                switches = sum(int(line.split()[-1]) for line in status if "ctxt_switches" in line)
        except OSError:  # FileNotFoundError, ProcessLookupError
            continue  # a thread that ended meanwhile
        ticks = fields.split()
        cpu = (int(ticks[11]) + int(ticks[12])) / TICKS_PER_S  # utime, stime
        kind = next((k for prefix, k in THREAD_KINDS.items() if name.startswith(prefix)), "other")
        seconds, count = kinds.get(kind, (0.0, 0))
        kinds[kind] = (seconds + cpu, count + switches)
    return kinds


class Clock:
    """Wall and CPU time from start, from the STEADY_FROM-th record, to the RECORDS-th; and
    the context switches of the steady part."""

    def __init__(self) -> None:
        self.count = 0
        self.done = asyncio.Event()
        self.start = (time.perf_counter(), time.process_time())
        self.steady = self.start
        self.end = self.start
        # Each kind of thread's CPU time and context switches, from STEADY_FROM to the end.
        self.threads: tuple[dict[str, tuple[float, int]], ...] = ({}, {})
        # When the first and the last record were handled, on the clock the parent reads at
        # spawning us.
        self.first_unix = 0.0
        self.end_unix = 0.0
        # fastkafka-rs only: how many batches its consumer handed to Python.
        self.handovers = 0.0

    def tick(self) -> None:
        self.count += 1
        if self.count == 1:
            self.first_unix = time.time()
        if self.count == STEADY_FROM:
            self.steady = (time.perf_counter(), time.process_time())
            self.threads = (threads(), {})
        elif self.count == RECORDS:
            self.end = (time.perf_counter(), time.process_time())
            self.end_unix = time.time()
            self.threads = (self.threads[0], threads())
            self.done.set()

    def report(self) -> dict[str, float]:
        steady_records = RECORDS - STEADY_FROM
        return {
            "msgs_per_s": RECORDS / (self.end[0] - self.start[0]),
            "steady_msgs_per_s": steady_records / (self.end[0] - self.steady[0]),
            "cpu_us_per_msg": (self.end[1] - self.start[1]) / RECORDS * 1e6,
            "steady_cpu_us_per_msg": (self.end[1] - self.steady[1]) / steady_records * 1e6,
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "steady_switches_per_msg": sum(
                count - self.threads[0].get(kind, (0.0, 0))[1]
                for kind, (_, count) in self.threads[1].items()
            )
            / steady_records,
            # Where the steady CPU went, by kind of thread (bench_paced.py shows it).
            "steady_thread_cpu_us_per_msg": {
                kind: (seconds - self.threads[0].get(kind, (0.0, 0))[0]) / steady_records * 1e6
                for kind, (seconds, _) in self.threads[1].items()
            },
            "records_per_handover": RECORDS / self.handovers if self.handovers else 0.0,
            "first_unix": self.first_unix,
            "end_unix": self.end_unix,
        }


async def handle(msg: TestMsg) -> TestMsg:
    return msg


def brokers(servers: str) -> dict:
    host, port = servers.split(":")
    return {"bench": {"url": host, "port": int(port)}}


async def fastkafka_app(
    servers: str, group: str, out_servers: str, in_group: bool = False, **options: object
) -> Clock:
    """The FastKafka app: consume, validate, handle, produce (to `out_servers`' cluster). At
    FastKafka's defaults a consumer has no group (it reads every partition, commits nothing);
    `in_group` joins one (offsets stored after handling, committed every 5 s)."""
    from fastkafka import FastKafka

    app = FastKafka(kafka_brokers=brokers(servers), bootstrap_servers_id="bench")
    out = None if out_servers == servers else brokers(out_servers)

    @app.produces(topic=f"out_{group.split('-')[0]}", brokers=out)
    async def to_bench_out(msg: TestMsg) -> TestMsg:
        return msg

    if in_group:
        options["group_id"] = group
    options["fetch_max_wait_ms"] = FETCH_WAIT_MS

    @app.consumes(topic=IN_TOPIC, auto_offset_reset="earliest", **options)
    async def on_bench_in(msg: TestMsg) -> None:
        await to_bench_out(await handle(msg))
        clock.tick()

    clock = Clock()
    async with app:
        await asyncio.wait_for(clock.done.wait(), 600)
        clock.handovers = handovers()  # a stopped consumer's figures are gone
    return clock


def handovers() -> float:
    """The batches fastkafka-rs's consumers handed to Python so far, from its metrics (0 on
    FastKafka 0.8.0, or with metrics off)."""
    try:
        from fastkafka import _core  # type: ignore[attr-defined]
    except ImportError:
        return 0.0
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in _core.render_metrics().splitlines()
        if line.startswith("fastkafka_consumer_batches_total")
    )


async def fastkafka_produce(servers: str, group: str, out_servers: str) -> Clock:
    """Only produce: `await to_x(msg)` in a loop, then stop (which flushes)."""
    from fastkafka import FastKafka

    app = FastKafka(kafka_brokers=brokers(servers), bootstrap_servers_id="bench")

    @app.produces(topic=f"out_{group.split('-')[0]}")
    async def to_bench_out(msg: TestMsg) -> TestMsg:
        return msg

    messages = [TestMsg(msg=f"signal {i}") for i in range(RECORDS)]
    clock = Clock()
    async with app:
        for message in messages[:-1]:
            await to_bench_out(message)
            clock.tick()
        await to_bench_out(messages[-1])
    clock.tick()  # the last one counts once everything is flushed
    return clock


async def confluent_loop(servers: str, group: str, out_servers: str) -> Clock:
    """The hand-written loop: consume(500), validate, await the handler, produce, store."""
    from confluent_kafka import Consumer, Producer

    clock = Clock()
    consumer = Consumer(
        {
            "bootstrap.servers": servers,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.offset.store": False,
            "fetch.wait.max.ms": FETCH_WAIT_MS,
        }
    )
    producer = Producer({"bootstrap.servers": out_servers})
    topic = f"out_{group.split('-')[0]}"
    consumer.subscribe([IN_TOPIC])
    while clock.count < RECORDS:
        for message in consumer.consume(num_messages=500, timeout=1.0):
            if message.error():
                continue
            result = await handle(TestMsg.model_validate_json(message.value()))
            while True:
                try:
                    producer.produce(topic, result.model_dump_json())
                    break
                except BufferError:
                    producer.poll(0.01)
            consumer.store_offsets(message)
            clock.tick()
        producer.poll(0)
    producer.flush(60)
    consumer.close()
    return clock


async def confluent_produce(servers: str, group: str, out_servers: str) -> Clock:
    """Only produce: `produce()` in a loop, then flush."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": servers})
    topic = f"out_{group.split('-')[0]}"
    messages = [TestMsg(msg=f"signal {i}") for i in range(RECORDS)]
    clock = Clock()
    for message in messages[:-1]:
        while True:
            try:
                producer.produce(topic, message.model_dump_json())
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
        clock.tick()
    producer.produce(topic, messages[-1].model_dump_json())
    producer.flush(60)
    clock.tick()
    return clock


async def python_floor(servers: str, group: str, out_servers: str) -> Clock:
    """No Kafka: validate, await the handler, dump, for the records held in memory."""
    values = [TestMsg(msg=f"signal {i}").model_dump_json().encode() for i in range(RECORDS)]
    clock = Clock()
    for value in values:
        result = await handle(TestMsg.model_validate_json(value))
        result.model_dump_json().encode()
        clock.tick()
    return clock


async def faststream_app(
    servers: str, group: str, out_servers: str, flavor: str, confirm: bool
) -> Clock:
    """FastStream: a subscriber that publishes its handler's result. At its defaults (`confirm`)
    each publish waits for the cluster's acknowledgement and each message is logged twice at
    INFO; its fastest documented settings publish with `no_confirm=True` and `logger=None`."""
    if flavor == "confluent":
        from faststream.confluent import KafkaBroker
    else:
        from faststream.kafka import KafkaBroker

    broker = KafkaBroker(servers) if confirm else KafkaBroker(servers, logger=None)
    publisher = broker.publisher(f"out_{group.split('-')[0]}")
    clock = Clock()

    @broker.subscriber(
        "bench_in",
        group_id=group,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=FETCH_WAIT_MS,
    )
    async def on_bench_in(msg: TestMsg) -> None:
        result = await handle(msg)
        if confirm:
            await publisher.publish(result)
        else:
            await publisher.publish(result, no_confirm=True)
        clock.tick()

    async with broker:
        await broker.start()
        await asyncio.wait_for(clock.done.wait(), 600)
    return clock


CONTENDERS = {
    "fastkafka": lambda s, g, o: fastkafka_app(s, g, o),
    "fastkafka_1000": lambda s, g, o: fastkafka_app(s, g, o, max_poll_records=1000),
    "fastkafka_group": lambda s, g, o: fastkafka_app(s, g, o, in_group=True),
    "fastkafka_dynamic": lambda s, g, o: fastkafka_app(s, g, o, executor="DynamicTaskExecutor"),
    "fastkafka_produce": fastkafka_produce,
    "confluent": confluent_loop,
    "confluent_produce": confluent_produce,
    "floor": python_floor,
    "faststream_aiokafka": lambda s, g, o: faststream_app(s, g, o, "aiokafka", True),
    "faststream_aiokafka_fastest": lambda s, g, o: faststream_app(s, g, o, "aiokafka", False),
    "faststream_confluent": lambda s, g, o: faststream_app(s, g, o, "confluent", True),
    "faststream_confluent_fastest": lambda s, g, o: faststream_app(s, g, o, "confluent", False),
}


def main() -> None:
    contender, servers, group = sys.argv[1:4]
    out_servers = sys.argv[4] if len(sys.argv) > 4 else servers
    clock = asyncio.run(CONTENDERS[contender](servers, group, out_servers))
    print(json.dumps(clock.report()))


if __name__ == "__main__":
    main()
