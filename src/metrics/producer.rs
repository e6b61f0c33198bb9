//! What a cluster's producer client did with the records of each topic: sent, delivered,
//! failed, still pending, and how long acknowledgements took. Counted by the transports (the
//! one place every record passes, whichever API, producer or dead-letter topic sent it), once
//! per cluster address however many clients the process has for it.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use super::{escape, header, lock_registry, Histogram};

/// How many topics of a cluster are found without taking a lock.
const UNLOCKED_TOPICS: usize = 16;

/// One topic's name and figures.
type TopicFigures = (Box<str>, Arc<ProducerMetrics>);

/// The producer figures of one cluster, per topic.
///
/// Each record is counted twice — sent on the thread that sends it, answered on the client's
/// delivery-report thread — so finding its topic must not make the two threads contend: the
/// first topics take slots that are found with plain reads (filled in order, never changed),
/// and only a cluster with more topics than that looks the rest up under a lock.
#[derive(Debug)]
pub struct ClusterProducerMetrics {
    cluster: String,
    slots: [OnceLock<TopicFigures>; UNLOCKED_TOPICS],
    /// The topics beyond the slots, and the lock that adds a topic anywhere.
    more: Mutex<Vec<TopicFigures>>,
}

/// One topic's producer figures on one cluster; see [`render`](super::render) for their names.
/// What the sending threads write and what the delivery-report thread writes are on cache
/// lines of their own, so that neither thread's writes evict the other's.
#[derive(Debug, Default)]
pub struct ProducerMetrics {
    sent: OwnCacheLine<AtomicU64>,
    answered: OwnCacheLine<Answered>,
}

#[derive(Debug, Default)]
struct Answered {
    delivered: AtomicU64,
    failed: AtomicU64,
    delivery_seconds: Histogram,
}

/// A value alone on its cache lines (two: adjacent lines are fetched together).
#[derive(Debug, Default)]
#[repr(align(128))]
struct OwnCacheLine<T>(T);

impl<T> std::ops::Deref for OwnCacheLine<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl ClusterProducerMetrics {
    /// The figures of the cluster at `bootstrap_servers` (registered on first use), or `None`
    /// when metrics are off ([`enabled`](super::enabled)).
    pub fn of(bootstrap_servers: &str) -> Option<Arc<Self>> {
        if !super::enabled() {
            return None;
        }
        let mut registry = lock_registry();
        if let Some(known) = registry
            .clusters
            .iter()
            .find(|known| known.cluster == bootstrap_servers)
        {
            return Some(known.clone());
        }
        let metrics = Arc::new(Self {
            cluster: bootstrap_servers.to_owned(),
            slots: Default::default(),
            more: Mutex::default(),
        });
        registry.clusters.push(metrics.clone());
        Some(metrics)
    }

    /// `count` records of `topic` handed to the client.
    pub fn sent(&self, topic: &str, count: u64) {
        self.with_topic(topic, |figures| {
            figures.sent.fetch_add(count, Ordering::Relaxed);
        });
    }

    /// `count` records of `topic` acknowledged by the cluster, `latency` after they were sent
    /// (when the client knows).
    pub fn delivered(&self, topic: &str, count: u64, latency: Option<Duration>) {
        self.with_topic(topic, |figures| {
            figures
                .answered
                .delivered
                .fetch_add(count, Ordering::Relaxed);
            if let Some(latency) = latency {
                figures
                    .answered
                    .delivery_seconds
                    .observe_many(latency, count);
            }
        });
    }

    /// `count` records of `topic` the client gave up on.
    pub fn failed(&self, topic: &str, count: u64) {
        self.with_topic(topic, |figures| {
            figures.answered.failed.fetch_add(count, Ordering::Relaxed);
        });
    }

    fn with_topic(&self, topic: &str, update: impl FnOnce(&ProducerMetrics)) {
        // Comparing a few short names costs less than hashing one.
        for slot in &self.slots {
            match slot.get() {
                Some((name, figures)) if **name == *topic => return update(figures),
                Some(_) => {}
                None => break, // slots fill in order: the topic is not among them
            }
        }
        update(&self.add_or_find(topic));
    }

    /// The figures of `topic` when the unlocked scan did not find them: in the first free slot
    /// if there is one, else among the rest. Under the lock, so a topic is added once.
    fn add_or_find(&self, topic: &str) -> Arc<ProducerMetrics> {
        let mut more = self.more.lock().unwrap_or_else(PoisonError::into_inner);
        for slot in &self.slots {
            match slot.get() {
                Some((name, figures)) if **name == *topic => return figures.clone(),
                Some(_) => {}
                None => {
                    let figures = Arc::<ProducerMetrics>::default();
                    let _ = slot.set((topic.into(), figures.clone())); // only set under the lock
                    return figures;
                }
            }
        }
        if let Some((_, figures)) = more.iter().find(|(name, _)| **name == *topic) {
            return figures.clone();
        }
        let figures = Arc::<ProducerMetrics>::default();
        more.push((topic.into(), figures.clone()));
        figures
    }

