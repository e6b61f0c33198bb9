//! Metrics of the consumers and producers of this process, in Prometheus' text format.
//!
//! One process-wide registry ([`render`]): each consumer loop registers its
//! [`ConsumerMetrics`] when it starts and updates it once per batch (atomics, no lock, nothing
//! per record), and each producer handle counts what it sends. A hand-written registry rather
//! than the `metrics` or `prometheus-client` crates: the figures are few and fixed, updating
//! them must cost nothing measurable on the hot path, and the text format is simple — so no
//! dependency (nor its MSRV) is worth it. Both APIs read the same registry: Python's
//! `fastkafka.metrics.render()` and `fastkafka run --metrics-port` call [`render`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::Duration;

use crate::record::{Record, TopicPartition};

/// Upper bounds (seconds) of the handler-duration histogram's buckets.
const SECONDS_BUCKETS: [f64; 10] = [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0];

/// What identifies a consumer in the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerLabels {
    /// Its name (the handler function's).
    pub consumer: String,
    /// Its cluster (bootstrap servers).
    pub cluster: String,
    /// Its topic.
    pub topic: String,
    /// Its group, or empty.
    pub group: String,
}

/// One consumer's figures; see [`render`] for their names.
#[derive(Debug)]
pub struct ConsumerMetrics {
    labels: ConsumerLabels,
    consumed: AtomicU64,
    handled: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
    dead_lettered: AtomicU64,
    skipped: AtomicU64,
    batches: AtomicU64,
    handler_seconds: Histogram,
    /// Per partition: records behind the end of the log, and the offset committed next.
    partitions: Mutex<BTreeMap<i32, (i64, i64)>>,
}

/// One producer's figures (per cluster and topic).
#[derive(Debug)]
pub struct ProducerMetrics {
    cluster: String,
    topic: String,
    sent: AtomicU64,
}

#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; SECONDS_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        if let Some(bucket) = SECONDS_BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }
}

#[derive(Default)]
struct Registry {
    consumers: Vec<Weak<ConsumerMetrics>>,
    producers: Vec<Weak<ProducerMetrics>>,
}

fn registry() -> &'static Mutex<Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(Mutex::default)
}

/// How a batch's records fared, for [`ConsumerMetrics::record_batch`].
#[derive(Debug, Default, Clone, Copy)]
pub struct BatchCounts {
    /// Records polled.
    pub consumed: u64,
    /// Records the handler processed (not counting those dead-lettered or skipped).
    pub handled: u64,
    /// Handler failures and undecodable records.
    pub failed: u64,
    /// Records paused for a retry.
    pub retried: u64,
    /// Records sent to the dead-letter topic.
    pub dead_lettered: u64,
    /// Records given up on and skipped (no dead-letter topic).
    pub skipped: u64,
}

impl ConsumerMetrics {
    /// Registers a consumer's metrics; they are reported while the returned handle lives.
    pub fn register(labels: ConsumerLabels) -> Arc<Self> {
        let metrics = Arc::new(Self {
            labels,
            consumed: AtomicU64::new(0),
            handled: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            handler_seconds: Histogram::default(),
            partitions: Mutex::new(BTreeMap::new()),
        });
        let mut registry = registry().lock().unwrap_or_else(PoisonError::into_inner);
        registry.consumers.retain(|known| known.strong_count() > 0);
        registry.consumers.push(Arc::downgrade(&metrics));
        metrics
    }

