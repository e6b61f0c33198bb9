//! The in-memory broker: Kafka's semantics without a network, for tests and demos.
//!
//! Shape (after mini-redis's `Db`): a [`MemoryBroker`] holds one [`MemoryCluster`] per
//! [`ClusterId`], so clusters are isolated namespaces of topics. Each cluster's state sits
//! behind a std [`Mutex`] with a [`Notify`] beside it: every critical section is short and never
//! spans an `.await`, so a blocking mutex is both correct and faster than an async one, and the
//! `Notify` lets consumers sleep until a producer, a rebalance or a shutdown wakes them — no
//! busy polling.
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

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use tokio::sync::Notify;

use crate::config::ClusterId;
use crate::error::{Error, Result};
use crate::record::{OutgoingRecord, Record, TimestampType, TopicPartition};
use crate::transport::{
    ClientProperties, Cluster, ClusterConsumer, OffsetReset, Subscription, Transport,
};

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
                    shared: Arc::new(ClusterShared::default()),
                })
            })
            .clone()
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
}

#[derive(Default)]
struct ClusterShared {
    state: Mutex<ClusterState>,
    /// Woken on every produce, group change and partition release.
    changed: Notify,
}

#[derive(Default)]
struct ClusterState {
    topics: HashMap<Arc<str>, Topic>,
    groups: HashMap<String, Group>,
    next_member_id: u64,
}

struct Topic {
    name: Arc<str>,
    partitions: Vec<Vec<Record>>,
    next_keyless_partition: usize,
}

#[derive(Default)]
struct Group {
    /// Member id → the topics it subscribed to. Ids grow with join time.
    members: BTreeMap<u64, Vec<Arc<str>>>,
    committed: HashMap<TopicPartition, i64>,
    owners: HashMap<TopicPartition, u64>,
}

impl ClusterState {
    fn topic(&mut self, name: &str, default_partitions: usize) -> &mut Topic {
        if !self.topics.contains_key(name) {
            let name: Arc<str> = name.into();
            self.topics.insert(
                name.clone(),
                Topic {
                    name,
                    partitions: vec![Vec::new(); default_partitions],
                    next_keyless_partition: 0,
                },
            );
        }
        self.topics.get_mut(name).expect("inserted above")
    }

    fn end_offset(&self, tp: &TopicPartition) -> i64 {
        self.topics
            .get(&tp.topic)
            .and_then(|t| t.partitions.get(tp.partition as usize))
            .map_or(0, |log| log.len() as i64)
    }

    fn partitions_of(&self, topic: &Arc<str>) -> i32 {
        self.topics
            .get(topic)
            .map_or(0, |t| t.partitions.len() as i32)
    }

    /// The partitions `member` of `group` should own under the current membership.
    fn target_assignment(&self, group: &Group, member: u64) -> Vec<TopicPartition> {
        let Some(topics) = group.members.get(&member) else {
            return Vec::new();
        };
        let mut target = Vec::new();
        for topic in topics {
            let subscribers: Vec<u64> = group
                .members
                .iter()
                .filter(|(_, their)| their.contains(topic))
                .map(|(id, _)| *id)
                .collect();
            let me = subscribers
                .iter()
                .position(|id| *id == member)
                .expect("a member subscribes to its own topics");
            for partition in 0..self.partitions_of(topic) {
                if partition as usize % subscribers.len() == me {
                    target.push(TopicPartition::new(topic.clone(), partition));
                }
            }
        }
        target
    }
}

