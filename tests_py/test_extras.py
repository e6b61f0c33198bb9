"""Around the handlers: the benchmark decorator, the FastAPI lifespan, the one-line pytest
fixture, and two producers sharing a topic."""

from __future__ import annotations

import asyncio
import logging

import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from fastkafka import FastKafka
from fastkafka.testing import InMemoryBroker, Tester, tester_fixture


class Order(BaseModel):
    id: int


fixture_app = FastKafka()


@fixture_app.consumes()
async def on_orders(msg: Order) -> None:
    await to_receipts(msg)


@fixture_app.produces()
async def to_receipts(msg: Order) -> Order:
    return msg


tester = tester_fixture(fixture_app)


async def test_the_one_line_fixture_yields_an_entered_tester(tester: Tester) -> None:
    assert fixture_app.is_started
    await tester.to_orders(Order(id=7))
    await tester.on_receipts.assert_called_with(Order(id=7), timeout=5)


async def test_benchmark_counts_calls_and_logs_throughput(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = FastKafka()
    done = asyncio.Event()

    @app.consumes()
    @app.benchmark(interval=1e-06, sliding_window_size=3)
    async def on_orders(msg: Order) -> None:
        if msg.id == 199:
            done.set()

    caplog.set_level(logging.INFO, logger="fastkafka.benchmark")
    async with Tester(app) as tester:
        await tester.to_orders([Order(id=i) for i in range(200)])
        await asyncio.wait_for(done.wait(), 5)
    (name, result), *_ = app.benchmark_results.items()
    assert name.endswith("on_orders") and result["count"] == 200
    assert set(result) == {"count", "last_count", "start", "last_start", "history"}
    assert len(result["history"]) <= 3
    lines = [r.getMessage() for r in caplog.records if r.name == "fastkafka.benchmark"]
    assert lines, "200 calls span more than one microsecond"
    assert lines[0].startswith("Throughput = ")
    assert ", Avg throughput = " in lines[0]
    assert lines[0].endswith("on_orders(interval=1e-06,sliding_window_size=3)")


async def test_the_fastapi_lifespan_runs_the_app_with_the_web_app() -> None:
    app = FastKafka(kafka_brokers={"staging": {"url": "k", "port": 1}})
    handled = asyncio.Event()

    @app.consumes()
    async def on_orders(msg: Order) -> None:
        handled.set()

    web = FastAPI(lifespan=app.fastapi_lifespan("staging"))
    async with InMemoryBroker() as broker:
        async with web.router.lifespan_context(web):
            assert app.is_started and app.bootstrap_servers_id == "staging"
            broker.cluster("k:1").send("orders", Order(id=1).model_dump_json().encode())
            await asyncio.wait_for(handled.wait(), 5)
        assert not app.is_started


async def test_two_producers_on_one_topic_and_cluster_share_a_mirror() -> None:
    app = FastKafka()

    @app.produces(topic="events")
    async def to_events_a(msg: Order) -> Order:
        return msg

    @app.produces(topic="events")
    async def to_events_b(msg: Order) -> Order:
        return msg

    async with Tester(app) as tester:
        await to_events_a(Order(id=1))
        await to_events_b(Order(id=2))
        await tester.mirrors[to_events_a].assert_has_calls(
            [((Order(id=1),),), ((Order(id=2),),)], timeout=5
        )
        assert tester.mirrors[to_events_a] is tester.mirrors[to_events_b]
        await tester.on_events.assert_called_with(Order(id=2), timeout=5)
