//! [`ConsumerLoopConfig`]: how a consumer loop polls, hands over, stores and commits — what both
//! APIs' consumer settings become for the loop.

use std::sync::Arc;
use std::time::Duration;

use super::failures::FailurePolicy;
use super::partitions::RebalanceHook;
use super::slow_batch_warning;
use crate::health::ConsumerPulse;
use crate::metrics::ConsumerMetrics;
use crate::transport::ClientProperties;

/// How a [`ConsumerLoop`](super::ConsumerLoop) polls and commits.
#[derive(Debug, Clone)]
pub struct ConsumerLoopConfig {
    /// The consumer's name in log lines (the handler's, e.g. `on_signals`).
    pub name: Arc<str>,
    /// Its cluster's bootstrap servers, for its rebalance hook.
    pub cluster: Arc<str>,
    /// The largest batch handed to the handler (FastKafka's default: 100), unless
    /// `max_poll_records_when_fast` allows more.
    pub max_poll_records: usize,
    /// For handlers that take one message at a time: each poll may hand over up to this many
    /// records, as many as the handler handles in [`HAND_OVER_TARGET`](super::HAND_OVER_TARGET) (never fewer than
    /// `max_poll_records`; see `poll_size.rs`). `None`: always `max_poll_records`.
    pub max_poll_records_when_fast: Option<usize>,
    /// How often stored offsets are committed while running; `None` commits only when
    /// partitions are revoked and on stop.
    pub commit_interval: Option<Duration>,
    /// A batch still being handled after this long is reported: a group member that does not
    /// poll within `max.poll.interval.ms` is evicted and its partitions reassigned, so the
    /// warning comes first (see [`slow_batch_warning`]). `None`: never.
    pub slow_batch_warning: Option<Duration>,
    /// Hand the handler one partition's records per call (batch consumers: a handler sees one
    /// partition's records in order, never two partitions interleaved). Offsets are stored
    /// once every partition of the polled batch was handled.
    pub one_partition_per_call: bool,
    /// How many handled records may wait for their outputs' acknowledgements while the loop
    /// polls on; past it, the loop waits for the oldest batch. Offsets are stored in batch
    /// order once a batch's outputs are all delivered. Counted in records, not batches, so
    /// that the window is the same whatever the size of the handler's calls: it must cover
    /// the producers' acknowledgement time (`linger.ms` and a round trip) at the loop's rate,
    /// or it caps that rate (the default, 100,000 — what one producer's queue holds at
    /// librdkafka's defaults — and why: docs/performance.md).
    pub max_records_awaiting_delivery: usize,
    /// The same window in the bytes of those records' keys and values, which the loop keeps
    /// until their offsets are stored: large records fill it before the count does (default
    /// 64 MiB: ~1 GB/s at a 60 ms acknowledgement). One batch larger than it is still handled,
    /// alone.
    pub max_bytes_awaiting_delivery: usize,
    /// At stop, how long at most the loop waits for the outputs of handled batches still on
    /// their way (less if [`ConsumerLoop::stop_by`](super::ConsumerLoop::stop_by)'s deadline comes first).
    pub delivery_grace_at_stop: Duration,
    /// Retries and dead letters for what the handler could not process.
    pub failures: FailurePolicy,
    /// Where the loop reports its figures ([`crate::metrics`]); `None`: nowhere.
    pub metrics: Option<Arc<ConsumerMetrics>>,
    /// Where the loop says whether it polls and handles, for its health ([`crate::health`]).
    pub pulse: Arc<ConsumerPulse>,
    /// Called between batches for each change of its partitions (`partitions.rs`).
    pub on_partitions_changed: Option<RebalanceHook>,
}

impl Default for ConsumerLoopConfig {
    fn default() -> Self {
        Self {
            name: Arc::from("consumer"),
            cluster: Arc::from(""),
            max_poll_records: 100,
            max_poll_records_when_fast: None,
            commit_interval: Some(Duration::from_secs(5)),
            slow_batch_warning: slow_batch_warning(&ClientProperties::new()),
            one_partition_per_call: false,
            max_records_awaiting_delivery: 100_000,
            max_bytes_awaiting_delivery: 64 << 20,
            delivery_grace_at_stop: Duration::from_secs(10),
            failures: FailurePolicy::default(),
            metrics: None,
            pulse: Arc::default(),
            on_partitions_changed: None,
        }
    }
}
