//! The batches a consumer loop handled whose outputs are still on their way: their offsets are
//! stored in batch order once everything they produced is acknowledged, and a batch whose
//! outputs failed is handled again, with backoff, until they are delivered — or, for a
//! consumer with a dead-letter topic, dead-lettered once its retry policy's attempts (one
//! without a policy) are used up.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::failures::{dead_letter_undelivered, handle_polled, Attempts, Rewind};
use super::{BatchHandler, ConsumerLoopConfig};
use crate::delivery::DeliveryTracker;
use crate::error::{Error, Result};
use crate::record::Record;
use crate::transport::ClusterConsumer;

/// The wait before handling again a batch whose outputs were not delivered, doubling up to
/// [`LAST_REDELIVERY`] while deliveries keep failing.
const FIRST_REDELIVERY: Duration = Duration::from_millis(100);
const LAST_REDELIVERY: Duration = Duration::from_secs(30);

/// A handled batch whose outputs may still be on their way to their clusters.
pub(super) struct AwaitingDelivery {
    pub(super) batch: Vec<Record>,
    pub(super) tracker: Arc<DeliveryTracker>,
}

pub(super) enum Progress {
    /// Polling goes on; `stored`: offsets were stored; `rewinds`: partitions to pause for a
    /// retry (handling a batch again met a handler failure to retry).
    GoOn { stored: bool, rewinds: Vec<Rewind> },
    /// Stop was asked while waiting.
    Stopped,
}

/// Stores, oldest first, the offsets of the awaiting batches whose outputs are all delivered,
/// and stops at the first one still waiting — after waiting for it if more than `keep` are.
/// A batch whose delivery failed is handled again, with backoff, until everything it
/// produces is delivered: its offsets are never stored before, nor any later batch's.
pub(super) async fn store_delivered<H: BatchHandler>(
    awaiting: &mut VecDeque<AwaitingDelivery>,
    keep: usize,
    consumer: &mut dyn ClusterConsumer,
    handler: &mut H,
    config: &ConsumerLoopConfig,
    attempts: &mut Attempts,
    stop_requested: &mut watch::Receiver<bool>,
) -> Result<Progress> {
    let mut stored = false;
    let mut rewinds = Vec::new();
    loop {
        let waiting = awaiting.len();
        let Some(oldest) = awaiting.front_mut() else {
            break;
        };
        if !oldest.tracker.is_settled() {
            if waiting <= keep {
                break;
            }
            tokio::select! {
                biased;
                _ = stop_requested.wait_for(|stop| *stop), if keep > 0 => {
                    return Ok(Progress::Stopped)
                }
                () = oldest.tracker.settled() => {}
            }
        }
        if let Err(error) = oldest.tracker.outcome() {
            if keep == 0 && *stop_requested.borrow() {
                break; // stopping: no more attempts
            }
            match redeliver(oldest, error, handler, config, attempts, stop_requested).await? {
                Progress::Stopped => return Ok(Progress::Stopped),
                Progress::GoOn { rewinds: again, .. } => rewinds.extend(again),
            }
        }
        let delivered = awaiting.pop_front().expect("the oldest is there");
        if !delivered.batch.is_empty() {
            consumer.store_offsets(&delivered.batch)?;
            stored = true;
        }
    }
    Ok(Progress::GoOn { stored, rewinds })
}

/// Handles `failed`'s batch again until everything it produces is delivered, waiting
/// longer between attempts while the failures go on; logs when it starts and when it is
/// over. With a dead-letter topic, the batch is dead-lettered instead once the retry policy's
/// attempts are used up. Returns `Stopped` if stop is asked meanwhile (the batch is then not
/// committed).
async fn redeliver<H: BatchHandler>(
    failed: &mut AwaitingDelivery,
    mut error: Error,
    handler: &mut H,
    config: &ConsumerLoopConfig,
    attempts: &mut Attempts,
    stop_requested: &mut watch::Receiver<bool>,
) -> Result<Progress> {
    let first = &failed.batch[0];
    let mut pause = FIRST_REDELIVERY;
    let dead_letter_after = config
        .failures
        .dead_letter
        .as_ref()
        .map(|_| config.failures.retry.map_or(1, |policy| policy.attempts));
    tracing::warn!(
        %error,
        "{}: what the handler produced for a batch of {} record(s) (first topic={} \
         partition={} offset={}) was not delivered; nothing of it is committed, and it is \
         handled again in {pause:?}, then with backoff up to {LAST_REDELIVERY:?}, until it is{}",
        config.name,
        failed.batch.len(),
        first.topic,
        first.partition,
        first.offset,
        match dead_letter_after {
            Some(limit) => format!(" or {limit} attempt(s) are used up (then it is dead-lettered)"),
            None => String::new(),
        },
    );
    let mut attempt = 1_u32;
    let mut dead_letter_tried = false;
    let mut rewinds = Vec::new();
    loop {
        let dead_lettering = dead_letter_after.is_some_and(|limit| attempt >= limit);
        // Dead-lettering starts at once; anything tried again (a dead-letter write too) waits.
        if !dead_lettering || dead_letter_tried {
            tokio::select! {
                biased;
                _ = stop_requested.wait_for(|stop| *stop) => return Ok(Progress::Stopped),
                () = tokio::time::sleep(pause) => {}
            }
        }
        let tracker = DeliveryTracker::new();
        if dead_lettering {
            dead_letter_tried = true;
            crate::delivery::tracking(
                tracker.clone(),
                dead_letter_undelivered(config, &failed.batch, &error, attempt),
            )
            .await?;
        } else {
            attempt += 1;
            let outcome = crate::delivery::tracking(
                tracker.clone(),
                handle_polled(handler, &failed.batch, config, attempts),
            )
            .await?;
            rewinds.extend(outcome.rewinds);
            failed.batch = outcome.done;
        }
        tokio::select! {
            biased;
            _ = stop_requested.wait_for(|stop| *stop) => return Ok(Progress::Stopped),
            () = tracker.settled() => {}
        }
        match tracker.outcome() {
            Ok(()) => {
                tracing::info!(
                    "{}: the batch at topic={} partition={} offset={} is done after attempt \
                     {attempt}; going on",
                    config.name,
                    first_topic(failed),
                    failed.batch.first().map_or(-1, |r| r.partition as i64),
                    failed.batch.first().map_or(-1, |r| r.offset),
                );
                failed.tracker = tracker;
                return Ok(Progress::GoOn {
                    stored: false,
                    rewinds,
                });
            }
            Err(again) => {
                tracing::debug!(error = %again, "{}: attempt {attempt} not delivered either", config.name);
                error = again;
                pause = (pause * 2).min(LAST_REDELIVERY);
            }
        }
    }
}

fn first_topic(awaiting: &AwaitingDelivery) -> &str {
    awaiting.batch.first().map_or("-", |record| &record.topic)
}
