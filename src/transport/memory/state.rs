//! The state a cluster's producers and consumers share: its topics (each with the wake-ups of
//! its readers) and its consumer groups, behind one mutex, and how readers are woken.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use super::outage::Outage;
use crate::config::ClusterId;
use crate::record::{Record, TopicPartition};
use crate::transport::undelivered::Undelivered;

pub(super) struct ClusterShared {
    pub(super) id: ClusterId,
    pub(super) state: Mutex<ClusterState>,
    /// Why the cluster refuses deliveries now (a test's outage), if it does; `is_refusing`
    /// spares every produce the lock while it does not.
    pub(super) refusing: Mutex<Option<String>>,
    pub(super) is_refusing: AtomicBool,
    /// Records refused so far, logged one line per episode.
    pub(super) undelivered: Undelivered,
    /// A test's outage of the cluster, and its mirrors.
    pub(super) outage: Outage,
}

impl ClusterShared {
    pub(super) fn new(id: &ClusterId) -> Self {
        Self {
            id: id.clone(),
            state: Mutex::default(),
            refusing: Mutex::default(),
            is_refusing: AtomicBool::default(),
            undelivered: Undelivered::new(id),
            outage: Outage::default(),
        }
    }
}

#[derive(Default)]
pub(super) struct ClusterState {
    pub(super) topics: HashMap<Arc<str>, Topic>,
    pub(super) groups: HashMap<String, Group>,
    pub(super) next_member_id: u64,
}

pub(super) struct Topic {
    pub(super) name: Arc<str>,
    pub(super) partitions: Vec<Vec<Record>>,
    pub(super) next_keyless_partition: usize,
    /// The wake-ups of the consumers subscribed to it, woken after each append. Shared, so an
    /// append takes them with one reference count, not a copy.
    pub(super) readers: Arc<[Arc<Notify>]>,
}

#[derive(Default)]
pub(super) struct Group {
    /// Member id → the topics it subscribed to. Ids grow with join time.
    pub(super) members: BTreeMap<u64, Vec<Arc<str>>>,
    pub(super) committed: HashMap<TopicPartition, i64>,
    pub(super) owners: HashMap<TopicPartition, u64>,
}

impl Topic {
    pub(super) fn add_reader(&mut self, reader: &Arc<Notify>) {
        self.readers = self.readers.iter().chain([reader]).cloned().collect();
    }

    pub(super) fn remove_reader(&mut self, reader: &Arc<Notify>) {
        let others = self.readers.iter().filter(|r| !Arc::ptr_eq(r, reader));
        self.readers = others.cloned().collect();
    }
}

impl ClusterState {
    pub(super) fn topic(&mut self, name: &str, default_partitions: usize) -> &mut Topic {
        if !self.topics.contains_key(name) {
            let name: Arc<str> = name.into();
            self.topics.insert(
                name.clone(),
                Topic {
                    name,
                    partitions: vec![Vec::new(); default_partitions],
                    next_keyless_partition: 0,
                    readers: Arc::new([]),
                },
            );
        }
        self.topics.get_mut(name).expect("inserted above")
    }

    /// The first offset of `tp` whose record is from `time_ms` or later (the end if none is),
    /// as Kafka's ListOffsets by timestamp answers.
    pub(super) fn offset_for_time(&self, tp: &TopicPartition, time_ms: i64) -> i64 {
        let log = self
            .topics
            .get(&tp.topic)
            .and_then(|t| t.partitions.get(tp.partition as usize));
        match log {
            Some(log) => log
                .iter()
                .position(|record| record.timestamp_ms >= time_ms)
                .unwrap_or(log.len()) as i64,
            None => 0,
        }
    }

    pub(super) fn end_offset(&self, tp: &TopicPartition) -> i64 {
        self.topics
            .get(&tp.topic)
            .and_then(|t| t.partitions.get(tp.partition as usize))
            .map_or(0, |log| log.len() as i64)
    }

    /// Every consumer's wake-up, for a change that may concern any of them (a member joined or
    /// left, a partition was released).
    pub(super) fn all_readers(&self) -> Vec<Arc<Notify>> {
        let mut all: Vec<Arc<Notify>> = Vec::new();
        for reader in self.topics.values().flat_map(|topic| topic.readers.iter()) {
            if !all.iter().any(|known| Arc::ptr_eq(known, reader)) {
                all.push(reader.clone());
            }
        }
        all
    }

    pub(super) fn partitions_of(&self, topic: &Arc<str>) -> i32 {
        self.topics
            .get(topic)
            .map_or(0, |t| t.partitions.len() as i32)
    }

    /// The partitions `member` of `group` should own under the current membership.
    pub(super) fn target_assignment(&self, group: &Group, member: u64) -> Vec<TopicPartition> {
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

/// Wakes each consumer: one that is not waiting finds the wake-up at its next wait and looks
/// again, so none is lost between a consumer's look and its wait.
pub(super) fn wake(readers: &[Arc<Notify>]) {
    for reader in readers {
        reader.notify_one();
    }
}

/// Locks a mutex, ignoring poisoning: every critical section leaves the state consistent
/// before anything that could panic, so a panic elsewhere must not take the broker down.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
