"""The processes `make faults` runs (harness.py): a `fastkafka run` worker of the fault app,
the `fastkafka run` command as a host of its own runs it, or the fault app written in Rust."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from local_kafka import TansuBroker

HERE = Path(__file__).resolve().parent


class Worker:
    """One `fastkafka run` worker process of the fault app — or, with ``cli_stop_timeout``,
    the `fastkafka run` command itself with ``cli_workers`` workers and that stop timeout, in
    a session of its own (as on a host of its own: :meth:`kill_host` kills it all)."""

    def __init__(
        self,
        source: TansuBroker,
        dest: str,
        log: Path,
        flaky: bool,
        item_delay: float,
        cli_stop_timeout: float | None = None,
        cli_workers: int = 1,
        shape: str = "guide",
        dlt: str | None = None,
        dest_security: dict[str, str] | None = None,
        host: Host | None = None,
        standbys: dict[str, str] | None = None,
    ) -> None:
        environment = {
            **(standbys or {}),
            **os.environ,
            "FAULTS_SOURCE": source.bootstrap_servers,
            "FAULTS_DEST": dest,
            "FAULTS_FLAKY": "1" if flaky else "0",
            "FAULTS_ITEM_DELAY": str(item_delay),
            "FAULTS_SHAPE": shape,
            **({"FAULTS_DLT": dlt} if dlt is not None else {}),
            **({"FAULTS_DEST_SECURITY": json.dumps(dest_security)} if dest_security else {}),
        }
        self.host = host
        cwd = HERE
        if host is not None:  # a host of its own: its own directory, the app on its path
            cwd = host.directory
            cwd.mkdir(parents=True, exist_ok=True)
            environment["PYTHONPATH"] = os.pathsep.join(
                filter(None, [str(HERE), os.environ.get("PYTHONPATH")])
            )
            environment["FAULTS_ASSIGNMENT"] = host.assignment
        self.log = log
        self.peak_mib = 0.0
        self.own_session = cli_stop_timeout is not None
        if shape == "rust":
            command = [str(rust_fault_app())]
        elif cli_stop_timeout is None:
            command = [sys.executable, "-m", "fastkafka._worker", "fault_app:app"]
            command += ["--kafka-broker", "development", "--stop-timeout", "20"]
        else:
            command = [str(Path(sys.executable).with_name("fastkafka")), "run", "fault_app:app"]
            command += ["--num-workers", str(cli_workers), "--kafka-broker", "development"]
            command += ["--stop-timeout", str(cli_stop_timeout)]
            if host is not None:
                command += ["--health-port", str(host.health_port)]
        with log.open("ab") as output:
            self.process = subprocess.Popen(
                command,
                cwd=cwd,
                env=environment,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=self.own_session,
            )

    def peak_rss_mib(self) -> float:
        """The peak resident memory (VmHWM) of the process — of its worker processes, for a
        `fastkafka run` command — as last seen alive, in MiB."""
        pids = [self.process.pid]
        with contextlib.suppress(OSError):
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
            pids = [int(pid) for pid in children.read_text().split()] or pids
        for pid in pids:
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        self.peak_mib = max(self.peak_mib, int(line.split()[1]) / 1024)
        return self.peak_mib

    async def until_started(self, within: float = 60.0) -> None:
        """Waits until the worker's app runs (its consumers subscribed), as its log says."""
        await self.until_logged("app started", within)

    async def until_logged(self, text: str, within: float = 60.0) -> None:
        """Waits until the worker's log holds ``text``."""
        deadline = time.monotonic() + within
        while text not in self.log.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker never logged {text!r}:\n{self.log.read_text()[-3000:]}")
            await asyncio.sleep(0.05)  # a log file has no change notification here

    def signal(self, signum: int) -> None:
        self.peak_rss_mib()
        if self.process.poll() is None:
            self.process.send_signal(signum)

    def kill_host(self) -> None:
        """SIGKILL to the command and every worker it started, as when their host is lost."""
        self.peak_rss_mib()
        with contextlib.suppress(ProcessLookupError):
            if self.own_session:
                os.killpg(self.process.pid, signal.SIGKILL)
            else:
                self.process.kill()
        self.process.wait()

    def wait(self, timeout: float = 30.0) -> int:
        return self.process.wait(timeout)

    def readiness(self) -> tuple[int, dict[str, Any]]:
        """The host's `/readyz`: its status and body (503 with no body while it starts)."""
        assert self.host is not None, "only a host of its own serves probes"
        url = f"http://127.0.0.1:{self.host.health_port}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())
        except OSError:
            return 503, {"workers": {}}


@dataclass
class Host:
    """A `fastkafka run` command as a host of its own runs it: its working directory, its
    health port, the group's partition assignment strategy."""

    directory: Path
    health_port: int
    assignment: str = "range,roundrobin"


# The cargo profile the Rust fault app is built with: `make test` uses the dev profile it
# has built already (dependencies optimized), `make faults` the release one.
RUST_PROFILE = "release"


def rust_fault_app() -> Path:
    """The fault app written with the Rust API (`examples/fault_app.rs`), built with
    RUST_PROFILE (cargo does nothing when it is up to date)."""
    root = HERE.parent.parent
    build = ["cargo", "build", "--quiet", f"--profile={RUST_PROFILE}", "--features=kafka"]
    subprocess.run([*build, "--example=fault_app"], cwd=root, check=True)
    directory = "debug" if RUST_PROFILE == "dev" else RUST_PROFILE
    return root / "target" / directory / "examples" / "fault_app"
