//! The librdkafka consumer behind [`ClusterConsumer`]: subscribed to its group (or assigned every
//! partition without one), polled a batch at a time, offsets stored by the consumer loop and
//! committed by it and by the rebalance callback before a partition is taken away. Errors that
//! retrying cannot heal are [`Error::Fatal`].

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use async_trait::async_trait;
use futures_util::{FutureExt, StreamExt};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{Offset, TopicPartitionList};

use super::checkpoints::translated_offsets;
use super::groupless::assign_all;
use super::native::{cached_high_watermark, to_records, TopicNames};
use super::oauth::TokenProvider;
use super::rebalance::{topic_partitions, Assigned, RebalanceCommitter};
use super::{check_not_reserved, config_error, consumer_config, ASSIGNMENT_TIMEOUT};
use crate::config::ClusterId;
use crate::error::{Error, Result};
use crate::record::{Record, TopicPartition};
use crate::transport::{
    ClientProperties, ClusterConsumer, Membership, OffsetReset, PartitionsChange, Reachability,
    StartTimes, Subscription,
};

/// Seeks are asynchronous (a zero timeout): the call runs on the consumer loop's tokio worker
/// thread, which must never wait on librdkafka. librdkafka raises the partition's version
/// barrier in the call itself, so records fetched before the seek are dropped all the same.
const SEEK_TIMEOUT: std::time::Duration = std::time::Duration::ZERO;

pub(super) struct KafkaConsumer {
    cluster: ClusterId,
    consumer: Arc<StreamConsumer<RebalanceCommitter>>,
    in_group: bool,
    /// Records received while waiting for the first assignment.
    buffered: VecDeque<Record>,
    /// Next offset to commit, per partition; mirrors what was stored in librdkafka.
    stored: BTreeMap<TopicPartition, i64>,
    /// A fatal error met while filling a batch, returned by the next poll.
    fatal: Option<Error>,
    /// The topic names its records share.
    topics: TopicNames,
}

impl fmt::Debug for KafkaConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaConsumer")
            .field("cluster", &self.cluster)
            .field("in_group", &self.in_group)
            .finish()
    }
}

impl KafkaConsumer {
    /// Creates a consumer for `subscription` on cluster `id` and waits until it has
    /// partitions: assigned by its group, or all of them without one.
    pub(super) async fn subscribe(
        id: &ClusterId,
        properties: &ClientProperties,
        subscription: Subscription,
        reachability: Arc<Reachability>,
        token_provider: Option<Arc<dyn TokenProvider>>,
    ) -> Result<Box<dyn ClusterConsumer>> {
        if subscription.topics.is_empty() {
            return Err(Error::Config(
                "a consumer needs at least one topic".to_owned(),
            ));
        }
        check_not_reserved(&subscription.properties)?;
        let config = consumer_config(id, properties, &subscription);
        let mut context = RebalanceCommitter::new(
            id,
            reachability,
            subscription.seeks_on_assign,
            subscription.start_times.clone(),
        );
        context.token_provider = token_provider;
        if let (Some(_), Some(group)) = (&subscription.start_times, &subscription.group_id) {
            context.translated =
                translated_offsets_of(id, &config, group, &subscription.topics).await;
        }
        let assigned = context.assigned.clone();
        let consumer: StreamConsumer<RebalanceCommitter> = config
            .create_with_context(context)
            .map_err(|e| config_error(id, "consumer", &config, e))?;
        let mut consumer = KafkaConsumer {
            cluster: id.clone(),
            consumer: Arc::new(consumer),
            in_group: subscription.group_id.is_some(),
            buffered: VecDeque::new(),
            stored: BTreeMap::new(),
            fatal: None,
            topics: TopicNames::default(),
        };
        let topics: Vec<&str> = subscription.topics.iter().map(String::as_str).collect();
        if consumer.in_group {
            consumer
                .consumer
                .subscribe(&topics)
                .map_err(|e| consumer.transport_error(format!("subscribe failed: {e}")))?;
            consumer.wait_for_assignment(&assigned).await?;
        } else {
            consumer
                .assign_all_partitions(
                    &subscription.topics,
                    subscription.auto_offset_reset,
                    subscription.start_times.clone(),
                )
                .await?;
            let membership = &consumer.consumer.context().membership;
            membership.set_holds(true);
            membership.changed(PartitionsChange::Assigned(consumer.assignment()));
        }
        Ok(Box::new(consumer))
    }

    fn transport_error(&self, message: impl fmt::Display) -> Error {
        Error::Transport {
            cluster: self.cluster.to_string(),
            message: message.to_string(),
        }
    }

