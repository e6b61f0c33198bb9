"""One worker process of ``fastkafka run``: runs an app until SIGTERM or SIGINT.

Started by the CLI as a fresh interpreter (``python -m fastkafka._worker``), never forked from
a process whose engine already runs: neither librdkafka nor tokio survives ``fork()``. On a
signal the app stops the way ``async with app`` ends: every consumer finishes its batch in
flight and commits, producers flush, then the process exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from ._app import FastKafka
from ._importer import import_app
from ._serving import WorkerFiles

__all__ = ["run_worker"]

logger = logging.getLogger("fastkafka.worker")
LOG_FORMAT = "%(asctime)s.%(msecs)03d [%(levelname)s] %(name)s: %(message)s"


async def serve(app: FastKafka) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with app:
        logger.info("app started; stop with SIGTERM or SIGINT")
        # A consumer that dies (a handler with throw_exceptions=True failing, a BaseException,
        # a failed loop) ends the worker too, with its error.
        failed = asyncio.ensure_future(app.wait_for_failure())
        signalled = asyncio.ensure_future(stop.wait())
        await asyncio.wait([failed, signalled], return_when=asyncio.FIRST_COMPLETED)
        failed.cancel()
        signalled.cancel()
        logger.info("stopping: finishing in-flight messages and committing offsets")
    logger.info("app stopped")


def worker_stop_timeout(stop_timeout: float) -> float:
    """The app's stop timeout in a worker the command gives ``stop_timeout`` seconds: the
    runtime bounds its whole stop by it (batches in flight, outputs, commits, flush), and a
    fifth (1 to 5 s) is kept back for the interpreter's exit, so that the worker still exits on
    its own before the command kills it."""
    reserve = min(5.0, max(1.0, stop_timeout / 5))
    return max(0.0, stop_timeout - reserve)


def run_worker(
    import_string: str,
    kafka_broker: str,
    stop_timeout: float = 30.0,
    metrics_file: Path | None = None,
    health_file: Path | None = None,
    health_limits: tuple[float | None, float | None] = (None, None),
) -> None:
    app = import_app(import_string)
    app.set_kafka_broker(kafka_broker)
    app.stop_timeout = min(app.stop_timeout, worker_stop_timeout(stop_timeout))
    # The command's --polling-ttl / --consuming-ttl over the app's own.
    (polling_ttl, consuming_ttl), (own_polling, own_consuming) = (
        health_limits,
        app._runtime.health_limits,
    )
    app.set_health_limits(
        own_polling if polling_ttl is None else polling_ttl,
        own_consuming if consuming_ttl is None else consuming_ttl,
    )
    # Workers of one app share each consumer's partitions instead of each reading everything.
    app.use_default_groups(import_string)
    # The command serves every worker's figures and health from these files (_serving).
    files = WorkerFiles(metrics_file, health_file, app.health)
    try:
        asyncio.run(serve(app))
    finally:
        files.stop()


def _exit_cleanly(signum: int, _frame: object) -> None:
    raise SystemExit(0)


def stop_with_supervisor(supervisor_pid: int) -> None:
    """Make sure this worker never outlives the ``fastkafka run`` that started it: when the
    supervisor dies (even by SIGKILL), the worker gets SIGTERM and stops cleanly."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    else:
        threading.Thread(target=_watch_parent, args=(supervisor_pid,), daemon=True).start()
    if os.getppid() != supervisor_pid:  # it died before we asked to be told
        raise SystemExit(0)


def _watch_parent(supervisor_pid: int) -> None:
    while os.getppid() == supervisor_pid:
        time.sleep(0.5)  # no way to be notified outside Linux; a parent check is cheap
    os.kill(os.getpid(), signal.SIGTERM)


def main() -> None:
    # A stop asked for while the worker is still importing the app or starting its loop is
    # a clean exit too; once the app runs, serve() handles the signals itself.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    signal.signal(signal.SIGINT, _exit_cleanly)
    parser = argparse.ArgumentParser(prog="python -m fastkafka._worker")
    parser.add_argument("app")
    parser.add_argument("--kafka-broker", required=True)
    parser.add_argument("--stop-timeout", type=float, default=30.0)
    parser.add_argument("--supervisor-pid", type=int, default=None)
    parser.add_argument("--metrics-file", type=Path, default=None)
    parser.add_argument("--health-file", type=Path, default=None)
    parser.add_argument("--polling-ttl", type=float, default=None)
    parser.add_argument("--consuming-ttl", type=float, default=None)
    arguments = parser.parse_args()
    if arguments.supervisor_pid is not None:
        stop_with_supervisor(arguments.supervisor_pid)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, datefmt="%y-%m-%d %H:%M:%S")
    run_worker(
        arguments.app,
        arguments.kafka_broker,
        arguments.stop_timeout,
        arguments.metrics_file,
        arguments.health_file,
        (arguments.polling_ttl, arguments.consuming_ttl),
    )


if __name__ == "__main__":
    main()
