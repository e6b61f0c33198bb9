"""What an input waits for before it commits: the tasks its handler started (and what they
send), and every send made for it — a send that fails is a delivery failure of the input, never
a handler error to skip. Work no handler started is tied to no input."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable

import pytest
from delivery_helpers import Handled, Order
from kafka_helpers import TIMEOUT

from fastkafka import FastKafka
from fastkafka.executors import DynamicTaskExecutor
from fastkafka.testing import Tester

CLUSTER_1 = {"localhost": {"url": "one", "port": 9092}}
CLUSTER_2 = {"localhost": {"url": "two", "port": 9092}}


async def holds_within(seconds: float, condition: Callable[[], bool]) -> bool:
    """Whether ``condition()`` holds within ``seconds`` (checked every 2 ms: the in-memory
    broker notifies nobody of commits)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not condition():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.002)
    return True


def committed_orders(tester: Tester) -> Callable[[], int | None]:
    """What group ``shipping`` committed of ``orders`` (one partition) on cluster 1, now."""
    broker = tester.broker
    assert broker is not None
    return lambda: broker.committed_offset("one:9092", "shipping", "orders", 0)


def shipping_app(
    handled: Handled, release: asyncio.Event, untied: bool = False, dynamic: bool = False
) -> FastKafka:
    """Consumes orders and ships each from a task its handler starts and does not await (with
    ``dynamic``, under DynamicTaskExecutor, whose own per-record tasks are not tied)."""
    app = FastKafka(kafka_brokers=CLUSTER_1)

    @app.produces(brokers=CLUSTER_2)
    async def to_shipments(order: Order) -> Order:
        return order

    async def ship_later(order: Order) -> None:
        await release.wait()
        await to_shipments(order)

    executor = DynamicTaskExecutor(size=4) if dynamic else None

    @app.consumes(group_id="shipping", auto_commit_interval_ms=1, executor=executor)
    async def on_orders(order: Order) -> None:
        context = contextvars.Context() if untied else None
        asyncio.create_task(ship_later(order), context=context)  # noqa: RUF006
        handled.add(order.id)

    return app


@pytest.mark.parametrize("dynamic", [False, True], ids=["sequential", "dynamic"])
async def test_an_input_commits_only_after_the_task_its_handler_started_sent_and_was_acked(
    dynamic: bool,
) -> None:
    handled, release = Handled(), asyncio.Event()
    app = shipping_app(handled, release, dynamic=dynamic)
    async with Tester(app) as tester:
        committed = committed_orders(tester)
        await tester.to_orders(Order(id=1))
        await handled.until(lambda ids: ids == [1])
        # The consumer commits every millisecond: a stored offset would show at once.
        assert not await holds_within(0.3, lambda: committed() is not None), (
            "the input stays uncommitted while the task it started has not sent"
        )
        release.set()
        await tester.awaited_mocks.on_shipments.assert_called_with(Order(id=1), timeout=TIMEOUT)
        assert await holds_within(TIMEOUT, lambda: committed() == 1)


async def test_a_task_started_in_a_fresh_context_is_tied_to_no_input() -> None:
    handled, release = Handled(), asyncio.Event()
    app = shipping_app(handled, release, untied=True)
    async with Tester(app) as tester:
        committed = committed_orders(tester)
        await tester.to_orders(Order(id=1))
        await handled.until(lambda ids: ids == [1])
        assert await holds_within(TIMEOUT, lambda: committed() == 1), (
            "an untied task does not hold its input open"
        )
        release.set()
        await tester.awaited_mocks.on_shipments.assert_called_with(Order(id=1), timeout=TIMEOUT)


async def test_background_tasks_never_hold_an_input_open() -> None:
    app = FastKafka(kafka_brokers=CLUSTER_1)
    handled, forever = Handled(), asyncio.Event()

    @app.produces(brokers=CLUSTER_2)
    async def to_heartbeats(order: Order) -> Order:
        return order

    @app.run_in_background()
    async def beat() -> None:
        await to_heartbeats(Order(id=0))
        await forever.wait()

    @app.consumes(group_id="shipping", auto_commit_interval_ms=1)
    async def on_orders(order: Order) -> None:
        handled.add(order.id)

    async with Tester(app) as tester:
        committed = committed_orders(tester)
        await tester.to_orders(Order(id=1))
        await handled.until(lambda ids: ids == [1])
        assert await holds_within(TIMEOUT, lambda: committed() == 1)
