"""The Kubernetes example in the docs (examples/kubernetes/deployment.yaml) stays true to the
command: valid YAML, every flag it passes exists in `fastkafka run --help`, and its probes and
scrape annotations point at the ports the command is told to serve."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "kubernetes" / "deployment.yaml"
FASTKAFKA = str(Path(sys.executable).with_name("fastkafka"))


def container() -> tuple[dict[str, Any], dict[str, Any]]:
    [deployment] = list(yaml.safe_load_all(EXAMPLE.read_text()))
    assert deployment["kind"] == "Deployment"
    pod = deployment["spec"]["template"]
    [app] = pod["spec"]["containers"]
    return pod, app


def flags_of(command: list[str]) -> dict[str, str]:
    return dict(arg.removeprefix("--").split("=", 1) for arg in command if arg.startswith("--"))


def test_every_flag_of_the_example_exists_in_the_run_commands_help() -> None:
    _, app = container()
    assert app["command"][:2] == ["fastkafka", "run"]
    help_text = subprocess.run(
        [FASTKAFKA, "run", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for flag in flags_of(app["command"]):
        assert f"--{flag}" in help_text, f"--{flag} is not a flag of fastkafka run"


def test_probes_and_scraping_use_the_ports_the_command_serves() -> None:
    pod, app = container()
    flags = flags_of(app["command"])
    ports = {port["name"]: port["containerPort"] for port in app["ports"]}
    assert ports == {"health": int(flags["health-port"]), "metrics": int(flags["metrics-port"])}
    assert app["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert app["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    assert app["startupProbe"]["httpGet"]["path"] == "/healthz"
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == flags["metrics-port"]
    assert flags["health-bind"] == flags["metrics-bind"] == "0.0.0.0", "reachable from the node"
    grace = pod["spec"]["terminationGracePeriodSeconds"]
    assert grace > float(flags["stop-timeout"]), "the clean stop ends before SIGKILL"
