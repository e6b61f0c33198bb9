//! What happens to a record its handler could not process, decided in one place for both APIs:
//! retried in place (the partition pauses and is rewound to it, other partitions go on),
//! dead-lettered (written, delivery-tracked, to the consumer's dead-letter topic with headers
//! saying where it came from and why), or logged and skipped (FastKafka's behaviour, the
//! default).
//!
//! This module holds the vocabulary: the policies ([`RetryPolicy`], [`FailurePolicy`]), what a
//! handler reports ([`Handled`], [`Failure`]), the dead-letter [`headers`] and a letter read
//! back ([`DeadLetter`]); `handling.rs`
//! applies them to each batch and `dead_letters.rs` writes the letters. Handlers only *report*
//! failures; the facades say which are worth retrying (a Python `RetryPolicy(retry_on=...)`,
//! every Rust handler error). A sequential handler stops at the first retryable failure, so
//! that the records after it in its partition are not handled before it is: the loop calls it
//! again with the records it did not reach, minus the paused partitions'.

use std::collections::HashMap;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::producer::ProducerHandle;
use crate::record::{Record, TopicPartition};

/// Headers a dead-lettered record carries besides its own: where it was read and why it failed.
pub mod headers {
    /// The topic it was read from.
    pub const TOPIC: &str = "fastkafka.dlt.topic";
    /// Its partition there.
    pub const PARTITION: &str = "fastkafka.dlt.partition";
    /// Its offset there.
    pub const OFFSET: &str = "fastkafka.dlt.offset";
    /// Its timestamp there, in milliseconds since the Unix epoch.
    pub const TIMESTAMP: &str = "fastkafka.dlt.timestamp";
    /// The consumer that gave up on it (its function's name).
    pub const CONSUMER: &str = "fastkafka.dlt.consumer";
    /// The error's type (a Python exception's class name; `Undecodable`, `DeliveryFailed` or
    /// `HandlerError` from Rust).
    pub const ERROR_TYPE: &str = "fastkafka.dlt.error.type";
    /// The error's message, at most 4 KiB.
    pub const ERROR_MESSAGE: &str = "fastkafka.dlt.error.message";
    /// How many times it was handled.
    pub const ATTEMPTS: &str = "fastkafka.dlt.attempts";
    /// Present when the letter could not carry the record (its key, value and own headers
    /// are left out): why the client refused it.
    pub const VALUE_DROPPED: &str = "fastkafka.dlt.value.dropped";

    /// Every header above by what it means (`topic`, `error_type`, …): Python's
    /// `fastkafka.failures.DEAD_LETTER_HEADERS`.
    pub const BY_MEANING: [(&str, &str); 9] = [
        ("topic", TOPIC),
        ("partition", PARTITION),
        ("offset", OFFSET),
        ("timestamp", TIMESTAMP),
        ("consumer", CONSUMER),
        ("error_type", ERROR_TYPE),
        ("error_message", ERROR_MESSAGE),
        ("attempts", ATTEMPTS),
        ("value_dropped", VALUE_DROPPED),
    ];
}

/// A record as a dead-letter topic received it, read back: the original key, value and
/// headers, and where it came from and why it failed (from [`headers`]). What both test
/// harnesses return for a consumer's dead letters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The original key.
    pub key: Option<bytes::Bytes>,
    /// The original value; `None` for a tombstone, or a record too large to carry (then
    /// [`headers::VALUE_DROPPED`] says why).
    pub value: Option<bytes::Bytes>,
    /// Every header, the record's own and [`headers`]'.
    pub headers: Vec<crate::record::Header>,
    /// The topic it was read from.
    pub topic: String,
    /// Its partition there (-1 if the header is missing).
    pub partition: i32,
    /// Its offset there (-1 if the header is missing).
    pub offset: i64,
    /// The consumer that gave up on it.
    pub consumer: String,
    /// The error's type.
    pub error_type: String,
    /// The error's message.
    pub error_message: String,
    /// How many times it was handled.
    pub attempts: u32,
}

impl DeadLetter {
    /// Reads a dead-letter topic's record.
    pub fn from_record(record: &Record) -> Self {
        let text = |name: &str| -> String {
            record
                .headers
                .iter()
                .find(|(header, _)| header == name)
                .and_then(|(_, value)| value.as_deref())
                .map(|value| String::from_utf8_lossy(value).into_owned())
                .unwrap_or_default()
        };
        Self {
            key: record.key.clone(),
            value: record.value.clone(),
            headers: record.headers.clone(),
            topic: text(headers::TOPIC),
            partition: text(headers::PARTITION).parse().unwrap_or(-1),
            offset: text(headers::OFFSET).parse().unwrap_or(-1),
            consumer: text(headers::CONSUMER),
            error_type: text(headers::ERROR_TYPE),
            error_message: text(headers::ERROR_MESSAGE),
            attempts: text(headers::ATTEMPTS).parse().unwrap_or(0),
        }
    }
}

