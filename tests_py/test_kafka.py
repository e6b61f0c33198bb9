"""Apps on two real Kafka-compatible clusters (Tansu), fed and read by an independent client.

Every test starts its own pair of brokers (fresh ports and storage), so topics and groups
never leak between tests.
"""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest
from delivery_helpers import Handled, forwarding_app
from kafka_helpers import TIMEOUT, committed_offsets, produce, read_all
from local_kafka import TansuBroker
from pydantic import BaseModel, Field

from fastkafka import FastKafka, _core, librdkafka_version
from fastkafka.exceptions import TransportError

# Fast settings for tests: the broker holds fetches open otherwise.
FAST = {"fetch_max_wait_ms": 20, "session_timeout_ms": 6000, "heartbeat_interval_ms": 500}


class TestMsg(BaseModel):
    __test__ = False  # the guide's name; not a test class

    msg: str = Field(...)


def brokers_of(cluster: TansuBroker) -> dict[str, dict[str, object]]:
    host, port = cluster.bootstrap_servers.split(":")
    return {"development": {"url": host, "port": int(port)}}


def test_the_bundled_librdkafka_is_reported() -> None:
    assert librdkafka_version().startswith("2.12")


async def test_the_main_app_binds_each_handler_to_its_own_cluster(
    two_clusters: list[TansuBroker],
) -> None:
    cluster_1, cluster_2 = two_clusters
    for cluster in two_clusters:
        cluster.create_topic("preprocessed_signals")
        cluster.create_topic("predictions")
    kafka_brokers_1 = brokers_of(cluster_1)
    kafka_brokers_2 = brokers_of(cluster_2)
    received: dict[str, list[str]] = {"s1": [], "s2": []}
    done = asyncio.Event()

    app = FastKafka(kafka_brokers=kafka_brokers_1, bootstrap_servers_id="development", **FAST)

    @app.consumes(topic="preprocessed_signals")
    async def on_preprocessed_signals_1(msg: TestMsg) -> None:
        received["s1"].append(msg.msg)
        await to_predictions_1(msg)
        if len(received["s1"]) == 3 and len(received["s2"]) == 2:
            done.set()

    @app.consumes(topic="preprocessed_signals", brokers=kafka_brokers_2)
    async def on_preprocessed_signals_2(msg: TestMsg) -> None:
        received["s2"].append(msg.msg)
        await to_predictions_2(msg)
        if len(received["s1"]) == 3 and len(received["s2"]) == 2:
            done.set()

    @app.produces(topic="predictions")
    async def to_predictions_1(msg: TestMsg) -> TestMsg:
        return msg

    @app.produces(topic="predictions", brokers=kafka_brokers_2)
    async def to_predictions_2(msg: TestMsg) -> TestMsg:
        return msg

    signals_1 = [(b"k1", TestMsg(msg=f"one-{i}").model_dump_json().encode()) for i in range(3)]
    signals_2 = [(None, TestMsg(msg=f"two-{i}").model_dump_json().encode()) for i in range(2)]
    async with app:
        await produce(cluster_1.bootstrap_servers, "preprocessed_signals", signals_1)
        await produce(cluster_2.bootstrap_servers, "preprocessed_signals", signals_2)
        await asyncio.wait_for(done.wait(), TIMEOUT)

    assert received == {"s1": ["one-0", "one-1", "one-2"], "s2": ["two-0", "two-1"]}
    predictions_1 = await read_all(cluster_1.bootstrap_servers, "predictions", 3)
    predictions_2 = await read_all(cluster_2.bootstrap_servers, "predictions", 2)
    assert predictions_1 == [(None, v) for _, v in signals_1]
    assert predictions_2 == [(None, v) for _, v in signals_2]


async def test_a_bad_record_is_logged_and_skipped(
    two_clusters: list[TansuBroker], caplog: pytest.LogCaptureFixture
) -> None:
    cluster = two_clusters[0]
    cluster.create_topic("signals")
    handled: list[str] = []
    good_arrived = asyncio.Event()
    app = FastKafka(kafka_brokers=brokers_of(cluster), bootstrap_servers_id="development", **FAST)

    @app.consumes()
    async def on_signals(msg: TestMsg) -> None:
        handled.append(msg.msg)
        good_arrived.set()

    caplog.set_level(logging.INFO, logger="fastkafka")
    async with app:
        await produce(
            cluster.bootstrap_servers,
            "signals",
            [(None, b"{not json"), (None, b'{"other": 1}'), (None, b'{"msg": "good"}')],
        )
        await asyncio.wait_for(good_arrived.wait(), TIMEOUT)
    assert handled == ["good"]
    skipped = [r.getMessage() for r in caplog.records if "skipping a record" in r.getMessage()]
    assert len(skipped) == 2
    assert "topic=signals partition=0 offset=0" in skipped[0]
    assert "topic=signals partition=0 offset=1" in skipped[1]


