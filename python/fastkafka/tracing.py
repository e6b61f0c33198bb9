"""OpenTelemetry traces of an app's messages: a consumer span per handled message (one per
call for batch consumers), a producer span per send, and the W3C trace context carried in Kafka
headers (``traceparent``), so that a message forwarded from one cluster to another shows as one
trace.

Optional (``pip install "fastkafka-rs[otel]"``, which brings ``opentelemetry-api``) and off
until :func:`instrument` is called on an app: when off, a consumer's batch and a producer's
send each pay one attribute check. Spans follow OpenTelemetry's messaging semantic conventions
(``messaging.system="kafka"``, ``messaging.destination.name``, partition, offset, key, size);
the context goes in and out through the globally configured propagator (W3C trace context by
default). Exporting is the application's choice: configure a ``TracerProvider`` as usual, or
pass one to :func:`instrument`.

This is Python's side only because OpenTelemetry's SDK is: the engine's own spans (Rust
``tracing``, for Rust apps and ``FASTKAFKA_RUST_LOG``) are listed in ``src/spans.rs``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from . import _core
from .exceptions import ConfigError

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span, TracerProvider

    from ._app import FastKafka
    from ._handlers import ConsumerSpec, ProducerSpec

__all__ = ["Tracing", "instrument", "uninstrument"]

# A Kafka header as the engine hands it over and takes it.
Header = tuple[str, bytes]


def instrument(app: FastKafka, *, tracer_provider: TracerProvider | None = None) -> None:
    """Trace ``app``'s consumers and producers with OpenTelemetry (the global tracer provider
    unless ``tracer_provider`` is given). Takes effect for the next batch and send, running or
    not."""
    app._tracing = Tracing(tracer_provider)


def uninstrument(app: FastKafka) -> None:
    """Stop tracing ``app``."""
    app._tracing = None


class Tracing:
    """The spans of one instrumented app."""

    def __init__(self, tracer_provider: TracerProvider | None = None) -> None:
        try:
            from opentelemetry import propagate, trace
        except ImportError as missing:
            raise ConfigError(
                'tracing needs OpenTelemetry: pip install "fastkafka-rs[otel]" '
                "(or opentelemetry-api)"
            ) from missing
        self._trace = trace
        self._propagate = propagate
        self._tracer = trace.get_tracer("fastkafka", _core.__version__, tracer_provider)

    @contextmanager
    def processing(self, spec: ConsumerSpec, record: _core.Record) -> Iterator[Span]:
        """The consumer span of one record, current while the handler runs, its parent the
        context the record's headers carry."""
        attributes: dict[str, Any] = {
            **_common(spec.topic, "process", spec.name),
            "messaging.destination.partition.id": str(record.partition),
            "messaging.kafka.offset": record.offset,
            "messaging.message.body.size": len(record.value or b""),
        }
        key = _text(record.key)
        if key is not None:
            attributes["messaging.kafka.message.key"] = key
        span = self._tracer.start_span(
            f"process {spec.topic}",
            context=self._context_of(record.headers),
            kind=self._trace.SpanKind.CONSUMER,
            attributes=attributes,
        )
        with self._trace.use_span(span, end_on_exit=True):
            yield span

    @contextmanager
    def processing_batch(self, spec: ConsumerSpec, records: _core.RecordBatch) -> Iterator[Span]:
        """The consumer span of one batch handler call, linked to each record's context (a
        batch has many parents, so none of them is its parent)."""
        links = []
        for record in records:
            context = self._trace.get_current_span(self._context_of(record.headers))
            if context.get_span_context().is_valid:
                links.append(self._trace.Link(context.get_span_context()))
        span = self._tracer.start_span(
            f"process {spec.topic}",
            kind=self._trace.SpanKind.CONSUMER,
            attributes={
                **_common(spec.topic, "process", spec.name),
                "messaging.destination.partition.id": str(records[0].partition),
                "messaging.batch.message_count": len(records),
            },
            links=links,
        )
        with self._trace.use_span(span, end_on_exit=True):
            yield span

    @contextmanager
    def sending(self, spec: ProducerSpec, count: int) -> Iterator[list[Header]]:
        """The producer span of one send of ``count`` record(s), current while it runs; yields
        the headers that carry its context to the consumers."""
        attributes: dict[str, Any] = _common(spec.topic, "send", spec.name)
        if spec.producer is not None and spec.producer.bootstrap_servers is not None:
            attributes["server.address"] = spec.producer.bootstrap_servers
        if count != 1:
            attributes["messaging.batch.message_count"] = count
        with self._tracer.start_as_current_span(
            f"send {spec.topic}", kind=self._trace.SpanKind.PRODUCER, attributes=attributes
        ):
            carrier: dict[str, str] = {}
            self._propagate.inject(carrier)
            yield [(name, value.encode()) for name, value in carrier.items()]

    def failed(self, span: Span, error_type: str, message: str, details: str | None) -> None:
        """Mark ``span`` as failed the way the engine reported it."""
        span.set_attribute("error.type", error_type)
        span.add_event(
            "exception",
            {
                "exception.type": error_type,
                "exception.message": message,
                **({"exception.stacktrace": details} if details else {}),
            },
        )
        span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, message))

    def _context_of(self, headers: list[tuple[str, bytes | None]]) -> Context:
        # As a mapping, the last value of a name wins: a forwarded record may carry an older
        # one first.
        carrier = {
            name: value.decode(errors="replace") for name, value in headers if value is not None
        }
        return self._propagate.extract(carrier)


def _common(topic: str, operation: str, function: str) -> dict[str, Any]:
    return {
        "messaging.system": "kafka",
        "messaging.operation.name": operation,
        "messaging.operation.type": operation,
        "messaging.destination.name": topic,
        "fastkafka.function": function,
    }


def _text(key: bytes | None) -> str | None:
    """A key as the conventions want it: text, or left out."""
    if key is None:
        return None
    try:
        return key.decode()
    except UnicodeDecodeError:
        return None
