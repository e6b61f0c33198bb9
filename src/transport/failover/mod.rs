//! Failing over to a standby cluster: a [`FailoverCluster`] is a primary cluster and its
//! standby behind the [`Cluster`] seam, so the runtime, the consumer loops and both APIs use a
//! pair exactly as they use one cluster.
//!
//! A task of the pair looks at both sides' reachability ([`Cluster::unreachable_for`]) five
//! times a second and moves the pair's traffic:
//! - to the standby once the primary has been unreachable for [`FailoverPolicy::after`] (every
//!   broker down, as its clients see it) and the standby answers; records still queued for the
//!   primary are handed to the standby ([`Cluster::redirect_undelivered`]) before any new one
//!   (so each key's records reach the standby in order) and settle in the trackers they were
//!   sent for, so an input still commits only once its outputs are acknowledged — by
//!   whichever cluster took them;
//! - back to the primary once it has answered metadata requests again for
//!   [`FailoverPolicy::after`], unless [`FailoverPolicy::failback`] is off.
//!
//! Producers send to the side in use (one atomic read per send). A consumer
//! ([`FailoverConsumer`]) notices the move at its next poll: it joins the same group on the
//! other side, then leaves the side it read (a clean close, or — when that side is down —
//! letting its client go). Each partition starts at MirrorMaker 2's translated offset where
//! the other side has one (Kafka only), else at the first record from (the timestamp of the
//! last record it finished − [`FailoverPolicy::rewind`]); the group's committed offset there
//! wins if it is later ([`StartTimes`](crate::transport::StartTimes)). With a mirror that
//! keeps timestamps (MirrorMaker 2 does) that loses nothing and replays a bounded window.
//! Records of the old side still in the loop's hands are handled but never stored on the new
//! side: their offsets mean nothing there.
//!
//! Every move is a WARNING naming both clusters and the reason, the `fastkafka_cluster_active`
//! metric, and an entry of the health report ([`FailoverStatus`]).
//!
//! This file holds the pair and its producers' side; `consumer.rs` the consumer.

mod consumer;

pub use consumer::FailoverConsumer;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::watch;

use crate::config::ClusterId;
use crate::delivery::DeliveryTracker;
use crate::error::Result;
use crate::metrics::ActiveClusterMetrics;
use crate::record::OutgoingRecord;
use crate::transport::{Cluster, ClusterConsumer, Subscription};

/// When a pair moves its traffic, and how far a consumer rewinds when it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FailoverPolicy {
    /// How long the side in use must have been unreachable before traffic moves to the other
    /// (and how long the primary must have answered again before it moves back).
    pub after: Duration,
    /// How far before the last record it finished a consumer starts on the other side.
    pub rewind: Duration,
    /// Whether traffic moves back to the primary once it answers again.
    pub failback: bool,
}

impl Default for FailoverPolicy {
    /// A minute unreachable, a minute of rewind, and back to the primary.
    fn default() -> Self {
        Self {
            after: Duration::from_secs(60),
            rewind: Duration::from_secs(60),
            failback: true,
        }
    }
}

/// Which cluster of a pair takes its traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The cluster the app names.
    Primary,
    /// The cluster it names as `standby`.
    Standby,
}

/// A pair's state for the health report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailoverStatus {
    /// The standby's bootstrap servers.
    pub standby: String,
    /// Whether the standby takes the traffic now.
    pub on_standby: bool,
    /// How many times traffic moved, either way.
    pub switches: u64,
    /// Why it last moved, if it did.
    pub last_switch: Option<String>,
}

/// How often the pair's task looks at both sides.
const LOOK_EVERY: Duration = Duration::from_millis(200);

/// How long failing over may hold new sends back while the primary's records move first.
const MOVE_WITHIN: Duration = Duration::from_secs(2);

/// How long the primary has to answer a probe while the traffic is on the standby.
const PROBE_WITHIN: Duration = Duration::from_secs(1);

/// How long a consumer waits for a clean close of the side it leaves, when that side answers.
const CLOSE_WITHIN: Duration = Duration::from_secs(10);

/// A primary cluster and its standby as one [`Cluster`]; see the module docs. Its identity is
/// the primary's.
#[derive(Clone)]
pub struct FailoverCluster {
    shared: Arc<Pair>,
}

