//! Failing over to a standby cluster: a [`FailoverCluster`] is a primary cluster and its
//! standby behind the [`Cluster`] seam, so the runtime, the consumer loops and both APIs use a
//! pair exactly as they use one cluster.
//!
//! A task of the pair looks at both sides' reachability ([`Cluster::unreachable_for`]) five
//! times a second and moves the pair's traffic:
//! - to the standby once the primary has been unreachable for [`FailoverPolicy::after`] (every
//!   broker down, as its clients see it) and the standby answers; records still queued for the
//!   primary are handed to the standby ([`Cluster::redirect_undelivered`]) and settle in the
//!   trackers they were sent for, so an input still commits only once its outputs are
//!   acknowledged — by whichever cluster took them;
//! - back to the primary once it has answered again for [`FailoverPolicy::after`], unless
//!   [`FailoverPolicy::failback`] is off.
//!
//! Producers send to the side in use (one atomic read per send). A consumer
//! ([`FailoverConsumer`]) notices the move at its next poll: it leaves the side it read (a
//! clean close, or — when that side is down — letting its client go), joins the same group on the other, and starts each
//! partition at the first record from (the timestamp of the last record it finished there −
//! [`FailoverPolicy::rewind`]), or later where the group's committed offset on that side is
//! later ([`StartTimes`]). With a mirror that keeps timestamps (MirrorMaker 2 does) that loses
//! nothing and replays a bounded window. Records of the old side still in the loop's hands are
//! handled but never stored on the new side: their offsets mean nothing there.
//!
//! Every move is a WARNING naming both clusters and the reason, the `fastkafka_cluster_active`
//! metric, and an entry of the health report ([`FailoverStatus`]).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::ClusterId;
use crate::delivery::DeliveryTracker;
use crate::error::Result;
use crate::metrics::ActiveClusterMetrics;
use crate::record::{OutgoingRecord, Record, TopicPartition};
use crate::transport::{
    Cluster, ClusterConsumer, Membership, PartitionsChange, StartTimes, Subscription,
    QUEUE_FULL_TIMEOUT,
};

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
                    );
                }
            }
            Side::Standby => {
                if self.primary.unreachable_for().is_some() {
                    *lock(&self.primary_back_since) = None;
                    // What was sent to the primary as traffic moved, or taken by its client's
                    // lane after the move, follows the rest.
                    self.primary.redirect_undelivered(self.standby.clone());
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
                    );
                }
            }
        }
    }

    fn switch(&self, to: Side, why: String) {
        let from = self.of(if to == Side::Standby {
            Side::Primary
        } else {
            Side::Standby
        });
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
        *lock(&self.primary_back_since) = None;
        *lock(&self.last_switch) = Some(reason);
        self.switches.fetch_add(1, Ordering::Relaxed);
        self.on_standby
            .store(to == Side::Standby, Ordering::Release);
        self.side.send_replace(to);
        if let Some(metrics) = &self.metrics {
            metrics.set_on_standby(to == Side::Standby);
        }
        from.redirect_undelivered(self.of(to).clone());
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

/// Sends `records` (taken once by another cluster for `tracker`) to `to`, settling them in
/// `tracker` there instead: counted by `to` before the first count is released, so the tracker
/// never reads settled in between. Waits (blocking the thread, a client's report thread) while
/// `to`'s queue is full, up to [`QUEUE_FULL_TIMEOUT`]; what `to` refuses fails the tracker.
pub(crate) fn resend(
    to: &dyn Cluster,
    topic: &str,
    records: Vec<OutgoingRecord>,
    tracker: Option<&Arc<DeliveryTracker>>,
) {
    let count = records.len();
    let deadline = Instant::now() + QUEUE_FULL_TIMEOUT;
    let mut rest = records;
    while !rest.is_empty() {
        match to.try_produce_tracked(topic, rest, tracker) {
            Ok(left) if !left.is_empty() && Instant::now() < deadline => {
                rest = left;
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok(left) if left.is_empty() => break,
            Ok(left) => {
                let error = crate::error::Error::Transport {
                    cluster: to.id().to_string(),
                    message: format!(
                        "{} record(s) to '{topic}' moved from a lost cluster found the queue \
                         full for {QUEUE_FULL_TIMEOUT:?}",
                        left.len()
                    ),
                };
                tracing::error!(target: "fastkafka::failover", "{error}");
                if let Some(tracker) = tracker {
                    tracker.refused(error);
                }
                break;
            }
            Err(error) => {
                tracing::error!(
                    target: "fastkafka::failover",
                    "records to '{topic}' moved from a lost cluster were refused: {error}"
                );
                if let Some(tracker) = tracker {
                    tracker.refused(error);
                }
                break;
            }
        }
    }
    if let Some(tracker) = tracker {
        (0..count).for_each(|_| tracker.unsent());
    }
}

#[async_trait]
impl Cluster for FailoverCluster {
    fn id(&self) -> &ClusterId {
        self.shared.primary.id()
    }

    fn produce(&self, topic: &str, records: Vec<OutgoingRecord>) -> Result<()> {
        self.active().produce(topic, records)
    }

    fn try_produce_tracked(
        &self,
        topic: &str,
        records: Vec<OutgoingRecord>,
        tracker: Option<&Arc<DeliveryTracker>>,
    ) -> Result<Vec<OutgoingRecord>> {
        self.active().try_produce_tracked(topic, records, tracker)
    }

    fn try_produce_one(
        &self,
        topic: &str,
        record: OutgoingRecord,
        tracker: Option<&Arc<DeliveryTracker>>,
    ) -> Result<Option<OutgoingRecord>> {
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
        let side_changes = self.shared.side.subscribe();
        let side = *side_changes.borrow();
        let inner = self.shared.of(side).subscribe(subscription.clone()).await?;
        let membership = Membership::pending();
        let mut consumer = FailoverConsumer {
            pair: self.shared.clone(),
            side_changes,
            side,
            inner,
            subscription,
            generation: Generation::default(),
            retired: Vec::new(),
            finished_at: HashMap::new(),
            membership,
            earlier_rebalances: 0,
            joining: None,
        };
        consumer.forward_membership();
        Ok(Box::new(consumer))
    }
}

/// The topic names the records of one side's consumer carry: a record is told from one read
/// on the side before by its topic's `Arc` (one per topic and side), so nothing is added to
/// a record.
#[derive(Default)]
struct Generation {
    topics: Vec<Arc<str>>,
}

impl Generation {
    fn name(&mut self, topic: &Arc<str>) -> Arc<str> {
        match self.topics.iter().find(|known| ***known == **topic) {
            Some(known) => known.clone(),
            None => {
                let name: Arc<str> = Arc::from(&**topic);
                self.topics.push(name.clone());
                name
            }
        }
    }
}

/// A consumer of a [`FailoverCluster`]: reads the side in use; see the module docs.
pub struct FailoverConsumer {
    pair: Arc<Pair>,
    side_changes: watch::Receiver<Side>,
    side: Side,
    inner: Box<dyn ClusterConsumer>,
    subscription: Subscription,
    generation: Generation,
    /// The topic names of the sides read before: records carrying them are not stored.
    retired: Vec<Arc<str>>,
    /// Per partition, the timestamp of the last record finished on the side in use.
    finished_at: HashMap<TopicPartition, i64>,
    /// The loop's view: what the consumer of each side was given or lost, in order.
    membership: Membership,
    earlier_rebalances: u64,
    /// The side being joined, while a move is under way.
    joining: Option<(Side, Joining)>,
}

impl fmt::Debug for FailoverConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FailoverConsumer")
            .field("side", &self.side)
            .field("inner", &self.inner)
            .finish()
    }
}