    /// Counts one polled batch and how long its handling took.
    pub fn record_batch(&self, counts: BatchCounts, handling: Duration) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.consumed.fetch_add(counts.consumed, Ordering::Relaxed);
        self.handled.fetch_add(counts.handled, Ordering::Relaxed);
        self.failed.fetch_add(counts.failed, Ordering::Relaxed);
        self.retried.fetch_add(counts.retried, Ordering::Relaxed);
        self.dead_lettered
            .fetch_add(counts.dead_lettered, Ordering::Relaxed);
        self.skipped.fetch_add(counts.skipped, Ordering::Relaxed);
        self.handler_seconds.observe(handling);
    }

    /// Counts records dead-lettered outside a batch's handling (undeliverable outputs).
    pub fn record_dead_lettered(&self, count: u64) {
        self.dead_lettered.fetch_add(count, Ordering::Relaxed);
    }

    /// The lag of each partition the consumer owns now (records after its position); the
    /// partitions it no longer owns are dropped.
    pub fn set_lag(&self, lag: &[(TopicPartition, i64)]) {
        let mut partitions = self
            .partitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        partitions.retain(|partition, _| lag.iter().any(|(tp, _)| tp.partition == *partition));
        for (tp, behind) in lag {
            partitions.entry(tp.partition).or_insert((0, -1)).0 = *behind;
        }
    }

    /// The offsets stored for commit once `records` are done: per partition, the one after
    /// its last record there (the next one to read).
    pub fn set_stored(&self, records: &[Record]) {
        let mut partitions = self
            .partitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for record in records {
            let stored = &mut partitions.entry(record.partition).or_insert((0, -1)).1;
            *stored = (*stored).max(record.offset + 1);
        }
    }
}

impl ProducerMetrics {
    /// Registers a producer's metrics; reported while the handle lives.
    pub fn register(cluster: String, topic: String) -> Arc<Self> {
        let metrics = Arc::new(Self {
            cluster,
            topic,
            sent: AtomicU64::new(0),
        });
        let mut registry = registry().lock().unwrap_or_else(PoisonError::into_inner);
        registry.producers.retain(|known| known.strong_count() > 0);
        registry.producers.push(Arc::downgrade(&metrics));
        metrics
    }

    /// Counts records handed to the client.
    pub fn record_sent(&self, count: u64) {
        self.sent.fetch_add(count, Ordering::Relaxed);
    }
}

