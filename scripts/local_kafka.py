"""Two local Kafka-compatible clusters for tests and demos: Tansu 0.6.0 brokers on loopback.

Installs Tansu with cargo when ``~/.cargo/bin/tansu`` is missing (about 20 minutes on two
cores; cargo's caches make later installs quick), starts each broker on a free 127.0.0.1 port
with ``sqlite://`` storage in a fresh temporary directory, waits until it answers, creates
topics, and stops everything on exit.

Quirks of Tansu 0.6.0 this works around (DESIGN.md §9): no automatic topic creation (topics are
created here), IPv4 only (brokers advertise 127.0.0.1), and a storage engine that stops serving
when a client fetches past the end of a log — so every run gets fresh ports and fresh storage.
Not worked around here: Tansu holds every fetch for its whole ``fetch.wait.max.ms`` (half of it
when that is 250 ms or more) even when it has records to return, so a client receives at most
one fetch's worth per wait; ``benches/bench_kafka.py`` gives every contender a 10 ms wait.

Used by the pytest fixtures (``tests_py/conftest.py``) and from the command line::

    python scripts/local_kafka.py run --topic preprocessed_signals --topic predictions -- CMD...

which starts two clusters, exports ``KAFKA_CLUSTER_1`` and ``KAFKA_CLUSTER_2`` (their
``host:port``) to CMD, runs it and stops the clusters.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

TANSU_VERSION = "0.6.0"
STARTUP_TIMEOUT = 60.0


def tansu_binary() -> Path:
    """The tansu executable, installed with cargo if it is not there yet."""
    cargo_home = Path(os.environ.get("CARGO_HOME", Path.home() / ".cargo"))
    binary = cargo_home / "bin" / "tansu"
    if binary.exists():
        return binary
    found = shutil.which("tansu")
    if found:
        return Path(found)
    print(f"installing tansu {TANSU_VERSION} with cargo (takes a while once) ...", flush=True)
    subprocess.run(
        [
            "cargo",
            "install",
            f"tansu@{TANSU_VERSION}",
            "--locked",
            "--features",
            "dynostore,libsql",
        ],
        check=True,
    )
    return binary


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class TansuBroker:
    """One Tansu broker (a one-broker cluster) in its own directory."""

    def __init__(
        self, binary: Path, directory: Path, name: str, storage: str = "sqlite://tansu.db"
    ) -> None:
        self.binary = binary
        self.directory = directory
        self.name = name
        self.storage = storage
        self.port = free_port()
        # What clients are told to connect to (a TLS-terminating proxy in front, say).
        self.advertised_url = self.url
        # Whether clients must authenticate (SASL SCRAM; users made with create_user first).
        self.authentication = False
        self.log_path = directory / "broker.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [
                    str(self.binary),
                    "broker",
                    "--cluster-id",
                    self.name,
                    "--listener-url",
                    self.url,
                    "--advertised-listener-url",
                    self.advertised_url,
                    "--storage-engine",
                    self.storage,
                    *(["--authentication"] if self.authentication else []),
                ],
                cwd=self.directory,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_until_listening()

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"tansu {self.name} exited at start:\n{self.log_tail()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1),
            ):
                return
            time.sleep(0.05)
        raise RuntimeError(f"tansu {self.name} did not listen within {STARTUP_TIMEOUT} s")

    def create_topic(self, topic: str, partitions: int = 1) -> None:
        """Create ``topic``; retried while the broker finishes starting."""
        self._admin(["topic", "create", topic, "--partitions", str(partitions)], f"topic {topic!r}")

    def create_user(self, name: str, password: str, mechanism: str = "scram512") -> None:
        """Create a SCRAM user (``scram256`` or ``scram512``). Tansu's admin commands do not
        authenticate: make users before restarting the broker with ``authentication``."""
        self._admin(["user", "create", name, password, "--mechanism", mechanism], f"user {name!r}")

    def _admin(self, command: list[str], what: str) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            done = subprocess.run(
                [str(self.binary), *command, "--broker", self.url],
                capture_output=True,
                text=True,
                cwd=self.directory,
            )
            if done.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"creating {what} on {self.name} failed: {done.stderr.strip()}")
            time.sleep(0.1)

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def kill(self) -> None:
        """``kill -9``: the broker dies mid-request; its storage stays for a restart
        (``start()`` again: same port, same directory)."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def certificate_authority(directory: Path, name: str) -> Path:
    """A CA (``<name>.pem``) and a certificate for 127.0.0.1 it signed (``<name>_server.pem``
    and ``.key``), made with openssl in ``directory``; the CA's path."""
    ca, server = name, f"{name}_server"

    def openssl(*arguments: str) -> None:
        subprocess.run(["openssl", *arguments], cwd=directory, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            f"/CN={name} test CA", "-keyout", f"{ca}.key", "-out", f"{ca}.pem")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
            "-keyout", f"{server}.key", "-out", f"{server}.csr")  # fmt: skip
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", f"{server}.csr", "-CA", f"{ca}.pem", "-CAkey",
            f"{ca}.key", "-CAcreateserial", "-days", "2", "-extfile", "san.ext",
            "-out", f"{server}.pem")  # fmt: skip
    return directory / f"{ca}.pem"


