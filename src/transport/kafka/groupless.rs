//! A consumer without a group (FastKafka's `group_id=None`): assigned every partition of its
//! topics, each starting where `auto_offset_reset` says — or, taking over from another cluster,
//! at the first record from its start time — resolved before the assignment.

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Offset, TopicPartitionList};

use super::rebalance::RebalanceCommitter;
use super::BLOCKING_CALL_TIMEOUT;
use crate::record::TopicPartition;
use crate::transport::{OffsetReset, StartTimes};

/// Assigns `consumer` every partition of `topics`. Blocks: run it on tokio's blocking pool.
pub(super) fn assign_all(
    consumer: &StreamConsumer<RebalanceCommitter>,
    topics: &[String],
    reset: OffsetReset,
    times: Option<&StartTimes>,
) -> Result<(), String> {
    // Each partition's start is resolved now, all in one request per broker: a logical
    // start ("earliest") left to the client is resolved partition by partition, and
    // each partition starts fetching only once its own answer is back — on a broker
    // that holds fetches, a partition resolved late waits a whole fetch more. "Latest"
    // fixed now also means that a record produced after `subscribe` returned is
    // always seen.
    let mut wanted = TopicPartitionList::new();
    for topic in topics {
        let metadata = consumer
            .client()
            .fetch_metadata(Some(topic), BLOCKING_CALL_TIMEOUT)
            .map_err(|e| format!("no metadata for topic '{topic}': {e}"))?;
        let partitions = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .map(|t| t.partitions().len())
            .unwrap_or(0);
        if partitions == 0 {
            return Err(format!(
                "topic '{topic}' does not exist (or has no partitions); create it first"
            ));
        }
        // ListOffsets reads -2 as "the earliest offset", -1 as "the latest".
        let start = match reset {
            OffsetReset::Earliest => Offset::Beginning,
            OffsetReset::Latest => Offset::End,
        };
        for partition in 0..partitions as i32 {
            let start = times
                .and_then(|times| times.of(&TopicPartition::new(topic.as_str(), partition)))
                .map_or(start, Offset::Offset);
            wanted
                .add_partition_offset(topic, partition, start)
                .map_err(|e| e.to_string())?;
        }
    }
    let resolved = consumer
        .offsets_for_times(wanted, BLOCKING_CALL_TIMEOUT)
        .map_err(|e| format!("no start offsets for {topics:?}: {e}"))?;
    for mut element in resolved.elements() {
        let (topic, partition) = (element.topic().to_owned(), element.partition());
        if let Err(error) = element.error() {
            return Err(format!(
                "no start offset for '{topic}' [{partition}]: {error}"
            ));
        }
        let by_time = times.is_some_and(|times| {
            times
                .of(&TopicPartition::new(topic.as_str(), partition))
                .is_some()
        });
        match (element.offset(), reset) {
            (Offset::Offset(_), _) => {}
            // No record from the time on: everything there is older, start after it.
            _ if by_time => {
                element.set_offset(Offset::End).map_err(|e| e.to_string())?;
            }
            // No concrete answer: the client resolves "earliest" itself when fetching.
            (_, OffsetReset::Earliest) => {
                element
                    .set_offset(Offset::Beginning)
                    .map_err(|e| e.to_string())?;
            }
            (answer, OffsetReset::Latest) => {
                return Err(format!(
                    "no latest offset for '{topic}' [{partition}]: the cluster answered \
                     {answer:?}"
                ));
            }
        }
    }
    consumer.assign(&resolved).map_err(|e| e.to_string())
}