    /// Every topic's figures, sorted by topic.
    fn topics(&self) -> Vec<TopicFigures> {
        let more = self.more.lock().unwrap_or_else(PoisonError::into_inner);
        let mut topics: Vec<TopicFigures> = self
            .slots
            .iter()
            .map_while(OnceLock::get)
            .chain(more.iter())
            .cloned()
            .collect();
        topics.sort_by(|a, b| a.0.cmp(&b.0));
        topics
    }
}

pub(super) fn render(out: &mut String, clusters: &[Arc<ClusterProducerMetrics>]) {
    let mut topics: Vec<(String, Arc<ProducerMetrics>)> = Vec::new();
    for cluster in clusters {
        for (topic, figures) in cluster.topics() {
            let labels = format!(
                "cluster=\"{}\",topic=\"{}\"",
                escape(&cluster.cluster),
                escape(&topic)
            );
            topics.push((labels, figures));
        }
    }
    header(
        out,
        "fastkafka_producer_records_total",
        "counter",
        "Records handed to the producer client (sent) and how the cluster answered.",
    );
    for (l, figures) in &topics {
        for (outcome, value) in [
            ("sent", &*figures.sent),
            ("delivered", &figures.answered.delivered),
            ("failed", &figures.answered.failed),
        ] {
            let value = value.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "fastkafka_producer_records_total{{{l},outcome=\"{outcome}\"}} {value}"
            );
        }
    }
    header(
        out,
        "fastkafka_producer_records_pending",
        "gauge",
        "Records sent and not yet acknowledged or failed.",
    );
    for (l, figures) in &topics {
        // A delivery report may be counted before its send is: never below zero.
        let answered = figures.answered.delivered.load(Ordering::Relaxed)
            + figures.answered.failed.load(Ordering::Relaxed);
        let sent = figures.sent.load(Ordering::Relaxed);
        let pending = sent.saturating_sub(answered);
        let _ = writeln!(out, "fastkafka_producer_records_pending{{{l}}} {pending}");
    }
    header(
        out,
        "fastkafka_producer_delivery_seconds",
        "histogram",
        "Time from handing a record to the client to the cluster's acknowledgement.",
    );
    for (l, figures) in &topics {
        figures
            .answered
            .delivery_seconds
            .render(out, "fastkafka_producer_delivery_seconds", l);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_series_per_cluster_and_topic_with_pending_and_latency() {
        let _rendering = super::super::RENDERING_IN_TESTS
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let first = ClusterProducerMetrics::of("p:9092").unwrap();
        let second = ClusterProducerMetrics::of("p:9092").unwrap();
        assert!(Arc::ptr_eq(&first, &second), "one per cluster address");
        first.sent("t", 3);
        second.sent("t", 1);
        first.delivered("t", 1, Some(Duration::from_millis(3)));
        first.delivered("t", 1, None);
        second.failed("t", 1);
        let text = super::super::render();
        let l = r#"cluster="p:9092",topic="t""#;
        for line in [
            format!("fastkafka_producer_records_total{{{l},outcome=\"sent\"}} 4"),
            format!("fastkafka_producer_records_total{{{l},outcome=\"delivered\"}} 2"),
            format!("fastkafka_producer_records_total{{{l},outcome=\"failed\"}} 1"),
            format!("fastkafka_producer_records_pending{{{l}}} 1"),
            format!("fastkafka_producer_delivery_seconds_bucket{{{l},le=\"0.005\"}} 1"),
            format!("fastkafka_producer_delivery_seconds_count{{{l}}} 1"),
        ] {
            assert!(text.contains(&line), "{line} not in\n{text}");
        }
        assert_eq!(
            text.matches(&format!("{{{l},outcome=\"sent\"}}")).count(),
            1,
            "{text}"
        );
    }

    #[test]
    fn topics_beyond_the_unlocked_slots_are_counted_once_each() {
        let _rendering = super::super::RENDERING_IN_TESTS
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let metrics = ClusterProducerMetrics::of("many:9092").unwrap();
        let count = UNLOCKED_TOPICS + 4;
        for round in 1..=2 {
            for topic in 0..count {
                metrics.sent(&format!("t{topic:02}"), round);
            }
        }
        let text = super::super::render();
        for topic in 0..count {
            let line = format!(
                "fastkafka_producer_records_total{{cluster=\"many:9092\",topic=\"t{topic:02}\",outcome=\"sent\"}} 3"
            );
            assert_eq!(text.matches(&line).count(), 1, "{line} once in\n{text}");
        }
    }
}
