"""The forwarding app the delivery tests share: orders consumed on one cluster, shipped to
another, each handled order recorded."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from kafka_helpers import TIMEOUT
from pydantic import BaseModel

from fastkafka import FastKafka


class Order(BaseModel):
    id: int


class Handled:
    """The ids of the orders handled so far, and a way to wait for a condition on them."""

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.changed = asyncio.Event()

    def add(self, order_id: int) -> None:
        self.ids.append(order_id)
        self.changed.set()

    async def until(self, condition: Callable[[list[int]], bool]) -> None:
        async with asyncio.timeout(TIMEOUT):
            while not condition(self.ids):
                self.changed.clear()
                await self.changed.wait()


def forwarding_app(
    orders: Mapping[str, Any],
    shipments: Mapping[str, Any],
    handled: Handled,
    producer_options: Mapping[str, Any] | None = None,
    **app_options: Any,
) -> FastKafka:
    """Consumes ``orders`` (group ``shipping``) and ships each to the ``shipments`` cluster."""
    app = FastKafka(kafka_brokers=orders, **app_options)

    @app.produces(brokers=shipments, **(producer_options or {}))
    async def to_shipments(order: Order) -> Order:
        return order

    @app.consumes(group_id="shipping")
    async def on_orders(order: Order) -> None:
        await to_shipments(order)
        handled.add(order.id)

    return app
