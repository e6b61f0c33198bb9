//! Dead letters: a record given up on goes to its consumer's dead-letter topic — its key,
//! value and headers plus [`headers`](super::failures::headers) saying where it was read and
//! why — through a delivery-tracked producer, so the input commits only once the letter is
//! acknowledged; without a dead-letter topic it is logged and skipped.

use std::fmt;

use bytes::Bytes;

use super::failures::{headers, Failure, FailureKind};
use super::ConsumerLoopConfig;
use crate::error::{Error, Result};
use crate::record::{OutgoingRecord, Record};

/// The longest error message a dead-letter header carries.
const MAX_ERROR_MESSAGE: usize = 4096;

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

/// Dead-letters `failed` if the consumer has a dead-letter topic, else logs and skips them. Runs
/// inside the call's delivery tracking: a letter that is not delivered (or is refused) fails
/// the tracker, so the input is not stored and is read again.
pub(super) async fn give_up(
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
                return Err(Error::Undelivered {
                    consumer: config.name.to_string(),
                    message: failure.message.clone(),
                })
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
        let refused = match dead_letter.produce_letter(letter.clone()).await {
            Ok(()) => continue,
            Err(refused @ Error::RecordTooLarge { .. }) => refused,
            // Any other refusal (a full queue, an unknown topic, a stopped app) already failed
            // the input's delivery tracker: the input is held back and read again, as for an
            // undeliverable output, and the letter goes whole when it can.
            Err(_) => return Ok(()),
        };
        // The letter itself is too large for the dead-letter cluster: it goes without the
        // record's key, value and headers, saying why, rather than not at all.
        tracing::error!(
            target: "fastkafka::consumer",
            "{}: the dead letter of topic={} partition={} offset={} is too large ({refused}); \
             sending it without the record's key, value and headers",
            config.name,
            record.topic,
            record.partition,
            record.offset,
        );
        let mut bare = letter;
        bare.key = None;
        bare.value = None;
        bare.headers
            .retain(|(name, _)| name.starts_with("fastkafka.dlt."));
        bare.headers.push((
            headers::VALUE_DROPPED.to_owned(),
            Some(Bytes::from(refused.to_string())),
        ));
        if let Err(error) = dead_letter.produce_letter(bare).await {
            // Held back like any refusal (see above), this one included.
            if let Some(tracker) = crate::delivery::current() {
                tracker.refused(error);
            }
            return Ok(());
        }
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
            .map(|(name, value)| (name.to_owned(), Some(value))),
    );
    letter
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
    fn a_dead_letter_keeps_the_record_and_says_where_it_came_from_and_why() {
        let record = Record {
            topic: "signals".into(),
            partition: 2,
            offset: 41,
            timestamp_ms: 1_700_000_000_000,
            timestamp_type: crate::record::TimestampType::CreateTime,
            key: Some(Bytes::from_static(b"k")),
            value: Some(Bytes::from_static(b"v")),
            headers: vec![("trace".to_owned(), Some(Bytes::from_static(b"t")))],
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
        assert_eq!(letter.value.as_deref(), Some(&b"v"[..]));
        let header = |name: &str| {
            letter
                .headers
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| String::from_utf8(value.as_deref().unwrap().to_vec()).unwrap())
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
            .any(|(_, v)| v.as_deref().unwrap().starts_with(b"Traceback")));
    }

    #[test]
    fn a_tombstone_is_dead_lettered_as_a_tombstone_with_its_null_headers() {
        let record = Record {
            topic: "accounts".into(),
            partition: 0,
            offset: 7,
            timestamp_ms: 1_700_000_000_000,
            timestamp_type: crate::record::TimestampType::CreateTime,
            key: Some(Bytes::from_static(b"account-1")),
            value: None,
            headers: vec![
                ("deleted-by".to_owned(), None),
                ("empty".to_owned(), Some(Bytes::new())),
            ],
        };
        let failure = Failure {
            indices: vec![0],
            kind: FailureKind::Undecodable {
                into: "Account".to_owned(),
            },
            retryable: false,
            error_type: "ValidationError".to_owned(),
            message: "not an Account".to_owned(),
            details: None,
        };
        let letter = dead_letter_record(&record, "on_accounts", &failure, 1);
        assert_eq!(letter.key.as_deref(), Some(&b"account-1"[..]));
        assert_eq!(letter.value, None, "a tombstone's letter is a tombstone");
        assert_eq!(
            letter.headers[..2],
            [
                ("deleted-by".to_owned(), None),
                ("empty".to_owned(), Some(Bytes::new()))
            ]
        );
    }
}
