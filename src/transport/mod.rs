//! The transport seam: "a cluster I can produce to and consume from".
//!
//! The app is built against these traits only. Two implementations sit behind them: the
//! in-memory broker ([`memory`], for tests and demos) and librdkafka (the `kafka` feature, for
//! real clusters). `Tester` swaps one for the other by handing the app a different
//! [`Transport`]; nothing is patched.
//!
//! The shape follows what librdkafka can do without extra threads or copies:
//! - producing hands records to the client and returns at once ([`Cluster::produce`] is not
//!   async); delivery happens in the background and [`Cluster::flush`] waits for it;
//! - a consumer is polled for a *batch*; the caller marks what it finished with
//!   [`ClusterConsumer::store_offsets`] and only stored offsets are ever committed, which is
//!   what makes delivery at-least-once.

#[cfg(any(feature = "kafka", feature = "python"))]
mod drop_off;
pub mod failover;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod memory;
mod queue;
mod resend;
pub mod status;
pub mod undelivered;

#[cfg(any(feature = "kafka", feature = "python"))]
pub(crate) use drop_off::DropOffThread;
pub(crate) use queue::refused_for;
pub use queue::{
    produce_when_room, try_produce_in_batch, try_produce_one_in_batch, QUEUE_FULL_TIMEOUT,
};
pub(crate) use resend::resend;
pub use status::{Membership, PartitionsChange, Reachability};

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::config::ClusterId;
use crate::delivery::DeliveryTracker;
use crate::error::{Error, Result};
use crate::record::{OutgoingRecord, Record, TopicPartition};

/// Raw client properties in librdkafka's names (`linger.ms`, `session.timeout.ms`, ...).
/// The in-memory broker ignores them.
pub type ClientProperties = BTreeMap<String, String>;

/// Where a consumer starts in a partition that has no committed offset for its group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OffsetReset {
    /// From the oldest record (FastKafka's default).
    #[default]
    Earliest,
    /// From records produced after the consumer was assigned the partition.
    Latest,
}

impl FromStr for OffsetReset {
    type Err = Error;

    fn from_str(value: &str) -> Result<Self> {
        match value {
            "earliest" => Ok(Self::Earliest),
            "latest" => Ok(Self::Latest),
            other => Err(Error::Config(format!(
                "auto_offset_reset must be 'earliest' or 'latest', got '{other}'"
            ))),
        }
    }
}

impl fmt::Display for OffsetReset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Earliest => "earliest",
            Self::Latest => "latest",
        })
    }
}

/// What a consumer reads and as whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// Topics to read.
    pub topics: Vec<String>,
    /// Members of one group share the partitions and the committed offsets; without a group a
    /// consumer reads every partition and commits nothing.
    pub group_id: Option<String>,
    /// Where to start without a committed offset.
    pub auto_offset_reset: OffsetReset,
    /// Further client properties for this consumer.
    pub properties: ClientProperties,
    /// Client properties for this consumer unless the cluster's or its own `properties` set
    /// them (Python apps bound the prefetch this way).
    pub default_properties: ClientProperties,
    /// Whether something may seek its partitions as soon as they are assigned (a rebalance
    /// hook): the transport then fixes where each starts before assigning it, so that such a
    /// seek is never undone by the client's own lookup of the committed offset.
    pub seeks_on_assign: bool,
    /// Where partitions start by time: set when a consumer takes over from another cluster
    /// ([`failover`]); `None`: from the committed offset, else `auto_offset_reset`.
    pub start_times: Option<StartTimes>,
}

/// Where each partition of a consumer that takes over from another cluster starts: at the
/// first record from a given time on (Kafka's offsets for times), or at the group's committed
/// offset on this cluster if that is later — a mirror's translated offsets, or the group's own
/// progress here — so neither a stale commit nor an early time replays more than it must.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StartTimes {
    /// Milliseconds since the Unix epoch, per partition.
    pub partitions: BTreeMap<TopicPartition, i64>,
    /// For a partition not listed; `None`: such a partition starts as it would without.
    pub otherwise: Option<i64>,
}

impl StartTimes {
    /// The time `partition` starts from, if any.
    pub fn of(&self, partition: &TopicPartition) -> Option<i64> {
        self.partitions.get(partition).copied().or(self.otherwise)
    }

    /// The start between the group's committed offset and the offset for the time: the later
    /// of the two, either alone, or `None` (then `auto_offset_reset`).
    pub fn choose(committed: Option<i64>, by_time: Option<i64>) -> Option<i64> {
        match (committed, by_time) {
            (Some(committed), Some(by_time)) => Some(committed.max(by_time)),
            (one, other) => one.or(other),
        }
    }
}

