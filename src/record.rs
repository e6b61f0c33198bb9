//! Records: what a consumer receives and what a producer sends.
//!
//! Payloads are opaque bytes ([`bytes::Bytes`], so handing one record to several readers is a
//! reference-count increment, not a copy). Decoding belongs to the edges: pydantic on the Python
//! side, serde on the Rust side.

use std::sync::Arc;

use bytes::Bytes;

/// A record header: a name and a byte value, as Kafka defines them — the value may be null
/// (`None`), which Kafka keeps apart from an empty value.
pub type Header = (String, Option<Bytes>);

/// A partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// The topic's name.
    pub topic: Arc<str>,
    /// The partition's index, from 0.
    pub partition: i32,
}

impl TopicPartition {
    /// A partition of `topic`.
    pub fn new(topic: impl Into<Arc<str>>, partition: i32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }
}

/// What a record's timestamp means, as Kafka defines it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum TimestampType {
    /// Set by the producer when it created the record.
    #[default]
    CreateTime,
    /// Set by the broker when it appended the record to the log.
    LogAppendTime,
}

/// A record read from a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The topic it was read from.
    pub topic: Arc<str>,
    /// The partition it was read from.
    pub partition: i32,
    /// Its offset within the partition.
    pub offset: i64,
    /// When it was produced, in milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// Whether the timestamp is the producer's or the broker's.
    pub timestamp_type: TimestampType,
    /// Its key, if it was produced with one.
    pub key: Option<Bytes>,
    /// Its payload; `None` for a tombstone (a null value, which compacted topics read as "this
    /// key was deleted"), which Kafka keeps apart from an empty payload.
    pub value: Option<Bytes>,
    /// Its headers, in the order they were sent.
    pub headers: Vec<Header>,
}

impl Record {
    /// The partition this record was read from.
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition::new(self.topic.clone(), self.partition)
    }
}

/// A record to send; the transport picks the partition (from the key when there is one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutgoingRecord {
    /// Records with equal keys always land on the same partition.
    pub key: Option<Bytes>,
    /// The payload; `None` sends a tombstone.
    pub value: Option<Bytes>,
    /// Headers sent with the record.
    pub headers: Vec<Header>,
}

impl OutgoingRecord {
    /// A record with a payload and nothing else.
    pub fn new(value: impl Into<Bytes>) -> Self {
        Self {
            value: Some(value.into()),
            ..Self::default()
        }
    }

    /// A tombstone: a record with a null value (for a key, on a compacted topic, "deleted").
    pub fn tombstone(key: impl Into<Bytes>) -> Self {
        Self {
            key: Some(key.into()),
            ..Self::default()
        }
    }

    /// How many bytes its value holds (none for a tombstone).
    pub fn value_len(&self) -> usize {
        self.value.as_ref().map_or(0, Bytes::len)
    }

    /// The same record with a key.
    pub fn with_key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// The same record with one more header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push((name.into(), Some(value.into())));
        self
    }
}