struct Pair {
    primary: Arc<dyn Cluster>,
    standby: Arc<dyn Cluster>,
    policy: FailoverPolicy,
    /// Mirrors `side` for the producers' hot path.
    on_standby: AtomicBool,
    /// While traffic moves to the standby: new sends wait, as for room in a full queue.
    holding: AtomicBool,
    side: watch::Sender<Side>,
    /// Since when the primary answers again, while traffic is on the standby.
    primary_back_since: Mutex<Option<Instant>>,
    switches: AtomicU64,
    last_switch: Mutex<Option<String>>,
    metrics: Option<Arc<ActiveClusterMetrics>>,
}

impl fmt::Debug for FailoverCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FailoverCluster")
            .field("primary", self.shared.primary.id())
            .field("standby", self.shared.standby.id())
            .field("side", &self.side())
            .finish()
    }
}

impl FailoverCluster {
    /// Pairs `primary` with `standby` under `policy`, traffic on the primary. Must be called
    /// inside a tokio runtime: the pair's task runs there until the last handle is dropped.
    pub fn new(
        primary: Arc<dyn Cluster>,
        standby: Arc<dyn Cluster>,
        policy: FailoverPolicy,
    ) -> Self {
        Self::starting_on(primary, standby, policy, Side::Primary)
    }

    /// [`FailoverCluster::new`] with the traffic on `side` from the start: an app started
    /// while its primary is lost starts on the standby (and moves back by the policy).
    pub fn starting_on(
        primary: Arc<dyn Cluster>,
        standby: Arc<dyn Cluster>,
        policy: FailoverPolicy,
        side: Side,
    ) -> Self {
        let metrics = ActiveClusterMetrics::register(
            primary.id().bootstrap_servers(),
            standby.id().bootstrap_servers(),
        );
        let shared = Arc::new(Pair {
            primary,
            standby,
            policy,
            on_standby: AtomicBool::new(side == Side::Standby),
            holding: AtomicBool::new(false),
            side: watch::Sender::new(side),
            primary_back_since: Mutex::new(None),
            switches: AtomicU64::new(0),
            last_switch: Mutex::new(None),
            metrics,
        });
        if let (Some(metrics), Side::Standby) = (&shared.metrics, side) {
            metrics.set_on_standby(true);
        }
        tokio::spawn(watch_pair(Arc::downgrade(&shared)));
        Self { shared }
    }

    /// The side that takes the traffic now.
    pub fn side(&self) -> Side {
        *self.shared.side.borrow()
    }

    /// The standby cluster.
    pub fn standby(&self) -> &Arc<dyn Cluster> {
        &self.shared.standby
    }

    fn active(&self) -> &Arc<dyn Cluster> {
        self.shared
            .cluster(self.shared.on_standby.load(Ordering::Acquire))
    }
}

impl Pair {
    fn cluster(&self, standby: bool) -> &Arc<dyn Cluster> {
        if standby {
            &self.standby
        } else {
            &self.primary
        }
    }

    fn of(&self, side: Side) -> &Arc<dyn Cluster> {
        self.cluster(side == Side::Standby)
    }

    /// One look at both sides: moves the traffic if the policy says so. On the standby, the
    /// primary counts as back only while it answers a request: a cluster no client has seen
    /// go down (blackholed since the app started, say) is not taken for one that answers.
    async fn look(&self) {
        let side = *self.side.borrow();
        match side {
            Side::Primary => {
                let Some(down) = self.primary.unreachable_for() else {
                    return;
                };
                if down >= self.policy.after && self.standby.unreachable_for().is_none() {
                    self.switch(
                        Side::Standby,
                        format!("unreachable for {:.1} s", down.as_secs_f64()),
                    )
                    .await;
                }
            }
            Side::Standby => {
                if self.primary.unreachable_for().is_some() {
                    *lock(&self.primary_back_since) = None;
                    // Anything the primary still holds (left at the move's deadline) follows.
                    self.move_from_primary().await;
                    return;
                }
                if !self.policy.failback {
                    return;
                }
                if self.primary.check_reachable(PROBE_WITHIN).await.is_err() {
                    *lock(&self.primary_back_since) = None;
                    return;
                }
                let back_for = lock(&self.primary_back_since)
                    .get_or_insert_with(Instant::now)
                    .elapsed();
                if back_for >= self.policy.after {
                    self.switch(
                        Side::Primary,
                        format!("answering again for {:.1} s", back_for.as_secs_f64()),
                    )
                    .await;
                }
            }
        }
    }

