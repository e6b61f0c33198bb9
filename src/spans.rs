//! The engine's `tracing` spans, for any subscriber a Rust app attaches (and for Python apps
//! through `FASTKAFKA_RUST_LOG=debug`; Python's OpenTelemetry spans are `fastkafka.tracing`).
//!
//! Three spans, at DEBUG so that a subscriber that does not want them costs a cached callsite
//! check, and with OpenTelemetry's messaging attribute names so that a `tracing-opentelemetry`
//! layer exports them as they are:
//! - `fastkafka.handle_batch` (target `fastkafka::consumer`): one handler call of a consumer
//!   loop, both APIs — `consumer`, `messaging.destination.name`, `messaging.batch.message_count`;
//! - `fastkafka.process`: one message in a Rust handler, inside the former — its topic,
//!   partition and offset;
//! - `fastkafka.send` (target `fastkafka::producer`): one send of a producer handle, inside the
//!   handler that sends — `producer`, `messaging.destination.name`, `server.address` and the
//!   record count.
//!
//! They are built here, in one place, so their names and fields stay the documented ones.

use tracing::Span;

use crate::record::Record;

/// The span of one handler call over `records` by the consumer `consumer`.
pub(crate) fn handle_batch(consumer: &str, records: &[Record]) -> Span {
    tracing::debug_span!(
        target: "fastkafka::consumer",
        "fastkafka.handle_batch",
        consumer,
        messaging.system = "kafka",
        messaging.operation.type = "process",
        messaging.destination.name = records.first().map(|record| &*record.topic),
        messaging.batch.message_count = records.len(),
    )
}

/// The span of one message handled by a Rust handler.
pub(crate) fn process(record: &Record) -> Span {
    tracing::debug_span!(
        target: "fastkafka::consumer",
        "fastkafka.process",
        messaging.system = "kafka",
        messaging.operation.type = "process",
        messaging.destination.name = &*record.topic,
        messaging.destination.partition.id = record.partition,
        messaging.kafka.offset = record.offset,
    )
}

/// The span of one send of `count` records by the producer `producer` to `topic` on `cluster`.
pub(crate) fn send(producer: &str, topic: &str, cluster: &str, count: usize) -> Span {
    tracing::debug_span!(
        target: "fastkafka::producer",
        "fastkafka.send",
        producer,
        messaging.system = "kafka",
        messaging.operation.type = "send",
        messaging.destination.name = topic,
        server.address = cluster,
        messaging.batch.message_count = count,
    )
}
