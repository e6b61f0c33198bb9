//! Partitions given and taken: a consumer's rebalance hook and seeks.
//!
//! The transport queues each change of a consumer's partitions ([`PartitionsChange`]) and wakes
//! its loop; the loop calls the consumer's hook between batches — never on librdkafka's
//! thread, so a hook may be a Python coroutine on the app's event loop, or take its time. The
//! order a hook can rely on: partitions revoked are reported after their stored offsets were
//! committed; partitions assigned are reported before any of their records is handed to the
//! handler, and a seek asked for meanwhile ([`Seeker`], from the hook or from anywhere else) is
//! applied first, so the handler's first record of the partition is the one sought.
//!
//! A hook that fails is logged and the consumer goes on: a rebalance hook is not a message,
//! and stopping the consumer would not undo the rebalance.

use std::fmt;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::state::LoopState;
use super::ConsumerLoopConfig;
use crate::error::{Error, Result};
use crate::record::{Record, TopicPartition};
use crate::transport::{Membership, PartitionsChange};

/// What a rebalance hook is told.
#[derive(Debug, Clone)]
pub struct PartitionsChanged {
    /// The consumer (its function's name in Python).
    pub consumer: Arc<str>,
    /// Its cluster's bootstrap servers.
    pub cluster: Arc<str>,
    /// What it was given or lost.
    pub change: PartitionsChange,
    /// Seeks its partitions; see [`Seeker::seek`].
    pub seeker: Seeker,
}

type HookFn = dyn Fn(PartitionsChanged) -> BoxFuture<'static, Result<()>> + Send + Sync;

/// A consumer's rebalance hook: called by its loop for each change of its partitions.
#[derive(Clone)]
pub struct RebalanceHook(Arc<HookFn>);

impl RebalanceHook {
    /// A hook that runs `hook` for each change.
    pub fn new<F, Fut>(hook: F) -> Self
    where
        F: Fn(PartitionsChanged) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<()>> + Send + 'static,
    {
        Self(Arc::new(move |changed| Box::pin(hook(changed))))
    }
}

/// The same hook, not an equal one: settings compare hooks by identity.
impl PartialEq for RebalanceHook {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for RebalanceHook {}

impl fmt::Debug for RebalanceHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RebalanceHook")
    }
}

/// A seek asked of a consumer loop.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seek {
    partition: TopicPartition,
    offset: i64,
}

/// Asks a running consumer to read a partition from another offset. Clones ask the same one.
#[derive(Clone)]
pub struct Seeker(mpsc::UnboundedSender<Seek>);

impl fmt::Debug for Seeker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Seeker")
    }
}

impl Seeker {
    /// The consumer reads `partition` from `offset` on: applied before it hands over another
    /// record of the partition (what was polled past it is dropped). The offsets it stores
    /// and commits follow what it reads, so a seek back replays and a seek forward skips. A
    /// partition the consumer does not hold when the seek is applied is left alone (logged).
    /// Fails only once the consumer stopped.
    pub fn seek(&self, partition: TopicPartition, offset: i64) -> Result<()> {
        self.0
            .send(Seek { partition, offset })
            .map_err(|_| Error::Closed("the consumer (it stopped)"))
    }
}

/// What a consumer loop keeps to call its hook and apply seeks.
pub(super) struct Partitions {
    membership: Membership,
    seeker: Seeker,
    requests: mpsc::UnboundedReceiver<Seek>,
    /// Seeks received and not applied yet.
    asked: Vec<Seek>,
}

impl Partitions {
    pub(super) fn new(membership: Membership) -> Self {
        let (sender, requests) = mpsc::unbounded_channel();
        Self {
            membership,
            seeker: Seeker(sender),
            requests,
            asked: Vec::new(),
        }
    }

    /// Asks this loop's consumer to seek.
    pub(super) fn seeker(&self) -> Seeker {
        self.seeker.clone()
    }

    /// Resolves once a change was queued or a seek asked. Cancel-safe: nothing is lost when
    /// it is dropped before it resolves.
    pub(super) async fn wait(&mut self) {
        tokio::select! {
            () = self.membership.wait_for_change() => {}
            Some(seek) = self.requests.recv() => self.asked.push(seek),
        }
    }

    /// Once its consumer closed: calls the hook for the changes queued meanwhile (the
    /// partitions it gave up as it left), by `deadline` if there is one.
    pub(super) async fn tell_after_close(
        &mut self,
        config: &ConsumerLoopConfig,
        deadline: Option<Instant>,
    ) {
        let telling = self.call_hook(config);
        match deadline {
            Some(deadline) => {
                if tokio::time::timeout_at(deadline, telling).await.is_err() {
                    tracing::warn!(
                        target: "fastkafka::consumer",
                        "{}: its rebalance hook did not return by the stop's deadline",
                        config.name
                    );
                }
            }
            None => telling.await,
        }
    }

    /// Calls the hook for each change queued, oldest first.
    async fn call_hook(&mut self, config: &ConsumerLoopConfig) {
        for change in self.membership.take_changes() {
            let Some(hook) = &config.on_partitions_changed else {
                continue;
            };
            let changed = PartitionsChanged {
                consumer: config.name.clone(),
                cluster: config.cluster.clone(),
                change: change.clone(),
                seeker: self.seeker.clone(),
            };
            // A hook that hangs shows in the consumer's health like a handler that does.
            config.pulse.handling();
            let called = (hook.0)(changed).await;
            config.pulse.handled();
            if let Err(error) = called {
                tracing::error!(
                    target: "fastkafka::consumer",
                    "{}: its rebalance hook failed on {change:?}; going on: {error}",
                    config.name
                );
            }
        }
    }

    /// Calls the hook for each change queued, then applies every seek asked so far, dropping
    /// what `batch` (polled, not handed over yet) and the read-ahead hold of each partition
    /// sought.
    pub(super) async fn settle(
        &mut self,
        state: &mut LoopState,
        config: &ConsumerLoopConfig,
        batch: Option<&mut Vec<Record>>,
    ) -> Result<()> {
        self.call_hook(config).await;
        while let Ok(seek) = self.requests.try_recv() {
            self.asked.push(seek);
        }
        if self.asked.is_empty() {
            return Ok(());
        }
        let LoopState {
            consumer,
            read_ahead,
            paused,
            ..
        } = state;
        let held = consumer.assignment();
        let mut batch = batch;
        for Seek { partition, offset } in std::mem::take(&mut self.asked) {
            if !held.contains(&partition) {
                tracing::warn!(
                    target: "fastkafka::consumer",
                    "{}: not seeking {}/{} to offset {offset}: the consumer does not hold the \
                     partition (now holds {} partition(s))",
                    config.name,
                    partition.topic,
                    partition.partition,
                    held.len()
                );
                continue;
            }
            consumer.pause_at(&partition, offset)?;
            consumer.resume(&partition)?;
            read_ahead.forget(&partition);
            paused.retain(|(paused, _)| *paused != partition);
            if let Some(batch) = batch.as_deref_mut() {
                batch.retain(|record| {
                    *record.topic != *partition.topic || record.partition != partition.partition
                });
            }
            tracing::info!(
                target: "fastkafka::consumer",
                "{}: {}/{} reads from offset {offset} on (a seek)",
                config.name,
                partition.topic,
                partition.partition
            );
        }
        Ok(())
    }
}
