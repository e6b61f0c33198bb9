//! The consumer's librdkafka context: before a rebalance takes partitions away it commits what
//! the consumer loop stored for them (so their next owner starts after the handled records),
//! it tells `subscribe` when the group first assigned partitions, keeps the consumer's
//! [`Membership`] flag, counts rebalances, and reports every broker down to its cluster's
//! [`Reachability`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::ClientContext;
use tokio::sync::Notify;

use super::client_error;
use super::consumer::describe;
use crate::config::ClusterId;
use crate::transport::{Membership, Reachability};

/// Set when the group first assigns partitions to this consumer.
#[derive(Default, Clone)]
pub(super) struct Assigned {
    pub(super) flag: Arc<AtomicBool>,
    pub(super) notify: Arc<Notify>,
}

/// Commits stored offsets before partitions are taken away, and reports assignments.
pub(super) struct RebalanceCommitter {
    pub(super) cluster: ClusterId,
    pub(super) assigned: Assigned,
    /// Whether the consumer holds partitions now (its health reads it).
    pub(super) membership: Membership,
    /// Its cluster's, shared with the cluster's other clients.
    pub(super) reachability: Arc<Reachability>,
    /// Assignments and revocations so far.
    pub(super) rebalances: AtomicU64,
}

impl RebalanceCommitter {
    pub(super) fn new(cluster: &ClusterId, reachability: Arc<Reachability>) -> Self {
        Self {
            cluster: cluster.clone(),
            assigned: Assigned::default(),
            membership: Membership::pending(),
            reachability,
            rebalances: AtomicU64::new(0),
        }
    }
}

impl ClientContext for RebalanceCommitter {
    fn error(&self, error: KafkaError, reason: &str) {
        client_error(&self.cluster, &self.reachability, &error, reason);
    }
}

impl ConsumerContext for RebalanceCommitter {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            self.membership.set(false);
            match consumer.commit_consumer_state(CommitMode::Sync) {
                Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
                Err(error) => tracing::warn!(
                    %error,
                    partitions = partitions.count(),
                    "commit before giving partitions up failed"
                ),
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if !matches!(rebalance, Rebalance::Error(_)) {
            self.rebalances.fetch_add(1, Ordering::Relaxed);
        }
        if let Rebalance::Assign(partitions) = rebalance {
            tracing::info!(partitions = %describe(partitions), "partitions assigned");
            self.membership.set(true);
            self.assigned.flag.store(true, Ordering::Release);
            self.assigned.notify.notify_waiters();
        }
    }
}
