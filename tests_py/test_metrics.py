"""The metrics an app's consumers and producers report (Prometheus' text format), read as an
operator's scraper would: per consumer records by outcome, lag per partition; per cluster and
topic what was sent, delivered and is pending, and delivery latency through librdkafka."""

from __future__ import annotations

import re

from delivery_helpers import Handled, Order
from kafka_helpers import TIMEOUT, eventually, read_all
from local_kafka import TansuBroker

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
        # Lag is read on a clock (twice a second), not per batch.
        await eventually(
            lambda: sample(metrics.render(), "fastkafka_consumer_lag", partition="0", **ours) == 0,
            "lag 0",
        )
        produced = "fastkafka_producer_records_total"
        ship = {"cluster": "metrics:9092", "topic": "shipped"}
        assert sample(text, produced, outcome="sent", **ship) == 2
        assert sample(text, produced, outcome="delivered", **ship) == 2
        assert sample(text, "fastkafka_producer_records_pending", **ship) == 0
        # Every record the cluster's client was handed counts: the Tester's own sends and
        # the dead letters too.
        assert sample(text, produced, outcome="sent", cluster="metrics:9092", topic="orders") == 4
        dead_letters = {"cluster": "metrics:9092", "topic": "orders_dlt"}
        assert sample(text, produced, outcome="delivered", **dead_letters) == 2
    assert "on_orders" not in metrics.render(), "a stopped app's consumers are not reported"


async def test_records_sent_through_librdkafka_are_counted_delivered_with_their_latency(
    two_clusters: list[TansuBroker],
) -> None:
    cluster = two_clusters[0]
    cluster.create_topic("shipped")
    host, port = cluster.bootstrap_servers.split(":")
    app = FastKafka(kafka_brokers={"localhost": {"url": host, "port": int(port)}})

    @app.produces()
    async def to_shipped(order: Order) -> Order:
        return order

    produced = "fastkafka_producer_records_total"
    ours = {"cluster": cluster.bootstrap_servers, "topic": "shipped"}
    async with app:
        for order_id in range(20):
            await to_shipped(Order(id=order_id))
    # The stop flushed the client: every record has its answer. A cluster's producer figures
    # outlive the app (counters never go back).
    text = metrics.render()
    assert len(await read_all(cluster.bootstrap_servers, "shipped", 20)) == 20
    assert sample(text, produced, outcome="delivered", **ours) == 20
    assert sample(text, produced, outcome="sent", **ours) == 20
    assert sample(text, produced, outcome="failed", **ours) == 0
    assert sample(text, "fastkafka_producer_records_pending", **ours) == 0
    latency = "fastkafka_producer_delivery_seconds"
    assert sample(text, f"{latency}_count", **ours) == 20, "each delivery's latency is known"
    assert sample(text, f"{latency}_sum", **ours) > 0
