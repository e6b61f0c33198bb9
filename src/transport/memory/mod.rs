//! The in-memory broker: Kafka's semantics without a network, for tests and demos.
//!
//! Shape (after mini-redis's `Db`): a [`MemoryBroker`] holds one [`MemoryCluster`] per
//! [`ClusterId`], so clusters are isolated namespaces of topics. Each cluster's state sits
//! behind a std [`Mutex`]: every critical section is short and never spans an `.await`, so a
//! blocking mutex is both correct and faster than an async one. Each consumer sleeps on a
//! [`Notify`](tokio::sync::Notify) of its own until a record lands in one of its topics or its group changes — no
//! busy polling, and a produce wakes only the consumers of its topic (one shared `Notify` woke
//! every idle consumer of the cluster per record: a thread wake-up each, most of a Tester
//! round trip's system time).
//!
//! What it models:
//! - topics created on first use (produce or subscribe) with the broker's default partition
//!   count, or explicitly with [`MemoryBroker::create_topic`];
//! - keyed records land on `murmur2(key) % partitions` (the Java client's partitioner), so a key
//!   always maps to the same partition; keyless records are spread round-robin;
//! - consumer groups: partitions of each topic are dealt round-robin over the members subscribed
//!   to it (ordered by join time). A rebalance is cooperative: a member gives up a partition only
//!   at its next poll, after its handler finished and it committed, and the new owner takes the
//!   partition only once it is free. So a handler in flight is never duplicated by a rebalance,
//!   and committed offsets carry over;
//! - a consumer without a group reads every partition and commits nothing;
//! - `auto_offset_reset` applies where a group has no committed offset.
//!
//! # Layout
//! - this file: [`MemoryBroker`] and [`MemoryCluster`];
//! - `state.rs`: the state a cluster's producers and consumers share — topics with their
//!   readers' wake-ups, groups;
//! - `consumer.rs`: the consumer — group membership, cooperative rebalances, offsets;
//! - `partitioner.rs`: the Java client's murmur2 partitioner;
//! - `outage.rs`: a test's outage of a cluster and mirrors between clusters (failover tests).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

mod consumer;
mod outage;
mod partitioner;
mod state;

use consumer::MemoryConsumer;
use partitioner::key_partition;
use state::{lock, wake, ClusterShared, ClusterState};

use crate::config::ClusterId;
use crate::delivery::DeliveryTracker;
use crate::error::{Error, Result};
use crate::metrics::ClusterProducerMetrics;
use crate::record::{OutgoingRecord, Record, TimestampType, TopicPartition};
use crate::transport::{ClientProperties, Cluster, ClusterConsumer, Subscription, Transport};

/// An in-memory broker holding any number of isolated clusters.
///
/// Cloning is cheap and yields a handle to the same broker.
#[derive(Clone, Default)]
pub struct MemoryBroker {
    shared: Arc<BrokerShared>,
}

#[derive(Default)]
struct BrokerShared {
    default_partitions: usize,
    clusters: Mutex<HashMap<ClusterId, Arc<MemoryCluster>>>,
}

impl MemoryBroker {
    /// A broker whose topics get one partition when created on first use.
    pub fn new() -> Self {
        Self::with_default_partitions(1)
    }

