//! Offsets of a consumer's group, and resetting them: what `fastkafka offsets show|reset` does,
//! on the consumer's own cluster.
//!
//! [`plan_reset`] decides where each partition goes (earliest, latest, a time, or a shift from
//! the committed offset, kept within the partition's log); the Kafka transport reads and
//! commits (`transport::kafka::offsets`, feature `kafka`). A reset is refused while the group
//! has live members — they would commit over it — so it is for a stopped app, as with Kafka's own
//! `kafka-consumer-groups --reset-offsets`.

use std::fmt;

use serde::Serialize;

use crate::config::ClusterId;
use crate::error::{Error, Result};
use crate::transport::ClientProperties;

/// One partition's offsets for a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionOffsets {
    /// The partition.
    pub partition: i32,
    /// The group's committed offset (the next record it reads); `None`: nothing committed.
    pub committed: Option<i64>,
    /// The first offset still in the log.
    pub low: i64,
    /// The offset after the last record (the high watermark).
    pub high: i64,
}

impl PartitionOffsets {
    /// Records after the committed offset (all of them when nothing is committed).
    pub fn lag(&self) -> i64 {
        self.high
            - self
                .committed
                .unwrap_or(self.low)
                .clamp(self.low, self.high)
    }
}

/// Where a reset moves a group's offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTo {
    /// The first record still in the log.
    Earliest,
    /// After the last record: nothing is read again.
    Latest,
    /// The first record whose timestamp is at or after this many milliseconds since the
    /// epoch (after the last record if none is).
    Time(i64),
    /// This many records after (or, negative, before) the committed offset; from the first
    /// record when nothing is committed.
    Shift(i64),
}

impl fmt::Display for ResetTo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Earliest => f.write_str("earliest"),
            Self::Latest => f.write_str("latest"),
            Self::Time(ms) => write!(f, "the first record at or after {ms} ms since the epoch"),
            Self::Shift(by) => write!(f, "{by:+} from the committed offset"),
        }
    }
}

/// One partition of a reset: where it was and where it goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionReset {
    /// The partition and its offsets before the reset.
    #[serde(flatten)]
    pub before: PartitionOffsets,
    /// The offset committed by the reset.
    pub to: i64,
}

/// Where `to` moves each of `partitions`; for [`ResetTo::Time`], `at_time` holds each
/// partition's first offset at or after the time (`None`: no record is).
pub fn plan_reset(
    partitions: &[PartitionOffsets],
    to: ResetTo,
    at_time: &[(i32, Option<i64>)],
) -> Vec<PartitionReset> {
    partitions
        .iter()
        .map(|before| {
            let target = match to {
                ResetTo::Earliest => before.low,
                ResetTo::Latest => before.high,
                ResetTo::Time(_) => at_time
                    .iter()
                    .find(|(partition, _)| *partition == before.partition)
                    .and_then(|(_, offset)| *offset)
                    .unwrap_or(before.high),
                ResetTo::Shift(by) => before
                    .committed
                    .map_or(before.low, |committed| committed.saturating_add(by)),
            };
            PartitionReset {
                before: before.clone(),
                to: target.clamp(before.low, before.high),
            }
        })
        .collect()
}

/// What the offset tools need of one consumer: who it is and where its group lives.
#[derive(Debug, Clone)]
pub struct ConsumerGroupTarget {
    /// The consumer (its function's name in Python).
    pub consumer: String,
    /// The topic it reads.
    pub topic: String,
    /// Its cluster in the environment asked for.
    pub cluster: ClusterId,
    /// Its group.
    pub group: String,
    /// Its client properties (security included), for the tools' own clients.
    pub properties: ClientProperties,
}

/// The targets named `consumer` among `targets` (all of them for `None`); an unknown name
/// fails naming the known ones.
pub fn select<'a>(
    targets: &'a [ConsumerGroupTarget],
    consumer: Option<&str>,
) -> Result<Vec<&'a ConsumerGroupTarget>> {
    let Some(name) = consumer else {
        return Ok(targets.iter().collect());
    };
    let chosen: Vec<_> = targets.iter().filter(|t| t.consumer == name).collect();
    if chosen.is_empty() {
        let known: Vec<&str> = targets.iter().map(|t| t.consumer.as_str()).collect();
        return Err(Error::Config(format!(
            "no consumer '{name}' with a group; the app's consumers with groups: {}",
            known.join(", ")
        )));
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partition(committed: Option<i64>) -> PartitionOffsets {
        PartitionOffsets {
            partition: 0,
            committed,
            low: 10,
            high: 50,
        }
    }

    fn planned(committed: Option<i64>, to: ResetTo, at_time: &[(i32, Option<i64>)]) -> i64 {
        plan_reset(&[partition(committed)], to, at_time)[0].to
    }

    #[test]
    fn resets_stay_within_the_log() {
        assert_eq!(planned(Some(30), ResetTo::Earliest, &[]), 10);
        assert_eq!(planned(Some(30), ResetTo::Latest, &[]), 50);
        assert_eq!(planned(Some(30), ResetTo::Shift(-5), &[]), 25);
        assert_eq!(
            planned(Some(30), ResetTo::Shift(-100), &[]),
            10,
            "not before the log"
        );
        assert_eq!(
            planned(Some(30), ResetTo::Shift(100), &[]),
            50,
            "not past its end"
        );
        assert_eq!(
            planned(None, ResetTo::Shift(5), &[]),
            10,
            "from the start when uncommitted"
        );
        assert_eq!(planned(None, ResetTo::Time(1), &[(0, Some(42))]), 42);
        assert_eq!(
            planned(None, ResetTo::Time(1), &[(0, None)]),
            50,
            "no record that late"
        );
    }

    #[test]
    fn lag_counts_from_the_committed_offset_or_the_start() {
        assert_eq!(partition(Some(45)).lag(), 5);
        assert_eq!(partition(None).lag(), 40);
    }

    #[test]
    fn an_unknown_consumer_is_named_with_the_known_ones() {
        let targets = [ConsumerGroupTarget {
            consumer: "on_orders".into(),
            topic: "orders".into(),
            cluster: ClusterId::from_addresses(["a:9092"]),
            group: "g".into(),
            properties: ClientProperties::new(),
        }];
        assert_eq!(select(&targets, None).unwrap().len(), 1);
        let error = select(&targets, Some("on_x")).unwrap_err().to_string();
        assert!(
            error.contains("'on_x'") && error.contains("on_orders"),
            "{error}"
        );
    }
}
