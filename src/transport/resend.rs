//! [`resend`]: records one cluster took and can no longer deliver (a lost primary's, a cluster
//! taken down in a test) sent on to another, in the delivery trackers they were first counted
//! in — shared by the Kafka redirect of a failover and the in-memory broker's outages.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Cluster, QUEUE_FULL_TIMEOUT};
use crate::delivery::DeliveryTracker;
use crate::record::OutgoingRecord;

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
