"""`make bench`, paced mode: CPU per message and end-to-end latency at a fixed input rate.

Most production apps are not run flat out: records arrive at a steady rate and what a user pays
for is the CPU per message at that rate and the latency each record sees. For each rate in
BENCH_PACED_RATES (default 5,000 and 20,000 msg/s), the hand-written confluent-kafka loop (the
baseline) and the unchanged FastKafka app of `benches/kafka_workloads.py` (fastkafka-rs at its
defaults) each consume a topic of their own while this process writes records into it at that
rate for BENCH_PACED_SECONDS (default 10 s), and produce each to their output topic. The
contenders alternate for BENCH_ROUNDS rounds (default 3); the table shows medians.

- A run starts once its contender is live: a few warm-up records are written every 50 ms until
  one comes out the other side; then the paced records follow (the contender stops after all
  of them). Every record carries its send time (`time.time_ns()`), and an output's latency is
  its timestamp (the contender's producer set it when it produced it) minus that: the broker,
  both fetches and the handling, on one host's clock.
- Records per hand-over: how many records fastkafka-rs's consumer handed to Python at once
  (its batches metric), each hand-over costing thread wake-ups on both sides.
- CPU per message is the contender's whole process (all threads) over the paced part (its
  steady figure: from the tenth record on), as `kafka_workloads.py` measures it; so are its
  context switches per message (every thread's, voluntary and not): how often its threads
  sleep and are woken, which is what small batches cost. A second table splits the CPU by
  kind of thread (the Python thread, tokio's workers, the send lane, delivery reports,
  librdkafka's), to show where a contender spends what the other does not.

Every consumer asks the broker to hold a fetch at most 10 ms (Tansu 0.6.0 holds each fetch for
its whole wait; see `kafka_workloads.py`). Writes `docs/benchmarks/paced.md`, or with
BENCH_DELAY_MS=25 (the broker behind a proxy that delays every byte 25 ms each way)
`docs/benchmarks/paced_25ms.md`.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench_kafka import machine
from confluent_kafka import Consumer, Producer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from local_kafka import delay_proxy, local_clusters

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = ROOT / "benches" / "kafka_workloads.py"
RATES = [int(rate) for rate in os.environ.get("BENCH_PACED_RATES", "5000,20000").split(",")]
SECONDS = float(os.environ.get("BENCH_PACED_SECONDS", 10))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", 3))
# BENCH_DELAY_MS: the broker that far away each way, behind `scripts/delay_proxy.py` (every
# client of the run, the pacer and the reader included, goes through it).
DELAY_MS = float(os.environ.get("BENCH_DELAY_MS", 0))
PARTITIONS = 4
WARM_EVERY = 0.05

CONTENDERS = {
    "confluent": "hand-written confluent-kafka loop (baseline)",
    "fastkafka": "fastkafka-rs, the FastKafka app at its defaults",
}


@dataclass
class Run:
    cpu_us_per_msg: float
    switches_per_msg: float
    records_per_handover: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    # CPU µs per message by kind of thread (kafka_workloads.THREAD_KINDS).
    threads: dict[str, float] = field(default_factory=dict)


@dataclass
class Cell:
    contender: str
    rate: int
    runs: list[Run] = field(default_factory=list)

    def median(self, figure: str) -> float:
        return statistics.median(getattr(run, figure) for run in self.runs)


class Outputs:
    """Reads a run's output topic on a thread of its own: whether the contender is live (a
    warm-up record came out), and each paced record's latency."""

    def __init__(self, servers: str, topic: str, expected: int) -> None:
        self.live = threading.Event()
        self.latencies_ms: list[float] = []
        self.expected = expected
        self._consumer = Consumer(
            {
                "bootstrap.servers": servers,
                "group.id": f"read-{topic}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 10,
            }
        )
        self._consumer.subscribe([topic])
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        quiet_since = time.monotonic()
        while len(self.latencies_ms) < self.expected and time.monotonic() - quiet_since < 30:
            for message in self._consumer.consume(num_messages=1000, timeout=0.2):
                if message.error():
                    continue
                quiet_since = time.monotonic()
                kind, sent_ns = json.loads(message.value())["msg"].split(":")
                if kind == "warm":
                    self.live.set()
                    continue
                produced_ms = message.timestamp()[1]
                self.latencies_ms.append(produced_ms - int(sent_ns) / 1e6)
        self._consumer.close()

    def wait(self) -> None:
        self._thread.join()


def send(producer: Producer, topic: str, kind: str) -> None:
    while True:
        try:
            producer.produce(topic, json.dumps({"msg": f"{kind}:{time.time_ns()}"}))
            return
        except BufferError:
            producer.poll(0.001)


def pace(servers: str, topic: str, rate: int, total: int, outputs: Outputs) -> None:
    """Warm-up records until the contender is live, then the rest of `total` at `rate`."""
    producer = Producer({"bootstrap.servers": servers, "linger.ms": 1})
    warm = 0
    while not outputs.live.wait(WARM_EVERY):
        send(producer, topic, "warm")
        producer.poll(0)
        warm += 1
        if warm > 600:
            sys.exit(f"the contender reading {topic} did not come up within 30 s")
    paced = total - warm
    outputs.expected = paced
    started = time.monotonic()
    for sent in range(paced):
        due = started + sent / rate
        while (ahead := due - time.monotonic()) > 0:
            producer.poll(min(ahead, 0.001))
        send(producer, topic, "paced")
    producer.flush(60)


