//! What happens to a record its handler could not process, decided in one place for both APIs:
//! retried in place (the partition pauses and is rewound to it, other partitions go on),
//! dead-lettered (written, delivery-tracked, to the consumer's dead-letter topic with headers
//! saying where it came from and why), or logged and skipped (FastKafka's behaviour, the
//! default).
//!
//! Handlers only *report* failures ([`Handled`]); the facades say which are worth retrying (a
//! Python `RetryPolicy(retry_on=...)`, every Rust handler error). A sequential handler stops at
//! the first retryable failure, so that the records after it in its partition are not handled
//! before it is: the loop calls it again with the records it did not reach, minus the paused
//! partitions'.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use bytes::Bytes;

use super::{handle_watched, BatchHandler, ConsumerLoopConfig};
use crate::error::{Error, Result};
use crate::record::{OutgoingRecord, Record, TopicPartition};
use crate::runtime::ProducerHandle;

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
}

/// The longest error message a dead-letter header carries.
const MAX_ERROR_MESSAGE: usize = 4096;

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
    /// What the handler produced for them could not be delivered.
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

/// How often each partition's failing record was handled, so that attempts are counted across
/// batches (and across rebalances that give the partition back to this member).
#[derive(Debug, Default)]
pub(super) struct Attempts(HashMap<TopicPartition, (i64, u32)>);

impl Attempts {
    /// Whether no record is counted (the common case: nothing to look up).
    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Counts one more failed attempt at `record`; returns the count.
    pub(super) fn failed(&mut self, record: &Record) -> u32 {
        let entry = self
            .0
            .entry(record.topic_partition())
            .or_insert((record.offset, 0));
        if entry.0 != record.offset {
            *entry = (record.offset, 0);
        }
        entry.1 += 1;
        entry.1
    }

    /// Forgets `record`'s count once it is processed; returns how many attempts it failed.
    pub(super) fn processed(&mut self, record: &Record) -> Option<u32> {
        let tp = record.topic_partition();
        match self.0.get(&tp) {
            Some(&(offset, failed)) if offset == record.offset => {
                self.0.remove(&tp);
                Some(failed)
            }
            _ => None,
        }
    }
}

/// A partition to pause and rewind to `offset`, handled again after `backoff`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Rewind {
    pub(super) partition: TopicPartition,
    pub(super) offset: i64,
    pub(super) backoff: Duration,
}

/// What handling a polled batch came to: the records whose offsets may be stored once what
/// was produced for them is delivered, and the partitions to rewind for a retry.
#[derive(Debug, Default)]
pub(super) struct BatchOutcome {
    pub(super) done: Vec<Record>,
    pub(super) rewinds: Vec<Rewind>,
}

/// Handles `batch` (one partition per call if the config says so), deals with each failure
/// as the policy says, and returns what is done and what to retry. An `Err` stops the loop.
pub(super) async fn handle_polled<H: BatchHandler>(
    handler: &mut H,
    batch: &[Record],
    config: &ConsumerLoopConfig,
    attempts: &mut Attempts,
) -> Result<BatchOutcome> {
    let mut rewinds: Vec<Rewind> = Vec::new();
    if config.one_partition_per_call {
        for partition in super::by_partition(batch) {
            handle_call(handler, partition, config, attempts, &mut rewinds).await?;
        }
    } else {
        handle_call(handler, batch.to_vec(), config, attempts, &mut rewinds).await?;
    }
    let done: Vec<Record> = batch
        .iter()
        .filter(|record| !is_rewound(&rewinds, record))
        .cloned()
        .collect();
    // Nothing to look up unless a record is being retried (the common case).
    let retried = if attempts.is_empty() {
        &[][..]
    } else {
        &done[..]
    };
    for record in retried {
        if let Some(failed) = attempts.processed(record) {
            tracing::info!(
                "{}: topic={} partition={} offset={} went through after {failed} failed \
                 attempt(s)",
                config.name,
                record.topic,
                record.partition,
                record.offset,
            );
        }
    }
    Ok(BatchOutcome { done, rewinds })
}

fn is_rewound(rewinds: &[Rewind], record: &Record) -> bool {
    rewinds.iter().any(|rewind| {
        *rewind.partition.topic == *record.topic
            && rewind.partition.partition == record.partition
            && record.offset >= rewind.offset
    })
}