async def test_a_restarted_consumer_resumes_from_its_committed_offset(
    two_clusters: list[TansuBroker],
) -> None:
    cluster = two_clusters[0]
    cluster.create_topic("jobs", partitions=2)
    handled: list[int] = []
    progress = asyncio.Condition()

    def make_app() -> FastKafka:
        app = FastKafka(
            kafka_brokers=brokers_of(cluster), bootstrap_servers_id="development", **FAST
        )

        @app.consumes(group_id="billing", max_poll_records=10)
        async def on_jobs(msg: TestMsg) -> None:
            async with progress:
                handled.append(int(msg.msg))
                progress.notify_all()

        return app

    async def wait_for_count(count: int) -> None:
        async with progress:
            await asyncio.wait_for(progress.wait_for(lambda: len(set(handled)) >= count), TIMEOUT)

    def batch(numbers: range) -> list[tuple[bytes | None, bytes]]:
        return [(str(i).encode(), TestMsg(msg=str(i)).model_dump_json().encode()) for i in numbers]

    await produce(cluster.bootstrap_servers, "jobs", batch(range(100)))
    async with make_app():
        await wait_for_count(100)
    first_run = len(handled)
    committed = await committed_offsets(cluster.bootstrap_servers, "billing", "jobs", 2)
    assert sum(offset or 0 for offset in committed.values()) == 100, committed

    await produce(cluster.bootstrap_servers, "jobs", batch(range(100, 200)))
    async with make_app():
        await wait_for_count(200)
    # Nothing lost, and the second run started where the first one committed.
    assert sorted(set(handled)) == list(range(200))
    assert sorted(handled[first_run:]) == list(range(100, 200))


def signal_records(*texts: str) -> list[tuple[bytes | None, bytes]]:
    return [(None, TestMsg(msg=text).model_dump_json().encode()) for text in texts]


async def test_example_1_forwards_a_topic_to_the_other_cluster(
    two_clusters: list[TansuBroker],
) -> None:
    cluster_1, cluster_2 = two_clusters
    for cluster in two_clusters:
        cluster.create_topic("preprocessed_signals")
    kafka_brokers_1 = brokers_of(cluster_1)
    kafka_brokers_2 = brokers_of(cluster_2)
    forwarded = asyncio.Event()

    app = FastKafka(kafka_brokers=kafka_brokers_1, bootstrap_servers_id="development", **FAST)

    @app.consumes(topic="preprocessed_signals")
    async def on_preprocessed_signals_original(msg: TestMsg) -> None:
        await to_preprocessed_signals_forward(msg)
        forwarded.set()

    @app.produces(topic="preprocessed_signals", brokers=kafka_brokers_2)
    async def to_preprocessed_signals_forward(data: TestMsg) -> TestMsg:
        return data

    async with app:
        await produce(cluster_1.bootstrap_servers, "preprocessed_signals", signal_records("x"))
        await asyncio.wait_for(forwarded.wait(), TIMEOUT)
    assert await read_all(cluster_2.bootstrap_servers, "preprocessed_signals", 1) == (
        signal_records("x")
    )


async def test_example_2_aggregates_both_clusters_into_the_first(
    two_clusters: list[TansuBroker],
) -> None:
    cluster_1, cluster_2 = two_clusters
    for cluster in two_clusters:
        cluster.create_topic("preprocessed_signals")
        cluster.create_topic("predictions")
    kafka_brokers_1 = brokers_of(cluster_1)
    kafka_brokers_2 = brokers_of(cluster_2)
    app = FastKafka(kafka_brokers=kafka_brokers_1, bootstrap_servers_id="development", **FAST)
    sent = asyncio.Semaphore(0)

    @app.consumes(topic="preprocessed_signals")
    async def on_preprocessed_signals_1(msg: TestMsg) -> None:
        await to_predictions(msg)
        sent.release()

    @app.consumes(topic="preprocessed_signals", brokers=kafka_brokers_2)
    async def on_preprocessed_signals_2(msg: TestMsg) -> None:
        await to_predictions(msg)
        sent.release()

    @app.produces(topic="predictions")
    async def to_predictions(prediction: TestMsg) -> TestMsg:
        return [prediction]  # type: ignore[return-value]

    async with app:
        await produce(cluster_1.bootstrap_servers, "preprocessed_signals", signal_records("a"))
        await produce(cluster_2.bootstrap_servers, "preprocessed_signals", signal_records("b"))
        for _ in range(2):
            await asyncio.wait_for(sent.acquire(), TIMEOUT)
    aggregated = await read_all(cluster_1.bootstrap_servers, "predictions", 2)
    assert sorted(aggregated) == sorted(signal_records("a", "b"))


