"""`make demo-kafka`: the guide's main app under `fastkafka run` on two local Kafka clusters.

Run inside `scripts/local_kafka.py run` (which starts the clusters and sets KAFKA_CLUSTER_1/2).
A feeder app sends signals to `preprocessed_signals` on both clusters, a reader app counts the
predictions on each, then the worker is stopped with SIGTERM and a per-cluster summary printed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from pydantic import BaseModel

from fastkafka import FastKafka

HERE = Path(__file__).parent
SIGNALS_PER_CLUSTER = 5
TIMEOUT = 60.0
CLUSTERS = {"s1": os.environ["KAFKA_CLUSTER_1"], "s2": os.environ["KAFKA_CLUSTER_2"]}


class TestMsg(BaseModel):
    msg: str


def brokers(servers: str) -> dict[str, dict[str, str]]:
    host, port = servers.split(":")
    return {"development": {"url": host, "port": port}}


def start_worker(output: list[str], started: threading.Event) -> subprocess.Popen[str]:
    command = [
        str(Path(sys.executable).with_name("fastkafka")),
        "run",
        "--num-workers=1",
        "--kafka-broker=development",
        "multi_cluster_local:app",
    ]
    process = subprocess.Popen(
        command, cwd=HERE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )

    def relay() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            print(line, end="", flush=True)
            output.append(line)
            if "app started" in line:
                started.set()

    threading.Thread(target=relay, daemon=True).start()
    return process


async def feed_and_read() -> dict[str, int]:
    feeder = FastKafka(kafka_brokers=brokers(CLUSTERS["s1"]), bootstrap_servers_id="development")
    predictions = {"s1": 0, "s2": 0}
    all_read = asyncio.Event()

    @feeder.produces(topic="preprocessed_signals")
    async def to_signals_1(msg: TestMsg) -> TestMsg:
        return msg

    @feeder.produces(topic="preprocessed_signals", brokers=brokers(CLUSTERS["s2"]))
    async def to_signals_2(msg: TestMsg) -> TestMsg:
        return msg

    def count(cluster: str) -> None:
        predictions[cluster] += 1
        if min(predictions.values()) >= SIGNALS_PER_CLUSTER:
            all_read.set()

    @feeder.consumes(topic="predictions", fetch_max_wait_ms=50)
    async def on_predictions_1(msg: TestMsg) -> None:
        count("s1")

    @feeder.consumes(topic="predictions", brokers=brokers(CLUSTERS["s2"]), fetch_max_wait_ms=50)
    async def on_predictions_2(msg: TestMsg) -> None:
        count("s2")

    async with feeder:
        for i in range(SIGNALS_PER_CLUSTER):
            await to_signals_1(TestMsg(msg=f"signal_s1_{i}"))
            await to_signals_2(TestMsg(msg=f"signal_s2_{i}"))
        await asyncio.wait_for(all_read.wait(), TIMEOUT)
    return predictions


def main() -> int:
    output: list[str] = []
    started = threading.Event()
    worker = start_worker(output, started)
    try:
        if not started.wait(TIMEOUT):
            print("the app did not start in time")
            return 1
        began = time.monotonic()
        predictions = asyncio.run(feed_and_read())
        elapsed = time.monotonic() - began
    finally:
        worker.send_signal(signal.SIGTERM)
        returncode = worker.wait(TIMEOUT)
    print("\nPer-cluster summary")
    print(
        f"{'cluster':<8} {'bootstrap servers':<20} {'sent':>5} {'handled':>8} {'predictions':>12}"
    )
    for name, servers in CLUSTERS.items():
        handled = sum(f"Received on {name}:" in line for line in output)
        row = f"{name:<8} {servers:<20} {SIGNALS_PER_CLUSTER:>5} {handled:>8}"
        print(f"{row} {predictions[name]:>12}")
    print(f"\nRound trip in {elapsed:.2f} s; fastkafka run exited with {returncode}.")
    return returncode


if __name__ == "__main__":
    sys.exit(main())