    /// Moves the traffic to `to`. Failing over, new sends are held back (as by a full queue)
    /// until what the primary still holds was handed to the standby, so that the standby gets
    /// each key's records in the order they were sent; failing back, the standby answers and
    /// delivers what it holds itself.
    async fn switch(&self, to: Side, why: String) {
        let reason = match to {
            Side::Standby => format!(
                "failing over from cluster {} to its standby {}: the primary has been {why}",
                self.primary.id(),
                self.standby.id()
            ),
            Side::Primary => format!(
                "failing back from standby {} to cluster {}: the primary has been {why}",
                self.standby.id(),
                self.primary.id()
            ),
        };
        tracing::warn!(target: "fastkafka::failover", "{reason}");
        if to == Side::Standby {
            self.holding.store(true, Ordering::Release);
            self.move_from_primary().await;
        }
        *lock(&self.primary_back_since) = None;
        *lock(&self.last_switch) = Some(reason);
        self.switches.fetch_add(1, Ordering::Relaxed);
        // The metric first, then the side producers and consumers read: whoever sees traffic on
        // the new side also sees it in the metric and the health report.
        if let Some(metrics) = &self.metrics {
            metrics.set_on_standby(to == Side::Standby);
        }
        self.on_standby
            .store(to == Side::Standby, Ordering::Release);
        self.holding.store(false, Ordering::Release);
        self.side.send_replace(to);
    }

    /// Moves what the primary holds to the standby, until it holds nothing (or
    /// [`MOVE_WITHIN`] has passed: what is left follows at the next looks).
    async fn move_from_primary(&self) {
        let deadline = Instant::now() + MOVE_WITHIN;
        loop {
            let (primary, standby) = (self.primary.clone(), self.standby.clone());
            let left = tokio::task::spawn_blocking(move || primary.redirect_undelivered(standby))
                .await
                .unwrap_or(0);
            if left == 0 || Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// The pair's task: a look every [`LOOK_EVERY`] until the pair is dropped.
async fn watch_pair(pair: Weak<Pair>) {
    let mut every = tokio::time::interval(LOOK_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(pair) = pair.upgrade() else {
            return;
        };
        pair.look().await;
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[async_trait]
impl Cluster for FailoverCluster {
    fn id(&self) -> &ClusterId {
        self.shared.primary.id()
    }

    fn produce(&self, topic: &str, records: Vec<OutgoingRecord>) -> Result<()> {
        while self.shared.holding.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(1)); // blocks, as on a full queue
        }
        self.active().produce(topic, records)
    }

    fn try_produce_tracked(
        &self,
        topic: &str,
        records: Vec<OutgoingRecord>,
        tracker: Option<&Arc<DeliveryTracker>>,
    ) -> Result<Vec<OutgoingRecord>> {
        if self.shared.holding.load(Ordering::Acquire) {
            return Ok(records); // none taken, as by a full queue: the caller waits for room
        }
        self.active().try_produce_tracked(topic, records, tracker)
    }

    fn try_produce_one(
        &self,
        topic: &str,
        record: OutgoingRecord,
        tracker: Option<&Arc<DeliveryTracker>>,
    ) -> Result<Option<OutgoingRecord>> {
        if self.shared.holding.load(Ordering::Acquire) {
            return Ok(Some(record));
        }
        self.active().try_produce_one(topic, record, tracker)
    }

    /// Flushes the side in use; the other side's queue was handed over when traffic moved.
    async fn flush(&self) -> Result<()> {
        self.active().flush().await
    }

    fn delivery_failures(&self) -> u64 {
        self.shared.primary.delivery_failures() + self.shared.standby.delivery_failures()
    }

    async fn check_reachable(&self, timeout: Duration) -> Result<()> {
        self.active().check_reachable(timeout).await
    }

    /// The side in use's.
    fn unreachable_for(&self) -> Option<Duration> {
        self.active().unreachable_for()
    }

    async fn recheck(&self) {
        futures_util::future::join(self.shared.primary.recheck(), self.shared.standby.recheck())
            .await;
    }

    fn failover_status(&self) -> Option<FailoverStatus> {
        Some(FailoverStatus {
            standby: self.shared.standby.id().to_string(),
            on_standby: self.shared.on_standby.load(Ordering::Acquire),
            switches: self.shared.switches.load(Ordering::Relaxed),
            last_switch: lock(&self.shared.last_switch).clone(),
        })
    }

    async fn subscribe(&self, subscription: Subscription) -> Result<Box<dyn ClusterConsumer>> {
        let consumer = FailoverConsumer::subscribe(self.shared.clone(), subscription).await?;
        Ok(Box::new(consumer))
    }
}
