//! What a cluster's producer client did with the records of each topic: sent, delivered,
//! failed, still pending, and how long acknowledgements took. Counted by the transports (the
//! one place every record passes, whichever API, producer or dead-letter topic sent it), once
//! per cluster address however many clients the process has for it.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use super::{escape, header, lock_registry, Histogram};

/// The producer figures of one cluster, per topic.
#[derive(Debug)]
pub struct ClusterProducerMetrics {
    cluster: String,
    topics: RwLock<Vec<(Box<str>, Arc<ProducerMetrics>)>>,
}

/// One topic's producer figures on one cluster; see [`render`](super::render) for their names.
#[derive(Debug, Default)]
pub struct ProducerMetrics {
    sent: AtomicU64,
    delivered: AtomicU64,
    failed: AtomicU64,
    delivery_seconds: Histogram,
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
            topics: RwLock::default(),
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
            figures.delivered.fetch_add(count, Ordering::Relaxed);
            if let Some(latency) = latency {
                figures.delivery_seconds.observe_many(latency, count);
            }
        });
    }

    /// `count` records of `topic` the client gave up on.
    pub fn failed(&self, topic: &str, count: u64) {
        self.with_topic(topic, |figures| {
            figures.failed.fetch_add(count, Ordering::Relaxed);
        });
    }

    fn with_topic(&self, topic: &str, update: impl FnOnce(&ProducerMetrics)) {
        // A read lock and a scan: a cluster's producers send to few topics, and comparing a
        // few short names costs less than hashing one (this runs twice per record).
        let position = |topics: &[(Box<str>, Arc<ProducerMetrics>)]| {
            topics.iter().position(|(name, _)| **name == *topic)
        };
        {
            let topics = self.topics.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(index) = position(&topics) {
                return update(&topics[index].1);
            }
        }
        let mut topics = self.topics.write().unwrap_or_else(PoisonError::into_inner);
        let index = position(&topics).unwrap_or_else(|| {
            topics.push((topic.into(), Arc::default()));
            topics.len() - 1
        });
        update(&topics[index].1);
    }
}

pub(super) fn render(out: &mut String, clusters: &[Arc<ClusterProducerMetrics>]) {
    let mut topics: Vec<(String, Arc<ProducerMetrics>)> = Vec::new();
    for cluster in clusters {
        let known = cluster
            .topics
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let mut sorted: Vec<_> = known.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        for (topic, figures) in sorted {
            let labels = format!(
                "cluster=\"{}\",topic=\"{}\"",
                escape(&cluster.cluster),
                escape(topic)
            );
            topics.push((labels, figures.clone()));
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
            ("sent", &figures.sent),
            ("delivered", &figures.delivered),
            ("failed", &figures.failed),
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
        let answered =
            figures.delivered.load(Ordering::Relaxed) + figures.failed.load(Ordering::Relaxed);
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
        assert_eq!(text.matches("outcome=\"sent\"").count(), 1, "{text}");
    }
}
