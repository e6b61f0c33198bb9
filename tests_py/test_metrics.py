"""The metrics an app's consumers and producers report (Prometheus' text format), read as an
operator's scraper would: per consumer records by outcome, lag per partition, records sent."""

from __future__ import annotations

import re

from delivery_helpers import Handled, Order
from kafka_helpers import TIMEOUT

from fastkafka import FastKafka, RetryPolicy, metrics
from fastkafka.testing import Tester

CLUSTER = {"localhost": {"url": "metrics", "port": 9092}}


def sample(text: str, name: str, **labels: str) -> float:
    """The value of the one sample of ``name`` whose labels include ``labels``."""
    found = []
    for line in text.splitlines():
        match = re.match(rf"^{name}\{{(.*)\}} (\S+)$", line)
        if match and all(f'{k}="{v}"' in match.group(1) for k, v in labels.items()):
            found.append(float(match.group(2)))
    assert len(found) == 1, f"{name} {labels}: {found}\n{text}"
    return found[0]


async def test_a_consumers_records_by_outcome_its_lag_and_what_it_sent() -> None:
    app = FastKafka(kafka_brokers=CLUSTER)
    handled = Handled()

    @app.produces()
    async def to_shipped(order: Order) -> Order:
        return order

    @app.consumes(
        group_id="billing",
        retry=RetryPolicy(attempts=2, backoff=0.001, max_backoff=0.001),
        dead_letter_topic="orders_dlt",
    )
    async def on_orders(order: Order) -> None:
        if order.id == 13:
            raise ValueError("unlucky")
        await to_shipped(order)
        handled.add(order.id)

    async with Tester(app) as tester:
        for order_id in (1, 13, 2):
            await tester.to_orders(Order(id=order_id))
        await tester.to_orders(b"not json")
        await tester.wait_for_dead_letters(on_orders, 2, timeout=TIMEOUT)
        await handled.until(lambda ids: len(ids) == 2)
        text = metrics.render()
        ours = {"consumer": "on_orders", "topic": "orders", "group": "billing"}
        records = "fastkafka_consumer_records_total"
        assert sample(text, records, outcome="handled", **ours) == 2
        assert sample(text, records, outcome="retried", **ours) == 1
        assert sample(text, records, outcome="dead_lettered", **ours) == 2
        assert sample(text, records, outcome="skipped", **ours) == 0
        # Read again after the rewind for 13's retry: 13 at least, maybe those after it too.
        assert sample(text, records, outcome="consumed", **ours) >= 5
        assert sample(text, "fastkafka_consumer_lag", partition="0", **ours) == 0
        sent = "fastkafka_producer_records_sent_total"
        assert sample(text, sent, cluster="metrics:9092", topic="shipped") == 2
    assert "on_orders" not in metrics.render(), "a stopped app's consumers are not reported"
