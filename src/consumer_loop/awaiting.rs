//! The batches a consumer loop handled whose outputs are still on their way: their offsets are
//! stored in batch order once everything they produced is acknowledged. A batch whose outputs
//! failed is not stored: its partitions pause and are rewound to it, with backoff, so that it
//! is read and handled again — other partitions going on — until its outputs are delivered;
//! a consumer with a dead-letter topic dead-letters it instead once its retry policy's
//! attempts (one without a policy) are used up. And the periodic commit of what was stored.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::dead_letters::dead_letter_undelivered;
use super::failures::{redelivery_backoff, Attempts, Rewind, LAST_REDELIVERY};
use super::handling::is_rewound;
use super::state::LoopState;
use super::ConsumerLoopConfig;
use crate::delivery::DeliveryTracker;
use crate::error::{Error, Result};
use crate::record::{Record, TopicPartition};
use crate::transport::ClusterConsumer;

/// How much handled input may await its outputs' acknowledgements while the loop polls on:
/// records, whatever the size of the handler's calls, and the bytes of their payloads, which
/// the loop keeps until they are stored
/// ([`ConsumerLoopConfig::max_records_awaiting_delivery`] and `max_bytes_awaiting_delivery`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Window {
    pub(super) records: usize,
    pub(super) bytes: usize,
}

impl Window {
    /// No room: at stop, every batch is waited for.
    pub(super) const CLOSED: Window = Window {
        records: 0,
        bytes: 0,
    };

    pub(super) fn of(config: &ConsumerLoopConfig) -> Self {
        Self {
            records: config.max_records_awaiting_delivery,
            bytes: config.max_bytes_awaiting_delivery,
        }
    }
}

/// The handled batches whose outputs may still be on their way, oldest first, with how many
/// records and payload bytes they hold.
#[derive(Default)]
pub(super) struct Awaiting {
    batches: VecDeque<AwaitingDelivery>,
    records: usize,
    bytes: usize,
}

/// The bytes of `records`' keys and values.
fn payload_bytes<'a>(records: impl IntoIterator<Item = &'a Record>) -> usize {
    let len = |bytes: &Option<bytes::Bytes>| bytes.as_ref().map_or(0, bytes::Bytes::len);
    records
        .into_iter()
        .map(|record| len(&record.key) + len(&record.value))
        .sum()
}

impl Awaiting {
    pub(super) fn push_back(&mut self, batch: AwaitingDelivery) {
        self.count_in(&batch);
        self.batches.push_back(batch);
    }

    fn push_front(&mut self, batch: AwaitingDelivery) {
        self.count_in(&batch);
        self.batches.push_front(batch);
    }

    fn count_in(&mut self, batch: &AwaitingDelivery) {
        self.records += batch.batch.len();
        self.bytes += payload_bytes(&batch.batch);
    }

    fn pop_front(&mut self) -> Option<AwaitingDelivery> {
        let oldest = self.batches.pop_front()?;
        self.records -= oldest.batch.len();
        self.bytes -= payload_bytes(&oldest.batch);
        Some(oldest)
    }

    /// Whether they hold more than `window` allows.
    fn exceed(&self, window: Window) -> bool {
        self.records > window.records || self.bytes > window.bytes
    }

    pub(super) fn front(&self) -> Option<&AwaitingDelivery> {
        self.batches.front()
    }

    /// How many batches await (for log lines).
    pub(super) fn batches(&self) -> usize {
        self.batches.len()
    }

    /// How many records they hold.
    pub(super) fn records(&self) -> usize {
        self.records
    }

    pub(super) fn iter_records(&self) -> impl Iterator<Item = &Record> {
        self.batches.iter().flat_map(|awaiting| &awaiting.batch)
    }