def run(contender: str, rate: int, servers: str, broker: object, round_: int) -> Run:
    label = f"paced_{contender}_{rate}_{round_}"
    topic_in, topic_out = f"in_{label}", f"out_{label}"
    broker.create_topic(topic_in, partitions=PARTITIONS)  # type: ignore[attr-defined]
    broker.create_topic(topic_out, partitions=PARTITIONS)  # type: ignore[attr-defined]
    total = int(rate * SECONDS)
    outputs = Outputs(servers, topic_out, total)
    process = subprocess.Popen(
        # The group's name makes the output topic's: out_<label> (kafka_workloads.py).
        [sys.executable, str(WORKLOADS), contender, servers, f"{label}-g"],
        env={**os.environ, "BENCH_RECORDS": str(total), "BENCH_IN": topic_in},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    pace(servers, topic_in, rate, total, outputs)
    stdout, stderr = process.communicate(timeout=SECONDS * 10 + 60)
    if process.returncode != 0:
        sys.exit(f"{contender} at {rate} msg/s failed:\n{stderr[-3000:]}")
    outputs.wait()
    figures = json.loads(stdout.strip().splitlines()[-1])
    latencies = sorted(outputs.latencies_ms)
    if len(latencies) < outputs.expected:
        sys.exit(f"{contender} at {rate} msg/s: {len(latencies)} of {outputs.expected} out")
    return Run(
        cpu_us_per_msg=figures["steady_cpu_us_per_msg"],
        switches_per_msg=figures["steady_switches_per_msg"],
        records_per_handover=figures["records_per_handover"],
        p50_ms=latencies[len(latencies) // 2],
        p99_ms=latencies[int(len(latencies) * 0.99)],
        max_ms=latencies[-1],
        threads=figures["steady_thread_cpu_us_per_msg"],
    )


def table(cells: list[Cell]) -> str:
    lines = [
        "| rate (msg/s) | contender | CPU µs/msg | vs baseline | context switches/msg "
        "| records per hand-over | latency p50 ms | p99 ms | max ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    baselines = {cell.rate: cell for cell in cells if cell.contender == "confluent"}
    for cell in cells:
        cpu = cell.median("cpu_us_per_msg")
        base = baselines[cell.rate].median("cpu_us_per_msg")
        # fastkafka-rs's consumer only: the loop batches as its consume() call says.
        per_handover = cell.median("records_per_handover")
        handover = f"{per_handover:.0f}" if cell.contender != "confluent" else ""
        lines.append(
            f"| {cell.rate:,} | {CONTENDERS[cell.contender]} | {cpu:.1f} | {cpu / base:.2f}x "
            f"| {cell.median('switches_per_msg'):.2f} "
            f"| {handover or '—'} "
            f"| {cell.median('p50_ms'):.0f} | {cell.median('p99_ms'):.0f} "
            f"| {cell.median('max_ms'):.0f} |"
        )
    return "\n".join(lines)


# The kinds of thread in the order the breakdown shows them.
THREAD_COLUMNS = [
    "Python thread",
    "tokio workers",
    "send lane",
    "delivery reports",
    "librdkafka",
    "other",
]


def threads_table(cells: list[Cell]) -> str:
    """Where each contender's CPU per message goes, by kind of thread (medians)."""
    lines = [
        "| rate (msg/s) | contender | " + " | ".join(THREAD_COLUMNS) + " |",
        "|---|---|" + "---|" * len(THREAD_COLUMNS),
    ]
    for cell in cells:
        shares = []
        for kind in THREAD_COLUMNS:
            spent = [run.threads[kind] for run in cell.runs if kind in run.threads]
            shares.append(f"{statistics.median(spent):.1f}" if spent else "—")
        lines.append(
            f"| {cell.rate:,} | {CONTENDERS[cell.contender]} | " + " | ".join(shares) + " |"
        )
    return "\n".join(lines)


def main() -> None:
    cells = [Cell(contender, rate) for rate in RATES for contender in CONTENDERS]
    with local_clusters(1, storage="memory://tansu/") as (broker,), contextlib.ExitStack() as far:
        servers = broker.bootstrap_servers
        if DELAY_MS:
            servers = far.enter_context(delay_proxy(broker, DELAY_MS))
        for round_ in range(ROUNDS):
            for cell in cells:
                cell.runs.append(run(cell.contender, cell.rate, servers, broker, round_))
                print(f"round {round_ + 1}: {cell.contender} at {cell.rate}: {cell.runs[-1]}")
    distance = f"the broker {DELAY_MS:g} ms away each way" if DELAY_MS else "a local broker"
    report = (
        f"Paced: {SECONDS:g} s at each rate, {distance}, {ROUNDS} alternating rounds, medians; "
        f"{machine()}\n\n{table(cells)}\n\n"
        "Where the CPU goes: µs per message by kind of thread (the Python thread runs the event "
        "loop and every handler; librdkafka's are its broker threads)\n\n"
        f"{threads_table(cells)}\n"
    )
    print(report)
    if os.environ.get("BENCH_PACED_RATES") is None and ROUNDS >= 3:
        name = f"paced_{DELAY_MS:g}ms.md" if DELAY_MS else "paced.md"
        (ROOT / "docs" / "benchmarks" / name).write_text(report)


if __name__ == "__main__":
    main()
