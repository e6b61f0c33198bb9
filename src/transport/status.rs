//! What a transport tells the runtime about its clients between calls: whether a cluster
//! answers ([`Reachability`]) and whether a consumer holds its group's partitions
//! ([`Membership`]). Both are flags the clients' callbacks set on librdkafka's threads and
//! the health view ([`crate::health`]) reads from anywhere, so they are atomics, not calls.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

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

/// Whether a consumer holds its partitions: set when its group assigns them (a consumer
/// without a group: once it is assigned every partition), cleared while a rebalance has taken
/// them away or the group dropped it. Clones share the flag.
#[derive(Debug, Clone)]
pub struct Membership(Arc<AtomicBool>);

impl Membership {
    /// A flag that starts cleared.
    pub fn pending() -> Self {
        Self(Arc::new(AtomicBool::new(false)))
    }

    /// A flag that starts set: for consumers whose partitions cannot be taken away.
    pub fn held() -> Self {
        Self(Arc::new(AtomicBool::new(true)))
    }

    /// Records whether the consumer holds its partitions now.
    pub fn set(&self, holds: bool) {
        self.0.store(holds, Ordering::Release);
    }

    /// Whether the consumer holds its partitions now.
    pub fn holds(&self) -> bool {
        self.0.load(Ordering::Acquire)
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
    fn membership_clones_share_the_flag() {
        let membership = Membership::pending();
        let seen_by_health = membership.clone();
        assert!(!seen_by_health.holds());
        membership.set(true);
        assert!(seen_by_health.holds());
    }
}
