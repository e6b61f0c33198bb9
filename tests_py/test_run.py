"""`fastkafka run` on a real cluster: workers split the work, stop cleanly, commit everything."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from kafka_helpers import TIMEOUT, committed_offsets, produce
from local_kafka import TansuBroker, free_port
from run_helpers import (
    APPS,
    FASTKAFKA,
    PARTITIONS,
    OutputWatcher,
    handled_lines,
    split_between_two,
    start_two_workers,
    stop_cleanly,
    two_workers,
)

RECORDS = 10_000


def test_two_workers_process_every_record_once_and_stop_cleanly(
    two_clusters: list[TansuBroker], tmp_path: Path
) -> None:
    cluster = two_clusters[0]
    cluster.create_topic("counted", partitions=PARTITIONS)
    output = tmp_path / "handled.txt"
    process, watcher = start_two_workers(cluster, output)
    try:
        watcher.wait_until(split_between_two)
        records = [(str(i).encode(), f'{{"msg": "{i}"}}'.encode()) for i in range(RECORDS)]
        produced = time.monotonic()
        asyncio.run(produce(cluster.bootstrap_servers, "counted", records))
        deadline = time.monotonic() + TIMEOUT
        while handled_lines(output) < RECORDS:
            assert time.monotonic() < deadline, f"only {handled_lines(output)} handled"
            time.sleep(0.05)
        throughput = RECORDS / (time.monotonic() - produced)
        stop_requested = time.monotonic()
        process.send_signal(signal.SIGTERM)
        returncode = process.wait(60)
        stop_seconds = time.monotonic() - stop_requested
    finally:
        if process.poll() is None:
            process.kill()
        watcher.join()

    log = "\n".join(watcher.lines)
    assert returncode == 0, log
    assert "All workers stopped cleanly" in log
    print(f"{throughput:,.0f} records/s produce-to-handled; SIGTERM to exit: {stop_seconds:.2f} s")

    handled = [line.split() for line in output.read_text().splitlines()]
    counts = Counter(value for _, value in handled)
    assert len(counts) == RECORDS, "every record was processed"
    assert max(counts.values()) == 1, "no record was processed twice"
    assert len({pid for pid, _ in handled}) == 2, "both workers processed records"

    committed = asyncio.run(
        committed_offsets(
            cluster.bootstrap_servers, "counting_app:app.on_counted", "counted", PARTITIONS
        )
    )
    assert sum(offset or 0 for offset in committed.values()) == RECORDS, committed


def scrape(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    """``/metrics`` of the command on ``port``, by metric name: (labels, value) samples."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for line in text.splitlines():
        found = re.match(r"^(\w+)\{(.*)\} (\S+)$", line)
        if found:
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', found.group(2)))
            samples.setdefault(found.group(1), []).append((labels, float(found.group(3))))
    return samples


def test_metrics_of_every_worker_show_the_records_handled_and_the_lag_falling_to_zero(
    two_clusters: list[TansuBroker], tmp_path: Path
) -> None:
    cluster = two_clusters[0]
    cluster.create_topic("counted", partitions=PARTITIONS)
    port = free_port()

    def figures() -> tuple[float, list[float], float, set[str]]:
        samples = scrape(port)
        records = samples.get("fastkafka_consumer_records_total", [])
        handled = sum(v for labels, v in records if labels["outcome"] == "handled")
        lags = [v for _, v in samples.get("fastkafka_consumer_lag", [])]
        # A fresh topic: the offsets committed on all partitions add up to the records.
        committed = sum(v for _, v in samples.get("fastkafka_consumer_committed_offset", []))
        workers = {labels["worker"] for labels, _ in records}
        return handled, lags, committed, workers

    options = ("--metrics-port", str(port))
    with two_workers(cluster, tmp_path / "handled.txt", options) as (process, watcher):
        watcher.wait_until(split_between_two)
        records = [(str(i).encode(), f'{{"msg": "{i}"}}'.encode()) for i in range(RECORDS)]
        asyncio.run(produce(cluster.bootstrap_servers, "counted", records))
        deadline = time.monotonic() + TIMEOUT
        while True:
            handled, lags, committed, workers = figures()
            caught_up = len(lags) == PARTITIONS and not any(lags)
            if handled == RECORDS and caught_up and committed == RECORDS:
                break
            assert time.monotonic() < deadline, f"handled {handled}, lags {lags}, {committed=}"
            time.sleep(0.2)  # the workers refresh their figures every second
        assert workers == {"0", "1"}, "each worker's figures, labelled"
        rebalances = scrape(port)["fastkafka_consumer_rebalances_total"]
        assert all(v >= 1 for _, v in rebalances), f"each was assigned partitions: {rebalances}"
        sent = scrape(port)["fastkafka_consumer_records_total"]
        consumed = sum(v for labels, v in sent if labels["outcome"] == "consumed")
        assert consumed == RECORDS
        assert {labels["topic"] for labels, _ in sent} == {"counted"}
        stop_cleanly(process)