    /// Polls until the group assigned partitions (rebalance callbacks run inside polls),
    /// keeping any record that arrives meanwhile.
    async fn wait_for_assignment(&mut self, assigned: &Assigned) -> Result<()> {
        let deadline = tokio::time::Instant::now() + ASSIGNMENT_TIMEOUT;
        while !assigned.flag.load(Ordering::Acquire) {
            tokio::select! {
                received = self.consumer.recv() => match received {
                    Ok(message) => self.buffered.extend(to_records(&[message], &mut self.topics)),
                    Err(error) => tracing::warn!(cluster = %self.cluster, %error, "while joining the group"),
                },
                _ = assigned.notify.notified() => {}
                _ = tokio::time::sleep_until(deadline) => {
                    tracing::warn!(
                        cluster = %self.cluster,
                        "no partitions assigned after {ASSIGNMENT_TIMEOUT:?}; consuming anyway"
                    );
                    break;
                }
            }
        }
        Ok(())
    }

    async fn assign_all_partitions(
        &mut self,
        topics: &[String],
        reset: OffsetReset,
        times: Option<StartTimes>,
    ) -> Result<()> {
        let (consumer, topics) = (self.consumer.clone(), topics.to_vec());
        let assigned = tokio::task::spawn_blocking(move || {
            assign_all(&consumer, &topics, reset, times.as_ref())
        })
        .await
        .map_err(|e| self.transport_error(e))?;
        assigned.map_err(|e| self.transport_error(e))
    }

    async fn commit_stored(&self) -> Result<()> {
        if !self.in_group || self.stored.is_empty() {
            return Ok(());
        }
        let consumer = self.consumer.clone();
        let committed =
            tokio::task::spawn_blocking(move || consumer.commit_consumer_state(CommitMode::Sync))
                .await
                .map_err(|e| self.transport_error(e))?;
        match committed {
            // Nothing new was stored since the last commit.
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) | Ok(()) => Ok(()),
            Err(error) => Err(self.transport_error(format!("commit failed: {error}"))),
        }
    }
}

#[async_trait]
impl ClusterConsumer for KafkaConsumer {
    async fn poll(&mut self, max_records: usize) -> Result<Vec<Record>> {
        let max_records = max_records.max(1);
        let mut batch: Vec<Record> = Vec::with_capacity(max_records.min(1024));
        while batch.len() < max_records {
            match self.buffered.pop_front() {
                Some(record) => batch.push(record),
                None => break,
            }
        }
        if batch.is_empty() {
            if let Some(fatal) = self.fatal.take() {
                return Err(fatal);
            }
        }
        // One stream for the whole batch: creating one per message costs more than the message.
        let mut stream = self.consumer.stream();
        let mut messages = Vec::new();
        if batch.is_empty() {
            // The only await: cancelling here loses nothing.
            let first = stream.next().await.expect("kafka streams never end");
            match first {
                Ok(message) => messages.push(message),
                Err(error) => {
                    let failed = consumer_error(&self.cluster, &error);
                    if matches!(failed, Error::Fatal { .. }) {
                        return Err(failed);
                    }
                    // Errors queued during an outage come out one per poll, and the loop backs
                    // off after each: take every one already queued now, so that a cluster
                    // that is back is read again at the next poll, not after one backoff per
                    // stale error.
                    loop {
                        match stream.next().now_or_never() {
                            Some(Some(Ok(message))) => {
                                messages.push(message);
                                break;
                            }
                            Some(Some(Err(error))) => {
                                if let fatal @ Error::Fatal { .. } =
                                    consumer_error(&self.cluster, &error)
                                {
                                    return Err(fatal);
                                }
                            }
                            Some(None) | None => return Err(failed),
                        }
                    }
                }
            }
        }
        // Whatever else is already fetched joins the batch, without waiting.
        while batch.len() + messages.len() < max_records {
            match stream.next().now_or_never() {
                Some(Some(Ok(message))) => messages.push(message),
                Some(Some(Err(error))) => {
                    match consumer_error(&self.cluster, &error) {
                        fatal @ Error::Fatal { .. } => self.fatal = Some(fatal),
                        _ => tracing::warn!(cluster = %self.cluster, %error, "consumer error"),
                    }
                    break;
                }
                Some(None) | None => break,
            }
        }
        batch.extend(to_records(&messages, &mut self.topics));
        Ok(batch)
    }

