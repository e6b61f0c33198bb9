//! Metrics of the consumers and producers of this process, in Prometheus' text format.
//!
//! One process-wide registry ([`render`]): each consumer loop registers its
//! [`ConsumerMetrics`] when it starts and updates it once per batch (atomics, nothing per
//! record), and each cluster's client counts, per topic, what it was handed and what the
//! cluster acknowledged ([`ProducerMetrics`], one per cluster and topic however many producers
//! send there). A hand-written registry rather than the `metrics` or `prometheus-client`
//! crates: the figures are few and fixed, updating them must cost nothing measurable on the hot
//! path, and the text format is simple — so no dependency (nor its MSRV) is worth it. Both APIs
//! read the same registry: Python's `fastkafka.metrics.render()` and `fastkafka run
//! --metrics-port` call [`render`]. `FASTKAFKA_METRICS=off` turns recording off (for measuring
//! what it costs: `make bench`).

mod consumer;
mod failover;
mod producer;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::Duration;

pub use consumer::{BatchCounts, ConsumerLabels, ConsumerMetrics};
pub use failover::ActiveClusterMetrics;
pub use producer::{ClusterProducerMetrics, ProducerMetrics};

/// Upper bounds (seconds) of the histograms' buckets.
const SECONDS_BUCKETS: [f64; 10] = [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0];

/// Whether figures are recorded: yes unless `FASTKAFKA_METRICS` is `off`, `0` or `false` in the
/// environment when the first consumer or cluster starts.
pub fn enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| {
        !matches!(
            std::env::var("FASTKAFKA_METRICS").as_deref(),
            Ok("off" | "0" | "false")
        )
    })
}

#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; SECONDS_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, elapsed: Duration) {
        self.observe_many(elapsed, 1);
    }

    /// `count` observations of `elapsed` each.
    fn observe_many(&self, elapsed: Duration, count: u64) {
        let seconds = elapsed.as_secs_f64();
        if let Some(bucket) = SECONDS_BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.buckets[bucket].fetch_add(count, Ordering::Relaxed);
        }
        self.count.fetch_add(count, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(elapsed.as_micros() as u64 * count, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (bound, bucket) in SECONDS_BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

#[derive(Default)]
struct Registry {
    consumers: Vec<Weak<ConsumerMetrics>>,
    /// Per cluster: kept for the process's life, as counters must not vanish.
    clusters: Vec<Arc<ClusterProducerMetrics>>,
    /// Per primary/standby pair, while it exists.
    pairs: Vec<Weak<ActiveClusterMetrics>>,
}

fn registry() -> &'static Mutex<Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(Mutex::default)
}

fn lock_registry() -> std::sync::MutexGuard<'static, Registry> {
    registry().lock().unwrap_or_else(PoisonError::into_inner)
}

/// Every registered consumer's and producer's figures in Prometheus' text format (0.0.4).
///
/// Per consumer (labels `consumer`, `cluster`, `topic`, `group`):
/// - `fastkafka_consumer_records_total{...,outcome}` — `consumed`, `handled`, `failed`,
///   `retried`, `dead_lettered`, `skipped`;
/// - `fastkafka_consumer_batches_total`, `fastkafka_consumer_handler_seconds` (a histogram of
///   each polled batch's handling), `fastkafka_consumer_rebalances_total` (partitions assigned
///   or revoked by the group);
/// - per `partition`: `fastkafka_consumer_lag` (records after the consumer's position, as of
///   its last poll), `fastkafka_consumer_stored_offset` (the next offset to commit) and
///   `fastkafka_consumer_committed_offset` (as of the last periodic commit).
///
/// Per producer cluster and topic (labels `cluster`, `topic`):
/// - `fastkafka_producer_records_total{...,outcome}` — `sent` (handed to the client),
///   `delivered`, `failed` (acknowledged, or given up on, by the cluster);
/// - `fastkafka_producer_records_pending` (sent and not yet answered: the client's queue);
/// - `fastkafka_producer_delivery_seconds` (a histogram from send to acknowledgement).
///
/// Per cluster with a standby (labels `cluster`, `role` — `primary` or `standby`):
/// - `fastkafka_cluster_active` (1 for the side that takes the traffic, 0 for the other);
/// - `fastkafka_cluster_failovers_total` (moves of the traffic to the standby, on the primary's
///   series, and back, on the standby's).
pub fn render() -> String {
    let (consumers, clusters, pairs) = {
        let registry = lock_registry();
        let consumers: Vec<Arc<ConsumerMetrics>> = registry
            .consumers
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        let pairs: Vec<Arc<ActiveClusterMetrics>> =
            registry.pairs.iter().filter_map(Weak::upgrade).collect();
        (consumers, registry.clusters.clone(), pairs)
    };
    let mut out = String::new();
    consumer::render(&mut out, &consumers);
    producer::render(&mut out, &clusters);
    failover::render(&mut out, &pairs);
    out
}

/// Held by unit tests that render the registry: [`render`] holds each live consumer's figures
/// while it writes them, so a test checking that a dropped consumer is gone must not render
/// at the same time as another.
#[cfg(test)]
pub(crate) static RENDERING_IN_TESTS: Mutex<()> = Mutex::new(());

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
