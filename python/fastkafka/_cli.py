"""The ``fastkafka`` command: ``run`` (below), ``docs`` (AsyncAPI docs), ``offsets``
(``_offsets``: a group's offsets, shown or reset) and ``testing``.

``fastkafka run``: an app in N worker processes against real clusters.

Each worker is a fresh process (``fastkafka._worker``), its output relayed line by line with a
``[pid]: `` prefix. SIGINT or SIGTERM is passed on to every worker, which stops consuming,
finishes the messages in flight, commits and exits; the command waits up to
``--stop-timeout`` seconds, then kills what is left and exits non-zero. A worker that exits on
its own is a crash: the command names it, stops the others and exits non-zero.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Annotated

import typer

from ._importer import import_app
from ._offsets import offsets_cli
from ._serving import HEALTH_ROUTES, serve, worker_files
from .exceptions import ConfigError

__all__ = ["cli", "main"]

cli = typer.Typer(
    help="Run FastKafka apps: consumers and producers on several Kafka clusters.",
    add_completion=False,
    no_args_is_help=True,
)


def _version_text() -> str:
    from . import _core  # imported when asked: --help should not load the extension

    librdkafka = getattr(_core, "librdkafka_version", None)
    built_with = f"librdkafka {librdkafka()}" if librdkafka else "no Kafka transport"
    return f"fastkafka-rs {_core.__version__} ({built_with})"


def _print_version(asked: bool) -> None:
    if asked:
        typer.echo(_version_text())
        raise typer.Exit()


@cli.callback()
def _commands(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the fastkafka-rs version and the librdkafka it was built with.",
        ),
    ] = False,
) -> None:
    """Run FastKafka apps: consumers and producers on several Kafka clusters."""


RUN_HELP = (
    "Run APP in worker processes until SIGINT or SIGTERM.\n\n"
    "Consumers without a group_id get the group '<APP>.<function name>', shared by all "
    "workers, so the partitions are split between them and each message is processed once.\n\n"
    "On SIGINT/SIGTERM every worker stops consuming, finishes its in-flight messages, commits "
    "and exits; the command exits 0 within --stop-timeout seconds (default 30), or kills the "
    "rest and exits 1. Each worker bounds its whole stop by that time less a fifth (1 to 5 s), "
    "even with a cluster down: a handler still running at half of it is abandoned (logged, "
    "its batch left uncommitted), outputs still unacknowledged later are given up (their "
    "inputs left uncommitted, consumed again next time), and the worker exits on its own. "
    "A second "
    "SIGINT/SIGTERM kills the workers at once. If a worker crashes, or a consumer of a worker "
    "dies, the command names it, stops the others and exits 1. Workers never outlive the "
    "command: if it is killed, they get SIGTERM and stop cleanly.\n\n"
    "--health-port serves /healthz (liveness: every consumer polls within --polling-ttl and "
    "no batch stays in a handler past --consuming-ttl) and /readyz (readiness: every cluster "
    "answers and every consumer holds its partitions) for all workers."
)


@cli.command(help=RUN_HELP)
def run(
    app: Annotated[
        str, typer.Argument(help="The app to run, as 'module:attribute' (e.g. 'my_service:app').")
    ],
    num_workers: Annotated[
        int,
        typer.Option(
            "--num-workers",
            min=1,
            help="Worker processes to start (default: the number of CPUs).",
        ),
    ] = multiprocessing.cpu_count(),
    kafka_broker: Annotated[
        str,
        typer.Option(
            "--kafka-broker",
            help="The environment (a key of the app's kafka_brokers) whose clusters to use.",
        ),
    ] = "localhost",
    stop_timeout: Annotated[
        float,
        typer.Option(
            "--stop-timeout",
            min=0,
            help="After SIGINT/SIGTERM, seconds to wait for workers to finish in-flight "
            "messages and commit before killing them.",
        ),
    ] = 30.0,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            min=1,
            max=65535,
            help="Serve every worker's metrics at http://BIND:PORT/metrics (Prometheus' text "
            "format; each sample labelled worker=N).",
        ),
    ] = None,
    metrics_bind: Annotated[
        str,
        typer.Option("--metrics-bind", help="The address the metrics server listens on."),
    ] = "127.0.0.1",
    health_port: Annotated[
        int | None,
        typer.Option(
            "--health-port",
            min=1,
            max=65535,
            help="Serve liveness at http://BIND:PORT/healthz and readiness at /readyz for "
            "every worker (200 or 503, with a JSON body saying which consumer of which "
            "cluster is unhealthy and why). May be the metrics port.",
        ),
    ] = None,
    health_bind: Annotated[
        str,
        typer.Option("--health-bind", help="The address the health server listens on."),
    ] = "127.0.0.1",
    polling_ttl: Annotated[
        float | None,
        typer.Option(
            "--polling-ttl",
            min=0.001,
            help="Seconds a consumer may go without polling and stay live (default: the "
            "app's polling_ttl, else the consumer's max_poll_interval_ms).",
        ),
    ] = None,
    consuming_ttl: Annotated[
        float | None,
        typer.Option(
            "--consuming-ttl",
            min=0.001,
            help="Seconds one batch may stay in its handler and the consumer stay live "
            "(default: the app's consuming_ttl, else the consumer's max_poll_interval_ms).",
        ),
    ] = None,
) -> None:
    """The `run` command; its help is RUN_HELP."""
    try:
        environments = import_app(app).kafka_brokers.environments()
    except ConfigError as error:
        typer.echo(f"Error: {error}", err=True)
        raise typer.Exit(2) from None
    if kafka_broker not in environments:
        typer.echo(
            f"Error: unknown --kafka-broker {kafka_broker!r}; the app's kafka_brokers define: "
            f"{', '.join(environments)}",
            err=True,
        )
        raise typer.Exit(2)
    servers = Servers(metrics_bind, metrics_port, health_bind, health_port)
    if servers.clash():
        typer.echo(
            "Error: --metrics-port and --health-port are the same port on different binds "
            f"({metrics_bind} and {health_bind}); give them one bind or two ports",
            err=True,
        )
        raise typer.Exit(2)
    limits = (polling_ttl, consuming_ttl)
    raise typer.Exit(_supervise(app, kafka_broker, num_workers, stop_timeout, servers, limits))


class Servers:
    """What the command serves: metrics and health probes, each on a port if asked, one
    server where the ports are the same."""

    def __init__(
        self, metrics_bind: str, metrics_port: int | None, health_bind: str, health_port: int | None
    ) -> None:
        self.metrics = None if metrics_port is None else (metrics_bind, metrics_port)
        self.health = None if health_port is None else (health_bind, health_port)

    def clash(self) -> bool:
        return (
            self.metrics is not None
            and self.health is not None
            and self.metrics[1] == self.health[1]
            and self.metrics[0] != self.health[0]
        )

    def routes_by_address(self) -> dict[tuple[str, int], set[str]]:
        routes: dict[tuple[str, int], set[str]] = {}
        if self.metrics is not None:
            routes.setdefault(self.metrics, set()).add("/metrics")
        if self.health is not None:
            routes.setdefault(self.health, set()).update(HEALTH_ROUTES)
        return routes


def _relay(worker: subprocess.Popen[bytes]) -> None:
    """Relay a worker's output line by line. It keeps reading even when our own output is
    gone (a closed pipe): a worker must never block on a full pipe nobody drains."""
    stream: IO[bytes] | None = worker.stdout
    assert stream is not None
    relaying = True
    for line in iter(stream.readline, b""):
        if not relaying:
            continue
        text = line.decode(errors="replace").rstrip("\n")
        try:
            sys.stdout.write(f"[{worker.pid}]: {text}\n")
            sys.stdout.flush()
        except (OSError, ValueError):
            relaying = False


def _supervise(
    app: str,
    kafka_broker: str,
    num_workers: int,
    stop_timeout: float,
    servers: Servers | None = None,
    health_limits: tuple[float | None, float | None] = (None, None),
) -> int:
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [
        sys.executable,
        "-m",
        "fastkafka._worker",
        app,
        "--kafka-broker",
        kafka_broker,
        "--stop-timeout",
        str(stop_timeout),
        "--supervisor-pid",
        str(os.getpid()),
    ]
    for flag, limit in zip(("--polling-ttl", "--consuming-ttl"), health_limits, strict=True):
        if limit is not None:
            command += [flag, str(limit)]
    stopping, forced = threading.Event(), threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        if stopping.is_set():
            forced.set()
        stopping.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    status_directory = Path(tempfile.mkdtemp(prefix="fastkafka-status-"))
    servers = servers or Servers("127.0.0.1", None, "127.0.0.1", None)
    started_servers = []
    for (bind, port), routes in servers.routes_by_address().items():
        server = serve(bind, port, routes, status_directory, num_workers, stopping)
        started_servers.append(server)
        for route in sorted(routes):
            print(f"Serving {route} at http://{bind}:{server.server_address[1]}{route}")

    def worker_command(index: int) -> list[str]:
        metrics_file, health_file = worker_files(status_directory, index)
        files = []
        if servers.metrics is not None:
            files += ["--metrics-file", str(metrics_file)]
        if servers.health is not None:
            files += ["--health-file", str(health_file)]
        return command + files

    workers = [
        subprocess.Popen(
            worker_command(index),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=environment,
            start_new_session=True,  # a Ctrl-C reaches the workers through us, once
        )
        for index in range(num_workers)
    ]
    relays = [threading.Thread(target=_relay, args=(w,), daemon=True) for w in workers]
    for relay in relays:
        relay.start()
    print(f"Started {num_workers} worker(s): {', '.join(str(w.pid) for w in workers)}")
    sys.stdout.flush()

    crashed = None
    while not stopping.wait(0.1):
        crashed = next((w for w in workers if w.poll() is not None), None)
        if crashed is not None:
            print(f"Worker [{crashed.pid}] exited unexpectedly with code {crashed.returncode}")
            break
    print("Stopping workers ...")
    sys.stdout.flush()
    asked_to_stop = set()
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            asked_to_stop.add(worker.pid)
    deadline = time.monotonic() + stop_timeout
    while any(w.poll() is None for w in workers) and time.monotonic() < deadline:
        if forced.wait(0.05):
            print("Second signal: killing the workers")
            break
    killed = []
    for worker in workers:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
            killed.append(worker.pid)
    for relay in relays:
        relay.join(timeout=5)
    for server in started_servers:
        server.shutdown()
    shutil.rmtree(status_directory, ignore_errors=True)
    if killed:
        reason = "on a second signal" if forced.is_set() else f"not stopped within {stop_timeout} s"
        print(f"Killed worker(s) {killed}: {reason}")
    # A worker still starting up when asked to stop may end by SIGTERM's default action
    # before it could install its handler: it had consumed nothing, so that is a clean stop.
    failed = [
        w
        for w in workers
        if w.returncode not in (0, None)
        and not (w.returncode == -signal.SIGTERM and w.pid in asked_to_stop)
    ]
    if crashed is None and not killed and not failed:
        print("All workers stopped cleanly")
        return 0
    for worker in failed:
        print(f"Worker [{worker.pid}] exited with code {worker.returncode}")
    return 1


docs_cli = typer.Typer(
    help="AsyncAPI documentation of an app: every cluster's servers, channels, message schemas.",
    no_args_is_help=True,
)
cli.add_typer(docs_cli, name="docs")
testing_cli = typer.Typer(help="Testing helpers.", no_args_is_help=True)
cli.add_typer(testing_cli, name="testing")
cli.add_typer(offsets_cli, name="offsets")

RootPath = Annotated[
    str | None,
    typer.Option(
        "--root-path",
        help="Directory under which 'asyncapi/spec/asyncapi.yml' and 'asyncapi/docs/' are "
        "written (default: the app's root_path, else the working directory).",
    ),
]
AppArgument = Annotated[
    str, typer.Argument(help="The app, as 'module:attribute' (e.g. 'my_service:app').")
]
AsyncApiVersion = Annotated[
    str,
    typer.Option("--asyncapi-version", help="The AsyncAPI version of the spec: 2.6 or 3.0."),
]


def _write_docs(app: str, root_path: str | None, asyncapi_version: str) -> Path:
    from ._docs import write_docs  # imported when asked: --help should not load the engine

    try:
        loaded = import_app(app)
        spec_file, page = write_docs(loaded, root_path or loaded.root_path, asyncapi_version)
    except ConfigError as error:
        typer.echo(f"Error: {error}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"AsyncAPI spec written to {spec_file}")
    typer.echo(f"Documentation written to {page}")
    return page


@docs_cli.command("generate")
def docs_generate(
    app: AppArgument,
    root_path: RootPath = None,
    asyncapi_version: AsyncApiVersion = "2.6",
) -> None:
    """Write APP's AsyncAPI spec and its HTML page (one self-contained file, readable
    offline)."""
    _write_docs(app, root_path, asyncapi_version)


@docs_cli.command("serve")
def docs_serve(
    app: AppArgument,
    root_path: RootPath = None,
    bind: Annotated[str, typer.Option("--bind", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8000,
    asyncapi_version: AsyncApiVersion = "2.6",
) -> None:
    """Write APP's docs, then serve them over HTTP until Ctrl-C."""
    page = _write_docs(app, root_path, asyncapi_version)
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(page.parent))
    with ThreadingHTTPServer((bind, port), handler) as server:
        served_port = server.server_address[1]
        typer.echo(f"Serving the documentation on http://{bind}:{served_port}/")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            typer.echo("Stopped serving the documentation")


@docs_cli.command("install_deps")
def docs_install_deps() -> None:
    """Nothing to install: the docs are rendered by fastkafka-rs itself (FastKafka needed
    Node.js and npm)."""
    typer.echo("Nothing to install: fastkafka-rs renders the documentation itself.")


@testing_cli.command("install_deps")
def testing_install_deps() -> None:
    """Nothing to install: Tester runs apps on the in-memory broker built into fastkafka-rs
    (FastKafka needed Java and a Kafka download)."""
    typer.echo("Nothing to install: Tester's in-memory broker is built into fastkafka-rs.")


def main() -> None:
    cli()