impl FailoverConsumer {
    /// Passes what the side's consumer was given or lost on to the loop's view.
    fn forward_membership(&mut self) {
        let inner = self.inner.membership();
        for change in inner.take_changes() {
            self.membership.changed(change);
        }
        self.membership.set_holds(inner.holds());
    }

    fn is_retired(&self, topic: &Arc<str>) -> bool {
        self.retired.iter().any(|old| Arc::ptr_eq(old, topic))
    }

    /// Where each partition starts on the other side: the last finished record's time minus
    /// the rewind; a partition it finished nothing of, from the oldest such time it knows.
    fn start_times(&self) -> Option<StartTimes> {
        let rewind = i64::try_from(self.pair.policy.rewind.as_millis()).unwrap_or(i64::MAX);
        let partitions: BTreeMap<TopicPartition, i64> = self
            .finished_at
            .iter()
            .map(|(partition, at)| (partition.clone(), at.saturating_sub(rewind)))
            .collect();
        let otherwise = partitions.values().min().copied();
        otherwise.map(|otherwise| StartTimes {
            partitions,
            otherwise: Some(otherwise),
        })
    }

    /// Starts joining `to` (the same subscription, partitions starting by time): on a
    /// blocking thread of its own, so that neither a cancelled poll nor a dropped consumer
    /// drops a half-made client on a runtime thread (closing a Kafka client blocks). Retries
    /// every second while `to` is still the side wanted.
    fn start_joining(&mut self, to: Side) {
        let mut subscription = self.subscription.clone();
        subscription.start_times = self.start_times();
        let cluster = self.pair.of(to).clone();
        let mut side_changes = self.side_changes.clone();
        let runtime = tokio::runtime::Handle::current();
        let task = tokio::task::spawn_blocking(move || {
            runtime.block_on(async move {
                loop {
                    match cluster.subscribe(subscription.clone()).await {
                        Ok(joined) => return Some(joined),
                        Err(error) => tracing::warn!(
                            target: "fastkafka::failover",
                            "could not subscribe to '{}' on {} yet: {error}",
                            subscription.topics.join(","),
                            cluster.id()
                        ),
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    if *side_changes.borrow_and_update() != to {
                        return None;
                    }
                }
            })
        });
        self.joining = Some((to, task));
    }

    /// Reads `joined` (on `to`) from now on and lets go of the side it read: a clean close
    /// where that side answers, else the client let go as a crashed one would be (no commit,
    /// no goodbye; its group drops it after the session timeout) — a close would wait for the
    /// cluster, and a client still closing when it came back would rejoin the group and be
    /// given partitions it never reads. Either way on a blocking thread, not waited for.
    fn switch_to(&mut self, to: Side, joined: Box<dyn ClusterConsumer>) {
        let old = std::mem::replace(&mut self.inner, joined);
        let left = self.pair.of(self.side).clone();
        self.earlier_rebalances += old.rebalances();
        let held = old.assignment();
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            if left.unreachable_for().is_some() {
                drop(old);
            } else if runtime
                .block_on(tokio::time::timeout(CLOSE_WITHIN, old.close()))
                .is_err()
            {
                tracing::warn!(
                    target: "fastkafka::failover",
                    "left cluster {} without a clean close (it did not answer within {:?})",
                    left.id(),
                    CLOSE_WITHIN
                );
            }
        });
        let old_side = std::mem::take(&mut self.generation);
        self.retired.extend(old_side.topics);
        self.membership.changed(PartitionsChange::Revoked(held));
        self.forward_membership();
        tracing::warn!(
            target: "fastkafka::failover",
            "consumer of '{}' reads cluster {} now (partitions start {} s before the last \
             record it finished, or at the group's later commit there)",
            self.subscription.topics.join(","),
            self.pair.of(to).id(),
            self.pair.policy.rewind.as_secs_f64()
        );
        self.finished_at.clear();
        self.side = to;
    }
}

