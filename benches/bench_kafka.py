"""`make bench` (real broker): fastkafka-rs beside its peers on one local Tansu broker.

100,000 JSON records (~30 bytes, 4 partitions) are consumed, validated with pydantic, handed to a
trivial async handler and produced — by the same FastKafka app file on fastkafka-rs (at FastKafka's
defaults, `max_poll_records=1000`, metrics off, and producing to a second cluster) and on FastKafka
0.8.0 (its own venv, 2023 pins), by FastStream (latest, its own venv; aiokafka and confluent
brokers, each at its defaults and at its fastest documented settings: publishing without waiting for
acknowledgements, no per-message log; being 10-100x slower, it handles the first 5,000 or 20,000
records only, so compare its steady rate), by the baseline — a hand-written confluent-kafka loop —
and, without Kafka, by the Python floor (validate → await → dump); and a Rust-native fastkafka app
beside two hand-written rust-rdkafka loops, one that stores an input's offset once its output is
queued (the Rust baseline) and one that stores it once the output is acknowledged, as the app does
(`benches/kafka_native.rs`). Produce-only: `await to_x(msg)` in a loop beside a confluent-kafka
`produce()` loop. Each run is a fresh process with its own consumer group
(`benches/kafka_workloads.py`); the contenders alternate for three rounds and the table shows
medians: throughput from the app's start to the last record, in steady state (from the 10,000th)
and from the process's start (its spawn: interpreter, imports and all, a user's clock), the first
output after the process's start, CPU per message of the whole process (all threads), peak RSS
and the ratio against the baseline. Every
consumer asks the broker to hold a fetch for at most 10 ms: Tansu 0.6.0 holds each fetch for its
whole wait even when it has records (250 ms at the clients' default of 500 ms), which a Kafka broker
does not; the `*_500` rows show two contenders at that default (`benches/kafka_workloads.py` says
more). Outputs are counted by reading each output topic back (Tansu 0.6.0's memory engine reports
high watermarks wrong). Writes the table to `docs/benchmarks/kafka.md` and the chart to
`docs/benchmarks/kafka.png` (the performance page shows both); with BENCH_DELAY_MS=25, each
API beside its baseline with both brokers 25 ms away each way, to `docs/benchmarks/kafka_25ms.md`.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Consumer, Producer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from bench_tester import fastkafka_python, peer_python
from local_kafka import delay_proxy, local_clusters

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = ROOT / "benches" / "kafka_workloads.py"
FASTSTREAM_VENV = ROOT / ".venv-faststream"
# BENCH_RECORDS / BENCH_ROUNDS: a quicker run, to check the harness. BENCH_ONLY: a comma-separated
# list of row labels (e.g. `confluent,fastkafka`) to compare just those; such a partial run prints
# its table but leaves docs/benchmarks alone.
RECORDS = int(os.environ.get("BENCH_RECORDS", 100_000))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", 3))
ONLY = [label for label in os.environ.get("BENCH_ONLY", "").split(",") if label]
# BENCH_DELAY_MS: both brokers that far away each way, behind `scripts/delay_proxy.py`. Such a
# run (without BENCH_ONLY) runs the DISTANT rows and writes `docs/benchmarks/kafka_<N>ms.md`.
DELAY_MS = float(os.environ.get("BENCH_DELAY_MS", 0))
# The rows of a run on a distant cluster: each API beside its baseline.
DISTANT = ["confluent", "fastkafka", "fastkafka_two", "fastkafka_dynamic", "rdkafka", "rust_app"]
PARTITIONS = 4


@dataclass
class Row:
    label: str
    name: str
    contender: str
    python: str
    env: dict[str, str] = field(default_factory=dict)
    two_clusters: bool = False
    baseline: str = "confluent"
    # How many of the input's records this contender handles (the slow peers: fewer).
    records: int = RECORDS
    # A Rust contender of `benches/kafka_native.rs` rather than a Python one.
    native: bool = False
    runs: list[dict[str, float]] = field(default_factory=list)
    outputs: str = "—"

    def median(self, figure: str) -> float:
        return statistics.median(run[figure] for run in self.runs)


def version_in(python: str, package: str) -> str:
    done = subprocess.run(
        [python, "-c", f"import importlib.metadata as m; print(m.version('{package}'))"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout.strip()


def rows() -> list[Row]:
    ours, fastkafka_080 = sys.executable, str(fastkafka_python())
    faststream = str(peer_python(FASTSTREAM_VENV, ["faststream[kafka,confluent]"]))
    stream = version_in(faststream, "faststream")
    return [
        Row("confluent", "hand-written confluent-kafka loop (baseline)", "confluent", ours),
        Row("fastkafka", "fastkafka-rs, max_poll_records=100 (default)", "fastkafka", ours),
        Row("fastkafka_1000", "fastkafka-rs, max_poll_records=1000", "fastkafka_1000", ours),
        Row("fastkafka_group", "fastkafka-rs, in a group (commits)", "fastkafka_group", ours),
        Row(
            "fastkafka_dynamic",
            "fastkafka-rs, executor=DynamicTaskExecutor",
            "fastkafka_dynamic",
            ours,
        ),
        Row(
            "fastkafka_no_metrics",
            "fastkafka-rs, FASTKAFKA_METRICS=off",
            "fastkafka",
            ours,
            env={"FASTKAFKA_METRICS": "off"},
        ),
        Row(
            "fastkafka_two",
            "fastkafka-rs, consume on cluster 1, produce to 2",
            "fastkafka",
            ours,
            two_clusters=True,
        ),
        Row(
            "confluent_500",
            "confluent-kafka loop, 500 ms fetch wait (baseline of the next)",
            "confluent",
            ours,
            env={"BENCH_FETCH_WAIT_MS": "500"},
            baseline="confluent_500",
        ),
        Row(
            "fastkafka_500",
            "fastkafka-rs, default, 500 ms fetch wait",
            "fastkafka",
            ours,
            env={"BENCH_FETCH_WAIT_MS": "500"},
            baseline="confluent_500",
        ),
        Row("fastkafka080", "FastKafka 0.8.0, the same app file", "fastkafka", fastkafka_080),
        Row(
            "fs_aiokafka",
            f"FastStream {stream}, aiokafka",
            "faststream_aiokafka",
            faststream,
            records=min(RECORDS, 5_000),
        ),
        Row(
            "fs_aiokafka_nc",
            f"FastStream {stream}, aiokafka, no_confirm, no logger",
            "faststream_aiokafka_fastest",
            faststream,
            records=min(RECORDS, 20_000),
        ),
        Row(
            "fs_confluent",
            f"FastStream {stream}, confluent",
            "faststream_confluent",
            faststream,
            records=min(RECORDS, 5_000),
        ),
        Row(
            "fs_confluent_nc",
            f"FastStream {stream}, confluent, no_confirm, no logger",
            "faststream_confluent_fastest",
            faststream,
            records=min(RECORDS, 20_000),
        ),
        Row("floor", "Python floor: validate -> await -> dump, no Kafka", "floor", ours),
        Row(
            "rdkafka",
            "Rust: hand-written rust-rdkafka loop (Rust baseline)",
            "rdkafka",
            ours,
            native=True,
            baseline="rdkafka",
        ),
        Row(
            "rdkafka_acked",
            "Rust: rust-rdkafka loop, offsets stored once acknowledged (per 500)",
            "rdkafka_acked",
            ours,
            native=True,
            baseline="rdkafka",
        ),
        Row(
            "rust_app",
            "Rust: fastkafka Rust-native app",
            "app",
            ours,
            native=True,
            baseline="rdkafka",
        ),
        Row(
            "confluent_produce",
            "produce only: confluent-kafka produce() loop",
            "confluent_produce",
            ours,
            baseline="confluent_produce",
        ),
        Row(
            "fastkafka_produce",
            "produce only: fastkafka-rs await to_x(msg)",
            "fastkafka_produce",
            ours,
            baseline="confluent_produce",
        ),
    ]


def fill(servers: str) -> None:
    producer = Producer({"bootstrap.servers": servers})
    for i in range(RECORDS):
        while True:
            try:
                producer.produce("bench_in", f'{{"msg":"signal {i}"}}', key=str(i))
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    producer.flush(60)


NATIVE = ["cargo", "bench", "--quiet", "--features", "kafka", "--bench", "kafka_native"]


def native_executable() -> str:
    """Builds `benches/kafka_native.rs` and returns its executable, which the Rust rows run
    directly: through `cargo bench` their clock from the process's start would include cargo's
    own start."""
    built = subprocess.run(
        [*NATIVE, "--no-run", "--message-format=json"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    )  # fmt: skip
    for line in built.stdout.splitlines():
        message = json.loads(line)
        if message.get("target", {}).get("name") == "kafka_native" and message.get("executable"):
            return str(message["executable"])
    sys.exit("cargo built no kafka_native executable")


def run(row: Row, servers: list[str], round_: int, native: str) -> dict[str, float]:
    out = servers[1] if row.two_clusters else servers[0]
    group = f"{row.label}-{round_}"
    command = (
        [native, servers[0], row.contender, group]
        if row.native
        else [row.python, str(WORKLOADS), row.contender, servers[0], group, out]
    )
    spawned = time.time()
    done = subprocess.run(
        command,
        env={**os.environ, **row.env, "BENCH_RECORDS": str(row.records)},
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if done.returncode != 0:
        sys.exit(f"{row.name} failed:\n{done.stderr[-3000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    # A user's clock: from spawning the process to its first and its last record handled.
    result["from_start_msgs_per_s"] = row.records / (result["end_unix"] - spawned)
    result["first_output_s"] = result["first_unix"] - spawned
    return result


def count_topic(servers: str, topic: str) -> int:
    """Records in `topic`, read back from the start until nothing more comes for 3 s."""
    consumer = Consumer(
        {
            "bootstrap.servers": servers,
            "group.id": f"count-{topic}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    count = 0
    while batch := consumer.consume(num_messages=10_000, timeout=3.0):
        count += sum(1 for message in batch if not message.error())
    consumer.close()
    return count


def machine() -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if "model name" in line),
        platform.processor(),
    )
    return f"{os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}, " + (
        f"CPython {platform.python_version()}"
    )


def table(all_rows: list[Row]) -> str:
    by_label = {row.label: row for row in all_rows}
    lines = [
        "| contender | msgs/s | steady msgs/s | CPU µs/msg | steady CPU µs/msg | RSS MB "
        "| vs baseline | steady vs baseline | from process start msgs/s (vs baseline) "
        "| first output after process start | outputs read back of expected |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in all_rows:
        base = by_label.get(row.baseline)  # absent from a BENCH_ONLY run that leaves it out
        ratios = (
            f"{row.median('msgs_per_s') / base.median('msgs_per_s'):.2f}x "
            f"| {row.median('steady_msgs_per_s') / base.median('steady_msgs_per_s'):.2f}x"
            if base
            else "— | —"
        )
        lines.append(
            f"| {row.name} | {row.median('msgs_per_s'):,.0f} "
            f"| {row.median('steady_msgs_per_s'):,.0f} | {row.median('cpu_us_per_msg'):.1f} "
            f"| {row.median('steady_cpu_us_per_msg'):.1f} | {row.median('rss_mb'):.0f} "
            f"| {ratios} | {from_start(row, base)} | {first_output(row)} | {row.outputs} |"
        )
    return "\n".join(lines)


def from_start(row: Row, base: Row | None) -> str:
    """Throughput from the process's start, and its ratio to the baseline's."""
    rate = row.median("from_start_msgs_per_s")
    if base is None:
        return f"{rate:,.0f}"
    return f"{rate:,.0f} ({rate / base.median('from_start_msgs_per_s'):.2f}x)"


def first_output(row: Row) -> str:
    """How long a user waits, from spawning the process, for the first record to be handled
    (the produce-only rows: sent)."""
    return f"{row.median('first_output_s'):.2f} s"


def chart(all_rows: list[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [row for row in all_rows if row.label != "floor"]
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(shown) + 1.5))
    names = [row.name for row in shown][::-1]
    total = [row.median("msgs_per_s") for row in shown][::-1]
    steady = [row.median("steady_msgs_per_s") for row in shown][::-1]
    positions = range(len(shown))
    ax.barh([p + 0.2 for p in positions], steady, height=0.4, label="steady msgs/s")
    ax.barh([p - 0.2 for p in positions], total, height=0.4, label="msgs/s (start included)")
    for position, value in zip(positions, steady, strict=True):
        ax.text(value, position + 0.2, f" {value:,.0f}", va="center", fontsize=7)
    ax.set_xscale("log")  # the peers are 10-300x apart
    ax.set_xlim(right=max(steady) * 3)  # room for the largest bar's label
    ax.set_yticks(list(positions), names, fontsize=8)
    ax.set_xlabel(f"messages per second, log scale (median of {ROUNDS} runs)")
    ax.set_title(
        f"consume -> validate -> handle -> produce, {RECORDS:,} records, one Tansu", fontsize=10
    )
    ax.legend(loc="center right")  # beside the short bars of the slow peers
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    all_rows = rows()
    only = ONLY or (DISTANT if DELAY_MS else [])
    if only:
        unknown = set(only) - {row.label for row in all_rows}
        if unknown:
            sys.exit(f"BENCH_ONLY names unknown rows {sorted(unknown)}; rows are "
                     f"{', '.join(row.label for row in all_rows)}")  # fmt: skip
        all_rows = [row for row in all_rows if row.label in only]
    native = native_executable()  # built before the clock runs
    with local_clusters(2, storage="memory://tansu/") as brokers, contextlib.ExitStack() as far:
        servers = [broker.bootstrap_servers for broker in brokers]
        if DELAY_MS:
            servers = [far.enter_context(delay_proxy(broker, DELAY_MS)) for broker in brokers]
        brokers[0].create_topic("bench_in", partitions=PARTITIONS)
        for row in all_rows:
            target = brokers[1] if row.two_clusters else brokers[0]
            target.create_topic(f"out_{row.label}", partitions=PARTITIONS)
        fill(servers[0])
        for round_ in range(ROUNDS):
            for row in all_rows:
                row.runs.append(run(row, servers, round_, native))
                print(f"round {round_ + 1}: {row.name}: {row.runs[-1]}", flush=True)
        for row in all_rows:
            if row.contender != "floor":
                out = servers[1] if row.two_clusters else servers[0]
                written = count_topic(out, f"out_{row.label}")
                row.outputs = f"{written:,} of {ROUNDS * row.records:,}"
    report = (
        f"{RECORDS:,} records, {ROUNDS} alternating rounds, medians"
        f"{f', both brokers {DELAY_MS:g} ms away each way' if DELAY_MS else ''}; {machine()}\n\n"
        f"{table(all_rows)}\n"
    )
    print(report)
    if ONLY:
        return
    results = ROOT / "docs" / "benchmarks"
    results.mkdir(parents=True, exist_ok=True)
    if DELAY_MS:
        (results / f"kafka_{DELAY_MS:g}ms.md").write_text(report)
        return
    (results / "kafka.md").write_text(report)
    chart(all_rows, results / "kafka.png")


if __name__ == "__main__":
    main()