@contextlib.contextmanager
def behind_proxy(broker: TansuBroker, script: str, *arguments: str) -> Iterator[str]:
    """The proxy ``scripts/<script>`` (``--listen PORT --target HOST:PORT *arguments``) in front
    of ``broker``, which is restarted to advertise it, so that every connection goes through
    it; yields its host:port and restores the broker's own address on exit. A restart of a
    ``memory://`` broker loses its topics: create them after."""
    port = free_port()
    proxy = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name(script)), "--listen", str(port),
         "--target", broker.bootstrap_servers, *arguments],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    assert proxy.stdout is not None and proxy.stdout.readline() == b"listening\n"
    broker.stop()
    broker.advertised_url = f"tcp://127.0.0.1:{port}"
    broker.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        proxy.terminate()
        proxy.wait()
        proxy.stdout.close()
        broker.stop()
        broker.advertised_url = broker.url
        broker.start()


def tls_proxy(broker: TansuBroker, ca: Path) -> contextlib.AbstractContextManager[str]:
    """A TLS-terminating proxy (``scripts/tls_proxy.py``) in front of ``broker`` with the
    certificate ``ca`` signed (:func:`certificate_authority`): every connection goes through
    TLS (see :func:`behind_proxy`)."""
    server = ca.with_name(f"{ca.stem}_server")
    return behind_proxy(broker, "tls_proxy.py", "--cert", f"{server}.pem", "--key", f"{server}.key")


def delay_proxy(broker: TansuBroker, delay_ms: float) -> contextlib.AbstractContextManager[str]:
    """A proxy (``scripts/delay_proxy.py``) in front of ``broker`` that delays every byte by
    ``delay_ms`` each way: a cluster that far away (see :func:`behind_proxy`)."""
    return behind_proxy(broker, "delay_proxy.py", "--delay-ms", str(delay_ms))


@contextlib.contextmanager
def local_clusters(
    count: int = 2, storage: str = "sqlite://tansu.db"
) -> Iterator[list[TansuBroker]]:
    """``count`` fresh one-broker clusters, stopped and deleted on exit.

    ``storage`` is Tansu's storage engine: durable ``sqlite://`` by default; ``memory://tansu/``
    is much faster and suits benchmarks.
    """
    binary = tansu_binary()
    with tempfile.TemporaryDirectory(prefix="fastkafka-tansu-") as root:
        brokers = [
            TansuBroker(binary, Path(root) / f"cluster_{i + 1}", f"cluster_{i + 1}", storage)
            for i in range(count)
        ]
        try:
            for broker in brokers:
                broker.start()
            yield brokers
        finally:
            for broker in brokers:
                broker.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="start two clusters, run a command, stop them")
    run.add_argument(
        "--topic",
        action="append",
        default=[],
        help="NAME or NAME:PARTITIONS, created on both clusters (repeatable)",
    )
    run.add_argument("cmd", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    commands.add_parser("install", help="install tansu if it is missing")
    arguments = parser.parse_args()
    if arguments.command == "install":
        print(tansu_binary())
        return 0
    cmd = arguments.cmd[1:] if arguments.cmd[:1] == ["--"] else arguments.cmd
    if not cmd:
        parser.error("give the command to run after --")
    with local_clusters(2) as brokers:
        for spec in arguments.topic:
            name, _, partitions = spec.partition(":")
            for broker in brokers:
                broker.create_topic(name, int(partitions or 1))
        environment = dict(os.environ)
        for i, broker in enumerate(brokers, start=1):
            environment[f"KAFKA_CLUSTER_{i}"] = broker.bootstrap_servers
            print(f"cluster_{i}: {broker.bootstrap_servers}", flush=True)
        return subprocess.run(cmd, env=environment).returncode


if __name__ == "__main__":
    sys.exit(main())
