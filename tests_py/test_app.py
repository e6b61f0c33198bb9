"""FastKafka's application API: construction, decorators, lifecycle, bad messages."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from kafka_helpers import TIMEOUT, eventually
from pydantic import BaseModel

from fastkafka import FastKafka
from fastkafka._core import MemoryBroker
from fastkafka.exceptions import AppNotStartedError, ConfigError
from fastkafka.testing import Tester


class Signal(BaseModel):
    value: int


TWO_ENVIRONMENTS = {
    "development": {"url": "dev.one", "port": 9092},
    "production": [{"url": "prod.one", "port": "9092"}, {"url": "prod.two", "port": 9093}],
}


def test_unknown_keyword_arguments_are_rejected_by_name() -> None:
    with pytest.raises(ValueError, match="Unallowed key arguments passed: bootstrap_server"):
        FastKafka(bootstrap_server="localhost:9092")
    app = FastKafka(client_id="svc", group_id="g", linger_ms=5)
    assert app.bootstrap_servers_id == "localhost"


@pytest.mark.parametrize(
    ("brokers", "message"),
    [
        ({"dev": {"port": 9092}}, r"kafka_brokers\['dev'\] is missing the required key 'url'"),
        ({"dev": {"url": "h", "port": "x"}}, r"kafka_brokers\['dev'\]\['port'\] must be a port"),
        ({"dev": [{"url": "h", "port": 0}]}, r"kafka_brokers\['dev'\]\[0\]\['port'\]"),
        ({}, "at least one environment"),
        ("localhost:9092", "must be a mapping"),
    ],
)
def test_bad_kafka_brokers_name_the_key(brokers: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        FastKafka(kafka_brokers=brokers)  # type: ignore[arg-type]


def test_an_unknown_environment_lists_the_known_ones() -> None:
    app = FastKafka(kafka_brokers=TWO_ENVIRONMENTS)
    with pytest.raises(ValueError, match=r"'staging'.*\['development', 'production'\]"):
        app.set_kafka_broker("staging")
    app.set_kafka_broker("production")
    assert app.cluster_id(None) == "prod.one:9092,prod.two:9093"


async def test_starting_with_an_environment_the_brokers_lack_fails_at_start() -> None:
    app = FastKafka(kafka_brokers=TWO_ENVIRONMENTS)  # bootstrap_servers_id="localhost"

    @app.consumes()
    async def on_signals(msg: Signal) -> None: ...

    app.use_transport(MemoryBroker())
    with pytest.raises(ConfigError, match="unknown kafka broker environment 'localhost'"):
        async with app:
            pass
    assert not app.is_started


def test_a_brokers_override_must_define_every_environment() -> None:
    app = FastKafka(kafka_brokers=TWO_ENVIRONMENTS)
    with pytest.raises(
        ValueError,
        match=r"To override application default brokers, you must define all of the broker "
        r"options.*omitted: \[\"production\"\]",
    ):

        @app.consumes(brokers={"development": {"url": "other"}})
        async def on_signals(msg: Signal) -> None: ...


def test_topics_default_to_the_function_name_without_the_prefix() -> None:
    app = FastKafka()

    async def on_raw_signals(msg: Signal) -> None: ...

    assert app.consumes()(on_raw_signals) is on_raw_signals
    assert app.on_raw_signals is on_raw_signals  # type: ignore[attr-defined]

    @app.produces(prefix="send_")
    async def send_alerts(msg: Signal) -> Signal:
        return msg

    @app.consumes(topic="explicit.topic")
    async def whatever(msg: Signal) -> None: ...

    assert app.get_topics() == {"raw_signals", "alerts", "explicit.topic"}
    with pytest.raises(ValueError, match="'handle_signals' must start with the prefix 'on_'"):

        @app.consumes()
        async def handle_signals(msg: Signal) -> None: ...


def test_decorators_reject_what_cannot_work() -> None:
    app = FastKafka()
    with pytest.raises(
        ValueError,
        match="'to_x' is a synchronous function: synchronous functions are not supported "
        "for produce operations",
    ):

        @app.produces()
        def to_x(msg: Signal) -> Signal:
            return msg

    with pytest.raises(ValueError, match="'to_y' must declare its return type"):

        @app.produces()
        async def to_y(msg: Signal):  # type: ignore[no-untyped-def]
            return msg

    with pytest.raises(ValueError, match="'on_z' needs a parameter annotated with a pydantic"):

        @app.consumes()
        async def on_z(msg: dict) -> None:  # type: ignore[type-arg]
            ...

    with pytest.raises(ValueError, match="Unknown decoder - xml"):

        @app.consumes(decoder="xml")
        async def on_w(msg: Signal) -> None: ...

    with pytest.raises(ValueError, match="Unallowed key arguments passed: linger_ms"):

        @app.consumes(linger_ms=5)
        async def on_v(msg: Signal) -> None: ...


async def test_a_producer_of_a_stopped_app_raises_a_clear_error() -> None:
    app = FastKafka()
    body_ran = False

    @app.produces()
    async def to_signals(msg: Signal) -> Signal:
        nonlocal body_ran
        body_ran = True
        return msg

    with pytest.raises(AppNotStartedError, match="'to_signals' was called while its app is not"):
        await to_signals(Signal(value=1))
    assert not body_ran
    assert isinstance(AppNotStartedError(), RuntimeError)


async def test_async_with_runs_lifespan_around_start_and_stop() -> None:
    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app: FastKafka) -> AsyncIterator[None]:
        events.append(f"enter started={app.is_started}")
        yield
        events.append(f"exit started={app.is_started}")

    app = FastKafka(lifespan=lifespan)

    @app.consumes()
    async def on_signals(msg: Signal) -> None: ...

    app.use_transport(MemoryBroker())
    async with app:
        events.append(f"body started={app.is_started}")
    assert events == ["enter started=False", "body started=True", "exit started=False"]


async def test_the_producer_returns_the_body_value_and_sends_lists_as_batches() -> None:
    app = FastKafka()

    @app.produces()
    async def to_signals(values: list[int]) -> list[Signal]:
        return [Signal(value=v) for v in values]

    async with Tester(app) as tester:
        returned = await to_signals([1, 2, 3])
        assert returned == [Signal(value=1), Signal(value=2), Signal(value=3)]
        await tester.on_signals.assert_has_calls(
            [((Signal(value=v),),) for v in (1, 2, 3)], timeout=5
        )


async def test_bad_records_are_logged_and_skipped(caplog: pytest.LogCaptureFixture) -> None:
    app = FastKafka()
    handled: list[int] = []

    @app.consumes()
    async def on_signals(msg: Signal) -> None:
        if msg.value == 13:
            raise RuntimeError("unlucky")
        handled.append(msg.value)

    caplog.set_level(logging.INFO, logger="fastkafka")
    async with Tester(app) as tester:
        assert tester.broker is not None
        cluster = tester.broker.cluster("localhost:9092")
        cluster.produce(
            "signals",
            [
                (None, b"not json", None),
                (None, b'{"value": "not a number"}', None),
                (None, b'{"value": 13}', None),
                (None, b'{"value": 14}', None),
            ],
        )
        await app.awaited_mocks.on_signals.assert_called_with(Signal(value=14), timeout=5)
    assert handled == [14]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 3
    assert "cannot be decoded as Signal (topic=signals partition=0 offset=0)" in errors[0]
    assert "offset=1" in errors[1] and "value" in errors[1]
    assert "handler failed (topic=signals partition=0 offset=2)" in errors[2]


async def test_start_and_stop_are_logged_with_cluster_topic_and_group(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = FastKafka(kafka_brokers={"localhost": {"url": "k1", "port": 29092}})

    @app.consumes(group_id="billing")
    async def on_invoices(msg: Signal) -> None: ...

    caplog.set_level(logging.INFO, logger="fastkafka")
    async with Tester(app):
        pass
    messages = [r.getMessage() for r in caplog.records if r.name == "fastkafka.consumer"]
    assert messages[0].startswith("on_invoices: consuming topic 'invoices' from k1:29092")
    assert "group_id=billing" in messages[0]
    assert messages[-1] == "on_invoices: stopped consuming topic 'invoices'"


async def test_plain_def_consumers_run_off_the_event_loop() -> None:
    app = FastKafka()
    threads: list[int] = []

    @app.consumes()
    def on_signals(msg: Signal) -> None:
        threads.append(threading.get_ident())

    async with Tester(app) as tester:
        await tester.to_signals(Signal(value=1))
        await app.awaited_mocks.on_signals.assert_called(timeout=5)
    assert threads and threads[0] != threading.get_ident()


async def test_members_of_one_group_share_the_work() -> None:
    app = FastKafka()
    handled: list[int] = []
    all_handled = asyncio.Event()

    def handle(msg: Signal) -> None:
        handled.append(msg.value)
        if len(handled) >= 20:
            all_handled.set()

    @app.consumes(topic="jobs", group_id="workers")
    async def on_jobs_a(msg: Signal) -> None:
        handle(msg)

    @app.consumes(topic="jobs", group_id="workers")
    async def on_jobs_b(msg: Signal) -> None:
        handle(msg)

    @app.consumes(topic="jobs")
    async def on_jobs_audit(msg: Signal) -> None: ...

    async with Tester(app) as tester:
        await tester.mirrors[on_jobs_a]([Signal(value=v) for v in range(20)])
        await asyncio.wait_for(all_handled.wait(), timeout=5)
        # The group-less consumer reads everything too, independently of the group.
        await app.awaited_mocks.on_jobs_audit.assert_has_calls(
            [((Signal(value=v),),) for v in range(20)], timeout=5
        )
    # Every job was handled once by the group, whichever member owned the partition.
    assert sorted(handled) == list(range(20))


async def test_a_running_handle_collected_without_stop_still_stops_its_consumers() -> None:
    """The engine's handle of a started app (`_core.RunningRuntime`), collected without a stop
    — an app torn down by an error path that never reached it — stops what it started all the
    same: its consumer finishes, commits what it handled and leaves its group."""
    app = FastKafka()
    handled = asyncio.Event()

    @app.consumes(group_id="g", auto_commit_interval_ms=3_600_000)  # commits only at stop
    async def on_signals(msg: Signal) -> None:
        handled.set()

    broker = MemoryBroker()
    app.use_transport(broker)
    await app.__aenter__()
    try:
        broker.cluster("localhost:9092").send("signals", Signal(value=1).model_dump_json().encode())
        await asyncio.wait_for(handled.wait(), TIMEOUT)
        assert broker.committed_offset("localhost:9092", "g", "signals", 0) is None
        app._run._running = None  # type: ignore[attr-defined]  # the handle, collected
        gc.collect()
        await eventually(
            lambda: broker.committed_offset("localhost:9092", "g", "signals", 0) == 1,
            "the collected handle's consumer committed at its stop",
        )
    finally:
        await app.__aexit__(None, None, None)