impl MemoryCluster {
    fn state(&self) -> MutexGuard<'_, ClusterState> {
        lock(&self.shared.state)
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
        if records.is_empty() {
            return Ok(());
        }
        let timestamp_ms = now_ms();
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
        drop(state);
        self.shared.changed.notify_waiters();
        Ok(())
    }

    async fn flush(&self) -> Result<()> {
        Ok(())
    }

    async fn subscribe(&self, subscription: Subscription) -> Result<Box<dyn ClusterConsumer>> {
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
        let mut consumer = MemoryConsumer {
            shared: self.shared.clone(),
            membership: None,
            topics: topics.clone(),
            reset: subscription.auto_offset_reset,
            positions: BTreeMap::new(),
            stored: HashMap::new(),
            next_partition: 0,
        };
        match subscription.group_id {
            Some(group_id) => {
                let member = state.next_member_id;
                state.next_member_id += 1;
                state
                    .groups
                    .entry(group_id.clone())
                    .or_default()
                    .members
                    .insert(member, topics);
                consumer.membership = Some((group_id, member));
                consumer.rebalance(&mut state);
            }
            None => {
                for topic in &topics {
                    for partition in 0..state.partitions_of(topic) {
                        let tp = TopicPartition::new(topic.clone(), partition);
                        let start = consumer.start_offset(&state, &tp, None);
                        consumer.positions.insert(tp, start);
                    }
                }
            }
        }
        drop(state);
        // A new member changes the others' target assignment: wake them to give partitions up.
        self.shared.changed.notify_waiters();
        Ok(Box::new(consumer))
    }
}

/// A consumer of a [`MemoryCluster`]. Dropping it without [`ClusterConsumer::close`] leaves
/// its group without committing, as a crashed Kafka client would.
struct MemoryConsumer {
    shared: Arc<ClusterShared>,
    membership: Option<(String, u64)>,
    topics: Vec<Arc<str>>,
    reset: OffsetReset,
    /// Next offset to read, per owned partition.
    positions: BTreeMap<TopicPartition, i64>,
    /// Next offset to commit, per owned partition.
    stored: HashMap<TopicPartition, i64>,
    /// Where the next poll starts, so one busy partition cannot starve the others.
    next_partition: usize,
}

impl fmt::Debug for MemoryConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryConsumer")
            .field("membership", &self.membership)
            .field("topics", &self.topics)
            .field("positions", &self.positions)
            .finish()
    }
}

impl MemoryConsumer {
    fn start_offset(
        &self,
        state: &ClusterState,
        tp: &TopicPartition,
        group: Option<&Group>,
    ) -> i64 {
        if let Some(committed) = group.and_then(|g| g.committed.get(tp)) {
            return *committed;
        }
        match self.reset {
            OffsetReset::Earliest => 0,
            OffsetReset::Latest => state.end_offset(tp),
        }
    }

    /// Moves this member toward its target assignment: gives up partitions it should no longer
    /// own (committing their stored offsets first) and takes free ones it should own.
    /// Returns whether it released anything, so others waiting for a partition get woken.
    fn rebalance(&mut self, state: &mut ClusterState) -> bool {
        let Some((group_id, member)) = &self.membership else {
            return false;
        };
        let mut group = state.groups.remove(group_id).unwrap_or_default();
        let target = state.target_assignment(&group, *member);
        let revoked: Vec<TopicPartition> = self
            .positions
            .keys()
            .filter(|tp| !target.contains(tp))
            .cloned()
            .collect();
        for tp in &revoked {
            self.positions.remove(tp);
            if let Some(offset) = self.stored.remove(tp) {
                group.committed.insert(tp.clone(), offset);
            }
            group.owners.remove(tp);
        }
        for tp in target {
            if self.positions.contains_key(&tp) {
                continue;
            }
            let free = group.owners.get(&tp).is_none_or(|owner| owner == member);
            if free {
                group.owners.insert(tp.clone(), *member);
                let start = self.start_offset(state, &tp, Some(&group));
                self.positions.insert(tp, start);
            }
        }
        state.groups.insert(group_id.clone(), group);
        !revoked.is_empty()
    }

    /// Takes up to `max_records` records from the owned partitions, starting at a rotating
    /// partition, and advances the positions past them.
    fn take_records(&mut self, state: &ClusterState, max_records: usize) -> Vec<Record> {
        let owned: Vec<TopicPartition> = self.positions.keys().cloned().collect();
        let mut batch = Vec::new();
        if owned.is_empty() {
            return batch;
        }
        let first = self.next_partition % owned.len();
        self.next_partition = self.next_partition.wrapping_add(1);
        for tp in owned[first..].iter().chain(&owned[..first]) {
            if batch.len() >= max_records {
                break;
            }
            let Some(log) = state
                .topics
                .get(&tp.topic)
                .and_then(|t| t.partitions.get(tp.partition as usize))
            else {
                continue;
            };
            let position = self.positions[tp];
            let available = log.get(position as usize..).unwrap_or_default();
            let taken = available.len().min(max_records - batch.len());
            batch.extend_from_slice(&available[..taken]);
            self.positions.insert(tp.clone(), position + taken as i64);
        }
        batch
    }

