"""Metrics in Prometheus' text format: what this process's consumers and producers did.

The figures are the engine's (``src/metrics/``, the same for Rust apps): records consumed,
handled, failed, retried, dead-lettered and skipped per consumer; batches, their handling time
and rebalances; lag, stored and committed offsets per partition; per cluster and topic the
records sent, delivered, failed and pending, and the delivery latency. ``FASTKAFKA_METRICS=off``
in the environment turns recording off. In an app served by a web framework, expose
:func:`render` on a route::

    @fastapi_app.get("/metrics")
    def metrics() -> Response:
        return Response(fastkafka.metrics.render(), media_type=fastkafka.metrics.CONTENT_TYPE)

``fastkafka run --metrics-port PORT`` serves ``/metrics`` for all its workers: each worker
writes its figures to a file every second (:class:`WorkerMetricsFile`) and the command's
server (:func:`serve_workers`) returns them all, each sample labelled ``worker="<n>"``.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from . import _core

__all__ = ["CONTENT_TYPE", "WorkerMetricsFile", "render", "serve_workers"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# How often a worker refreshes its file: a scrape sees figures at most this old.
WORKER_REFRESH_SECONDS = 1.0

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (.*)$")


def render() -> str:
    """This process's figures in Prometheus' text format (0.0.4)."""
    return _core.render_metrics()


class WorkerMetricsFile:
    """Writes this worker's :func:`render` to ``path`` every second, replacing it atomically,
    until :meth:`stop` (which writes it a last time)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fastkafka-metrics", daemon=True)
        self._thread.start()

    def _write(self) -> None:
        handle, temporary = tempfile.mkstemp(dir=self._path.parent, prefix=".metrics-")
        with os.fdopen(handle, "w") as file:
            file.write(render())
        os.replace(temporary, self._path)

    def _run(self) -> None:
        while True:
            self._write()
            if self._stopped.wait(WORKER_REFRESH_SECONDS):
                return

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()
        self._write()


def merge_workers(texts: dict[int, str]) -> str:
    """The workers' texts as one exposition: each sample gets a ``worker`` label, each
    metric's HELP and TYPE lines appear once, before its first sample."""
    comments: dict[str, list[str]] = {}
    samples: dict[str, list[str]] = {}
    for worker, text in sorted(texts.items()):
        described_here: set[str] = set()
        for line in text.splitlines():
            if line.startswith("# "):
                name = line.split()[2]
                if name not in comments or name in described_here:
                    comments.setdefault(name, []).append(line)
                    described_here.add(name)
                continue
            match = _SAMPLE.match(line)
            if match is None:
                continue
            name, _, labels, value = match.groups()
            family = re.sub(r"_(bucket|sum|count)$", "", name)
            family = family if family in comments else name
            labelled = f'worker="{worker}"' + (f",{labels}" if labels else "")
            samples.setdefault(family, []).append(f"{name}{{{labelled}}} {value}")
    lines: list[str] = []
    for family in dict.fromkeys([*comments, *samples]):
        lines.extend(comments.get(family, []))
        lines.extend(samples.get(family, []))
    return "\n".join(lines) + "\n"


def serve_workers(bind: str, port: int, directory: Path) -> ThreadingHTTPServer:
    """Serves ``GET /metrics`` on ``bind:port`` from the ``worker-<n>.prom`` files in
    ``directory``, in a daemon thread; returns the server (``shutdown()`` stops it)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404, "metrics are at /metrics")
                return
            texts = {}
            for file in sorted(directory.glob("worker-*.prom")):
                texts[int(file.stem.split("-")[1])] = file.read_text()
            body = merge_workers(texts).encode()
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # a scrape every few seconds is not news

    server = ThreadingHTTPServer((bind, port), Handler)
    threading.Thread(target=server.serve_forever, name="fastkafka-metrics", daemon=True).start()
    return server
