//! One record onto a producer client's queue ([`enqueue_record`]), and what becomes of one that
//! will not be delivered ([`report_undelivered`]): shared by the cluster's direct sends, its
//! send lane and its delivery reports.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{BaseProducer, BaseRecord};

use super::reports::DeliveryReporter;
use crate::config::ClusterId;
use crate::delivery::DeliveryTracker;
use crate::error::Error;
use crate::metrics::ClusterProducerMetrics;
use crate::record::OutgoingRecord;
use crate::transport::undelivered::Undelivered;

/// Puts one record on `producer`'s queue; its delivery report settles it in `tracker` (where
/// the caller counted it).
pub(super) fn enqueue_record(
    producer: &BaseProducer<DeliveryReporter>,
    topic: &str,
    record: &OutgoingRecord,
    tracker: Arc<DeliveryTracker>,
) -> std::result::Result<(), KafkaError> {
    let headers = (!record.headers.is_empty()).then(|| {
        record
            .headers
            .iter()
            .fold(OwnedHeaders::new(), |headers, (name, value)| {
                headers.insert(rdkafka::message::Header {
                    key: name,
                    value: value.as_deref(),
                })
            })
    });
    let mut pending =
        BaseRecord::<[u8], [u8], Arc<DeliveryTracker>>::with_opaque_to(topic, tracker);
    if let Some(value) = &record.value {
        pending = pending.payload(&value[..]);
    }
    if let Some(key) = &record.key {
        pending = pending.key(&key[..]);
    }
    if let Some(headers) = headers {
        pending = pending.headers(headers);
    }
    producer.send(pending).map_err(|(error, _)| error)
}

/// A record that will not reach `cluster`, sent `sent_ago` before now: logged with its topic,
/// counted, and failed in its tracker (so the batch that produced it is handled again).
pub(super) fn report_undelivered(
    cluster: &ClusterId,
    undelivered: &Undelivered,
    metrics: Option<&ClusterProducerMetrics>,
    topic: &str,
    error: &dyn fmt::Display,
    sent_ago: Duration,
    tracker: &DeliveryTracker,
) {
    if let Some(metrics) = metrics {
        metrics.failed(topic, 1);
    }
    undelivered.failed(topic, 1, error, sent_ago);
    tracker.failed(Error::Transport {
        cluster: cluster.to_string(),
        message: format!("record to '{topic}' not delivered: {error}"),
    });
}

pub(super) fn is_queue_full(error: &KafkaError) -> bool {
    matches!(
        error,
        KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)
    )
}