    /// Drops from every batch the records `forget` picks.
    fn forget(&mut self, forget: impl Fn(&Record) -> bool) {
        for awaiting in &mut self.batches {
            self.records -= awaiting.batch.len();
            self.bytes -= payload_bytes(&awaiting.batch);
            awaiting.batch.retain(|record| !forget(record));
            self.records += awaiting.batch.len();
            self.bytes += payload_bytes(&awaiting.batch);
        }
    }
}

/// A handled batch whose outputs may still be on their way to their clusters.
pub(super) struct AwaitingDelivery {
    pub(super) batch: Vec<Record>,
    pub(super) tracker: Arc<DeliveryTracker>,
    /// What is awaited are the batch's dead letters (its outputs had failed): if they fail
    /// too, the batch is read again after a backoff, not dead-lettered again at once.
    pub(super) dead_lettered: bool,
}

pub(super) enum Progress {
    /// Polling goes on; `stored`: offsets were stored; `rewinds`: partitions to pause and
    /// read again (their outputs were not delivered).
    GoOn { stored: bool, rewinds: Vec<Rewind> },
    /// Stop was asked while waiting.
    Stopped,
}

/// Stores, oldest first, the offsets of the awaiting batches whose outputs are all delivered,
/// and stops at the first one still waiting — after waiting for it while they hold more than
/// `window` allows.
/// A batch whose delivery failed is rewound (see the module docs): neither its offsets nor
/// any later batch's of the same partitions are stored.
pub(super) async fn store_delivered(
    state: &mut LoopState,
    window: Window,
    config: &ConsumerLoopConfig,
    stop_requested: &mut watch::Receiver<bool>,
) -> Result<Progress> {
    let LoopState {
        awaiting,
        consumer,
        undelivered,
        ..
    } = state;
    let mut stored = false;
    let mut rewinds = Vec::new();
    // No room ([`Window::CLOSED`]) is the stop's final wait: a stop asked meanwhile is the one
    // under way, not a reason to leave.
    let stopping = window.records == 0;
    loop {
        let over = awaiting.exceed(window);
        let Some(oldest) = awaiting.front() else {
            break;
        };
        if !oldest.tracker.is_settled() {
            if !over {
                break;
            }
            tokio::select! {
                biased;
                _ = stop_requested.wait_for(|stop| *stop), if !stopping => {
                    return Ok(Progress::Stopped)
                }
                () = oldest.tracker.settled() => {}
            }
        }
        let delivered = awaiting.pop_front().expect("the oldest is there");
        match delivered.tracker.outcome() {
            Ok(()) => {
                report_recovery(config, undelivered, &delivered.batch);
                if !delivered.batch.is_empty() {
                    consumer.store_offsets(&delivered.batch)?;
                    stored = true;
                    if let Some(metrics) = &config.metrics {
                        metrics.set_stored(&delivered.batch);
                    }
                }
            }
            // Stopping: nothing more is tried; the next run reads the batch again.
            Err(_) if stopping && *stop_requested.borrow() => break,
            Err(error) => {
                let Some(first) = delivered.batch.first() else {
                    continue;
                };
                let attempt = undelivered.failed(first);
                let dead_letter_after = config
                    .failures
                    .dead_letter
                    .as_ref()
                    .map(|_| config.failures.retry.map_or(1, |policy| policy.attempts));
                if !delivered.dead_lettered
                    && dead_letter_after.is_some_and(|limit| attempt >= limit)
                {
                    let tracker = DeliveryTracker::new();
                    crate::delivery::tracking(
                        tracker.clone(),
                        dead_letter_undelivered(config, &delivered.batch, &error, attempt),
                    )
                    .await?;
                    if let Some(metrics) = &config.metrics {
                        metrics.record_dead_lettered(delivered.batch.len() as u64);
                    }
                    // Stored like any batch once the dead letters are acknowledged; the count
                    // of attempts is forgotten then (report_recovery), not before: letters
                    // that fail hold the input back with the backoff of its attempts.
                    awaiting.push_front(AwaitingDelivery {
                        batch: delivered.batch,
                        tracker,
                        dead_lettered: true,
                    });
                    continue;
                }
                let backoff = redelivery_backoff(attempt);
                let rewound = rewind(awaiting, &delivered.batch, backoff);
                log_undelivered(config, &delivered.batch, &error, attempt, backoff, &rewound);
                rewinds.extend(rewound);
            }
        }
    }
    Ok(Progress::GoOn { stored, rewinds })
}

