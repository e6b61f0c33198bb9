//! MirrorMaker 2's translated offsets: where a group's consumers start on a standby that MM2
//! keeps in step ([`crate::transport::failover`]).
//!
//! MM2's checkpoint connector writes, to `<source alias>.checkpoints.internal` on the target
//! cluster, one record per (group, topic, partition) it translated: the key is
//! `group: string, topic: string, partition: int32`, the value `version: int16,
//! upstreamOffset: int64, offset: int64, metadata: string` (Kafka's protocol types: big-endian
//! integers, strings as an int16 length and UTF-8). `offset` is the position on the target
//! that covers everything the group had committed upstream. The latest record of a key wins.
//! Topics are named as on the target: with MM2's identity replication policy, the same names.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::record::TopicPartition;

/// The suffix of MM2's checkpoints topics.
const CHECKPOINTS_SUFFIX: &str = ".checkpoints.internal";

/// How long reading the checkpoints may take in all.
const READ_WITHIN: Duration = Duration::from_secs(10);

/// The offsets MM2 translated for `group`'s partitions of `topics` on the cluster `config`
/// reaches (read by an assigned client that never joins `config`'s group). Empty when the
/// cluster has no checkpoints topic, or on any error (logged): the consumer then starts by
/// time. Blocks: run it on tokio's blocking pool.
pub(super) fn translated_offsets(
    config: &ClientConfig,
    group: &str,
    topics: &[String],
) -> BTreeMap<TopicPartition, i64> {
    match read(config, group, topics) {
        Ok(translated) => translated,
        Err(error) => {
            tracing::warn!(
                target: "fastkafka::failover",
                "could not read MirrorMaker 2's checkpoints for group '{group}': {error}; \
                 partitions start by time"
            );
            BTreeMap::new()
        }
    }
}

fn read(
    config: &ClientConfig,
    group: &str,
    topics: &[String],
) -> Result<BTreeMap<TopicPartition, i64>, String> {
    let mut config = config.clone();
    // librdkafka wants a group id even for a client that is assigned: one it never joins.
    config.set("group.id", super::standalone_group_id());
    config.remove("group.instance.id");
    let reader: BaseConsumer = config.create().map_err(|e| e.to_string())?;
    let deadline = Instant::now() + READ_WITHIN;
    let metadata = reader
        .fetch_metadata(None, READ_WITHIN)
        .map_err(|e| e.to_string())?;
    let mut wanted = TopicPartitionList::new();
    let mut ends = BTreeMap::new();
    for topic in metadata.topics() {
        if !topic.name().ends_with(CHECKPOINTS_SUFFIX) {
            continue;
        }
        for partition in topic.partitions() {
            let (low, high) = reader
                .fetch_watermarks(topic.name(), partition.id(), READ_WITHIN)
                .map_err(|e| e.to_string())?;
            if high > low {
                wanted
                    .add_partition_offset(topic.name(), partition.id(), Offset::Offset(low))
                    .map_err(|e| e.to_string())?;
                ends.insert((topic.name().to_owned(), partition.id()), high);
            }
        }
    }
    let mut translated = BTreeMap::new();
    if ends.is_empty() {
        return Ok(translated);
    }
    reader.assign(&wanted).map_err(|e| e.to_string())?;
    while !ends.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("not read to its end within {READ_WITHIN:?}"));
        }
        let Some(polled) = reader.poll(left.min(Duration::from_millis(200))) else {
            continue;
        };
        let message = polled.map_err(|e| e.to_string())?;
        let position = (message.topic().to_owned(), message.partition());
        if ends
            .get(&position)
            .is_some_and(|end| message.offset() + 1 >= *end)
        {
            ends.remove(&position);
        }
        let (Some(key), Some(value)) = (message.key(), message.payload()) else {
            continue;
        };
        if let Some(checkpoint) = Checkpoint::decode(key, value) {
            if checkpoint.group == group && topics.contains(&checkpoint.topic) {
                let partition = TopicPartition::new(checkpoint.topic, checkpoint.partition);
                translated.insert(partition, checkpoint.offset);
            }
        }
    }
    Ok(translated)
}

/// One checkpoint record.
#[derive(Debug, PartialEq, Eq)]
struct Checkpoint {
    group: String,
    topic: String,
    partition: i32,
    /// The translated offset on the target.
    offset: i64,
}

impl Checkpoint {
    fn decode(key: &[u8], value: &[u8]) -> Option<Self> {
        let mut key = Reader(key);
        let (group, topic, partition) = (key.string()?, key.string()?, key.i32()?);
        let mut value = Reader(value);
        let _version = value.i16()?;
        let _upstream = value.i64()?;
        let offset = value.i64()?;
        Some(Self {
            group,
            topic,
            partition,
            offset,
        })
    }
}

/// Reads Kafka's protocol types from the front of a byte slice.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }

    fn i16(&mut self) -> Option<i16> {
        self.take().map(i16::from_be_bytes)
    }

    fn i32(&mut self) -> Option<i32> {
        self.take().map(i32::from_be_bytes)
    }

    fn i64(&mut self) -> Option<i64> {
        self.take().map(i64::from_be_bytes)
    }

    fn string(&mut self) -> Option<String> {
        let length = usize::try_from(self.i16()?).ok()?;
        let bytes = self.0.get(..length)?;
        self.0 = &self.0[length..];
        String::from_utf8(bytes.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(text: &str) -> Vec<u8> {
        let mut bytes = (text.len() as i16).to_be_bytes().to_vec();
        bytes.extend_from_slice(text.as_bytes());
        bytes
    }

    #[test]
    fn a_checkpoint_record_decodes_as_mirror_maker_2_writes_it() {
        let mut key = string("forwarder");
        key.extend(string("signals"));
        key.extend(3i32.to_be_bytes());
        let mut value = 0i16.to_be_bytes().to_vec();
        value.extend(1200i64.to_be_bytes());
        value.extend(1187i64.to_be_bytes());
        value.extend(string(""));
        assert_eq!(
            Checkpoint::decode(&key, &value),
            Some(Checkpoint {
                group: "forwarder".to_owned(),
                topic: "signals".to_owned(),
                partition: 3,
                offset: 1187,
            })
        );
        assert_eq!(Checkpoint::decode(&key[..5], &value), None, "cut short");
    }
}
