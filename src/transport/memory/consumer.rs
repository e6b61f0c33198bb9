//! The in-memory consumer: a member of its group (or a reader of every partition without one)
//! that takes partitions cooperatively, reads from its positions and stores and commits offsets
//! as a Kafka client does.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::Notify;

use super::state::{lock, wake, ClusterShared, ClusterState, Group};
use crate::error::Result;
use crate::record::{Record, TopicPartition};
use crate::transport::{ClusterConsumer, Membership, OffsetReset, PartitionsChange, StartTimes};

/// A consumer of a [`MemoryCluster`]. Dropping it without [`ClusterConsumer::close`] leaves
/// its group without committing, as a crashed Kafka client would.
pub(super) struct MemoryConsumer {
    shared: Arc<ClusterShared>,
    membership: Option<(String, u64)>,
    topics: Vec<Arc<str>>,
    /// Woken when a record lands in one of its topics or its group changes; registered with
    /// its topics until it leaves.
    wake_up: Arc<Notify>,
    reset: OffsetReset,
    /// Where partitions start by time (a consumer taking over from another cluster).
    start_times: Option<StartTimes>,
    /// Next offset to read, per owned partition.
    positions: BTreeMap<TopicPartition, i64>,
    /// Next offset to commit, per owned partition.
    stored: HashMap<TopicPartition, i64>,
    /// Owned partitions not read until resumed (a retry's backoff).
    paused: HashSet<TopicPartition>,
    /// Where the next poll starts, so one busy partition cannot starve the others.
    next_partition: usize,
    /// Assignment changes so far.
    rebalances: u64,
    /// What it holds and what changed, for its health and its loop's rebalance hooks. A
    /// rebalance here is one step, never half done: it always holds its share.
    partitions: Membership,
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
    /// A consumer of `topics` that joins `group_id` (taking its share of partitions at once)
    /// or, without a group, reads every partition from where `reset` says.
    pub(super) fn join(
        shared: Arc<ClusterShared>,
        state: &mut ClusterState,
        topics: Vec<Arc<str>>,
        reset: OffsetReset,
        start_times: Option<StartTimes>,
        group_id: Option<String>,
    ) -> Self {
        let wake_up = Arc::new(Notify::new());
        for topic in &topics {
            if let Some(topic) = state.topics.get_mut(topic) {
                topic.add_reader(&wake_up);
            }
        }
        let mut consumer = MemoryConsumer {
            shared,
            membership: None,
            topics: topics.clone(),
            wake_up,
            reset,
            start_times,
            positions: BTreeMap::new(),
            stored: HashMap::new(),
            paused: HashSet::new(),
            next_partition: 0,
            rebalances: 0,
            partitions: Membership::held(),
        };
        match group_id {
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
                consumer.rebalance(state);
            }
            None => {
                for topic in &topics {
                    for partition in 0..state.partitions_of(topic) {
                        let tp = TopicPartition::new(topic.clone(), partition);
                        let start = consumer.start_offset(state, &tp, None);
                        consumer.positions.insert(tp, start);
                    }
                }
                let all = consumer.positions.keys().cloned().collect();
                consumer.partitions.changed(PartitionsChange::Assigned(all));
            }
        }
        consumer
    }

    fn start_offset(
        &self,
        state: &ClusterState,
        tp: &TopicPartition,
        group: Option<&Group>,
    ) -> i64 {
        let committed = group.and_then(|g| g.committed.get(tp)).copied();
        let by_time = self
            .start_times
            .as_ref()
            .and_then(|times| times.of(tp))
            .map(|time| state.offset_for_time(tp, time));
        if let Some(start) = StartTimes::choose(committed, by_time) {
            return start;
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
            self.paused.remove(tp);
            if let Some(offset) = self.stored.remove(tp) {
                group.committed.insert(tp.clone(), offset);
            }
            group.owners.remove(tp);
        }
        let mut assigned = Vec::new();
        for tp in target {
            if self.positions.contains_key(&tp) {
                continue;
            }
            let free = group.owners.get(&tp).is_none_or(|owner| owner == member);
            if free {
                group.owners.insert(tp.clone(), *member);
                let start = self.start_offset(state, &tp, Some(&group));
                self.positions.insert(tp.clone(), start);
                assigned.push(tp);
            }
        }
        self.rebalances += u64::from(!assigned.is_empty()) + u64::from(!revoked.is_empty());
        state.groups.insert(group_id.clone(), group);
        let released = !revoked.is_empty();
        self.partitions.changed(PartitionsChange::Revoked(revoked));
        self.partitions
            .changed(PartitionsChange::Assigned(assigned));
        released
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
            if self.paused.contains(tp) {
                continue;
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
        for topic in self.topics.drain(..) {
            if let Some(topic) = state.topics.get_mut(&topic) {
                topic.remove_reader(&self.wake_up);
            }
        }
        let revoked = std::mem::take(&mut self.positions).into_keys().collect();
        self.partitions.changed(PartitionsChange::Revoked(revoked));
        self.stored.clear();
        self.paused.clear();
        let everyone = state.all_readers();
        drop(state);
        wake(&everyone);
    }
}

