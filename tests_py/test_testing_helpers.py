"""fastkafka.testing beyond the basic Tester: InMemoryBroker, external clusters, background
tasks, star imports."""

from __future__ import annotations

import asyncio

from kafka_helpers import TIMEOUT
from local_kafka import TansuBroker
from pydantic import BaseModel

from fastkafka import FastKafka
from fastkafka._core import MemoryBroker
from fastkafka.testing import InMemoryBroker, Tester


class Ping(BaseModel):
    n: int


def ping_pong_app(kafka_brokers: dict[str, object] | None = None) -> FastKafka:
    app = FastKafka(kafka_brokers=kafka_brokers, fetch_max_wait_ms=20)

    @app.consumes()
    async def on_pings(msg: Ping) -> None:
        await to_pongs(Ping(n=msg.n + 1))

    @app.produces()
    async def to_pongs(msg: Ping) -> Ping:
        return msg

    return app


def test_star_import_exports_the_testing_helpers() -> None:
    namespace: dict[str, object] = {}
    exec("from fastkafka.testing import *", namespace)
    assert namespace["Tester"] is Tester
    assert namespace["InMemoryBroker"] is InMemoryBroker


async def test_apps_started_under_in_memory_broker_share_it() -> None:
    app = ping_pong_app()
    pongs: list[int] = []
    arrived = asyncio.Event()
    reader = FastKafka()

    @reader.consumes()
    async def on_pongs(msg: Ping) -> None:
        pongs.append(msg.n)
        arrived.set()

    async with InMemoryBroker() as broker:
        async with app, reader:
            broker.cluster("localhost:9092").send("pings", Ping(n=1).model_dump_json().encode())
            await asyncio.wait_for(arrived.wait(), TIMEOUT)
    assert pongs == [2]
    assert app.transport is None, "nothing on the app itself was changed"


async def test_background_tasks_start_with_the_app_and_are_cancelled_on_stop() -> None:
    app = ping_pong_app()
    events: list[str] = []

    @app.run_in_background()
    async def ticker() -> None:
        events.append("started")
        try:
            await app.to_pongs(Ping(n=100))  # type: ignore[attr-defined]
            await asyncio.Event().wait()
        finally:
            events.append("cancelled")

    async with Tester(app) as tester:
        await tester.on_pongs.assert_called_with(Ping(n=100), timeout=5)
        assert events == ["started"]
    assert events == ["started", "cancelled"]


async def test_the_same_tester_test_runs_on_real_clusters(two_clusters: list[TansuBroker]) -> None:
    cluster = two_clusters[0]
    cluster.create_topic("pings")
    cluster.create_topic("pongs")
    host, port = cluster.bootstrap_servers.split(":")
    app = ping_pong_app(
        {"localhost": {"url": "localhost"}, "local_tansu": {"url": host, "port": port}}
    )

    async def the_test(tester: Tester) -> None:
        await tester.to_pings(Ping(n=41))
        await tester.on_pongs.assert_called_with(Ping(n=42), timeout=TIMEOUT)

    tester = Tester(app)
    async with tester.using_external_broker(bootstrap_servers_id="local_tansu"):
        assert not tester.use_in_memory_broker and tester.broker is None
        await the_test(tester)
    async with tester.using_inmemory_broker():
        assert tester.use_in_memory_broker and tester.broker is not None
        await the_test(tester)
    # Settings restored: in memory again, and the app back on its own environment.
    assert tester.use_in_memory_broker
    assert app.bootstrap_servers_id == "localhost"


def test_in_memory_broker_also_works_as_a_plain_context_manager() -> None:
    app = ping_pong_app()

    async def run(broker: MemoryBroker) -> list[int]:
        app.create_mocks()  # FastKafka's mocks outside a Tester
        async with app:
            broker.cluster("localhost:9092").send("pings", Ping(n=5).model_dump_json().encode())
            await app.awaited_mocks.to_pongs.assert_called_with(Ping(n=6), timeout=5)
            return [call.args[0].n for call in app.mocks.on_pings.call_args_list]

    with InMemoryBroker() as broker:
        assert asyncio.run(run(broker)) == [5]


async def test_the_guides_main_test_runs_on_two_real_clusters(
    two_clusters: list[TansuBroker],
) -> None:
    for cluster in two_clusters:
        cluster.create_topic("preprocessed_signals")
        cluster.create_topic("predictions")

    def on_tansu(cluster: TansuBroker, production: str) -> dict[str, dict[str, object]]:
        host, port = cluster.bootstrap_servers.split(":")
        return {
            "development": {"url": host, "port": port},
            "production": {"url": production, "port": 9092},
        }

    kafka_brokers_1 = on_tansu(two_clusters[0], "prod.server_1")
    kafka_brokers_2 = on_tansu(two_clusters[1], "prod.server_1")
    app = FastKafka(kafka_brokers=kafka_brokers_1, fetch_max_wait_ms=20)

    @app.consumes(topic="preprocessed_signals")
    async def on_preprocessed_signals_1(msg: Ping) -> None:
        await to_predictions_1(msg)

    @app.consumes(topic="preprocessed_signals", brokers=kafka_brokers_2)
    async def on_preprocessed_signals_2(msg: Ping) -> None:
        await to_predictions_2(msg)

    @app.produces(topic="predictions")
    async def to_predictions_1(msg: Ping) -> Ping:
        return msg

    @app.produces(topic="predictions", brokers=kafka_brokers_2)
    async def to_predictions_2(msg: Ping) -> Ping:
        return msg

    async with Tester(app).using_external_broker(bootstrap_servers_id="development") as tester:
        await tester.mirrors[app.on_preprocessed_signals_1](Ping(n=1))  # type: ignore[attr-defined]
        await app.awaited_mocks.on_preprocessed_signals_1.assert_called_with(Ping(n=1), timeout=30)
        await tester.mirrors[app.to_predictions_1].assert_called_with(Ping(n=1), timeout=30)  # type: ignore[attr-defined]
        await tester.mirrors[app.on_preprocessed_signals_2](Ping(n=2))  # type: ignore[attr-defined]
        await app.awaited_mocks.on_preprocessed_signals_2.assert_called_with(Ping(n=2), timeout=30)
        await tester.mirrors[app.to_predictions_2].assert_called_with(Ping(n=2), timeout=30)  # type: ignore[attr-defined]
        # Each cluster saw only its own signal.
        app.mocks.on_preprocessed_signals_1.assert_called_once_with(Ping(n=1))
        app.mocks.on_preprocessed_signals_2.assert_called_once_with(Ping(n=2))