    /// A broker whose topics get `partitions` partitions when created on first use.
    pub fn with_default_partitions(partitions: usize) -> Self {
        Self {
            shared: Arc::new(BrokerShared {
                default_partitions: partitions.max(1),
                clusters: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The cluster with this identity, created empty on first use.
    pub fn memory_cluster(&self, id: &ClusterId) -> Arc<MemoryCluster> {
        let mut clusters = lock(&self.shared.clusters);
        clusters
            .entry(id.clone())
            .or_insert_with(|| {
                Arc::new(MemoryCluster {
                    id: id.clone(),
                    default_partitions: self.shared.default_partitions,
                    shared: Arc::new(ClusterShared::new(id)),
                    producer_metrics: ClusterProducerMetrics::of(id.bootstrap_servers()),
                })
            })
            .clone()
    }

    /// Takes cluster `id` down until [`MemoryBroker::bring_back`]; see
    /// [`MemoryCluster::take_down`].
    pub fn take_down(&self, id: &ClusterId) {
        self.memory_cluster(id).take_down();
    }

    /// Ends the outage of cluster `id`; see [`MemoryCluster::bring_back`].
    pub fn bring_back(&self, id: &ClusterId) {
        self.memory_cluster(id).bring_back();
    }

    /// Copies every record appended to cluster `from` onto cluster `to`; see
    /// [`MemoryCluster::mirror_to`].
    pub fn mirror(&self, from: &ClusterId, to: &ClusterId) {
        self.memory_cluster(from)
            .mirror_to(&self.memory_cluster(to));
    }

    /// Makes cluster `id` refuse deliveries for `reason` until called with `None`; see
    /// [`MemoryCluster::refuse_deliveries`].
    pub fn refuse_deliveries(&self, id: &ClusterId, reason: Option<&str>) {
        self.memory_cluster(id).refuse_deliveries(reason);
    }

    /// Creates `topic` on cluster `id` with `partitions` partitions. Creating an existing
    /// topic again with the same count is a no-op; with another count it is an error.
    pub fn create_topic(&self, id: &ClusterId, topic: &str, partitions: usize) -> Result<()> {
        self.memory_cluster(id).create_topic(topic, partitions)
    }
}

impl fmt::Debug for MemoryBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let clusters: Vec<ClusterId> = lock(&self.shared.clusters).keys().cloned().collect();
        f.debug_struct("MemoryBroker")
            .field("clusters", &clusters)
            .finish()
    }
}

impl Transport for MemoryBroker {
    fn cluster_with(
        &self,
        id: &ClusterId,
        _producer: &ClientProperties,
    ) -> Result<Arc<dyn Cluster>> {
        Ok(self.memory_cluster(id))
    }
}

/// One cluster of a [`MemoryBroker`].
pub struct MemoryCluster {
    id: ClusterId,
    default_partitions: usize,
    shared: Arc<ClusterShared>,
    /// What it was sent and delivered, per topic ([`crate::metrics`]); `None` when off.
    producer_metrics: Option<Arc<ClusterProducerMetrics>>,
}

impl MemoryCluster {
    fn state(&self) -> MutexGuard<'_, ClusterState> {
        lock(&self.shared.state)
    }

    /// Makes the cluster refuse every record produced to it, for `reason`, until called with
    /// `None`: a test's outage of a destination cluster. Refused records fail their delivery
    /// (counted, logged, and reported to the producing batch's tracker), as on a real cluster
    /// that is down past `message.timeout.ms`.
    pub fn refuse_deliveries(&self, reason: Option<&str>) {
        let mut refusing = lock(&self.shared.refusing);
        *refusing = reason.map(str::to_owned);
        self.shared
            .is_refusing
            .store(refusing.is_some(), Ordering::Release);
    }

    /// Appends `records` now, counts them delivered, and copies them to the mirrors.
    fn deliver(&self, topic: &str, records: Vec<OutgoingRecord>) {
        let count = records.len() as u64;
        self.append_at(topic, records, now_ms(), true);
        self.shared.undelivered.delivered(topic);
        if let Some(metrics) = &self.producer_metrics {
            metrics.delivered(topic, count, Some(Duration::ZERO));
        }
    }

    fn append_at(
        &self,
        topic: &str,
        records: Vec<OutgoingRecord>,
        timestamp_ms: i64,
        to_mirrors: bool,
    ) {
        if to_mirrors {
            self.copy_to_mirrors(topic, &records, timestamp_ms);
        }
        let mut state = self.state();
        let topic = state.topic(topic, self.default_partitions);
        let partitions = topic.partitions.len();
        for record in records {
            let partition = match &record.key {
                Some(key) => key_partition(key, partitions),
                None => {
                    topic.next_keyless_partition = (topic.next_keyless_partition + 1) % partitions;
                    topic.next_keyless_partition
                }
            };
            let log = &mut topic.partitions[partition];
            log.push(Record {
                topic: topic.name.clone(),
                partition: partition as i32,
                offset: log.len() as i64,
                timestamp_ms,
                timestamp_type: TimestampType::CreateTime,
                key: record.key,
                value: record.value,
                headers: record.headers,
            });
        }
        let readers = topic.readers.clone();
        drop(state);
        wake(&readers);
    }

    /// See [`MemoryBroker::create_topic`].
    pub fn create_topic(&self, topic: &str, partitions: usize) -> Result<()> {
        if partitions == 0 {
            return Err(Error::Config(format!(
                "topic '{topic}' needs at least one partition"
            )));
        }
        let mut state = self.state();
        let existing = state.topic(topic, partitions).partitions.len();
        if existing != partitions {
            return Err(Error::Config(format!(
                "topic '{topic}' already exists on cluster {} with {existing} partitions, not \
                 {partitions}",
                self.id
            )));
        }
        Ok(())
    }

    /// Every record of `topic`, partition by partition; for assertions in tests.
    pub fn records(&self, topic: &str) -> Vec<Record> {
        let state = self.state();
        state
            .topics
            .get(topic)
            .map(|t| t.partitions.iter().flatten().cloned().collect())
            .unwrap_or_default()
    }

    /// The offset a group committed for a partition, if any.
    pub fn committed_offset(&self, group_id: &str, tp: &TopicPartition) -> Option<i64> {
        let state = self.state();
        state.groups.get(group_id)?.committed.get(tp).copied()
    }
}

impl fmt::Debug for MemoryCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryCluster")
            .field("id", &self.id)
            .finish()
    }
}

