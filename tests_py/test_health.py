"""Health probes as users rely on them: ``app.health()`` in memory, and ``fastkafka run
--health-port`` on a real cluster — a stuck handler turns liveness red naming it, a killed
cluster turns readiness red naming it, and both recover."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from kafka_helpers import TIMEOUT, produce
from local_kafka import TansuBroker, free_port
from pydantic import BaseModel
from run_helpers import split_between_two, stop_cleanly, two_workers

from fastkafka import FastKafka
from fastkafka.exceptions import ConfigError
from fastkafka.health import merge_workers
from fastkafka.testing import Tester


class Signal(BaseModel):
    msg: str


def gated_app(**limits: float) -> tuple[FastKafka, asyncio.Event]:
    """An app whose consumer waits for the returned event before it returns."""
    app = FastKafka(kafka_brokers={"localhost": {"url": "server_1", "port": 9092}}, **limits)
    gate = asyncio.Event()

    @app.consumes(topic="signals")
    async def on_signals(msg: Signal) -> None:
        await gate.wait()

    @app.produces(topic="signals")
    async def to_signals(msg: Signal) -> Signal:
        return msg

    return app, gate


async def health_until(app: FastKafka, condition: Any) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        report = app.health()
        if condition(report):
            return report
        assert time.monotonic() < deadline, f"health never got there: {report}"
        await asyncio.sleep(0.02)


async def test_an_app_not_running_is_live_and_not_ready() -> None:
    app, _ = gated_app()
    report = app.health()
    assert (report["live"], report["ready"], report["state"]) == (True, False, "not running")
    async with Tester(app):
        assert app.health()["ready"]
    assert app.health()["state"] == "not running"


async def test_a_running_app_lists_every_consumer_and_cluster() -> None:
    app, _ = gated_app()
    async with Tester(app):
        report = app.health()
    assert report["live"] and report["ready"] and report["problems"] == []
    [consumer] = report["consumers"]
    assert consumer["name"] == "on_signals" and consumer["cluster"] == "server_1:9092"
    assert consumer["polling_ttl_s"] == consumer["consuming_ttl_s"] == 300.0, "max.poll.interval"
    [cluster] = report["clusters"]
    assert cluster["reachable"] and set(cluster["used_by"]) == {"on_signals", "to_signals"}
    json.dumps(report)  # what a probe route returns as is


async def test_a_handler_stuck_past_consuming_ttl_is_not_live_naming_it_and_recovers() -> None:
    app, gate = gated_app(consuming_ttl=0.2)
    async with Tester(app):
        await app.to_signals(Signal(msg="stuck"))  # type: ignore[attr-defined]
        stuck = await health_until(app, lambda report: not report["live"])
        [problem] = stuck["problems"]
        assert problem.startswith("on_signals (topic 'signals', cluster server_1:9092): ")
        assert "consuming_ttl 0.2 s" in problem
        gate.set()
        await health_until(app, lambda report: report["live"] and report["ready"])


async def test_a_consumer_that_cannot_poll_past_polling_ttl_is_not_live() -> None:
    app, gate = gated_app(polling_ttl=0.2)
    async with Tester(app):
        await app.to_signals(Signal(msg="stuck"))  # type: ignore[attr-defined]
        stuck = await health_until(app, lambda report: not report["live"])
        assert "has not polled for" in stuck["problems"][0]
        assert "polling_ttl 0.2 s" in stuck["problems"][0]
        gate.set()
        await health_until(app, lambda report: report["live"])


async def test_a_stopping_app_is_not_ready() -> None:
    app, gate = gated_app()
    async with Tester(app):
        await app.to_signals(Signal(msg="in flight"))  # type: ignore[attr-defined]
        await health_until(app, lambda r: r["consumers"][0]["handling_for_s"] is not None)
        stopping = asyncio.ensure_future(app._stop())
        report = await health_until(app, lambda report: report["state"] == "stopping")
        assert not report["ready"] and "the app is stopping" in report["problems"]
        gate.set()
        await stopping


@pytest.mark.parametrize("keyword", ["polling_ttl", "consuming_ttl"])
def test_a_limit_that_is_not_a_positive_number_is_refused_naming_it(keyword: str) -> None:
    with pytest.raises(ConfigError, match=f"{keyword} must be a positive number"):
        gated_app(**{keyword: 0})


def test_workers_merge_into_one_report_and_a_silent_worker_is_not_live() -> None:
    fine = {"live": True, "ready": True, "problems": []}
    assert merge_workers({0: (fine, 0.5), 1: (fine, 0.5)})["ready"]
    starting = merge_workers({0: (fine, 0.5), 1: None})
    assert starting["live"] and not starting["ready"]
    silent = merge_workers({0: (fine, 0.5), 1: (fine, 30.0)})
    assert not silent["live"] and silent["problems"][0].startswith("worker 1: no health report")
    assert not merge_workers({0: (fine, 0.5)}, stopping=True)["ready"]


def probe(port: int, route: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{route}", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def probe_until(
    port: int, route: str, status: int, saying: str = "", timeout: float = TIMEOUT
) -> dict[str, Any]:
    """Probes ``route`` until it answers ``status`` with a problem containing ``saying``."""
    deadline = time.monotonic() + timeout
    while True:
        answered, body = probe(port, route)
        if answered == status and any(saying in problem for problem in [*body["problems"], ""]):
            return body
        assert time.monotonic() < deadline, f"{route} stayed {answered}: {body}"
        time.sleep(0.2)  # workers refresh their reports every second


def test_fastkafka_run_serves_probes_that_name_a_stuck_handler_and_a_killed_cluster(
    two_clusters: list[TansuBroker], tmp_path: Path
) -> None:
    cluster = two_clusters[0]
    cluster.create_topic("counted", partitions=4)
    port = free_port()
    options = ("--health-port", str(port), "--metrics-port", str(port), "--consuming-ttl", "1.5")
    with two_workers(cluster, tmp_path / "handled.txt", options) as (process, watcher):
        watcher.wait_until(split_between_two)
        ready = probe_until(port, "/readyz", 200)
        assert set(ready["workers"]) == {"0", "1"} and ready["live"]
        assert probe(port, "/healthz")[0] == 200
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as metrics:
            assert b"fastkafka_consumer_records_total" in metrics.read(), "one port, both"

        asyncio.run(produce(cluster.bootstrap_servers, "counted", [(b"k", b'{"msg": "slow"}')]))
        stuck = probe_until(port, "/healthz", 503, "consuming_ttl 1.5 s")
        assert any("on_counted (topic 'counted'" in p for p in stuck["problems"]), stuck
        probe_until(port, "/healthz", 200)
        probe_until(port, "/readyz", 200)

        cluster.kill()
        down = probe_until(port, "/readyz", 503, f"cluster {cluster.bootstrap_servers} (used by")
        assert any("unreachable" in problem for problem in down["problems"]), down
        assert probe(port, "/healthz")[0] == 200, "a cluster down is not a reason to restart"
        cluster.start()
        probe_until(port, "/readyz", 200, timeout=60)
        stop_cleanly(process)
