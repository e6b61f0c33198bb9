//! [`FailoverConsumer`]: a consumer of a primary/standby pair, reading the side in use and
//! moving with the pair (see the parent module for the rules).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Pair, Side, CLOSE_WITHIN};
use crate::error::Result;
use crate::record::{Record, TopicPartition};
use crate::transport::{ClusterConsumer, Membership, PartitionsChange, StartTimes, Subscription};

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

/// A consumer of a [`FailoverCluster`](super::FailoverCluster): reads the side in use; see the
/// parent module's docs.
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
    /// Subscribes on the side of `pair` in use.
    pub(super) async fn subscribe(pair: Arc<Pair>, subscription: Subscription) -> Result<Self> {
        let side_changes = pair.side.subscribe();
        let side = *side_changes.borrow();
        let inner = pair.of(side).subscribe(subscription.clone()).await?;
        let mut consumer = FailoverConsumer {
            pair,
            side_changes,
            side,
            inner,
            subscription,
            generation: Generation::default(),
            retired: Vec::new(),
            finished_at: HashMap::new(),
            membership: Membership::pending(),
            earlier_rebalances: 0,
            joining: None,
        };
        consumer.forward_membership();
        Ok(consumer)
    }

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