impl Subscription {
    /// A group-less subscription to `topics`, from the earliest offset.
    pub fn new<I, S>(topics: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            topics: topics.into_iter().map(Into::into).collect(),
            group_id: None,
            auto_offset_reset: OffsetReset::Earliest,
            properties: ClientProperties::new(),
            default_properties: ClientProperties::new(),
            seeks_on_assign: false,
            start_times: None,
        }
    }

    /// The same subscription as a member of `group_id`.
    pub fn with_group(mut self, group_id: impl Into<String>) -> Self {
        self.group_id = Some(group_id.into());
        self
    }

    /// The same subscription with another reset policy.
    pub fn with_offset_reset(mut self, reset: OffsetReset) -> Self {
        self.auto_offset_reset = reset;
        self
    }

    /// The same subscription with one more client property.
    pub fn with_property(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.insert(name.into(), value.into());
        self
    }
}

/// A way to reach clusters: the in-memory broker, or real Kafka.
pub trait Transport: Send + Sync + fmt::Debug {
    /// The cluster with this identity. Calling it twice for one identity returns the same
    /// cluster (one producer client per cluster).
    fn cluster(&self, id: &ClusterId) -> Result<Arc<dyn Cluster>> {
        self.cluster_with(id, &ClientProperties::new())
    }

    /// Like [`Transport::cluster`], with the properties of the cluster's one producer client.
    /// They apply when the client is created; asking again for the same cluster with
    /// different properties is a configuration error naming the property.
    fn cluster_with(&self, id: &ClusterId, producer: &ClientProperties)
        -> Result<Arc<dyn Cluster>>;
}

/// Flushes `cluster` at the end of an app's run and warns once with the number of records
/// that failed delivery (each was logged when it failed). Both APIs stop their producers
/// through this, so the summary reads the same from Rust and Python.
pub async fn flush_and_report(cluster: &dyn Cluster) -> Result<()> {
    let flushed = cluster.flush().await;
    let failures = cluster.delivery_failures();
    if failures > 0 {
        tracing::warn!(
            "{failures} record(s) produced to {} were not delivered (see the errors above)",
            cluster.id()
        );
    }
    flushed
}

/// Checks, when an app starts, that `cluster` answers within `timeout`: an unreachable
/// cluster fails the start at once with an error naming the cluster, the environment and the
/// app's functions that use it, instead of the app running on and retrying in the background.
/// Both APIs start through this.
pub async fn check_at_start(
    cluster: &dyn Cluster,
    environment: &str,
    used_by: &[String],
    timeout: Duration,
) -> Result<()> {
    cluster.check_reachable(timeout).await.map_err(|error| {
        let detail = match error {
            Error::Transport { message, .. } => message,
            other => other.to_string(),
        };
        Error::Transport {
            cluster: cluster.id().to_string(),
            message: format!(
                "unreachable at start (environment '{environment}', used by {}): {detail}",
                used_by.join(", ")
            ),
        }
    })
}

/// One Kafka cluster.
#[async_trait]
pub trait Cluster: Send + Sync + fmt::Debug {
    /// Who this cluster is.
    fn id(&self) -> &ClusterId;

    /// Hands `records` to the cluster, in order, and returns without waiting for delivery.
    /// Records with equal keys go to the same partition of `topic`. A full client queue makes
    /// this block the calling thread until there is room (see [`Cluster::try_produce`] and
    /// [`produce_when_room`] for the non-blocking way).
    fn produce(&self, topic: &str, records: Vec<OutgoingRecord>) -> Result<()>;

    /// Hands over as many of `records` as the client queue takes now, in order, without ever
    /// blocking, and returns the rest (empty when all were taken).
    fn try_produce(
        &self,
        topic: &str,
        records: Vec<OutgoingRecord>,
    ) -> Result<Vec<OutgoingRecord>> {
        self.try_produce_tracked(topic, records, None)
    }

    /// [`Cluster::try_produce`], counting each record taken in `tracker` and settling it there
    /// when the cluster acknowledges it or it fails.
    fn try_produce_tracked(
        &self,
        topic: &str,
        records: Vec<OutgoingRecord>,
        tracker: Option<&Arc<DeliveryTracker>>,
    ) -> Result<Vec<OutgoingRecord>>;

