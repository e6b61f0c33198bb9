//! What a transport tells the runtime about its clients between calls: whether a cluster
//! answers ([`Reachability`]) and whether a consumer holds its group's partitions and which it
//! was given or lost ([`Membership`]). The clients' callbacks set them on librdkafka's threads;
//! the health view ([`crate::health`]) reads them from anywhere and the consumer loop takes the
//! changes, so they are atomics and a queue, not calls.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::record::TopicPartition;

/// Milliseconds on a monotonic clock that starts with the process, never 0 (0 means "not
/// set" in the flags that hold such times).
pub(crate) fn clock_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let elapsed = START.get_or_init(Instant::now).elapsed();
    u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX) + 1
}

/// How long ago `at` (a [`clock_ms`] time) was.
pub(crate) fn since(at: u64) -> Duration {
    Duration::from_millis(clock_ms().saturating_sub(at))
}

/// Whether a cluster answers: down once its clients saw every broker go down, up again once
/// it answers a request ([`crate::transport::Cluster::recheck`]).
#[derive(Debug, Default)]
pub struct Reachability {
    /// When it went down ([`clock_ms`]); 0 while it answers.
    down_since: AtomicU64,
}

impl Reachability {
    /// Every broker of the cluster is down, as one of its clients saw. Returns whether this
    /// is news (it was up).
    pub fn went_down(&self) -> bool {
        self.down_since
            .compare_exchange(0, clock_ms(), Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The cluster answered. Returns how long it had been down, if it was.
    pub fn answered(&self) -> Option<Duration> {
        match self.down_since.swap(0, Ordering::AcqRel) {
            0 => None,
            since_ms => Some(since(since_ms)),
        }
    }

    /// How long the cluster has been down; `None` while it answers.
    pub fn down_for(&self) -> Option<Duration> {
        match self.down_since.load(Ordering::Acquire) {
            0 => None,
            since_ms => Some(since(since_ms)),
        }
    }
}

/// Partitions a consumer was given or lost, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionsChange {
    /// Its group (or, without a group, its start) gave it these partitions.
    Assigned(Vec<TopicPartition>),
    /// Its group took these away, after their stored offsets were committed.
    Revoked(Vec<TopicPartition>),
}

/// Whether a consumer holds its partitions, and what changed: set when its group assigns
/// them (a consumer without a group: once it is assigned every partition), cleared while a
/// rebalance has taken them away or the group dropped it. Each change is also queued for its
/// consumer loop, which wakes on it and calls the consumer's rebalance hooks. Clones share it.
#[derive(Debug, Clone)]
pub struct Membership(Arc<MembershipState>);

#[derive(Debug)]
struct MembershipState {
    holds: AtomicBool,
    /// The partitions held now, as the changes told (empty for [`Membership::held`]).
    partitions: Mutex<BTreeSet<TopicPartition>>,
    changes: Mutex<Vec<PartitionsChange>>,
    changed: Notify,
}

impl Membership {
    fn starting(holds: bool) -> Self {
        Self(Arc::new(MembershipState {
            holds: AtomicBool::new(holds),
            partitions: Mutex::new(BTreeSet::new()),
            changes: Mutex::new(Vec::new()),
            changed: Notify::new(),
        }))
    }

    /// A consumer that holds nothing yet.
    pub fn pending() -> Self {
        Self::starting(false)
    }

    /// A consumer whose partitions cannot be taken away, and of which nothing is told.
    pub fn held() -> Self {
        Self::starting(true)
    }

    /// Records whether the consumer holds its partitions now.
    pub fn set_holds(&self, holds: bool) {
        self.0.holds.store(holds, Ordering::Release);
    }

    /// Whether the consumer holds its partitions now.
    pub fn holds(&self) -> bool {
        self.0.holds.load(Ordering::Acquire)
    }

    /// Queues `change` for the consumer loop (nothing for an empty one) and wakes it.
    pub fn changed(&self, change: PartitionsChange) {
        let (PartitionsChange::Assigned(partitions) | PartitionsChange::Revoked(partitions)) =
            &change;
        if partitions.is_empty() {
            return;
        }
        {
            let mut held = self
                .0
                .partitions
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match &change {
                PartitionsChange::Assigned(given) => held.extend(given.iter().cloned()),
                PartitionsChange::Revoked(taken) => taken.iter().for_each(|p| {
                    held.remove(p);
                }),
            }
        }
        self.0
            .changes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(change);
        self.0.changed.notify_one();
    }

    /// The partitions it holds now, as its changes told (none are told for a consumer made
    /// with [`Membership::held`]).
    pub fn partitions(&self) -> Vec<TopicPartition> {
        let held = self
            .0
            .partitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        held.iter().cloned().collect()
    }

    /// The changes queued since the last call, oldest first.
    pub fn take_changes(&self) -> Vec<PartitionsChange> {
        std::mem::take(
            &mut *self
                .0
                .changes
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Resolves once a change was queued since the last wake-up (at once if one was).
    pub async fn wait_for_change(&self) {
        self.0.changed.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reachability_reports_only_changes() {
        let reachability = Reachability::default();
        assert_eq!(reachability.down_for(), None);
        assert!(reachability.went_down());
        assert!(!reachability.went_down(), "already down: not news");
        assert!(reachability.down_for().is_some());
        assert!(reachability.answered().is_some());
        assert_eq!(reachability.answered(), None);
        assert_eq!(reachability.down_for(), None);
    }

    #[test]
    fn membership_clones_share_the_flag_and_the_changes() {
        let membership = Membership::pending();
        let seen_by_the_loop = membership.clone();
        assert!(!seen_by_the_loop.holds());
        membership.set_holds(true);
        assert!(seen_by_the_loop.holds());
        let partition = TopicPartition::new("t", 0);
        membership.changed(PartitionsChange::Assigned(vec![partition.clone()]));
        membership.changed(PartitionsChange::Revoked(Vec::new()));
        membership.changed(PartitionsChange::Revoked(vec![partition.clone()]));
        assert_eq!(
            seen_by_the_loop.take_changes(),
            [
                PartitionsChange::Assigned(vec![partition.clone()]),
                PartitionsChange::Revoked(vec![partition])
            ],
            "in order, empty ones left out"
        );
        assert!(seen_by_the_loop.take_changes().is_empty());
        assert!(
            seen_by_the_loop.partitions().is_empty(),
            "given, then taken away"
        );
        membership.changed(PartitionsChange::Assigned(vec![TopicPartition::new(
            "t", 1,
        )]));
        assert_eq!(seen_by_the_loop.partitions(), [TopicPartition::new("t", 1)]);
    }
}
