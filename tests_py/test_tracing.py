"""OpenTelemetry traces (fastkafka.tracing): a message forwarded from one cluster to another is
one trace, in memory and through librdkafka on two real clusters; failures mark their span;
batch consumers link their records; nothing is traced or added to headers when off."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence

import pytest
from kafka_helpers import TIMEOUT
from local_kafka import TansuBroker
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from pydantic import BaseModel

from fastkafka import EventMetadata, FastKafka, RetryPolicy
from fastkafka.testing import Tester
from fastkafka.tracing import instrument, uninstrument

FAST = {"fetch_max_wait_ms": 20, "session_timeout_ms": 6000, "heartbeat_interval_ms": 500}


class Signal(BaseModel):
    value: int


class NotifyingExporter(InMemorySpanExporter):
    """Keeps the spans and wakes whoever waits for more (spans end on the event loop)."""

    def __init__(self) -> None:
        super().__init__()
        self.exported = asyncio.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = super().export(spans)
        self.exported.set()
        return result


class Traced:
    """An in-memory exporter and the provider writing to it."""

    def __init__(self) -> None:
        self.exporter = NotifyingExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.spans() if span.name == name]

    async def until(self, condition: Callable[[], bool]) -> None:
        async def holds() -> None:
            while not condition():
                self.exporter.exported.clear()
                await self.exporter.exported.wait()

        await asyncio.wait_for(holds(), TIMEOUT)

    async def wait_for(self, name: str, count: int = 1) -> None:
        await self.until(lambda: len(self.named(name)) >= count)


@pytest.fixture
def traced() -> Iterator[Traced]:
    traced = Traced()
    yield traced
    traced.provider.shutdown()


def brokers(url: str, port: int) -> dict[str, dict[str, object]]:
    return {"development": {"url": url, "port": port}}


def forwarding_app(
    one: dict[str, dict[str, object]], two: dict[str, dict[str, object]], **options: object
) -> tuple[FastKafka, list[EventMetadata]]:
    """The guide's forwarding app, plus a consumer of its output on cluster 2 that keeps the
    metadata (headers) of what it gets."""
    app = FastKafka(kafka_brokers=one, bootstrap_servers_id="development", **options)
    arrived: list[EventMetadata] = []

    @app.produces(topic="signals")
    async def to_signals(signal: Signal) -> Signal:
        return signal

    @app.consumes(topic="signals")
    async def on_signals(signal: Signal) -> None:
        await to_predictions(signal)

    @app.produces(topic="predictions", brokers=two)
    async def to_predictions(signal: Signal) -> Signal:
        return Signal(value=signal.value * 10)

    @app.consumes(topic="predictions", brokers=two)
    async def on_predictions(signal: Signal, meta: EventMetadata) -> None:
        arrived.append(meta)

    return app, arrived


def assert_one_trace_across_both_clusters(traced: Traced, root_id: int, one: str, two: str) -> None:
    (send_1,) = traced.named("send signals")
    (process_1,) = traced.named("process signals")
    (send_2,) = traced.named("send predictions")
    (process_2,) = traced.named("process predictions")
    chain = [send_1, process_1, send_2, process_2]
    assert {span.context.trace_id for span in chain} == {root_id}
    parents = [span.parent.span_id if span.parent else None for span in chain]
    (root,) = traced.named("request")
    assert parents == [root.context.span_id] + [span.context.span_id for span in chain[:-1]]
    assert [span.kind for span in chain] == [SpanKind.PRODUCER, SpanKind.CONSUMER] * 2
    assert send_1.attributes is not None and send_2.attributes is not None
    assert (send_1.attributes["server.address"], send_2.attributes["server.address"]) == (one, two)
    assert process_2.attributes is not None
    assert process_2.attributes["messaging.system"] == "kafka"
    assert process_2.attributes["messaging.destination.name"] == "predictions"
    assert process_2.attributes["messaging.kafka.offset"] == 0
    assert process_2.attributes["messaging.destination.partition.id"] == "0"


async def test_a_message_forwarded_from_cluster_1_to_cluster_2_is_one_trace(
    traced: Traced,
) -> None:
    app, arrived = forwarding_app(brokers("server_1", 9092), brokers("server_2", 9092))
    instrument(app, tracer_provider=traced.provider)
    async with Tester(app):
        with traced.provider.get_tracer("test").start_as_current_span("request") as root:
            await app.to_signals(Signal(value=4))
        await traced.wait_for("process predictions")

    assert_one_trace_across_both_clusters(
        traced, root.get_span_context().trace_id, "server_1:9092", "server_2:9092"
    )
    (process_2,) = traced.named("process predictions")
    (header,) = [value for name, value in arrived[0].headers if name == "traceparent"]
    assert header.decode().split("-")[1] == f"{process_2.context.trace_id:032x}"


async def test_the_trace_crosses_two_real_clusters_in_the_records_headers(
    traced: Traced, two_clusters: list[TansuBroker]
) -> None:
    cluster_1, cluster_2 = two_clusters
    cluster_1.create_topic("signals")
    cluster_2.create_topic("predictions")
    (host_1, port_1), (host_2, port_2) = (c.bootstrap_servers.split(":") for c in two_clusters)
    app, _ = forwarding_app(brokers(host_1, int(port_1)), brokers(host_2, int(port_2)), **FAST)
    instrument(app, tracer_provider=traced.provider)
    async with app:
        with traced.provider.get_tracer("test").start_as_current_span("request") as root:
            await app.to_signals(Signal(value=4))
        await traced.wait_for("process predictions")

    assert_one_trace_across_both_clusters(
        traced,
        root.get_span_context().trace_id,
        cluster_1.bootstrap_servers,
        cluster_2.bootstrap_servers,
    )


async def test_a_failing_handler_and_an_undecodable_record_mark_their_spans(
    traced: Traced,
) -> None:
    app = FastKafka(kafka_brokers=brokers("localhost", 9092), bootstrap_servers_id="development")

    @app.consumes(topic="orders", retry=RetryPolicy(attempts=2, backoff=0.01))
    async def on_orders(signal: Signal) -> None:
        if signal.value < 0:
            raise ValueError(f"negative: {signal.value}")

    instrument(app, tracer_provider=traced.provider)
    async with Tester(app) as tester:
        await tester.to_orders(Signal(value=-1))
        tester.broker.cluster("localhost:9092").produce("orders", [(None, b"{not json", None)])
        await traced.wait_for("process orders", count=3)

    spans = traced.named("process orders")
    failed = [span for span in spans if span.status.status_code == StatusCode.ERROR]
    assert len(failed) == 3, "two attempts of the failing record, one undecodable record"
    errors = sorted(str((span.attributes or {})["error.type"]) for span in failed)
    assert errors == ["ValidationError", "ValueError", "ValueError"]
    messages = {span.status.description for span in failed}
    assert "negative: -1" in messages


async def test_a_batch_consumer_has_one_span_per_call_linked_to_each_record(
    traced: Traced,
) -> None:
    app = FastKafka(kafka_brokers=brokers("localhost", 9092), bootstrap_servers_id="development")
    handled: list[int] = []

    @app.produces(topic="orders")
    async def to_orders(signal: Signal) -> Signal:
        return signal

    @app.consumes(topic="orders")
    async def on_orders(signals: list[Signal]) -> None:
        handled.extend(signal.value for signal in signals)

    instrument(app, tracer_provider=traced.provider)

    def batch_sizes() -> list[int]:
        return [
            int((span.attributes or {})["messaging.batch.message_count"])
            for span in traced.named("process orders")
        ]

    async with Tester(app):
        for value in range(3):
            await to_orders(Signal(value=value))
        await traced.until(lambda: sum(batch_sizes()) == 3)

    assert sorted(handled) == [0, 1, 2]
    sends = {span.context.span_id for span in traced.named("send orders")}
    batches = traced.named("process orders")
    assert {link.context.span_id for span in batches for link in span.links} == sends


async def test_when_off_nothing_is_traced_and_no_header_is_added(traced: Traced) -> None:
    app, arrived = forwarding_app(brokers("server_1", 9092), brokers("server_2", 9092))
    instrument(app, tracer_provider=traced.provider)
    uninstrument(app)
    async with Tester(app):
        with traced.provider.get_tracer("test").start_as_current_span("request"):
            await app.to_signals(Signal(value=4))  # type: ignore[attr-defined]
        await app.awaited_mocks.on_predictions.assert_called(timeout=TIMEOUT)

    assert [span.name for span in traced.spans()] == ["request"]
    assert arrived[0].headers == []
