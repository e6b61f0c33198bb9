"""The Tester: mirrors, shorthands, waiting mocks, several apps, re-entry, readiness."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel

from fastkafka import FastKafka
from fastkafka.testing import Tester


class Order(BaseModel):
    item: str
    tags: list[str] = []


CLUSTER_A = {"localhost": {"url": "a", "port": 9092}}
CLUSTER_B = {"localhost": {"url": "b", "port": 9092}}


def forwarding_app() -> FastKafka:
    app = FastKafka(kafka_brokers=CLUSTER_A)

    @app.consumes(topic="orders.in")
    async def on_orders(msg: Order) -> None:
        msg.tags.append("seen")  # mutating the message must not rewrite recorded calls
        await to_orders_out(msg)

    @app.produces(topic="orders-out")
    async def to_orders_out(msg: Order) -> Order:
        return msg

    return app


async def test_shorthands_read_dots_and_dashes_as_underscores() -> None:
    app = forwarding_app()
    async with Tester(app) as tester:
        await tester.to_orders_in(Order(item="book"))
        await tester.on_orders_out.assert_called_once_with(
            Order(item="book", tags=["seen"]), timeout=5
        )
        assert tester.on_orders_out is tester.mirrors[app.to_orders_out]  # type: ignore[attr-defined]
        with pytest.raises(AttributeError, match="no app consumes from a topic named 'nothing'"):
            tester.to_nothing  # noqa: B018


async def test_recorded_calls_are_deep_copies() -> None:
    app = forwarding_app()
    async with Tester(app) as tester:
        await tester.mirrors[app.on_orders](Order(item="pen"))  # type: ignore[attr-defined]
        await app.awaited_mocks.on_orders.assert_called_with(Order(item="pen"), timeout=5)
        await app.awaited_mocks.to_orders_out.assert_called_with(
            Order(item="pen", tags=["seen"]), timeout=5
        )


class Reading(BaseModel, extra="allow"):
    sensor: str
    value: float


async def test_a_flat_message_changed_after_the_call_is_recorded_as_it_was() -> None:
    # A message of plain fields is snapshotted by copying its fields, not deep-copied: the
    # recorded call must still be what the producer was called with.
    app = FastKafka(kafka_brokers=CLUSTER_A)

    @app.consumes(topic="readings")
    async def on_readings(msg: Reading) -> None:
        await to_checked(msg)
        msg.value = -1.0  # reassigned after the call: the producer's recorded call keeps 20.5
        msg.unit = "K"  # type: ignore[attr-defined]  # an extra field too

    @app.produces(topic="checked")
    async def to_checked(msg: Reading) -> Reading:
        return msg

    async with Tester(app) as tester:
        await tester.to_readings(Reading(sensor="t1", value=20.5, unit="C"))  # type: ignore[call-arg]
        sent = Reading(sensor="t1", value=20.5, unit="C")  # type: ignore[call-arg]
        await app.awaited_mocks.to_checked.assert_called_once_with(sent, timeout=5)
        (recorded,) = app.mocks.to_checked.call_args.args
        assert type(recorded) is Reading
        assert recorded.model_fields_set == {"sensor", "value", "unit"}
        assert recorded.model_dump() == {"sensor": "t1", "value": 20.5, "unit": "C"}
        # What went out is the message as the consumer left it when the producer returned.
        await tester.on_checked.assert_called_once_with(sent, timeout=5)

        # Without extra fields at the call, one added afterwards is not in the recorded call.
        await tester.to_readings(Reading(sensor="t2", value=1.0))
        plain = Reading(sensor="t2", value=1.0)
        await app.awaited_mocks.to_checked.assert_called_with(plain, timeout=5)
        (recorded,) = app.mocks.to_checked.call_args.args
        assert recorded.model_dump() == {"sensor": "t2", "value": 1.0}


class Sample(BaseModel):
    sensor: str
    value: float = 0.0


async def test_a_plain_message_changed_after_the_call_is_recorded_as_it_was() -> None:
    # A model without extra fields is kept as its field values: the recorded call must still
    # be what was called, down to which fields were set, on the app's and the mirror's side.
    app = FastKafka(kafka_brokers=CLUSTER_A)

    @app.consumes(topic="samples")
    async def on_samples(msg: Sample) -> None:
        await to_checked(msg)
        msg.value = -1.0

    @app.produces(topic="checked")
    async def to_checked(msg: Sample) -> Sample:
        return msg

    async with Tester(app) as tester:
        sent = Sample(sensor="t1")
        await tester.to_samples(sent)
        sent.sensor = "changed by the test"
        await app.awaited_mocks.to_checked.assert_called_once_with(Sample(sensor="t1"), timeout=5)
        (recorded,) = app.mocks.to_checked.call_args.args
        assert type(recorded) is Sample
        assert recorded.model_dump() == {"sensor": "t1", "value": 0.0}
        assert recorded.model_fields_set == {"sensor", "value"}  # both were in the JSON
        (mirrored,) = tester.mocks.to_samples.call_args.args
        assert mirrored == Sample(sensor="t1")
        assert mirrored.model_fields_set == {"sensor"}  # as the test built it
        await tester.on_checked.assert_called_once_with(Sample(sensor="t1", value=0.0), timeout=5)

        # An unvalidated message the consumer cannot decode is recorded as it was sent.
        unvalidated = Sample.model_construct(sensor=7)
        await tester.to_samples(unvalidated)
        tester.mocks.to_samples.assert_called_with(Sample.model_construct(sensor=7))
        assert tester.mocks.to_samples.call_args.args[0] is not unvalidated


async def test_a_failing_assertion_raises_after_its_timeout() -> None:
    app = forwarding_app()
    async with Tester(app) as tester:
        await tester.to_orders_in(Order(item="cup"))
        with pytest.raises(AssertionError, match="expected call not found"):
            await tester.on_orders_out.assert_called_with(Order(item="plate"), timeout=0.2)
        with pytest.raises(AssertionError):
            app.mocks.on_orders.assert_called_with(Order(item="plate"))


async def test_mock_assertions_wait_for_calls_that_come_later() -> None:
    app = forwarding_app()
    async with Tester(app) as tester:
        # awaited_mocks and the mirrors of producers wait; app.mocks are plain mocks.
        waiting = [
            asyncio.ensure_future(app.awaited_mocks.on_orders.assert_called_once(timeout=5)),
            asyncio.ensure_future(app.awaited_mocks.on_orders.assert_awaited_once()),
            asyncio.ensure_future(tester.on_orders_out.assert_called(timeout=5)),
        ]
        await asyncio.sleep(0)  # let them start waiting before anything is sent
        assert not any(task.done() for task in waiting)
        await tester.to_orders_in(Order(item="lamp"))
        await asyncio.wait_for(asyncio.gather(*waiting), timeout=5)
        app.mocks.on_orders.assert_called_once_with(Order(item="lamp"))


async def test_a_tester_can_be_entered_again_on_a_fresh_broker() -> None:
    app = forwarding_app()
    tester = Tester(app)
    for item in ("first", "second"):
        async with tester:
            await tester.to_orders_in(Order(item=item))
            await tester.on_orders_out.assert_called_once_with(
                Order(item=item, tags=["seen"]), timeout=5
            )
        assert not app.is_started
        assert app.transport is None


async def test_several_apps_talk_through_one_broker() -> None:
    producer_app = FastKafka(kafka_brokers=CLUSTER_B)
    consumer_app = FastKafka(kafka_brokers=CLUSTER_B)

    @producer_app.produces()
    async def to_payments(msg: Order) -> Order:
        return msg

    @consumer_app.consumes()
    async def on_payments(msg: Order) -> None: ...

    async with Tester([producer_app, consumer_app]):
        await to_payments(Order(item="rent"))
        await consumer_app.awaited_mocks.on_payments.assert_called_once_with(
            Order(item="rent"), timeout=5
        )


async def test_the_consumer_shorthand_is_ambiguous_across_clusters() -> None:
    app = FastKafka(kafka_brokers=CLUSTER_A)

    @app.consumes(topic="events")
    async def on_events_a(msg: Order) -> None: ...

    @app.consumes(topic="events", brokers=CLUSTER_B)
    async def on_events_b(msg: Order) -> None: ...

    async with Tester(app) as tester:
        with pytest.raises(RuntimeError) as raised:
            tester.to_events  # noqa: B018
        assert str(raised.value) == (
            "Ambiguous topic: events, for functions: ['on_events_a', 'on_events_b']\n"
            "Use Tester.mirrors[app.function] to resolve ambiguity"
        )
        await tester.mirrors[on_events_b](Order(item="only b"))
        await app.awaited_mocks.on_events_b.assert_called_once_with(Order(item="only b"))
        app.mocks.on_events_a.assert_not_called()


async def test_consumers_are_ready_when_the_tester_is_entered() -> None:
    app = FastKafka()

    @app.consumes(auto_offset_reset="latest")
    async def on_ticks(msg: Order) -> None: ...

    async with Tester(app) as tester:
        await tester.to_ticks(Order(item="first"))
        await app.awaited_mocks.on_ticks.assert_called_once_with(Order(item="first"), timeout=5)