#[async_trait]
impl Cluster for MemoryCluster {
    fn id(&self) -> &ClusterId {
        &self.id
    }

    fn produce(&self, topic: &str, records: Vec<OutgoingRecord>) -> Result<()> {
        self.try_produce_tracked(topic, records, None).map(drop)
    }

    /// Appends at once (delivered as soon as taken), unless the cluster refuses deliveries.
    fn try_produce_tracked(
        &self,
        topic: &str,
        records: Vec<OutgoingRecord>,
        tracker: Option<&Arc<DeliveryTracker>>,
    ) -> Result<Vec<OutgoingRecord>> {
        if records.is_empty() {
            return Ok(records);
        }
        let refusing = if self.shared.is_refusing.load(Ordering::Acquire) {
            lock(&self.shared.refusing).clone()
        } else {
            None
        };
        let count = records.len();
        if let Some(metrics) = &self.producer_metrics {
            metrics.sent(topic, count as u64);
        }
        match refusing {
            None => {
                if let Some(records) = self.hold_if_down(topic, records, tracker) {
                    self.deliver(topic, records);
                }
            }
            Some(reason) => {
                if let Some(metrics) = &self.producer_metrics {
                    metrics.failed(topic, count as u64);
                }
                let refused_now = Duration::ZERO; // an in-memory cluster refuses as it is sent to
                self.shared
                    .undelivered
                    .failed(topic, count as u64, &reason, refused_now);
                if let Some(tracker) = tracker {
                    tracker.sent(count);
                    for _ in 0..count {
                        tracker.failed(Error::Transport {
                            cluster: self.id.to_string(),
                            message: format!("record to '{topic}' not delivered: {reason}"),
                        });
                    }
                }
            }
        }
        Ok(Vec::new())
    }

    fn delivery_failures(&self) -> u64 {
        self.shared.undelivered.total()
    }

    async fn flush(&self) -> Result<()> {
        Ok(())
    }

    async fn check_reachable(&self, _timeout: Duration) -> Result<()> {
        self.check_up("connect")
    }

    fn unreachable_for(&self) -> Option<Duration> {
        self.shared.outage.reachability.down_for()
    }

    fn redirect_undelivered(&self, to: Arc<dyn Cluster>) -> usize {
        self.redirect_held(&to);
        0
    }

    async fn subscribe(&self, subscription: Subscription) -> Result<Box<dyn ClusterConsumer>> {
        self.check_up("subscribe")?;
        if subscription.topics.is_empty() {
            return Err(Error::Config(
                "a consumer needs at least one topic".to_owned(),
            ));
        }
        let mut state = self.state();
        let topics: Vec<Arc<str>> = subscription
            .topics
            .iter()
            .map(|t| state.topic(t, self.default_partitions).name.clone())
            .collect();
        let consumer = MemoryConsumer::join(
            self.shared.clone(),
            &mut state,
            topics,
            subscription.auto_offset_reset,
            subscription.start_times,
            subscription.group_id,
        );
        // A new member changes the others' target assignment: wake them to give partitions up.
        let everyone = state.all_readers();
        drop(state);
        wake(&everyone);
        Ok(Box::new(consumer))
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
