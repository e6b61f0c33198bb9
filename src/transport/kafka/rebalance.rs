//! The consumer's librdkafka context: before a rebalance takes partitions away it commits what
//! the consumer loop stored for them (so their next owner starts after the handled records),
//! it tells `subscribe` when the group first assigned partitions, and counts rebalances.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::ClientContext;
use tokio::sync::Notify;

use super::consumer::describe;

/// Set when the group first assigns partitions to this consumer.
#[derive(Default, Clone)]
pub(super) struct Assigned {
    pub(super) flag: Arc<AtomicBool>,
    pub(super) notify: Arc<Notify>,
}

/// Commits stored offsets before partitions are taken away, and reports assignments.
#[derive(Default)]
pub(super) struct RebalanceCommitter {
    pub(super) assigned: Assigned,
    /// Assignments and revocations so far.
    pub(super) rebalances: AtomicU64,
}

impl ClientContext for RebalanceCommitter {}

impl ConsumerContext for RebalanceCommitter {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
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
            self.assigned.flag.store(true, Ordering::Release);
            self.assigned.notify.notify_waiters();
        }
    }
}