    fn leave(&mut self, commit: bool) {
        let mut state = lock(&self.shared.state);
        if let Some((group_id, member)) = self.membership.take() {
            if let Some(group) = state.groups.get_mut(&group_id) {
                group.members.remove(&member);
                for tp in self.positions.keys() {
                    if commit {
                        if let Some(offset) = self.stored.get(tp) {
                            group.committed.insert(tp.clone(), *offset);
                        }
                    }
                    if group.owners.get(tp) == Some(&member) {
                        group.owners.remove(tp);
                    }
                }
            }
        }
        self.positions.clear();
        self.stored.clear();
        drop(state);
        self.shared.changed.notify_waiters();
    }
}

#[async_trait]
impl ClusterConsumer for MemoryConsumer {
    async fn poll(&mut self, max_records: usize) -> Result<Vec<Record>> {
        let max_records = max_records.max(1);
        let shared = self.shared.clone();
        loop {
            // Register interest before looking, so a wake-up between the look and the wait
            // is not lost.
            let changed = shared.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let released = {
                let mut state = lock(&shared.state);
                let released = self.rebalance(&mut state);
                let batch = self.take_records(&state, max_records);
                if !batch.is_empty() {
                    drop(state);
                    if released {
                        self.shared.changed.notify_waiters();
                    }
                    return Ok(batch);
                }
                released
            };
            if released {
                self.shared.changed.notify_waiters();
            }
            changed.await;
        }
    }

    fn store_offsets(&mut self, records: &[Record]) -> Result<()> {
        for record in records {
            let tp = record.topic_partition();
            if self.positions.contains_key(&tp) {
                let next = record.offset + 1;
                let stored = self.stored.entry(tp).or_insert(next);
                *stored = (*stored).max(next);
            }
        }
        Ok(())
    }

    async fn commit(&mut self) -> Result<()> {
        let Some((group_id, member)) = &self.membership else {
            return Ok(());
        };
        let mut state = lock(&self.shared.state);
        if let Some(group) = state.groups.get_mut(group_id) {
            for (tp, offset) in &self.stored {
                if group.owners.get(tp) == Some(member) {
                    group.committed.insert(tp.clone(), *offset);
                }
            }
        }
        Ok(())
    }

    fn assignment(&self) -> Vec<TopicPartition> {
        self.positions.keys().cloned().collect()
    }

    async fn close(mut self: Box<Self>) -> Result<()> {
        self.leave(true);
        Ok(())
    }
}

impl Drop for MemoryConsumer {
    fn drop(&mut self) {
        if self.membership.is_some() {
            self.leave(false);
        }
    }
}

/// Locks a mutex, ignoring poisoning: every critical section leaves the state consistent
/// before anything that could panic, so a panic elsewhere must not take the broker down.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The Java client's default partitioner: `toPositive(murmur2(key)) % partitions`.
fn key_partition(key: &[u8], partitions: usize) -> usize {
    (murmur2(key) & 0x7fff_ffff) as usize % partitions
}

/// Kafka's murmur2 (seed 0x9747b28c), as in `org.apache.kafka.common.utils.Utils`.
fn murmur2(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_the_java_client() {
        // Values from Kafka's UtilsTest.testMurmur2.
        assert_eq!(murmur2(b"21") as i32, -973932308);
        assert_eq!(murmur2(b"foobar") as i32, -790332482);
        assert_eq!(murmur2(b"a-little-bit-long-string") as i32, -985981536);
        assert_eq!(murmur2(b"a-little-bit-longer-string") as i32, -1486304829);
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") as i32,
            -58897971
        );
        assert_eq!(murmur2(b"abc") as i32, 479470107);
    }
}