#[async_trait]
impl ClusterConsumer for MemoryConsumer {
    async fn poll(&mut self, max_records: usize) -> Result<Vec<Record>> {
        let max_records = max_records.max(1);
        let shared = self.shared.clone();
        loop {
            if shared.outage.is_down() {
                // Nothing to read until it is back (which wakes every reader).
                self.wake_up.notified().await;
                continue;
            }
            let (batch, released) = {
                let mut state = lock(&shared.state);
                let released = self.rebalance(&mut state);
                let batch = self.take_records(&state, max_records);
                // Others may be waiting for the partitions this member gave up.
                (batch, released.then(|| state.all_readers()))
            };
            if let Some(everyone) = released {
                wake(&everyone);
            }
            if !batch.is_empty() {
                return Ok(batch);
            }
            // A wake-up sent since the look above is kept until this wait: none is lost.
            self.wake_up.notified().await;
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

    fn pause_at(&mut self, partition: &TopicPartition, offset: i64) -> Result<()> {
        if let Some(position) = self.positions.get_mut(partition) {
            *position = offset;
            self.paused.insert(partition.clone());
        }
        Ok(())
    }

    fn resume(&mut self, partition: &TopicPartition) -> Result<()> {
        self.paused.remove(partition);
        Ok(())
    }

    async fn commit(&mut self) -> Result<()> {
        let Some((group_id, member)) = &self.membership else {
            return Ok(());
        };
        if self.shared.outage.is_down() {
            return Err(crate::error::Error::Transport {
                cluster: self.shared.id.to_string(),
                message: "cannot commit: every broker is down (a test's outage)".to_owned(),
            });
        }
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

    fn rebalances(&self) -> u64 {
        self.rebalances
    }

    fn membership(&self) -> Membership {
        self.partitions.clone()
    }

    fn assignment(&self) -> Vec<TopicPartition> {
        self.positions.keys().cloned().collect()
    }

    fn lag(&self) -> Vec<(TopicPartition, i64)> {
        let state = lock(&self.shared.state);
        self.positions
            .iter()
            .map(|(tp, position)| (tp.clone(), (state.end_offset(tp) - position).max(0)))
            .collect()
    }

    async fn close(mut self: Box<Self>) -> Result<()> {
        // A cluster that is down takes no commit, as a Kafka client leaving one could not.
        let commit = !self.shared.outage.is_down();
        self.leave(commit);
        Ok(())
    }
}

impl Drop for MemoryConsumer {
    fn drop(&mut self) {
        // Not left yet (`leave` empties `topics`): a group member gives its partitions up, and
        // every consumer stops being woken by its topics.
        if !self.topics.is_empty() {
            self.leave(false);
        }
    }
}