/// One handler call and its follow-ups: after a stop at a retryable failure, the handler is
/// called again with the records it did not reach, minus those of rewound partitions.
async fn handle_call<H: BatchHandler>(
    handler: &mut H,
    mut records: Vec<Record>,
    config: &ConsumerLoopConfig,
    attempts: &mut Attempts,
    rewinds: &mut Vec<Rewind>,
) -> Result<()> {
    while !records.is_empty() {
        let handled = handle_watched(handler, &records, config).await?;
        for failure in &handled.failures {
            let failed: Vec<&Record> = failure
                .indices
                .iter()
                .filter_map(|&index| records.get(index))
                .collect();
            let Some(&first) = failed.first() else {
                continue;
            };
            if is_rewound(rewinds, first) {
                continue; // a concurrent handler's later record of a partition already rewound
            }
            match (failure.retryable, config.failures.retry) {
                (true, Some(policy)) => {
                    let attempt = attempts.failed(first);
                    if attempt < policy.attempts {
                        let backoff = policy.backoff_before(attempt + 1);
                        log_retry(config, first, failure, attempt, policy.attempts, backoff);
                        rewinds.push(Rewind {
                            partition: first.topic_partition(),
                            offset: first.offset,
                            backoff,
                        });
                        continue;
                    }
                    attempts.processed(first);
                    give_up(config, &failed, failure, attempt).await?;
                }
                _ => give_up(config, &failed, failure, 1).await?,
            }
        }
        let next = handled
            .stopped_after
            .map_or(records.len(), |after| after + 1);
        records = records
            .split_off(next.min(records.len()))
            .into_iter()
            .filter(|record| !is_rewound(rewinds, record))
            .collect();
    }
    Ok(())
}

/// Dead-letters `records`, whose outputs could not be delivered in `attempts` attempts
/// (`error`: the last delivery failure).
pub(super) async fn dead_letter_undelivered(
    config: &ConsumerLoopConfig,
    records: &[Record],
    error: &Error,
    attempts: u32,
) -> Result<()> {
    let failure = Failure {
        indices: (0..records.len()).collect(),
        kind: FailureKind::Undelivered,
        retryable: false,
        error_type: "DeliveryFailed".to_owned(),
        message: error.to_string(),
        details: None,
    };
    let failed: Vec<&Record> = records.iter().collect();
    give_up(config, &failed, &failure, attempts).await
}

/// Dead-letters `failed` if the consumer has a dead-letter topic, else logs and skips them.
async fn give_up(
    config: &ConsumerLoopConfig,
    failed: &[&Record],
    failure: &Failure,
    attempts: u32,
) -> Result<()> {
    let place = Place(failed);
    let retried = if attempts > 1 {
        format!(" after {attempts} attempts")
    } else {
        String::new()
    };
    let details = failure
        .details
        .as_deref()
        .map(|details| format!("\n{details}"))
        .unwrap_or_default();
    let Some(dead_letter) = &config.failures.dead_letter else {
        match &failure.kind {
            FailureKind::Undecodable { into } => tracing::error!(
                target: "fastkafka::consumer",
                "{}: skipping a record that cannot be decoded as {into} ({place}): {}",
                config.name,
                failure.message,
            ),
            FailureKind::Handler => tracing::error!(
                target: "fastkafka::consumer",
                "{}: handler failed ({place}){retried}: {}: {}; going on with the next \
                 record{details}",
                config.name,
                failure.error_type,
                failure.message,
            ),
            FailureKind::Undelivered => {
                return Err(Error::Handler(format!(
                    "{}: outputs not delivered and no dead-letter topic: {}",
                    config.name, failure.message
                )))
            }
        }
        return Ok(());
    };
    let what = match &failure.kind {
        FailureKind::Undecodable { into } => format!("cannot be decoded as {into}"),
        FailureKind::Handler => format!("handler failed{retried}"),
        FailureKind::Undelivered => format!("outputs not delivered{retried}"),
    };
    tracing::error!(
        target: "fastkafka::consumer",
        "{}: {what} ({place}): {}: {}; dead-lettering to '{}'{details}",
        config.name,
        failure.error_type,
        failure.message,
        dead_letter.topic(),
    );
    for record in failed {
        let letter = dead_letter_record(record, &config.name, failure, attempts);
        let Err(refused) = dead_letter.produce(vec![letter.clone()]).await else {
            continue;
        };
        // The client refused the letter itself (larger than `message.max.bytes`, say): the
        // letter goes without the record's key and value, saying why, rather than not at all.
        tracing::error!(
            target: "fastkafka::consumer",
            "{}: the dead letter of topic={} partition={} offset={} was refused ({refused}); \
             sending it without the record's key and value",
            config.name,
            record.topic,
            record.partition,
            record.offset,
        );
        let mut bare = letter;
        bare.key = None;
        bare.value = Bytes::new();
        bare.headers
            .retain(|(name, _)| name.starts_with("fastkafka.dlt."));
        bare.headers.push((
            headers::VALUE_DROPPED.to_owned(),
            Bytes::from(refused.to_string()),
        ));
        dead_letter.produce(vec![bare]).await?;
    }
    Ok(())
}

