"""`fastkafka run` of the counting app (tests_py/apps) on a test cluster, its output watched:
what test_run.py and test_health.py share."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from kafka_helpers import TIMEOUT
from local_kafka import TansuBroker

APPS = Path(__file__).parent / "apps"
FASTKAFKA = str(Path(sys.executable).with_name("fastkafka"))
PARTITIONS = 4


class OutputWatcher:
    """Collects the command's output lines and wakes waiters on each one."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self.changed = threading.Condition()
        assert process.stdout is not None
        self._stdout = process.stdout
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            with self.changed:
                self.lines.append(line.rstrip("\n"))
                self.changed.notify_all()

    def wait_until(self, condition: object, timeout: float = TIMEOUT) -> None:
        with self.changed:
            if not self.changed.wait_for(lambda: condition(self.lines), timeout):  # type: ignore[operator]
                raise AssertionError("timed out; output so far:\n" + "\n".join(self.lines[-40:]))

    def join(self) -> None:
        self._thread.join(timeout=10)
        self._stdout.close()


def start_two_workers(
    cluster: TansuBroker, output: Path, stop_timeout: float = 30, options: tuple[str, ...] = ()
) -> tuple[subprocess.Popen[str], OutputWatcher]:
    """`fastkafka run --num-workers 2` of the counting app on ``cluster``, output watched."""
    environment = {
        **os.environ,
        "KAFKA_CLUSTER_1": cluster.bootstrap_servers,
        "COUNTING_APP_OUTPUT": str(output),
    }
    process = subprocess.Popen(
        [
            FASTKAFKA,
            "run",
            "--num-workers",
            "2",
            "--kafka-broker",
            "development",
            "--stop-timeout",
            str(stop_timeout),
            *options,
            "counting_app:app",
        ],
        cwd=APPS,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return process, OutputWatcher(process)


def handled_lines(output: Path) -> int:
    return output.read_text().count("\n") if output.exists() else 0


def last_assignments(lines: list[str]) -> dict[str, set[str]]:
    """Each worker's latest 'partitions assigned' set, from the relayed log lines."""
    latest: dict[str, set[str]] = {}
    for line in lines:
        found = re.match(r"\[(\d+)\]: .*partitions assigned partitions=(\S*)", line)
        if found:
            latest[found.group(1)] = set(filter(None, found.group(2).split(",")))
    return latest


def split_between_two(lines: list[str]) -> bool:
    latest = last_assignments(lines)
    owned = [p for partitions in latest.values() for p in partitions]
    return (
        len(latest) == 2
        and all(latest.values())
        and len(owned) == PARTITIONS
        and len(set(owned)) == PARTITIONS
    )


@contextlib.contextmanager
def two_workers(
    cluster: TansuBroker, output: Path, options: tuple[str, ...] = ()
) -> Iterator[tuple[subprocess.Popen[str], OutputWatcher]]:
    """:func:`start_two_workers`, killed on the way out if a test left it running."""
    process, watcher = start_two_workers(cluster, output, options=options)
    try:
        yield process, watcher
    finally:
        if process.poll() is None:
            process.kill()
        watcher.join()


def stop_cleanly(process: subprocess.Popen[str]) -> None:
    """SIGTERM to the command, which must exit 0."""
    process.send_signal(signal.SIGTERM)
    assert process.wait(60) == 0
