//! The batches a consumer loop handled whose outputs are still on their way: their offsets are
//! stored in batch order once everything they produced is acknowledged, and a batch whose
//! outputs failed is handled again, with backoff, until they are delivered.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{handle_batch, BatchHandler, ConsumerLoopConfig};
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
    /// Polling goes on; `stored`: offsets were stored.
    GoOn { stored: bool },
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
    stop_requested: &mut watch::Receiver<bool>,
) -> Result<Progress> {
    let mut stored = false;
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
            match redeliver(oldest, error, handler, config, stop_requested).await? {
                Progress::Stopped => return Ok(Progress::Stopped),
                Progress::GoOn { .. } => {}
            }
        }
        let delivered = awaiting.pop_front().expect("the oldest is there");
        consumer.store_offsets(&delivered.batch)?;
        stored = true;
    }
    Ok(Progress::GoOn { stored })
}

/// Handles `failed`'s batch again until everything it produces is delivered, waiting
/// longer between attempts while the failures go on; logs when it starts and when it is
/// over. Returns `Stopped` if stop is asked meanwhile (the batch is then not committed).
async fn redeliver<H: BatchHandler>(
    failed: &mut AwaitingDelivery,
    error: Error,
    handler: &mut H,
    config: &ConsumerLoopConfig,
    stop_requested: &mut watch::Receiver<bool>,
) -> Result<Progress> {
    let first = &failed.batch[0];
    let mut pause = FIRST_REDELIVERY;
    tracing::warn!(
        %error,
        "{}: what the handler produced for a batch of {} record(s) (first topic={} \
         partition={} offset={}) was not delivered; nothing of it is committed, and it is \
         handled again in {pause:?}, then with backoff up to {LAST_REDELIVERY:?}, until it is",
        config.name,
        failed.batch.len(),
        first.topic,
        first.partition,
        first.offset,
    );
    let mut attempts = 1_u64;
    loop {
        tokio::select! {
            biased;
            _ = stop_requested.wait_for(|stop| *stop) => return Ok(Progress::Stopped),
            () = tokio::time::sleep(pause) => {}
        }
        attempts += 1;
        let tracker = DeliveryTracker::new();
        crate::delivery::tracking(
            tracker.clone(),
            handle_batch(handler, &failed.batch, config),
        )
        .await?;
        tokio::select! {
            biased;
            _ = stop_requested.wait_for(|stop| *stop) => return Ok(Progress::Stopped),
            () = tracker.settled() => {}
        }
        match tracker.outcome() {
            Ok(()) => {
                tracing::info!(
                    "{}: the batch at topic={} partition={} offset={} was delivered on attempt \
                     {attempts}; going on",
                    config.name,
                    failed.batch[0].topic,
                    failed.batch[0].partition,
                    failed.batch[0].offset,
                );
                failed.tracker = tracker;
                return Ok(Progress::GoOn { stored: false });
            }
            Err(error) => {
                tracing::debug!(%error, "{}: attempt {attempts} not delivered either", config.name);
                pause = (pause * 2).min(LAST_REDELIVERY);
            }
        }
    }
}