/// `record` as it goes to the dead-letter topic: its key, value and headers, plus ours.
pub(super) fn dead_letter_record(
    record: &Record,
    consumer: &str,
    failure: &Failure,
    attempts: u32,
) -> OutgoingRecord {
    let mut message = failure.message.as_str();
    if message.len() > MAX_ERROR_MESSAGE {
        let mut end = MAX_ERROR_MESSAGE;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message = &message[..end];
    }
    let mut letter = OutgoingRecord {
        key: record.key.clone(),
        value: record.value.clone(),
        headers: record.headers.clone(),
    };
    let ours: [(&str, Bytes); 8] = [
        (headers::TOPIC, Bytes::from(record.topic.to_string())),
        (headers::PARTITION, record.partition.to_string().into()),
        (headers::OFFSET, record.offset.to_string().into()),
        (headers::TIMESTAMP, record.timestamp_ms.to_string().into()),
        (headers::CONSUMER, Bytes::from(consumer.to_owned())),
        (headers::ERROR_TYPE, Bytes::from(failure.error_type.clone())),
        (headers::ERROR_MESSAGE, Bytes::from(message.to_owned())),
        (headers::ATTEMPTS, attempts.to_string().into()),
    ];
    letter.headers.extend(
        ours.into_iter()
            .map(|(name, value)| (name.to_owned(), value)),
    );
    letter
}

fn log_retry(
    config: &ConsumerLoopConfig,
    record: &Record,
    failure: &Failure,
    attempt: u32,
    of: u32,
    backoff: Duration,
) {
    tracing::warn!(
        target: "fastkafka::consumer",
        "{}: handler failed on attempt {attempt} of {of} (topic={} partition={} offset={}): \
         {}: {}; the partition pauses and the record is handled again in {backoff:?}",
        config.name,
        record.topic,
        record.partition,
        record.offset,
        failure.error_type,
        failure.message,
    );
}

/// Where records were read, for a log line: one offset, or a range.
struct Place<'a>(&'a [&'a Record]);

impl fmt::Display for Place<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (first, last) = (self.0[0], self.0[self.0.len() - 1]);
        write!(f, "topic={} partition={} ", first.topic, first.partition)?;
        if self.0.len() == 1 {
            write!(f, "offset={}", first.offset)
        } else {
            write!(f, "offsets {}-{}", first.offset, last.offset)
        }
    }
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

    #[test]
    fn a_dead_letter_keeps_the_record_and_says_where_it_came_from_and_why() {
        let record = Record {
            topic: "signals".into(),
            partition: 2,
            offset: 41,
            timestamp_ms: 1_700_000_000_000,
            timestamp_type: crate::record::TimestampType::CreateTime,
            key: Some(Bytes::from_static(b"k")),
            value: Bytes::from_static(b"v"),
            headers: vec![("trace".to_owned(), Bytes::from_static(b"t"))],
        };
        let failure = Failure {
            indices: vec![0],
            kind: FailureKind::Handler,
            retryable: true,
            error_type: "ValueError".to_owned(),
            message: "é".repeat(MAX_ERROR_MESSAGE),
            details: Some("Traceback ...".to_owned()),
        };
        let letter = dead_letter_record(&record, "on_signals", &failure, 3);
        assert_eq!(letter.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(&letter.value[..], b"v");
        let header = |name: &str| {
            letter
                .headers
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| String::from_utf8(value.to_vec()).unwrap())
        };
        assert_eq!(header("trace").as_deref(), Some("t"));
        assert_eq!(header(headers::TOPIC).as_deref(), Some("signals"));
        assert_eq!(header(headers::PARTITION).as_deref(), Some("2"));
        assert_eq!(header(headers::OFFSET).as_deref(), Some("41"));
        assert_eq!(header(headers::TIMESTAMP).as_deref(), Some("1700000000000"));
        assert_eq!(header(headers::CONSUMER).as_deref(), Some("on_signals"));
        assert_eq!(header(headers::ERROR_TYPE).as_deref(), Some("ValueError"));
        assert_eq!(header(headers::ATTEMPTS).as_deref(), Some("3"));
        let message = header(headers::ERROR_MESSAGE).unwrap();
        assert!(message.len() <= MAX_ERROR_MESSAGE && message.starts_with('é'));
        assert!(!letter
            .headers
            .iter()
            .any(|(_, v)| v.starts_with(b"Traceback")));
    }
}