/// Every registered consumer's and producer's figures in Prometheus' text format (0.0.4):
///
/// - `fastkafka_consumer_records_total{consumer,cluster,topic,group,outcome}` — `consumed`,
///   `handled`, `failed`, `retried`, `dead_lettered`, `skipped`;
/// - `fastkafka_consumer_batches_total`, `fastkafka_consumer_handler_seconds` (a histogram of
///   each polled batch's handling);
/// - `fastkafka_consumer_lag{...,partition}` (records after the consumer's position, as of
///   its last poll) and `fastkafka_consumer_stored_offset{...,partition}` (the next offset
///   to commit);
/// - `fastkafka_producer_records_sent_total{cluster,topic}`.
pub fn render() -> String {
    let (consumers, producers) = {
        let registry = registry().lock().unwrap_or_else(PoisonError::into_inner);
        let consumers: Vec<Arc<ConsumerMetrics>> = registry
            .consumers
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        let producers: Vec<Arc<ProducerMetrics>> = registry
            .producers
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        (consumers, producers)
    };
    let mut out = String::new();
    let labels = |c: &ConsumerLabels| {
        format!(
            "consumer=\"{}\",cluster=\"{}\",topic=\"{}\",group=\"{}\"",
            escape(&c.consumer),
            escape(&c.cluster),
            escape(&c.topic),
            escape(&c.group)
        )
    };
    header(
        &mut out,
        "fastkafka_consumer_records_total",
        "counter",
        "Records by what became of them.",
    );
    for c in &consumers {
        let l = labels(&c.labels);
        for (outcome, value) in [
            ("consumed", &c.consumed),
            ("handled", &c.handled),
            ("failed", &c.failed),
            ("retried", &c.retried),
            ("dead_lettered", &c.dead_lettered),
            ("skipped", &c.skipped),
        ] {
            let value = value.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "fastkafka_consumer_records_total{{{l},outcome=\"{outcome}\"}} {value}"
            );
        }
    }
    header(
        &mut out,
        "fastkafka_consumer_batches_total",
        "counter",
        "Polled batches handled.",
    );
    for c in &consumers {
        let _ = writeln!(
            out,
            "fastkafka_consumer_batches_total{{{}}} {}",
            labels(&c.labels),
            c.batches.load(Ordering::Relaxed)
        );
    }
    header(
        &mut out,
        "fastkafka_consumer_handler_seconds",
        "histogram",
        "Time to handle one polled batch.",
    );
    for c in &consumers {
        let l = labels(&c.labels);
        let h = &c.handler_seconds;
        let mut cumulative = 0;
        for (bound, bucket) in SECONDS_BUCKETS.iter().zip(&h.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "fastkafka_consumer_handler_seconds_bucket{{{l},le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = h.count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "fastkafka_consumer_handler_seconds_bucket{{{l},le=\"+Inf\"}} {count}"
        );
        let sum = h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "fastkafka_consumer_handler_seconds_sum{{{l}}} {sum}");
        let _ = writeln!(
            out,
            "fastkafka_consumer_handler_seconds_count{{{l}}} {count}"
        );
    }
    header(
        &mut out,
        "fastkafka_consumer_lag",
        "gauge",
        "Records after the consumer's position, per partition.",
    );
    let mut stored_lines = String::new();
    for c in &consumers {
        let l = labels(&c.labels);
        let partitions = c.partitions.lock().unwrap_or_else(PoisonError::into_inner);
        for (partition, (lag, stored)) in partitions.iter() {
            let _ = writeln!(
                out,
                "fastkafka_consumer_lag{{{l},partition=\"{partition}\"}} {lag}"
            );
            if *stored >= 0 {
                let _ = writeln!(
                    stored_lines,
                    "fastkafka_consumer_stored_offset{{{l},partition=\"{partition}\"}} {stored}"
                );
            }
        }
    }
    header(
        &mut out,
        "fastkafka_consumer_stored_offset",
        "gauge",
        "The next offset to commit, per partition.",
    );
    out.push_str(&stored_lines);
    header(
        &mut out,
        "fastkafka_producer_records_sent_total",
        "counter",
        "Records handed to the producer client.",
    );
    for p in &producers {
        let _ = writeln!(
            out,
            "fastkafka_producer_records_sent_total{{cluster=\"{}\",topic=\"{}\"}} {}",
            escape(&p.cluster),
            escape(&p.topic),
            p.sent.load(Ordering::Relaxed)
        );
    }
    out
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_consumers_figures_render_with_its_labels() {
        let metrics = ConsumerMetrics::register(ConsumerLabels {
            consumer: "on_\"odd\"".into(),
            cluster: "k:9092".into(),
            topic: "t".into(),
            group: "g".into(),
        });
        metrics.record_batch(
            BatchCounts {
                consumed: 3,
                handled: 2,
                failed: 1,
                skipped: 1,
                ..BatchCounts::default()
            },
            Duration::from_millis(2),
        );
        metrics.set_lag(&[(TopicPartition::new("t", 0), 5)]);
        let record = Record {
            topic: "t".into(),
            partition: 0,
            offset: 2,
            timestamp_ms: 0,
            timestamp_type: Default::default(),
            key: None,
            value: Default::default(),
            headers: Vec::new(),
        };
        metrics.set_stored(&[record]);
        let text = render();
        let l = r#"consumer="on_\"odd\"",cluster="k:9092",topic="t",group="g""#;
        for line in [
            format!("fastkafka_consumer_records_total{{{l},outcome=\"consumed\"}} 3"),
            format!("fastkafka_consumer_records_total{{{l},outcome=\"skipped\"}} 1"),
            format!("fastkafka_consumer_handler_seconds_bucket{{{l},le=\"0.005\"}} 1"),
            format!("fastkafka_consumer_handler_seconds_bucket{{{l},le=\"0.001\"}} 0"),
            format!("fastkafka_consumer_lag{{{l},partition=\"0\"}} 5"),
            format!("fastkafka_consumer_stored_offset{{{l},partition=\"0\"}} 3"),
        ] {
            assert!(text.contains(&line), "{line} not in\n{text}");
        }
        drop(metrics);
        assert!(!render().contains("on_\\\"odd"), "gone with its consumer");
    }
}
