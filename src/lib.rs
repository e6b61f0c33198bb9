//! # fastkafka — the engine of a Kafka framework
//!
//! Consumers and producers bound to several Kafka clusters at once, an in-memory broker with
//! Kafka's semantics for tests, and at-least-once consumer loops that hand records over in
//! batches. The Python package `fastkafka` (FastKafka's API) is a thin layer over this crate,
//! behind the `python` feature; Rust users use the crate directly and never compile pyo3.
//!
//! ```
//! use fastkafka::{ClusterId, Cluster, MemoryBroker, OutgoingRecord, Subscription, Transport};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> fastkafka::Result<()> {
//! let broker = MemoryBroker::new();
//! let cluster = broker.cluster(&ClusterId::from_addresses(["server_1:9092"]))?;
//! let mut consumer = cluster.subscribe(Subscription::new(["signals"])).await?;
//! cluster.produce("signals", vec![OutgoingRecord::new(&b"{\"msg\":\"hi\"}"[..])])?;
//! let batch = consumer.poll(100).await?;
//! assert_eq!(batch[0].value.as_deref(), Some(&b"{\"msg\":\"hi\"}"[..]));
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//! - [`runtime`]: the one app runtime under both APIs and an app's one registry —
//!   registrations (with what their docs say), start with rollback, supervision, ordered
//!   stop — [`runtime::options`], client options in FastKafka's names, checked and mapped
//!   once, and [`runtime::mirrors`], the test mirrors both harnesses derive from the
//!   registrations.
//! - [`app`]: the Rust-native app, a typed facade over [`runtime`] — typed consumers and producers per (topic, cluster),
//!   [`App::start`](app::App::start), and [`TestHarness`](app::TestHarness) for in-memory tests
//!   (one file per concern under `src/app/`).
//! - [`docs`]: AsyncAPI documentation (2.6 and 3.0 specs, YAML, an offline HTML page) for both
//!   APIs, read from the runtime's registrations.
//! - [`config`]: `kafka_brokers` environments → [`ClusterId`] (the resolved bootstrap servers).
//! - [`record`]: [`Record`] (what a consumer gets) and [`OutgoingRecord`] (what a producer sends).
//! - [`transport`]: the seam — [`Transport`] → [`Cluster`] → [`ClusterConsumer`] — and its
//!   in-memory implementation, [`MemoryBroker`]; [`transport::undelivered`], failed
//!   deliveries logged one line per episode; [`transport::status`], whether a cluster answers
//!   and a consumer holds its partitions; [`transport::failover`], a cluster and its standby
//!   as one cluster whose traffic moves when the primary is lost.
//! - [`consumer_loop`]: [`ConsumerLoop`], poll → handle a batch → store offsets once its outputs
//!   are delivered → commit, and [`LoopFailure`] when a loop ends other than by `stop`;
//!   [`consumer_loop::failures`]: what happens to records a handler could not process
//!   ([`RetryPolicy`], dead-letter topics).
//! - [`producer`]: [`producer::ProducerHandle`], where a registered producer sends (bound by
//!   the runtime while it runs; the consumer loop's dead letters go through one too).
//! - [`delivery`]: [`delivery::DeliveryTracker`], the acknowledgements of what a batch produced,
//!   and [`delivery::spawn`], a task tied to the input its handler was handling.
//! - [`metrics`]: the consumers' and producers' figures in Prometheus' text format.
//! - [`offsets`]: a consumer group's offsets and where a reset moves them (`fastkafka offsets`;
//!   the Kafka side in `transport::kafka::offsets`).
//! - [`health`]: liveness and readiness, a view of the running runtime (consumers' pulses,
//!   clusters' [`transport::status`] flags) for probes in both APIs.
//! - `spans`: the engine's `tracing` spans (handler calls, messages, sends), listed there.
//! - [`error`]: the one [`Error`] enum.
//! - `python` (feature `python`): the `fastkafka._core` extension module, the Python facade
//!   over [`runtime`].

#![warn(missing_docs)]

pub mod app;
pub mod config;
pub mod consumer_loop;
pub mod delivery;
pub mod docs;
pub mod error;
pub mod health;
pub mod metrics;
pub mod offsets;
pub mod producer;
pub mod record;
pub mod runtime;
mod spans;
pub mod transport;

#[cfg(feature = "python")]
mod python;

pub use config::{BrokerAddress, ClusterId, KafkaBrokers};
pub use consumer_loop::failures::{Handled, RetryPolicy};
pub use consumer_loop::{BatchHandler, ConsumerLoop, ConsumerLoopConfig, LoopFailure};
pub use error::{Error, Result};
pub use record::{Header, OutgoingRecord, Record, TimestampType, TopicPartition};
pub use transport::memory::{MemoryBroker, MemoryCluster};
pub use transport::{
    ClientProperties, Cluster, ClusterConsumer, OffsetReset, Subscription, Transport,
};