/// Rewinds each partition of `failed` to its first offset there, and drops those partitions'
/// records from the later awaiting batches: they are read and handled again after `backoff`.
fn rewind(awaiting: &mut Awaiting, failed: &[Record], backoff: Duration) -> Vec<Rewind> {
    let mut rewinds: Vec<Rewind> = Vec::new();
    for record in failed {
        let partition = record.topic_partition();
        match rewinds.iter_mut().find(|r| r.partition == partition) {
            Some(known) => known.offset = known.offset.min(record.offset),
            None => rewinds.push(Rewind {
                partition,
                offset: record.offset,
                backoff,
            }),
        }
    }
    // Later batches hold only later offsets of these partitions: all of them go.
    awaiting.forget(|record| is_rewound(&rewinds, record));
    rewinds
}

/// One warning when a batch's outputs start failing, debug lines while they go on.
fn log_undelivered(
    config: &ConsumerLoopConfig,
    batch: &[Record],
    error: &Error,
    attempt: u32,
    backoff: Duration,
    rewound: &[Rewind],
) {
    let first = &batch[0];
    let partitions: Vec<String> = rewound
        .iter()
        .map(|r| {
            format!(
                "{}/{}@{}",
                r.partition.topic, r.partition.partition, r.offset
            )
        })
        .collect();
    if attempt == 1 {
        tracing::warn!(
            target: "fastkafka::consumer",
            %error,
            "{}: what the handler produced for a batch of {} record(s) (first topic={} \
             partition={} offset={}) was not delivered; nothing of it is committed: its \
             partitions ({}) pause and are read and handled again in {backoff:?}, then with \
             backoff up to {LAST_REDELIVERY:?}, until it is{}",
            config.name,
            batch.len(),
            first.topic,
            first.partition,
            first.offset,
            partitions.join(", "),
            if config.failures.dead_letter.is_some() {
                " or the retry policy's attempts are used up (then it is dead-lettered)"
            } else {
                ""
            },
        );
    } else {
        tracing::debug!(
            %error,
            "{}: attempt {attempt} not delivered either; again in {backoff:?}",
            config.name
        );
    }
}

/// Logs, once, that a partition whose outputs had failed is delivered again.
fn report_recovery(config: &ConsumerLoopConfig, undelivered: &mut Attempts, batch: &[Record]) {
    // Every record is looked up, not only each partition's first: a batch read again after a
    // rewind may start elsewhere than the one that failed, and a count left behind would keep
    // the loop handing over one partition per call for good.
    let mut reported: Vec<TopicPartition> = Vec::new();
    for record in batch {
        if undelivered.is_empty() {
            return;
        }
        let Some(failed) = undelivered.processed(record) else {
            continue;
        };
        let partition = record.topic_partition();
        if reported.contains(&partition) {
            continue;
        }
        reported.push(partition);
        tracing::info!(
            target: "fastkafka::consumer",
            "{}: topic={} partition={} offset={} delivered after {failed} failed attempt(s); \
             going on",
            config.name,
            record.topic,
            record.partition,
            record.offset,
        );
    }
}

/// Commits what the consumer stored; a failure is logged and retried at the next interval.
pub(super) async fn commit_stored(
    consumer: &mut dyn ClusterConsumer,
    config: &ConsumerLoopConfig,
) -> bool {
    match consumer.commit().await {
        Ok(()) => {
            if let Some(metrics) = &config.metrics {
                metrics.set_committed();
            }
            true
        }
        Err(error) => {
            tracing::warn!(%error, "periodic commit failed; will retry");
            false
        }
    }
}