#[async_trait]
impl ClusterConsumer for FailoverConsumer {
    async fn poll(&mut self, max_records: usize) -> Result<Vec<Record>> {
        loop {
            if let Some((to, joining)) = &mut self.joining {
                // Cancel-safe: a poll dropped here leaves the join running, awaited again by
                // the next poll.
                let joined = joining.await;
                let to = *to;
                self.joining = None;
                match joined {
                    Ok(Some(joined)) => self.switch_to(to, joined),
                    Ok(None) => {} // the pair moved back meanwhile
                    Err(error) => {
                        return Err(crate::error::Error::Transport {
                            cluster: self.pair.of(to).id().to_string(),
                            message: format!("joining the consumer's group failed: {error}"),
                        })
                    }
                }
                continue;
            }
            let wanted = *self.side_changes.borrow_and_update();
            if wanted != self.side {
                self.start_joining(wanted);
                continue;
            }
            self.forward_membership();
            let inner_membership = self.inner.membership();
            let woken = tokio::select! {
                changed = self.side_changes.changed() => Woken::SideChanged(changed.is_ok()),
                () = inner_membership.wait_for_change() => Woken::PartitionsChanged,
                polled = self.inner.poll(max_records) => Woken::Polled(polled),
            };
            let polled = match woken {
                Woken::Polled(polled) => polled,
                Woken::SideChanged(true) | Woken::PartitionsChanged => continue,
                // The pair is gone (the app is stopping): read on where we are.
                Woken::SideChanged(false) => self.inner.poll(max_records).await,
            };
            let mut records = polled?;
            for record in &mut records {
                record.topic = self.generation.name(&record.topic);
            }
            return Ok(records);
        }
    }