/// How a consumer retries a record whose handler failed: in place, with exponential backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// How many times a record is handled at most, the first time included (≥ 1).
    pub attempts: u32,
    /// The wait before the second attempt; it doubles before each further one.
    pub backoff: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 3,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// Checks the policy, naming the bad value.
    pub fn check(&self) -> Result<()> {
        if self.attempts == 0 {
            return Err(Error::Config(
                "retry attempts must be >= 1 (the first attempt counts), got 0".to_owned(),
            ));
        }
        if self.max_backoff < self.backoff {
            return Err(Error::Config(format!(
                "retry max_backoff ({:?}) must be >= backoff ({:?})",
                self.max_backoff, self.backoff
            )));
        }
        Ok(())
    }

    /// The wait before attempt `attempt` (2 for the first retry).
    pub fn backoff_before(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(2).min(32);
        self.backoff
            .saturating_mul(2_u32.saturating_pow(doublings))
            .min(self.max_backoff)
    }
}

/// What a consumer does with what its handler could not process.
#[derive(Debug, Clone, Default)]
pub struct FailurePolicy {
    /// Retry retryable handler failures in place; `None`: never retried.
    pub retry: Option<RetryPolicy>,
    /// Where records go that cannot be processed (undecodable, retries used up, outputs
    /// undeliverable); `None`: they are logged and skipped.
    pub dead_letter: Option<ProducerHandle>,
}

/// Why records could not be processed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureKind {
    /// The value cannot be decoded into the handler's type (named here); never retried.
    Undecodable {
        /// The type it should have decoded into.
        into: String,
    },
    /// The handler raised or returned an error.
    Handler,
    /// What the handler produced for them could not be delivered: refused by the client while
    /// handling them (retried in place like a retryable handler error, whatever the policy's
    /// `retry_on`; never skipped), or failed once sent (the whole batch is read again).
    Undelivered,
}

/// Records of one handler call that could not be processed, for one reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Their positions in the records the handler was given (several for a batch handler).
    pub indices: Vec<usize>,
    /// Why.
    pub kind: FailureKind,
    /// Whether the consumer's retry policy covers this error.
    pub retryable: bool,
    /// The error's type name (a Python exception's class).
    pub error_type: String,
    /// The error's message.
    pub message: String,
    /// More for the log only (a Python traceback); never written to a dead-letter topic.
    pub details: Option<String>,
}

/// What a handler call did with its records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Handled {
    /// What could not be processed.
    pub failures: Vec<Failure>,
    /// Set when the handler stopped after the record at this position (a retryable failure):
    /// those after it were not handled.
    pub stopped_after: Option<usize>,
}

impl Handled {
    /// Everything handled.
    pub fn all() -> Self {
        Self::default()
    }
}

/// The wait before an input whose outputs were not delivered is read again after `attempt`
/// failed attempts: 100 ms, doubling up to [`LAST_REDELIVERY`] while deliveries keep failing.
pub(super) fn redelivery_backoff(attempt: u32) -> Duration {
    Duration::from_millis(100)
        .saturating_mul(2_u32.saturating_pow(attempt.saturating_sub(1).min(16)))
        .min(LAST_REDELIVERY)
}

/// The longest wait of [`redelivery_backoff`].
pub(super) const LAST_REDELIVERY: Duration = Duration::from_secs(30);

/// How often each failing record was handled, so that attempts are counted across batches (and
/// across rebalances that give the partition back to this member). Counted per record, not per
/// partition's latest failure: a concurrent handler reports failures in completion order, and a
/// count that reset whenever another record of the partition failed would never reach a
/// policy's limit.
#[derive(Debug, Default)]
pub(super) struct Attempts(HashMap<(TopicPartition, i64), u32>);

impl Attempts {
    /// Whether no record is counted (the common case: nothing to look up).
    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Counts one more failed attempt at `record`; returns the count.
    pub(super) fn failed(&mut self, record: &Record) -> u32 {
        let count = self
            .0
            .entry((record.topic_partition(), record.offset))
            .or_insert(0);
        *count += 1;
        *count
    }

    /// Forgets `record`'s count once it is processed; returns how many attempts it failed.
    pub(super) fn processed(&mut self, record: &Record) -> Option<u32> {
        if self.0.is_empty() {
            return None;
        }
        self.0.remove(&(record.topic_partition(), record.offset))
    }
}

/// A partition to pause and rewind to `offset`, handled again after `backoff`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Rewind {
    pub(super) partition: TopicPartition,
    pub(super) offset: i64,
    pub(super) backoff: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_second_attempt_up_to_the_cap() {
        let policy = RetryPolicy {
            attempts: 10,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(350),
        };
        let waits: Vec<u128> = (2..=5)
            .map(|attempt| policy.backoff_before(attempt).as_millis())
            .collect();
        assert_eq!(waits, [100, 200, 350, 350]);
    }

    #[test]
    fn a_policy_without_attempts_is_refused_naming_the_value() {
        let policy = RetryPolicy {
            attempts: 0,
            ..RetryPolicy::default()
        };
        let error = policy.check().unwrap_err().to_string();
        assert!(error.contains("attempts must be >= 1"), "{error}");
    }
}
