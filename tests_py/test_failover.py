"""Failing over to a standby cluster as a user tests it, in memory: the guide's app with a
standby named for each cluster. ``tester.broker.take_down`` loses a cluster, ``mirror`` keeps
a standby in step; outputs move to the destination's standby, the consumer to the source's,
both come back — and every input is handled, none lost."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from pydantic import BaseModel

from fastkafka import FastKafka
from fastkafka.exceptions import ConfigError
from fastkafka.metrics import render
from fastkafka.testing import Tester

SOURCE, SOURCE_STANDBY = "eu-west:9092", "eu-central:9092"
DESTINATION, DESTINATION_STANDBY = "us-east:9092", "us-west:9092"


def with_standby(primary: str, standby: str) -> dict[str, Any]:
    url, port = primary.split(":")
    standby_url, standby_port = standby.split(":")
    return {"production": {"url": url, "port": int(port),
                           "standby": {"url": standby_url, "port": int(standby_port)}}}


class Signal(BaseModel):
    n: int


def forwarding_app() -> FastKafka:
    app = FastKafka(
        kafka_brokers=with_standby(SOURCE, SOURCE_STANDBY),
        bootstrap_servers_id="production",
        failover_after=0.3,
        failover_rewind=0.001,
    )

    @app.produces(topic="predictions", brokers=with_standby(DESTINATION, DESTINATION_STANDBY))
    async def to_predictions(signal: Signal) -> Signal:
        return signal

    @app.consumes(topic="signals", group_id="forwarder", auto_commit_interval_ms=50)
    async def on_signals(signal: Signal) -> None:
        await to_predictions(signal)

    return app


def send(tester: Tester, cluster: str, numbers: range) -> None:
    assert tester.broker is not None
    records = [(None, Signal(n=n).model_dump_json().encode(), None) for n in numbers]
    tester.broker.cluster(cluster).produce("signals", records)


def forwarded(tester: Tester, cluster: str) -> list[int]:
    assert tester.broker is not None
    return [Signal.model_validate_json(r.value or b"").n
            for r in tester.broker.records(cluster, "predictions")]


async def until(what: str, condition: Any) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        await asyncio.sleep(0.01)


def standby_of(app: FastKafka, cluster: str) -> dict[str, Any]:
    found = [c for c in app.health()["clusters"] if c["cluster"] == cluster]
    assert found, app.health()
    standby: dict[str, Any] = found[0]["standby"]
    return standby


async def test_the_guides_app_fails_over_and_back_and_handles_every_input() -> None:
    app = forwarding_app()
    async with Tester(app) as tester:
        assert tester.broker is not None
        tester.broker.mirror(SOURCE, SOURCE_STANDBY)
        send(tester, SOURCE, range(0, 20))
        await until("20 forwarded", lambda: len(forwarded(tester, DESTINATION)) == 20)
        assert standby_of(app, DESTINATION) == {
            "cluster": DESTINATION_STANDBY, "active": False, "switches": 0, "last_switch": None}

        tester.broker.take_down(DESTINATION)
        send(tester, SOURCE, range(20, 40))
        await until("outputs on the standby", lambda: 39 in forwarded(tester, DESTINATION_STANDBY))
        moved = standby_of(app, DESTINATION)
        assert moved["active"] and moved["switches"] == 1
        assert f"failing over from cluster {DESTINATION} to its standby" in moved["last_switch"]

        tester.broker.take_down(SOURCE)
        send(tester, SOURCE_STANDBY, range(40, 60))
        await until("inputs read on the source's standby",
                    lambda: 59 in forwarded(tester, DESTINATION_STANDBY))
        assert standby_of(app, SOURCE)["active"]
        active = f'fastkafka_cluster_active{{cluster="{SOURCE_STANDBY}",role="standby"}} 1'
        assert active in render()

        tester.broker.bring_back(SOURCE)
        tester.broker.bring_back(DESTINATION)
        await until("back on both primaries", lambda: not standby_of(app, SOURCE)["active"]
                    and not standby_of(app, DESTINATION)["active"])
        send(tester, SOURCE, range(60, 80))
        await until("forwarded to the primary again", lambda: 79 in forwarded(tester, DESTINATION))

        every = forwarded(tester, DESTINATION) + forwarded(tester, DESTINATION_STANDBY)
        assert set(every) == set(range(80)), "every input handled"


def test_failover_options_are_checked_where_they_are_given() -> None:
    with pytest.raises(ConfigError, match="failover_after must be a positive number"):
        FastKafka(failover_after=0)
    app = FastKafka()
    with pytest.raises(ConfigError, match=r"failover_rewind \(in produces\(\) of 'to_x'\)"):
        @app.produces(topic="x", failover_rewind=5)
        async def to_x(signal: Signal) -> Signal:
            return signal
    with pytest.raises(ConfigError, match=r"\['production'\]\['standby'\].*'url'"):
        FastKafka(kafka_brokers={"production": {"url": "a", "standby": {"port": 1}}})