    fn store_offsets(&mut self, records: &[Record]) -> Result<()> {
        if !self.in_group {
            return Ok(());
        }
        let mut next: BTreeMap<TopicPartition, i64> = BTreeMap::new();
        for record in records {
            let offset = next.entry(record.topic_partition()).or_insert(0);
            *offset = (*offset).max(record.offset + 1);
        }
        let mut list = TopicPartitionList::new();
        for (tp, offset) in &next {
            list.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*offset))
                .map_err(|e| self.transport_error(e))?;
        }
        match self.consumer.store_offsets(&list) {
            Ok(()) => {}
            // The partition was revoked meanwhile; its new owner will process from the last
            // commit, which is at-least-once.
            Err(KafkaError::StoreOffset(RDKafkaErrorCode::State)) => {}
            Err(error) => return Err(self.transport_error(format!("store failed: {error}"))),
        }
        self.stored.extend(next);
        Ok(())
    }

    fn pause_at(&mut self, partition: &TopicPartition, offset: i64) -> Result<()> {
        let mut list = TopicPartitionList::new();
        list.add_partition(&partition.topic, partition.partition);
        // Pause first: a seek before a pause is undone by it (librdkafka #3471).
        match self.consumer.pause(&list) {
            Ok(()) => {}
            // Not ours any more: its new owner reads it from the last commit.
            Err(KafkaError::PauseResume(_)) => return Ok(()),
            Err(error) => return Err(self.transport_error(format!("pause failed: {error}"))),
        }
        self.buffered.retain(|record| {
            !(record.topic == partition.topic && record.partition == partition.partition)
        });
        self.consumer
            .seek(
                &partition.topic,
                partition.partition,
                Offset::Offset(offset),
                SEEK_TIMEOUT,
            )
            .map_err(|error| {
                self.transport_error(format!(
                    "cannot rewind {}/{} to offset {offset} for a retry: {error}",
                    partition.topic, partition.partition
                ))
            })
    }

    fn resume(&mut self, partition: &TopicPartition) -> Result<()> {
        let mut list = TopicPartitionList::new();
        list.add_partition(&partition.topic, partition.partition);
        match self.consumer.resume(&list) {
            Ok(()) | Err(KafkaError::PauseResume(_)) => Ok(()),
            Err(error) => Err(self.transport_error(format!("resume failed: {error}"))),
        }
    }

    async fn commit(&mut self) -> Result<()> {
        self.commit_stored().await
    }

    fn assignment(&self) -> Vec<TopicPartition> {
        self.consumer
            .assignment()
            .map(|list| topic_partitions(&list))
            .unwrap_or_default()
    }

    fn rebalances(&self) -> u64 {
        self.consumer
            .context()
            .rebalances
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn membership(&self) -> Membership {
        self.consumer.context().membership.clone()
    }

    fn lag(&self) -> Vec<(TopicPartition, i64)> {
        let Ok(positions) = self.consumer.position() else {
            return Vec::new();
        };
        positions
            .elements()
            .iter()
            .filter_map(|element| {
                let Offset::Offset(position) = element.offset() else {
                    return None; // nothing read yet
                };
                let high =
                    cached_high_watermark(&self.consumer, element.topic(), element.partition())?;
                Some((
                    TopicPartition::new(element.topic(), element.partition()),
                    (high - position).max(0),
                ))
            })
            .collect()
    }

    async fn close(self: Box<Self>) -> Result<()> {
        let committed = self.commit_stored().await;
        if !self.in_group {
            // A group member hears of it from its group as it leaves (`rebalance.rs`).
            let membership = &self.consumer.context().membership;
            membership.changed(PartitionsChange::Revoked(self.assignment()));
        }
        let consumer = self.consumer.clone();
        drop(self);
        // Dropping the last handle closes the consumer (leaving the group), which blocks.
        tokio::task::spawn_blocking(move || {
            consumer.unsubscribe();
            drop(consumer);
        })
        .await
        .map_err(|e| Error::Transport {
            cluster: String::new(),
            message: e.to_string(),
        })?;
        committed
    }
}

/// MirrorMaker 2's translated offsets for a consumer taking over from another cluster, read
/// on the blocking pool (`checkpoints.rs`).
async fn translated_offsets_of(
    id: &ClusterId,
    config: &rdkafka::ClientConfig,
    group: &str,
    topics: &[String],
) -> BTreeMap<TopicPartition, i64> {
    let (config, owned_group, topics) = (config.clone(), group.to_owned(), topics.to_vec());
    let translated =
        tokio::task::spawn_blocking(move || translated_offsets(&config, &owned_group, &topics))
            .await
            .unwrap_or_default();
    if !translated.is_empty() {
        tracing::info!(
            target: "fastkafka::failover",
            "group '{group}' starts {} partition(s) on {id} at MirrorMaker 2's translated offsets",
            translated.len()
        );
    }
    translated
}

/// What a consumer's error means: [`Error::Fatal`] when retrying cannot help — librdkafka
/// says so (e.g. fenced by a newer member with the same `group.instance.id`), or the cluster
/// refused the client's credentials or permissions — else a [`Error::Transport`] to retry.
fn consumer_error(cluster: &ClusterId, error: &KafkaError) -> Error {
    let fatal = match error {
        KafkaError::MessageConsumptionFatal(_) => true,
        KafkaError::MessageConsumption(code) => matches!(
            code,
            RDKafkaErrorCode::Fatal
                | RDKafkaErrorCode::Authentication
                | RDKafkaErrorCode::SaslAuthenticationFailed
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::GroupAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed
                | RDKafkaErrorCode::FencedInstanceId
        ),
        _ => false,
    };
    let message = format!("poll failed: {error}");
    if fatal {
        Error::Fatal {
            cluster: cluster.to_string(),
            message,
        }
    } else {
        Error::Transport {
            cluster: cluster.to_string(),
            message,
        }
    }
}
