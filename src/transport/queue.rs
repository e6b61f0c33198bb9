//! Putting records on a client's queue, which may be full: at once, giving back what did not
//! fit ([`try_produce_in_batch`]), or waiting asynchronously for room ([`produce_when_room`]).
//! Every send counts in the delivery tracker of the batch it was made for, and a refusal fails
//! that tracker too: for that batch a refused send is a delivery failure, whatever the handler
//! does with the error. Both facades send through here.

use std::sync::Arc;
use std::time::Duration;

use super::Cluster;
use crate::delivery::DeliveryTracker;
use crate::error::{Error, Result};
use crate::record::OutgoingRecord;

/// How long [`produce_when_room`] waits for room in a full client queue before failing.
pub const QUEUE_FULL_TIMEOUT: Duration = Duration::from_secs(30);

/// Hands `records` to `cluster`'s client without waiting, counting each taken record in
/// `tracker`; returns what a full queue did not take. A refusal (the record is too large, the
/// topic unknown, the producer closed) fails `tracker` as well as the call: for the batch it
/// was sent for, a refused send is a delivery failure, whatever the handler does with the
/// error. Both facades send through this and [`try_produce_one_in_batch`].
pub fn try_produce_in_batch(
    cluster: &dyn Cluster,
    topic: &str,
    records: Vec<OutgoingRecord>,
    tracker: Option<&Arc<DeliveryTracker>>,
) -> Result<Vec<OutgoingRecord>> {
    refused_for(
        tracker,
        cluster.try_produce_tracked(topic, records, tracker),
    )
}

/// [`try_produce_in_batch`] for one record: `Some(record)` back when the client queue is full.
pub fn try_produce_one_in_batch(
    cluster: &dyn Cluster,
    topic: &str,
    record: OutgoingRecord,
    tracker: Option<&Arc<DeliveryTracker>>,
) -> Result<Option<OutgoingRecord>> {
    refused_for(tracker, cluster.try_produce_one(topic, record, tracker))
}

pub(crate) fn refused_for<T>(
    tracker: Option<&Arc<DeliveryTracker>>,
    result: Result<T>,
) -> Result<T> {
    if let (Err(error), Some(tracker)) = (&result, tracker) {
        tracker.refused(error.clone());
    }
    result
}

/// Produces `records` in order, waiting asynchronously — never blocking a thread — while the
/// client queue is full: this is how a producer call *awaits* backpressure. Fails if the
/// queue stays full for [`QUEUE_FULL_TIMEOUT`].
///
/// Each record taken is counted in `tracker` (the producing batch's, see [`crate::delivery`]);
/// a failure fails `tracker` too, as [`try_produce_in_batch`] says.
pub async fn produce_when_room(
    cluster: &dyn Cluster,
    topic: &str,
    records: Vec<OutgoingRecord>,
    tracker: Option<&Arc<DeliveryTracker>>,
) -> Result<()> {
    refused_for(
        tracker,
        produce_when_room_untracked_failure(cluster, topic, records, tracker).await,
    )
}

async fn produce_when_room_untracked_failure(
    cluster: &dyn Cluster,
    topic: &str,
    mut records: Vec<OutgoingRecord>,
    tracker: Option<&Arc<DeliveryTracker>>,
) -> Result<()> {
    records = cluster.try_produce_tracked(topic, records, tracker)?;
    if records.is_empty() {
        return Ok(()); // the common case, without reading the clock
    }
    let deadline = tokio::time::Instant::now() + QUEUE_FULL_TIMEOUT;
    let mut pause = Duration::from_millis(1);
    loop {
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::Transport {
                cluster: cluster.id().to_string(),
                message: format!(
                    "cannot send to '{topic}': the producer queue stayed full for \
                     {QUEUE_FULL_TIMEOUT:?}"
                ),
            });
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
        records = cluster.try_produce_tracked(topic, records, tracker)?;
        if records.is_empty() {
            return Ok(());
        }
    }
}