    fn store_offsets(&mut self, records: &[Record]) -> Result<()> {
        if !self.retired.is_empty() && records.iter().any(|r| self.is_retired(&r.topic)) {
            let current: Vec<Record> = records
                .iter()
                .filter(|r| !self.is_retired(&r.topic))
                .cloned()
                .collect();
            return self.store_offsets(&current);
        }
        // Records come in runs of one partition: one map update per run, not per record.
        let mut run: Option<(&Record, i64)> = None;
        for record in records {
            if let Some((first, at)) = run.as_mut() {
                if Arc::ptr_eq(&first.topic, &record.topic) && first.partition == record.partition {
                    *at = (*at).max(record.timestamp_ms);
                    continue;
                }
            }
            if let Some((first, at)) = run.take() {
                self.note_finished(first, at);
            }
            run = Some((record, record.timestamp_ms));
        }
        if let Some((first, at)) = run {
            self.note_finished(first, at);
        }
        self.inner.store_offsets(records)
    }

    fn pause_at(&mut self, partition: &TopicPartition, offset: i64) -> Result<()> {
        if self.is_retired(&partition.topic) {
            return Ok(());
        }
        self.inner.pause_at(partition, offset)
    }

    fn resume(&mut self, partition: &TopicPartition) -> Result<()> {
        if self.is_retired(&partition.topic) {
            return Ok(());
        }
        self.inner.resume(partition)
    }

    async fn commit(&mut self) -> Result<()> {
        self.inner.commit().await
    }

    fn assignment(&self) -> Vec<TopicPartition> {
        self.inner.assignment()
    }

    fn lag(&self) -> Vec<(TopicPartition, i64)> {
        self.inner.lag()
    }

    fn rebalances(&self) -> u64 {
        self.earlier_rebalances + self.inner.rebalances()
    }

    fn membership(&self) -> Membership {
        self.membership.clone()
    }

    async fn close(self: Box<Self>) -> Result<()> {
        let this = *self;
        let inner_membership = this.inner.membership();
        let closed = this.inner.close().await;
        // The loop hears of the partitions given up as it left.
        for change in inner_membership.take_changes() {
            this.membership.changed(change);
        }
        closed
    }
}

/// A consumer's join of the other side: the new client, or `None` if the pair moved back
/// meanwhile.
type Joining = JoinHandle<Option<Box<dyn ClusterConsumer>>>;

/// What woke a [`FailoverConsumer`]'s poll.
enum Woken {
    /// The pair moved (`false`: the pair is gone).
    SideChanged(bool),
    PartitionsChanged,
    Polled(Result<Vec<Record>>),
}

impl FailoverConsumer {
    fn note_finished(&mut self, record: &Record, at: i64) {
        let partition = record.topic_partition();
        let known = self.finished_at.entry(partition).or_insert(at);
        *known = (*known).max(at);
    }
}
