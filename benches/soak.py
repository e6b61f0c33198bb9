"""`make bench`, a long run: does a fastkafka-rs app stay flat?

SOAK_RECORDS (default 5,000,000) records go through the guide's forwarding app
(`benches/soak_app.py`: consume on cluster 1, produce to cluster 2) under
`fastkafka run --num-workers 2`, on two local Tansu clusters, written into cluster 1 at
SOAK_RATE records a second (default 40,000). Every 10 s each worker's resident memory, threads
and open file descriptors are sampled from `/proc`; the run ends once cluster 2 holds every
record. After a warm-up (the first SOAK_WARMUP seconds, default 30) each figure's slope is
fitted by least squares: flat means RSS moving by less than 1 MiB per million records and
threads and descriptors not moving at all. Writes `docs/benchmarks/soak.md` and a plot,
`docs/benchmarks/soak.png` (the performance page shows both).
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench_kafka import machine
from confluent_kafka import Consumer, Producer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from local_kafka import local_clusters

ROOT = Path(__file__).resolve().parent.parent
RECORDS = int(os.environ.get("SOAK_RECORDS", 5_000_000))
RATE = int(os.environ.get("SOAK_RATE", 40_000))
WARMUP = float(os.environ.get("SOAK_WARMUP", 30))
EVERY = 10.0
PARTITIONS = 4
RESULTS = ROOT / "docs" / "benchmarks"


def workers_of(supervisor: int) -> list[int]:
    """The worker processes `fastkafka run` started."""
    with open(f"/proc/{supervisor}/task/{supervisor}/children") as children:
        return [int(pid) for pid in children.read().split()]


def sample(pid: int) -> dict[str, float]:
    """One worker's resident memory (MiB), threads and open file descriptors now."""
    figures: dict[str, float] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                figures["rss_mib"] = int(line.split()[1]) / 1024
            elif line.startswith("Threads:"):
                figures["threads"] = int(line.split()[1])
    figures["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return figures


def feed(servers: str, stop: threading.Event) -> None:
    """RECORDS records into `preprocessed_signals` at RATE a second."""
    producer = Producer({"bootstrap.servers": servers, "linger.ms": 5})
    started = time.monotonic()
    for sent in range(RECORDS):
        if stop.is_set():
            return
        due = started + sent / RATE
        while (ahead := due - time.monotonic()) > 0:
            producer.poll(min(ahead, 0.005))
        while True:
            try:
                producer.produce("preprocessed_signals", json.dumps({"msg": f"signal {sent}"}))
                break
            except BufferError:
                producer.poll(0.01)
    producer.flush(60)


class Arrived:
    """Counts the records in `predictions` on cluster 2, on a thread of its own."""

    def __init__(self, servers: str) -> None:
        self.count = 0
        self._consumer = Consumer(
            {
                "bootstrap.servers": servers,
                "group.id": "soak-count",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 10,
            }
        )
        self._consumer.subscribe(["predictions"])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._count, daemon=True)
        self._thread.start()

    def _count(self) -> None:
        while not self._stop.is_set():
            batch = self._consumer.consume(num_messages=10_000, timeout=0.5)
            self.count += sum(1 for message in batch if not message.error())
        self._consumer.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def slope_per_minute(times: list[float], values: list[float]) -> float:
    """The least-squares slope of `values` over `times` (seconds), per minute."""
    if len(times) < 2:
        return 0.0
    fitted = statistics.linear_regression(times, values)
    return fitted.slope * 60


def main() -> None:
    samples: list[tuple[float, int, dict[str, float]]] = []
    with local_clusters(2, storage="memory://tansu/") as (one, two):
        one.create_topic("preprocessed_signals", partitions=PARTITIONS)
        two.create_topic("predictions", partitions=PARTITIONS)
        env = {
            **os.environ,
            "SOAK_CLUSTER_1": one.bootstrap_servers,
            "SOAK_CLUSTER_2": two.bootstrap_servers,
        }
        run = subprocess.Popen(
            [Path(sys.executable).with_name("fastkafka"), "run", "--num-workers", "2",
             "--kafka-broker", "development", "soak_app:app"],
            cwd=ROOT / "benches", env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        arrived = Arrived(two.bootstrap_servers)
        stop = threading.Event()
        feeder = threading.Thread(target=feed, args=(one.bootstrap_servers, stop), daemon=True)
        started = time.monotonic()
        feeder.start()
        deadline = started + RECORDS / RATE * 3 + 120
        try:
            while arrived.count < RECORDS:
                if run.poll() is not None or time.monotonic() > deadline:
                    assert run.stderr is not None
                    sys.exit(f"the run ended early ({arrived.count:,} of {RECORDS:,} arrived):"
                             f"\n{run.stderr.read()[-3000:]}")  # fmt: skip
                now = time.monotonic() - started
                for pid in workers_of(run.pid):
                    samples.append((now, pid, sample(pid)))
                print(f"{now:6.0f} s: {arrived.count:,} of {RECORDS:,} arrived; "
                      f"{[s for t, _, s in samples if t == now]}", flush=True)  # fmt: skip
                time.sleep(EVERY)
            elapsed = time.monotonic() - started
        finally:
            stop.set()
            run.send_signal(signal.SIGTERM)
            run.wait(60)
            arrived.close()
    report(samples, elapsed, arrived.count)


def report(samples: list[tuple[float, int, dict[str, float]]], elapsed: float, count: int) -> None:
    pids = sorted({pid for _, pid, _ in samples})
    lines = [
        f"{count:,} records in {elapsed:.0f} s through the guide's forwarding app, "
        f"`fastkafka run --num-workers 2`, fed at {RATE:,}/s; sampled every {EVERY:.0f} s; "
        f"slopes fitted after {WARMUP:.0f} s; {machine()}",
        "",
        "| worker | RSS MiB after warm-up → end | RSS slope MiB/min | MiB per million records "
        "| threads (min-max) | open fds (min-max) |",
        "|---|---|---|---|---|---|",
    ]
    for number, pid in enumerate(pids, 1):
        mine = [(t, s) for t, p, s in samples if p == pid and t >= WARMUP]
        if not mine:
            continue
        times = [t for t, _ in mine]
        rss = [s["rss_mib"] for _, s in mine]
        slope = slope_per_minute(times, rss)
        per_million = slope / 60 * (elapsed / (count / 1e6))
        threads = [s["threads"] for _, s in mine]
        fds = [s["fds"] for _, s in mine]
        lines.append(
            f"| {number} | {rss[0]:.1f} → {rss[-1]:.1f} | {slope:+.2f} | {per_million:+.2f} "
            f"| {min(threads):.0f}-{max(threads):.0f} | {min(fds):.0f}-{max(fds):.0f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if "SOAK_RECORDS" in os.environ:
        return  # a shorter run, to check the harness: docs/benchmarks stays as it is
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "soak.md").write_text(text)
    plot(samples, pids)


def plot(samples: list[tuple[float, int, dict[str, float]]], pids: list[int]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(11, 3))
    for number, pid in enumerate(pids, 1):
        mine = [(t, s) for t, p, s in samples if p == pid]
        for axis, figure, label in zip(
            axes, ("rss_mib", "threads", "fds"), ("RSS MiB", "threads", "open fds"), strict=True
        ):
            axis.plot([t for t, _ in mine], [s[figure] for _, s in mine], label=f"worker {number}")
            axis.set_title(label, fontsize=9)
            axis.set_xlabel("seconds", fontsize=8)
            axis.set_ylim(bottom=0)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "soak.png", dpi=100)


if __name__ == "__main__":
    main()
