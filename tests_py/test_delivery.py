"""At-least-once across clusters: a consumed record is committed only once what its handler
produced to another cluster is delivered; while the destination refuses, the record is handled
again, and an app stopped meanwhile consumes it again on its next start."""

from __future__ import annotations

import asyncio
import logging

import pytest
from delivery_helpers import Handled, Order, forwarding_app
from kafka_helpers import TIMEOUT

from fastkafka import FastKafka
from fastkafka.testing import InMemoryBroker, Tester

CLUSTER_1 = {"localhost": {"url": "one", "port": 9092}}
CLUSTER_2 = {"localhost": {"url": "two", "port": 9092}}


async def test_a_refused_delivery_is_handled_again_until_it_goes_through(
    caplog: pytest.LogCaptureFixture,
) -> None:
    handled = Handled()
    app = forwarding_app(CLUSTER_1, CLUSTER_2, handled)
    caplog.set_level(logging.WARNING, logger="fastkafka")
    async with Tester(app) as tester:
        assert tester.broker is not None
        tester.broker.refuse_deliveries("two:9092", "cluster 2 is down")
        await tester.to_orders(Order(id=7))
        await handled.until(lambda ids: len(ids) >= 2)
        assert tester.mocks.on_shipments.call_count == 0, "nothing reached cluster 2"
        tester.broker.refuse_deliveries("two:9092", None)
        await tester.awaited_mocks.on_shipments.assert_called_with(Order(id=7), timeout=TIMEOUT)
    assert set(handled.ids) == {7}
    warnings = [r.getMessage() for r in caplog.records if "was not delivered" in r.getMessage()]
    assert len(warnings) == 1, "one warning when deliveries start failing, not one per attempt"
    assert "on_orders" in warnings[0] and "topic=orders partition=0 offset=0" in warnings[0]


async def test_an_app_stopped_before_delivery_consumes_the_record_again_next_time() -> None:
    handled = Handled()
    shipped: list[Order] = []
    arrived = asyncio.Event()
    reader = FastKafka(kafka_brokers=CLUSTER_2)

    @reader.consumes()
    async def on_shipments(order: Order) -> None:
        shipped.append(order)
        arrived.set()

    with InMemoryBroker() as broker:
        broker.refuse_deliveries("two:9092", "cluster 2 is down")
        app = forwarding_app(CLUSTER_1, CLUSTER_2, handled)
        async with app:
            broker.cluster("one:9092").send("orders", Order(id=1).model_dump_json().encode())
            await handled.until(lambda ids: len(ids) >= 1)
        # Stopped while the output was undelivered: the input was not committed.
        broker.refuse_deliveries("two:9092", None)
        handled.ids.clear()
        async with app, reader:
            await handled.until(lambda ids: ids == [1])
            await asyncio.wait_for(arrived.wait(), TIMEOUT)
    assert shipped == [Order(id=1)]