async def test_example_3_produces_the_same_prediction_to_both_clusters(
    two_clusters: list[TansuBroker],
) -> None:
    cluster_1, cluster_2 = two_clusters
    for cluster in two_clusters:
        cluster.create_topic("preprocessed_signals")
        cluster.create_topic("predictions")
    kafka_brokers_1 = brokers_of(cluster_1)
    kafka_brokers_2 = brokers_of(cluster_2)
    app = FastKafka(kafka_brokers=kafka_brokers_1, bootstrap_servers_id="development", **FAST)
    done = asyncio.Event()

    @app.consumes(topic="preprocessed_signals")
    async def on_preprocessed_signals(msg: TestMsg) -> None:
        await to_predictions_1(TestMsg(msg="prediction"))
        await to_predictions_2(TestMsg(msg="prediction"))
        done.set()

    @app.produces(topic="predictions")
    async def to_predictions_1(prediction: TestMsg) -> TestMsg:
        return [prediction]  # type: ignore[return-value]

    @app.produces(topic="predictions", brokers=kafka_brokers_2)
    async def to_predictions_2(prediction: TestMsg) -> TestMsg:
        return [prediction]  # type: ignore[return-value]

    async with app:
        await produce(cluster_1.bootstrap_servers, "preprocessed_signals", signal_records("s"))
        await asyncio.wait_for(done.wait(), TIMEOUT)
    for cluster in two_clusters:
        predictions = await read_all(cluster.bootstrap_servers, "predictions", 1)
        assert predictions == signal_records("prediction")


async def test_undelivered_records_are_logged_once_per_episode_with_topic_and_counted(
    two_clusters: list[TansuBroker], caplog: pytest.LogCaptureFixture
) -> None:
    """A backlog that fails is one ERROR line naming the topic and the error, not a line per
    record; the stop's summary counts them all."""
    cluster = two_clusters[0]
    app = FastKafka(
        kafka_brokers=brokers_of(cluster),
        bootstrap_servers_id="development",
        **{"message.timeout.ms": 500},
    )

    @app.produces()
    async def to_nowhere(msg: TestMsg) -> TestMsg:  # Tansu does not create topics on demand
        return msg

    caplog.set_level(logging.INFO, logger="fastkafka")
    async with app:
        for n in range(200):
            await to_nowhere(TestMsg(msg=f"lost {n}"))
    errors = [r for r in caplog.records if "not being delivered" in r.getMessage()]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert errors[0].levelno == logging.ERROR and "topic=nowhere" in errors[0].getMessage()
    summary = [r.getMessage() for r in caplog.records if "were not delivered" in r.getMessage()]
    assert summary == [
        f"200 record(s) produced to {cluster.bootstrap_servers} were not delivered "
        "(see the errors above)"
    ]


async def test_a_record_too_large_fails_the_producer_call_and_the_producer_goes_on(
    two_clusters: list[TansuBroker],
) -> None:
    """Records wait for the client in a lane (SendLane), yet one the client would refuse as too
    large still fails the call that sent it, naming the topic, as librdkafka's refusal did."""
    cluster = two_clusters[0]
    cluster.create_topic("predictions")
    app = FastKafka(kafka_brokers=brokers_of(cluster), bootstrap_servers_id="development")

    @app.produces(topic="predictions", max_request_size=1_000)
    async def to_predictions(msg: TestMsg) -> TestMsg:
        return msg

    async with app:
        with pytest.raises(TransportError) as refused:
            await to_predictions(TestMsg(msg="x" * 2_000))
        assert "cannot send to 'predictions'" in str(refused.value)
        assert "MessageSizeTooLarge" in str(refused.value)
        await to_predictions(TestMsg(msg="fits"))
    assert await read_all(cluster.bootstrap_servers, "predictions", 1) == [
        (None, TestMsg(msg="fits").model_dump_json().encode())
    ]


