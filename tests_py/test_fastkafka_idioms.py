"""FastKafka's own documented testing idioms, written as FastKafka users write them: the Tester
is an app with mocks of its mirrors, app mocks are real ``unittest.mock`` objects, mirrors send
what they are given, background tasks have started, and the CLI reports its version."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from pathlib import Path
from unittest.mock import AsyncMock, MagicMock, call

import pytest
from pydantic import BaseModel, Field, NonNegativeFloat

from fastkafka import FastKafka, __version__, librdkafka_version
from fastkafka.testing import InMemoryBroker, Tester

# -- FastKafka's README app and test, verbatim in shape -------------------------------------


class IrisInputData(BaseModel):
    sepal_length: NonNegativeFloat = Field(..., examples=[0.5], description="Sepal length in cm")
    sepal_width: NonNegativeFloat = Field(..., examples=[0.5], description="Sepal width in cm")
    petal_length: NonNegativeFloat = Field(..., examples=[0.5], description="Petal length in cm")
    petal_width: NonNegativeFloat = Field(..., examples=[0.5], description="Petal width in cm")


class IrisPrediction(BaseModel):
    species: str = Field(..., examples=["setosa"], description="Predicted species")


def iris_app() -> FastKafka:
    kafka_brokers = {
        "localhost": {"url": "localhost", "description": "local development kafka broker"},
        "production": {"url": "kafka.airt.ai", "port": 9092, "protocol": "kafka-secure"},
    }
    kafka_app = FastKafka(
        title="Iris predictions",
        kafka_brokers=kafka_brokers,
    )

    @kafka_app.consumes(topic="input_data", auto_offset_reset="latest")
    async def on_input_data(msg: IrisInputData) -> None:
        await to_predictions(IrisPrediction(species="setosa"))

    @kafka_app.produces(topic="predictions")
    async def to_predictions(prediction: IrisPrediction) -> IrisPrediction:
        return prediction

    return kafka_app


MSG = IrisInputData(sepal_length=0.1, sepal_width=0.2, petal_length=0.3, petal_width=0.4)


async def test_fastkafka_readme_test() -> None:
    kafka_app = iris_app()
    async with Tester(kafka_app) as tester:
        await tester.to_input_data(MSG)
        await tester.awaited_mocks.on_predictions.assert_awaited_with(
            IrisPrediction(species="setosa"), timeout=2
        )
        tester.mocks.to_input_data.assert_awaited_once_with(MSG)
        await tester.awaited_mocks.to_input_data.assert_called_once_with(MSG, timeout=2)


# -- the Tester is an app of its own ---------------------------------------------------------


async def test_the_tester_answers_what_a_test_reads_on_an_app() -> None:
    kafka_app = iris_app()

    @kafka_app.consumes(topic="audit")
    @kafka_app.benchmark(interval=1)
    async def on_audit(msg: IrisPrediction) -> None: ...

    tester = Tester(kafka_app)
    assert not tester.is_started
    assert tester.bootstrap_servers_id == "localhost"
    assert tester.get_topics() == {"input_data", "predictions", "audit"}
    tester.set_kafka_broker("production")
    with pytest.raises(ValueError, match="'staging' is not found in the kafka_brokers"):
        tester.set_kafka_broker("staging")
    async with tester:
        assert tester.is_started
        assert kafka_app.bootstrap_servers_id == "production"
        assert tester.mirrors[kafka_app.on_input_data].bootstrap_servers == "kafka.airt.ai:9092"  # type: ignore[attr-defined]
        with pytest.raises(RuntimeError, match="cannot be called while the Tester is running"):
            tester.set_kafka_broker("localhost")
        await tester.to_audit(IrisPrediction(species="virginica"))
        await kafka_app.awaited_mocks.on_audit.assert_awaited_once(timeout=2)
        assert [name.split(".")[-1] for name in tester.benchmark_results] == ["on_audit"]
        assert tester.benchmark_results == kafka_app.benchmark_results
    assert not tester.is_started
    assert kafka_app.bootstrap_servers_id == "localhost", "the app's environment is restored"
    with pytest.raises(AttributeError, match="use consumes on the app"):
        tester.consumes  # noqa: B018


async def test_tester_mocks_of_a_topic_on_two_clusters_are_ambiguous() -> None:
    app = FastKafka(kafka_brokers={"localhost": {"url": "a", "port": 9092}})

    @app.produces(topic="results")
    async def to_results_a(msg: IrisPrediction) -> IrisPrediction:
        return msg

    @app.produces(topic="results", brokers={"localhost": {"url": "b", "port": 9092}})
    async def to_results_b(msg: IrisPrediction) -> IrisPrediction:
        return msg

    async with Tester(app) as tester:
        for namespace in (tester.mocks, tester.awaited_mocks):
            with pytest.raises(RuntimeError) as raised:
                namespace.on_results  # noqa: B018
            assert str(raised.value) == (
                "Ambiguous topic: results, for functions: ['to_results_a', 'to_results_b']\n"
                "Use Tester.mirrors[app.function] to resolve ambiguity"
            )
        await to_results_b(IrisPrediction(species="b"))
        await tester.mirrors[to_results_b].assert_awaited_once_with(IrisPrediction(species="b"))
        assert tester.mirrors[to_results_a].call_count == 0


# -- app.mocks are unittest.mock objects -------------------------------------------------------


class Job(BaseModel):
    n: int


def jobs_app(handled: list[str]) -> FastKafka:
    app = FastKafka()

    @app.consumes()
    async def on_jobs(msg: Job) -> None:
        handled.append(f"handler {msg.n}")
        await to_done(msg)

    @app.consumes()
    def on_audit(msg: Job) -> None:  # a plain def consumer
        handled.append(f"audit {msg.n}")

    @app.produces()
    async def to_done(msg: Job) -> Job:
        return msg

    return app


async def test_app_mocks_are_standard_mocks_even_when_taken_before_the_calls() -> None:
    app = jobs_app([])
    async with Tester(app) as tester:
        on_jobs, on_audit = app.mocks.on_jobs, app.mocks.on_audit  # taken before any call
        assert isinstance(on_jobs, AsyncMock)
        assert isinstance(on_audit, MagicMock) and not isinstance(on_audit, AsyncMock)
        on_jobs.assert_not_called()
        for n in (1, 2):
            await tester.to_jobs(Job(n=n))
            await tester.to_audit(Job(n=n))
        await tester.awaited_mocks.on_done.assert_called_with(Job(n=2), timeout=5)
        await app.awaited_mocks.on_audit.assert_called_with(Job(n=2), timeout=5)
        # The references taken before the calls see every call, in order.
        assert on_jobs.call_args_list == [call(Job(n=1)), call(Job(n=2))]
        assert on_jobs.await_count == 2
        on_jobs.assert_awaited_with(Job(n=2))
        on_audit.assert_has_calls([call(Job(n=1)), call(Job(n=2))])
        assert on_audit.call_count == 2
        on_jobs.reset_mock()
        on_jobs.assert_not_called()


async def test_reset_mock_forgets_calls_nobody_looked_at_yet() -> None:
    app = jobs_app([])
    async with Tester(app) as tester:
        await tester.to_jobs(Job(n=1))
        # Wait on the mirror only: the app's own mock has not been read since the call.
        await tester.awaited_mocks.on_done.assert_called_once(timeout=5)
        app.mocks.on_jobs.reset_mock()
        app.mocks.on_jobs.assert_not_called()
        await tester.to_jobs(Job(n=2))
        await app.awaited_mocks.on_jobs.assert_called_once_with(Job(n=2), timeout=5)


async def test_a_side_effect_runs_when_the_function_is_called() -> None:
    handled: list[str] = []
    app = jobs_app(handled)
    async with Tester(app) as tester:
        app.mocks.on_jobs.side_effect = lambda msg: handled.append(f"mock {msg.n}")
        await tester.to_jobs(Job(n=7))
        await tester.awaited_mocks.on_done.assert_called_once_with(Job(n=7), timeout=5)
        assert handled == ["mock 7", "handler 7"]


# -- mirrors send what they are given ----------------------------------------------------------


class Order(BaseModel):
    item: str
    quantity: int = 1


class Refund(BaseModel):
    reason: str


async def test_mirrors_send_any_object_as_json(caplog: pytest.LogCaptureFixture) -> None:
    app = FastKafka()
    raw_values: list[bytes] = []

    def keep_raw(raw: bytes, model: type[Order]) -> Order:
        raw_values.append(raw)
        return model.model_validate_json(raw)

    @app.consumes(topic="orders", decoder=keep_raw)
    async def on_orders(msg: Order) -> None: ...

    @app.consumes(topic="orders")
    async def on_orders_validated(msg: Order) -> None: ...

    async with Tester(app) as tester:
        with caplog.at_level(logging.ERROR, logger="fastkafka.consumer"):
            await tester.to_orders(Refund(reason="broken"))
            await tester.to_orders({"item": 5})
            await tester.to_orders(Order.model_construct(item=42))  # type: ignore[arg-type]
            await tester.to_orders(b"not json")
            await tester.to_orders(Order(item="pen", quantity=2))
            await app.awaited_mocks.on_orders_validated.assert_called_once_with(
                Order(item="pen", quantity=2), timeout=5
            )
            await app.awaited_mocks.on_orders.assert_called_once(timeout=5)
    assert raw_values == [
        b'{"reason":"broken"}',
        b'{"item":5}',
        b'{"item":42,"quantity":1}',
        b"not json",
        b'{"item":"pen","quantity":2}',
    ]
    rejected = [r for r in caplog.records if "on_orders_validated: skipping" in r.getMessage()]
    assert len(rejected) == 4, [r.getMessage() for r in caplog.records]
    assert "validation error" in rejected[0].getMessage()


# -- background tasks and external brokers -----------------------------------------------------


class Ping(BaseModel):
    n: int


def ping_app(events: list[str]) -> FastKafka:
    app = FastKafka(kafka_brokers={"localhost": {"url": "nowhere.invalid", "port": 9092}})

    @app.consumes()
    async def on_pings(msg: Ping) -> None:
        await to_pongs(Ping(n=msg.n + 1))

    @app.produces()
    async def to_pongs(msg: Ping) -> Ping:
        return msg

    @app.run_in_background()
    async def heartbeat() -> None:
        events.append("started")
        await asyncio.Event().wait()

    return app


async def test_background_tasks_have_started_when_the_app_is_entered() -> None:
    events: list[str] = []
    app = ping_app(events)
    async with Tester(app):
        assert events == ["started"]
    with InMemoryBroker():
        async with app:
            assert events == ["started", "started"]


async def test_an_external_broker_inside_in_memory_broker_is_that_broker() -> None:
    app = ping_app([])
    with InMemoryBroker() as broker:
        # A record already on the broker before the test: only that broker has it.
        broker.cluster("nowhere.invalid:9092").send("pings", b'{"n": 1}')
        async with Tester(app).using_external_broker() as tester:
            assert tester.broker is None
            await tester.on_pongs.assert_called_once_with(Ping(n=2), timeout=5)
            await tester.to_pings(Ping(n=10))
            await tester.on_pongs.assert_called_with(Ping(n=11), timeout=5)


# -- the command line --------------------------------------------------------------------------


def test_fastkafka_version_names_the_package_and_librdkafka() -> None:
    fastkafka = str(Path(sys.executable).with_name("fastkafka"))
    shown = subprocess.run(
        [fastkafka, "--version"], capture_output=True, text=True, timeout=30, check=True
    )
    assert shown.stdout.strip() == (
        f"fastkafka-rs {__version__} (librdkafka {librdkafka_version()})"
    )
