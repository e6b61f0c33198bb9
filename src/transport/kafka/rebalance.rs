//! The consumer's librdkafka context: before a rebalance takes partitions away it commits what
//! the consumer loop stored for them (so their next owner starts after the handled records),
//! it tells `subscribe` when the group first assigned partitions, keeps the consumer's
//! [`Membership`] (flag and changes, after the commit), counts rebalances, and reports every broker down to its cluster's
//! [`Reachability`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use rdkafka::client::OAuthToken;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::Notify;

use super::oauth::{token_for_client, TokenProvider};
use super::{client_error, native};
use crate::config::ClusterId;
use crate::record::TopicPartition;
use crate::transport::{Membership, PartitionsChange, Reachability, StartTimes};

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
    /// Whether assigned partitions get their committed offsets as explicit start positions
    /// ([`crate::transport::Subscription::seeks_on_assign`]).
    start_at_committed: bool,
    /// Where assigned partitions start by time (a consumer taking over from another cluster).
    start_times: Option<StartTimes>,
    /// MirrorMaker 2's translated offsets for such a consumer's partitions, which win over
    /// the times (`checkpoints.rs`).
    pub(super) translated: BTreeMap<TopicPartition, i64>,
    /// Where the client gets OAUTHBEARER tokens.
    pub(super) token_provider: Option<Arc<dyn TokenProvider>>,
}

impl RebalanceCommitter {
    pub(super) fn new(
        cluster: &ClusterId,
        reachability: Arc<Reachability>,
        start_at_committed: bool,
        start_times: Option<StartTimes>,
    ) -> Self {
        Self {
            cluster: cluster.clone(),
            assigned: Assigned::default(),
            membership: Membership::pending(),
            reachability,
            rebalances: AtomicU64::new(0),
            start_at_committed: start_at_committed || start_times.is_some(),
            start_times,
            translated: BTreeMap::new(),
            token_provider: None,
        }
    }
}

impl ClientContext for RebalanceCommitter {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn error(&self, error: KafkaError, reason: &str) {
        client_error(&self.cluster, &self.reachability, &error, reason);
    }

    fn generate_oauth_token(
        &self,
        _config: Option<&str>,
    ) -> Result<OAuthToken, Box<dyn std::error::Error>> {
        token_for_client(self.token_provider.as_ref())
    }
}

impl ConsumerContext for RebalanceCommitter {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let (Rebalance::Assign(partitions), true) = (rebalance, self.start_at_committed) {
            fix_starts(
                consumer,
                partitions,
                self.start_times.as_ref(),
                &self.translated,
            );
        }
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
        match rebalance {
            Rebalance::Assign(partitions) => {
                tracing::info!(partitions = %describe(partitions), "partitions assigned");
                self.membership.set_holds(true);
                self.membership
                    .changed(PartitionsChange::Assigned(topic_partitions(partitions)));
                self.assigned.flag.store(true, Ordering::Release);
                self.assigned.notify.notify_waiters();
            }
            // After the commit before it (`pre_rebalance`) and the unassign.
            Rebalance::Revoke(partitions) => {
                self.membership.set_holds(false);
                self.membership
                    .changed(PartitionsChange::Revoked(topic_partitions(partitions)));
            }
            Rebalance::Error(_) => {}
        }
    }
}

/// `partitions` as the seam's names.
pub(super) fn topic_partitions(partitions: &TopicPartitionList) -> Vec<TopicPartition> {
    partitions
        .elements()
        .iter()
        .map(|e| TopicPartition::new(e.topic(), e.partition()))
        .collect()
}

/// `partitions` for a log line: `topic/0,topic/1`.
fn describe(partitions: &TopicPartitionList) -> String {
    partitions
        .elements()
        .iter()
        .map(|e| format!("{}/{}", e.topic(), e.partition()))
        .collect::<Vec<_>>()
        .join(",")
}

/// Gives each partition about to be assigned an explicit start, asked of the cluster now (one
/// request each, blocking the callback like the commit before a revoke): its committed offset,
/// or — for a consumer taking over from another cluster — the later of that and MirrorMaker
/// 2's translated offset where there is one, else the later of that and the first offset from
/// its start time ([`StartTimes::choose`]; the end if no record is that recent).
///
/// librdkafka otherwise assigns them "at the stored offset" and looks it up afterwards, and
/// its answer, if it comes after a seek the rebalance hook asked for, undoes the seek. With an
/// explicit start the fetcher starts at the assignment, before any seek. A partition with
/// neither keeps its `auto.offset.reset`; if a lookup fails, librdkafka's own is used (logged:
/// a seek on assign may then be undone, a takeover starts from the committed offset or the
/// reset).
fn fix_starts(
    consumer: &BaseConsumer<RebalanceCommitter>,
    assigned: &TopicPartitionList,
    times: Option<&StartTimes>,
    translated: &BTreeMap<TopicPartition, i64>,
) {
    let committed = match consumer.committed_offsets(assigned.clone(), COMMITTED_LOOKUP_TIMEOUT) {
        Ok(committed) => committed,
        Err(error) => {
            tracing::warn!(
                %error,
                "could not look up the committed offsets of the partitions assigned; a seek \
                 on assignment may be undone"
            );
            return;
        }
    };
    let by_time = times.and_then(|times| offsets_for(consumer, assigned, times));
    for element in committed.elements() {
        let committed = match element.offset() {
            Offset::Offset(offset) => Some(offset),
            _ => None,
        };
        let by_time = by_time.as_ref().and_then(|list| {
            list.find_partition(element.topic(), element.partition())
                .map(|found| match found.offset() {
                    Offset::Offset(offset) => offset,
                    // No record from that time on: start after everything there.
                    _ => OFFSET_END,
                })
        });
        let translated = translated
            .get(&TopicPartition::new(element.topic(), element.partition()))
            .copied();
        let start = match (committed, translated, by_time) {
            // MirrorMaker 2 knows where the group was: no need to guess by time.
            (committed, Some(translated), _) => {
                Some(committed.map_or(translated, |c| c.max(translated)))
            }
            (_, None, Some(OFFSET_END)) => Some(OFFSET_END),
            (committed, None, by_time) => StartTimes::choose(committed, by_time),
        };
        if let Some(start) = start {
            native::set_offset(assigned, element.topic(), element.partition(), start);
        }
    }
}

/// librdkafka's "the end of the partition" as an offset to start from.
const OFFSET_END: i64 = -1;

/// The first offset of each assigned partition from its start time on, if it has one.
fn offsets_for(
    consumer: &BaseConsumer<RebalanceCommitter>,
    assigned: &TopicPartitionList,
    times: &StartTimes,
) -> Option<TopicPartitionList> {
    let mut query = TopicPartitionList::new();
    for element in assigned.elements() {
        let partition = TopicPartition::new(element.topic(), element.partition());
        if let Some(time) = times.of(&partition) {
            query
                .add_partition_offset(element.topic(), element.partition(), Offset::Offset(time))
                .ok()?;
        }
    }
    match consumer.offsets_for_times(query, COMMITTED_LOOKUP_TIMEOUT) {
        Ok(found) => Some(found),
        Err(error) => {
            tracing::warn!(
                %error,
                "could not look up where the partitions taken over start by time; they start \
                 from the group's committed offsets or auto_offset_reset"
            );
            None
        }
    }
}

/// How long each lookup of [`fix_starts`] may block the rebalance.
const COMMITTED_LOOKUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
