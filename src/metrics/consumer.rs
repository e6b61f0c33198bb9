//! One consumer's figures: records by outcome, batches, handling time, rebalances, and per
//! partition its lag and its stored and committed offsets.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::{escape, header, lock_registry, Histogram};
use crate::record::{Record, TopicPartition};

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

/// One consumer's figures; see [`render`](super::render) for their names.
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
    rebalances: AtomicU64,
    handler_seconds: Histogram,
    partitions: Mutex<BTreeMap<i32, Partition>>,
}

/// One owned partition's figures (-1: not known yet).
#[derive(Debug, Clone, Copy)]
struct Partition {
    lag: i64,
    stored: i64,
    committed: i64,
}

impl Default for Partition {
    fn default() -> Self {
        Self {
            lag: 0,
            stored: -1,
            committed: -1,
        }
    }
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
    /// Registers a consumer's metrics, reported while the returned handle lives; `None` when
    /// metrics are off ([`enabled`](super::enabled)).
    pub fn register(labels: ConsumerLabels) -> Option<Arc<Self>> {
        if !super::enabled() {
            return None;
        }
        let metrics = Arc::new(Self {
            labels,
            consumed: AtomicU64::new(0),
            handled: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            rebalances: AtomicU64::new(0),
            handler_seconds: Histogram::default(),
            partitions: Mutex::new(BTreeMap::new()),
        });
        let mut registry = lock_registry();
        registry.consumers.retain(|known| known.strong_count() > 0);
        registry.consumers.push(Arc::downgrade(&metrics));
        Some(metrics)
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

    /// The rebalances the consumer's client has seen so far (assignments and revocations).
    pub fn set_rebalances(&self, rebalances: u64) {
        self.rebalances.store(rebalances, Ordering::Relaxed);
    }

    /// The lag of each partition the consumer owns now (records after its position); the
    /// partitions it no longer owns are dropped.
    pub fn set_lag(&self, lag: &[(TopicPartition, i64)]) {
        let mut partitions = self.partitions();
        partitions.retain(|partition, _| lag.iter().any(|(tp, _)| tp.partition == *partition));
        for (tp, behind) in lag {
            partitions.entry(tp.partition).or_default().lag = *behind;
        }
    }

    /// The offsets stored for commit once `records` are done: per partition, the one after
    /// its last record there (the next one to read).
    pub fn set_stored(&self, records: &[Record]) {
        // Per partition first (a batch holds runs of one partition, in a handful of them),
        // then one map update each: this runs for every record a consumer handles.
        let mut next: Vec<(i32, i64)> = Vec::new();
        for record in records {
            let after = record.offset + 1;
            match next
                .iter_mut()
                .find(|(partition, _)| *partition == record.partition)
            {
                Some((_, stored)) => *stored = (*stored).max(after),
                None => next.push((record.partition, after)),
            }
        }
        let mut partitions = self.partitions();
        for (partition, after) in next {
            let stored = &mut partitions.entry(partition).or_default().stored;
            *stored = (*stored).max(after);
        }
    }

    /// A commit of everything stored succeeded.
    pub fn set_committed(&self) {
        for partition in self.partitions().values_mut() {
            partition.committed = partition.stored;
        }
    }

    fn partitions(&self) -> std::sync::MutexGuard<'_, BTreeMap<i32, Partition>> {
        self.partitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn labels(c: &ConsumerLabels) -> String {
    format!(
        "consumer=\"{}\",cluster=\"{}\",topic=\"{}\",group=\"{}\"",
        escape(&c.consumer),
        escape(&c.cluster),
        escape(&c.topic),
        escape(&c.group)
    )
}

pub(super) fn render(out: &mut String, consumers: &[Arc<ConsumerMetrics>]) {
    header(
        out,
        "fastkafka_consumer_records_total",
        "counter",
        "Records by what became of them.",
    );
    for c in consumers {
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
    for (name, help, counter) in [
        (
            "fastkafka_consumer_batches_total",
            "Polled batches handled.",
            (|c: &ConsumerMetrics| &c.batches) as fn(&ConsumerMetrics) -> &AtomicU64,
        ),
        (
            "fastkafka_consumer_rebalances_total",
            "Partitions assigned or revoked by the group.",
            |c| &c.rebalances,
        ),
    ] {
        header(out, name, "counter", help);
        for c in consumers {
            let value = counter(c).load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}{{{}}} {value}", labels(&c.labels));
        }
    }
    header(
        out,
        "fastkafka_consumer_handler_seconds",
        "histogram",
        "Time to handle one polled batch.",
    );
    for c in consumers {
        let l = labels(&c.labels);
        c.handler_seconds
            .render(out, "fastkafka_consumer_handler_seconds", &l);
    }
    let snapshots: Vec<(String, BTreeMap<i32, Partition>)> = consumers
        .iter()
        .map(|c| (labels(&c.labels), c.partitions().clone()))
        .collect();
    for (name, help, figure) in [
        (
            "fastkafka_consumer_lag",
            "Records after the consumer's position, per partition.",
            (|p: &Partition| p.lag) as fn(&Partition) -> i64,
        ),
        (
            "fastkafka_consumer_stored_offset",
            "The next offset to commit, per partition.",
            |p| p.stored,
        ),
        (
            "fastkafka_consumer_committed_offset",
            "The offset committed last, per partition.",
            |p| p.committed,
        ),
    ] {
        header(out, name, "gauge", help);
        for (l, partitions) in &snapshots {
            for (partition, figures) in partitions {
                let value = figure(figures);
                // A lag is always known; an offset only once something was stored/committed.
                if value >= 0 {
                    let _ = writeln!(out, "{name}{{{l},partition=\"{partition}\"}} {value}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_consumers_figures_render_with_its_labels() {
        let _rendering = super::super::RENDERING_IN_TESTS
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let metrics = ConsumerMetrics::register(ConsumerLabels {
            consumer: "on_\"odd\"".into(),
            cluster: "k:9092".into(),
            topic: "t".into(),
            group: "g".into(),
        })
        .unwrap();
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
        metrics.set_rebalances(2);
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
        let l = r#"consumer="on_\"odd\"",cluster="k:9092",topic="t",group="g""#;
        let committed = format!("fastkafka_consumer_committed_offset{{{l},partition=\"0\"}} 3");
        assert!(
            !super::super::render().contains(&committed),
            "not before a commit"
        );
        metrics.set_committed();
        let text = super::super::render();
        for line in [
            format!("fastkafka_consumer_records_total{{{l},outcome=\"consumed\"}} 3"),
            format!("fastkafka_consumer_records_total{{{l},outcome=\"skipped\"}} 1"),
            format!("fastkafka_consumer_handler_seconds_bucket{{{l},le=\"0.005\"}} 1"),
            format!("fastkafka_consumer_handler_seconds_bucket{{{l},le=\"0.001\"}} 0"),
            format!("fastkafka_consumer_rebalances_total{{{l}}} 2"),
            format!("fastkafka_consumer_lag{{{l},partition=\"0\"}} 5"),
            format!("fastkafka_consumer_stored_offset{{{l},partition=\"0\"}} 3"),
            committed,
        ] {
            assert!(text.contains(&line), "{line} not in\n{text}");
        }
        drop(metrics);
        assert!(
            !super::super::render().contains("on_\\\"odd"),
            "gone with its consumer"
        );
    }
}