    /// [`Cluster::try_produce_tracked`] for one record, without a `Vec` around it (the
    /// per-message path of both APIs): `Some(record)` back when the client queue is full.
    fn try_produce_one(
        &self,
        topic: &str,
        record: OutgoingRecord,
        tracker: Option<&Arc<DeliveryTracker>>,
    ) -> Result<Option<OutgoingRecord>> {
        Ok(self
            .try_produce_tracked(topic, vec![record], tracker)?
            .pop())
    }

    /// Waits until everything produced so far is delivered (or failed).
    async fn flush(&self) -> Result<()>;

    /// How many produced records failed delivery so far (each is also logged with its topic
    /// and error). Always 0 in memory.
    fn delivery_failures(&self) -> u64 {
        0
    }

    /// Fails unless the cluster answers within `timeout` (a metadata request on a real
    /// cluster; always reachable in memory). See [`check_at_start`].
    async fn check_reachable(&self, _timeout: Duration) -> Result<()> {
        Ok(())
    }

    /// How long the cluster has been unreachable — every broker of it down, as its clients
    /// last saw — or `None` while it answers. Always `None` in memory.
    fn unreachable_for(&self) -> Option<Duration> {
        None
    }

    /// While [`Cluster::unreachable_for`] says unreachable: asks the cluster once (a short
    /// metadata request) and clears it if it answers. The runtime calls this every second
    /// while an app runs; it costs nothing while the cluster answers.
    async fn recheck(&self) {}

    /// Hands every record taken and not delivered yet over to `to` — it stops trying to
    /// deliver them itself — so each is settled in its tracker by `to` instead (a failover to a
    /// standby cluster, [`failover`]), in the order they were taken. Returns how many are not
    /// handed over yet (a client's reports of them still to be served): call again until 0.
    /// May block briefly (run it on a blocking thread). Nothing is held in a cluster that is up
    /// in memory.
    fn redirect_undelivered(&self, _to: Arc<dyn Cluster>) -> usize {
        0
    }

    /// For a primary paired with a standby ([`failover::FailoverCluster`]): which side takes
    /// the traffic and why it last moved. `None` for a single cluster.
    fn failover_status(&self) -> Option<failover::FailoverStatus> {
        None
    }

    /// Joins the subscription's group (if any) and returns a consumer that is ready: its
    /// partitions are assigned and its start positions fixed when this returns.
    async fn subscribe(&self, subscription: Subscription) -> Result<Box<dyn ClusterConsumer>>;
}

/// A subscribed consumer of one cluster.
#[async_trait]
pub trait ClusterConsumer: Send + fmt::Debug {
    /// Waits until records are available and returns at most `max_records` of them, in offset
    /// order within each partition.
    ///
    /// Cancel-safe: dropping the future before it completes loses no record.
    async fn poll(&mut self, max_records: usize) -> Result<Vec<Record>>;

    /// Marks `records` as finished; only finished records are committed.
    fn store_offsets(&mut self, records: &[Record]) -> Result<()>;

    /// Stops reading `partition` and rewinds it to `offset`: nothing of it is returned by
    /// `poll` until [`ClusterConsumer::resume`], and then from `offset` on (a retry in
    /// place). A partition this consumer does not own is ignored.
    fn pause_at(&mut self, partition: &TopicPartition, offset: i64) -> Result<()>;

    /// Reads `partition` again after [`ClusterConsumer::pause_at`]. A partition that was
    /// taken away meanwhile is ignored.
    fn resume(&mut self, partition: &TopicPartition) -> Result<()>;

    /// Commits the stored offsets of the partitions this consumer owns.
    async fn commit(&mut self) -> Result<()>;

    /// The partitions this consumer reads now.
    fn assignment(&self) -> Vec<TopicPartition>;

    /// For each partition it reads, how many records are after its position, as far as the
    /// client knows without asking the cluster (0 when caught up). Empty if it cannot tell.
    fn lag(&self) -> Vec<(TopicPartition, i64)> {
        Vec::new()
    }

    /// How many times the group assigned it partitions or took some away so far.
    fn rebalances(&self) -> u64 {
        0
    }

    /// Whether it holds its partitions now and what it was given or lost, shared with its
    /// health and its loop while the loop owns the consumer. A consumer whose partitions
    /// cannot be taken away holds them always and tells nothing.
    fn membership(&self) -> Membership {
        Membership::held()
    }

    /// Commits, leaves the group and releases the partitions.
    async fn close(self: Box<Self>) -> Result<()>;
}