async def test_a_refused_send_is_a_delivery_failure_retried_not_a_handler_error_skipped(
    two_clusters: list[TansuBroker],
) -> None:
    """The producer call fails in the handler (a record too large for the client), and the
    handler does not even look at the error: the input is not skipped and committed, as a
    handler's error would be by default, but read and handled again with backoff until its
    output goes through."""
    source, destination = two_clusters
    source.create_topic("signals")
    destination.create_topic("predictions")
    await produce(source.bootstrap_servers, "signals", signal_records("first"))
    oversized = True
    attempts: list[str] = []
    retried = asyncio.Event()
    app = FastKafka(kafka_brokers=brokers_of(source), bootstrap_servers_id="development", **FAST)

    @app.produces(topic="predictions", brokers=brokers_of(destination), max_request_size=1_000)
    async def to_predictions(msg: TestMsg) -> TestMsg:
        return msg

    @app.consumes(topic="signals", group_id="forwarding")
    async def on_signals(msg: TestMsg) -> None:
        attempts.append(msg.msg)
        if len(attempts) >= 2:
            retried.set()
        try:
            await to_predictions(TestMsg(msg=msg.msg * (1_000 if oversized else 1)))
        except TransportError:
            pass  # a handler that swallows the error must not lose the output either

    async with app:
        await asyncio.wait_for(retried.wait(), TIMEOUT)
        oversized = False
        assert await read_all(destination.bootstrap_servers, "predictions", 1) == [
            (None, TestMsg(msg="first").model_dump_json().encode())
        ]
    committed = await committed_offsets(source.bootstrap_servers, "forwarding", "signals", 1)
    assert committed == {0: 1}, "committed once its output was delivered"
    assert set(attempts) == {"first"}


def closed_port() -> int:
    """A loopback port nothing listens on (bound, read, released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_an_unreachable_cluster_fails_the_start_naming_it() -> None:
    port = closed_port()
    app = FastKafka(
        kafka_brokers={"development": {"url": "127.0.0.1", "port": port}},
        bootstrap_servers_id="development",
        start_timeout=1.0,
    )

    @app.consumes()
    async def on_orders(msg: TestMsg) -> None: ...

    @app.produces()
    async def to_invoices(msg: TestMsg) -> TestMsg:
        return msg

    with pytest.raises(TransportError) as failed:
        async with asyncio.timeout(TIMEOUT):
            async with app:
                pass
    message = str(failed.value)
    assert message.startswith(
        f"cluster 127.0.0.1:{port}: unreachable at start (environment 'development', "
        "used by to_invoices, on_orders): no answer to a metadata request within 1.0 s"
    ), message
    assert not app.is_started


async def test_a_full_producer_queue_is_awaited_not_blocking_the_event_loop() -> None:
    """With the client's queue full, a send hands back an awaitable that finishes once there
    is room, instead of blocking the event loop's thread until then."""
    cluster = _core.KafkaTransport().cluster(
        f"127.0.0.1:{closed_port()}",  # nothing is delivered: the queue only drains by timeouts
        {"queue.buffering.max.messages": "5", "message.timeout.ms": "500"},
    )
    # The client's queue holds 5 records, and so does the lane in front of it (SendLane):
    # the first 10 sends are taken, at once or as soon as the lane has handed records over.
    for _ in range(10):
        if (room := cluster.send("orders", b"{}")) is not None:
            await asyncio.wait_for(room, TIMEOUT)
    waiting = cluster.send("orders", b"{}")
    assert waiting is not None, "a full queue is awaited, not blocked on"
    other_work = asyncio.ensure_future(asyncio.sleep(0.05))
    await asyncio.wait_for(waiting, TIMEOUT)  # taken once the first five timed out
    assert other_work.done(), "the event loop ran other work while the send waited"


async def test_an_input_commits_only_once_its_output_reached_the_other_cluster(
    two_clusters: list[TansuBroker],
) -> None:
    """The destination topic does not exist yet: every delivery fails (after
    message.timeout.ms), so the order is handled again and again and never committed; once
    the topic exists the shipment goes through and the order is committed."""
    orders, shipments = two_clusters
    orders.create_topic("orders", partitions=1)
    handled = Handled()
    app = forwarding_app(
        brokers_of(orders),
        brokers_of(shipments),
        handled,
        {"message.timeout.ms": 1000},
        bootstrap_servers_id="development",
        **FAST,
    )

    await produce(orders.bootstrap_servers, "orders", [(None, b'{"id": 5}')])
    async with app:
        await handled.until(lambda ids: len(ids) >= 2)
        committed = await committed_offsets(orders.bootstrap_servers, "shipping", "orders", 1)
        assert committed == {0: None}, "nothing committed while the shipment is undelivered"
        shipments.create_topic("shipments", partitions=1)
        assert await read_all(shipments.bootstrap_servers, "shipments", 1) == [(None, b'{"id":5}')]
    committed = await committed_offsets(orders.bootstrap_servers, "shipping", "orders", 1)
    assert committed == {0: 1}
    assert set(handled.ids) == {5}