def test_an_unknown_environment_fails_at_once_listing_the_known_ones() -> None:
    done = subprocess.run(
        [FASTKAFKA, "run", "--kafka-broker", "staging", "counting_app:app"],
        cwd=APPS,
        env={**os.environ, "KAFKA_CLUSTER_1": "127.0.0.1:1", "COUNTING_APP_OUTPUT": os.devnull},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "unknown --kafka-broker 'staging'" in done.stderr
    assert "development" in done.stderr


def test_a_crashed_worker_is_named_and_fails_the_command(
    two_clusters: list[TansuBroker], tmp_path: Path
) -> None:
    cluster = two_clusters[0]
    cluster.create_topic("counted", partitions=PARTITIONS)
    process, watcher = start_two_workers(cluster, tmp_path / "handled.txt")
    try:
        watcher.wait_until(lambda lines: sum("app started" in line for line in lines) == 2)
        started = next(line for line in watcher.lines if line.startswith("Started 2 worker(s)"))
        victim = int(started.split(": ")[1].split(", ")[0])
        os.kill(victim, signal.SIGKILL)
        returncode = process.wait(60)
    finally:
        if process.poll() is None:
            process.kill()
        watcher.join()
    log = "\n".join(watcher.lines)
    assert returncode == 1, log
    assert f"Worker [{victim}] exited unexpectedly with code -9" in log


def run_until_handled(
    cluster: TansuBroker, output: Path, message: str, stop_timeout: float
) -> tuple[subprocess.Popen[str], OutputWatcher]:
    """Two workers of the counting app, started and fed ``message``, which one of them has
    begun to handle when this returns."""
    cluster.create_topic("counted", partitions=PARTITIONS)
    process, watcher = start_two_workers(cluster, output, stop_timeout)
    watcher.wait_until(split_between_two)
    asyncio.run(
        produce(cluster.bootstrap_servers, "counted", [(None, f'{{"msg": "{message}"}}'.encode())])
    )
    deadline = time.monotonic() + TIMEOUT
    while handled_lines(output) < 1:
        assert time.monotonic() < deadline, "the message was not handled"
        time.sleep(0.05)
    return process, watcher


def end_with(
    process: subprocess.Popen[str], watcher: OutputWatcher, act: Callable[[], object]
) -> tuple[int, str]:
    """Do ``act`` (signals, kills) to the running command, wait for it to exit and return its
    exit code and output; it is never left running."""
    try:
        act()
        returncode = process.wait(TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
        watcher.join()
    return returncode, "\n".join(watcher.lines)


def test_a_worker_whose_consumer_dies_fails_the_command(
    two_clusters: list[TansuBroker], tmp_path: Path
) -> None:
    process, watcher = run_until_handled(two_clusters[0], tmp_path / "out.txt", "cancel", 30)
    returncode, log = end_with(process, watcher, lambda: None)
    assert returncode == 1, log
    assert re.search(r"Worker \[\d+\] exited unexpectedly with code 1", log), log


def test_a_stuck_handler_is_abandoned_within_the_stop_timeout(
    two_clusters: list[TansuBroker], tmp_path: Path
) -> None:
    # 10 s: the worker bounds its whole stop by 8 s and abandons the batch at half of that,
    # keeping the rest to commit, leave and flush.
    process, watcher = run_until_handled(two_clusters[0], tmp_path / "out.txt", "stuck", 10)
    returncode, log = end_with(process, watcher, lambda: process.send_signal(signal.SIGTERM))
    assert returncode == 0, log
    assert "on_counted: still handling a batch of 1 record(s) 4.0 s after stop was asked" in log
    assert "All workers stopped cleanly" in log


def test_a_second_signal_kills_the_workers_at_once(
    two_clusters: list[TansuBroker], tmp_path: Path
) -> None:
    process, watcher = run_until_handled(two_clusters[0], tmp_path / "out.txt", "stuck", 600)

    def signal_twice() -> None:
        process.send_signal(signal.SIGTERM)
        watcher.wait_until(lambda lines: "Stopping workers ..." in lines)
        process.send_signal(signal.SIGTERM)

    returncode, log = end_with(process, watcher, signal_twice)
    assert returncode == 1, log
    assert "Second signal: killing the workers" in log
    assert "on a second signal" in log


def test_a_stop_asked_for_during_startup_is_a_clean_exit(
    two_clusters: list[TansuBroker], tmp_path: Path
) -> None:
    cluster = two_clusters[0]
    cluster.create_topic("counted", partitions=PARTITIONS)
    process, watcher = start_two_workers(cluster, tmp_path / "out.txt")

    def stop_while_starting() -> None:
        # The workers are still starting: importing fastkafka and the app, joining the group.
        watcher.wait_until(lambda lines: any(line.startswith("Started 2") for line in lines))
        process.send_signal(signal.SIGTERM)

    returncode, log = end_with(process, watcher, stop_while_starting)
    assert returncode == 0, log
    assert "All workers stopped cleanly" in log


def running(pid: int) -> bool:
    """Whether ``pid`` is a live process (an exited, unreaped one counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_workers_never_outlive_a_killed_command(
    two_clusters: list[TansuBroker], tmp_path: Path
) -> None:
    cluster = two_clusters[0]
    cluster.create_topic("counted", partitions=PARTITIONS)
    process, watcher = start_two_workers(cluster, tmp_path / "out.txt")
    try:
        watcher.wait_until(lambda lines: sum("app started" in line for line in lines) == 2)
        started = next(line for line in watcher.lines if line.startswith("Started 2 worker(s)"))
        workers = [int(pid) for pid in started.split(": ")[1].split(", ")]
        process.kill()  # SIGKILL: the command gets no chance to stop its workers
        process.wait(TIMEOUT)
        deadline = time.monotonic() + TIMEOUT
        while any(running(pid) for pid in workers):
            assert time.monotonic() < deadline, f"workers {workers} outlived the command"
            time.sleep(0.05)
    finally:
        watcher.join()
