"""What ``fastkafka run`` serves for its workers: metrics and health probes over HTTP.

Workers are separate processes, so each writes its figures (``fastkafka.metrics.render``) and
its health (``app.health()``) to files every second (:class:`WorkerFiles`, replaced
atomically), and the command's server (:func:`serve`) answers from the files: ``/metrics``
merges the workers' figures (``fastkafka.metrics.merge_workers``), ``/healthz`` and
``/readyz`` their health (``fastkafka.health.merge_workers``), 200 when live or ready, else
503. One server answers every route asked of it, so metrics and probes may share a port.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from . import health, metrics

__all__ = ["WorkerFiles", "serve"]

# How often a worker refreshes its files: a scrape or probe sees figures at most this old.
WORKER_REFRESH_SECONDS = 1.0
HEALTH_ROUTES = ("/healthz", "/readyz")


class WorkerFiles:
    """Writes this worker's metrics to ``metrics_file`` and ``health()`` to ``health_file``
    (each when given) every second until :meth:`stop`, which writes them a last time."""

    def __init__(
        self,
        metrics_file: Path | None,
        health_file: Path | None,
        health_of: Callable[[], dict[str, Any]],
    ) -> None:
        self._files: list[tuple[Path, Callable[[], str]]] = []
        if metrics_file is not None:
            self._files.append((metrics_file, metrics.render))
        if health_file is not None:
            self._files.append((health_file, lambda: json.dumps(health_of())))
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fastkafka-status", daemon=True)
        if self._files:
            self._thread.start()

    def _write(self) -> None:
        for path, render in self._files:
            handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".status-")
            with os.fdopen(handle, "w") as file:
                file.write(render())
            os.replace(temporary, path)

    def _run(self) -> None:
        while True:
            self._write()
            if self._stopped.wait(WORKER_REFRESH_SECONDS):
                return

    def stop(self) -> None:
        if not self._files:
            return
        self._stopped.set()
        self._thread.join()
        self._write()


def worker_files(directory: Path, index: int) -> tuple[Path, Path]:
    """Where worker ``index`` writes its metrics and its health."""
    return directory / f"worker-{index}.prom", directory / f"worker-{index}.health.json"


def _metrics_body(directory: Path, workers: int) -> tuple[int, str, bytes]:
    texts = {}
    for index in range(workers):
        path = worker_files(directory, index)[0]
        if path.exists():
            texts[index] = path.read_text()
    return 200, metrics.CONTENT_TYPE, metrics.merge_workers(texts).encode()


def _health_body(
    route: str, directory: Path, workers: int, stopping: threading.Event
) -> tuple[int, str, bytes]:
    reports: dict[int, tuple[dict[str, Any], float] | None] = {}
    for index in range(workers):
        path = worker_files(directory, index)[1]
        try:
            age = time.time() - path.stat().st_mtime
            reports[index] = (json.loads(path.read_text()), age)
        except FileNotFoundError:
            reports[index] = None
    merged = health.merge_workers(reports, stopping.is_set())
    healthy = merged["live"] if route == "/healthz" else merged["ready"]
    return 200 if healthy else 503, "application/json", json.dumps(merged).encode()


def serve(
    bind: str,
    port: int,
    routes: set[str],
    directory: Path,
    workers: int,
    stopping: threading.Event,
) -> ThreadingHTTPServer:
    """Serves ``routes`` (``/metrics``, ``/healthz``, ``/readyz``) of ``workers`` workers from
    their files in ``directory`` on ``bind:port``, in a daemon thread; returns the server
    (``shutdown()`` stops it). ``stopping``: the command is stopping (not ready)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            route = self.path.split("?")[0]
            if route not in routes:
                self.send_error(404, f"this server answers {', '.join(sorted(routes))}")
                return
            if route == "/metrics":
                status, content_type, body = _metrics_body(directory, workers)
            else:
                status, content_type, body = _health_body(route, directory, workers, stopping)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # a scrape or probe every few seconds is not news

    server = ThreadingHTTPServer((bind, port), Handler)
    threading.Thread(target=server.serve_forever, name="fastkafka-serve", daemon=True).start()
    return server
