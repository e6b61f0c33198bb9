//! [`ConsumerSettings`] and [`ProducerSettings`]: what a consumer's or producer's options
//! become — group, start position, batch size, commits, client properties, failover — and what
//! a consumer does with failures (retry policy, dead-letter topic), set by the facades' own
//! arguments.

use std::time::Duration;

use serde_json::Value;

use super::options::{check, kind_of, translate, Client, Options};
use super::{ClusterChoice, HandOver};
use crate::config::KafkaBrokers;
use crate::consumer_loop::failures::RetryPolicy;
use crate::consumer_loop::RebalanceHook;
use crate::error::{Error, Result};
use crate::transport::failover::FailoverPolicy;
use crate::transport::{ClientProperties, OffsetReset};

/// What a consumer's options become: the loop's settings and its client's properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerSettings {
    /// The group it joins; `None`: no group, every partition, nothing committed.
    pub group_id: Option<String>,
    /// Where it starts without a committed offset.
    pub auto_offset_reset: OffsetReset,
    /// The largest batch handed to the handler (but see
    /// [`ConsumerSettings::max_poll_records_when_fast`]).
    pub max_poll_records: usize,
    /// The most records one hand-over may carry, whatever else says (Python's executors'
    /// `max_buffer_size`); `None`: no bound of its own.
    pub hand_over_cap: Option<usize>,
    /// How often processed offsets are committed (`None`: on rebalance and stop only).
    pub commit_interval: Option<Duration>,
    /// librdkafka properties of its client.
    pub properties: ClientProperties,
    /// librdkafka properties of its client unless its cluster's or its own `properties` set
    /// them: defaults of the API that registered it (see `src/python/runtime.rs`).
    pub default_properties: ClientProperties,
    /// How a record whose handler failed (with a retryable error) is retried in place;
    /// `None`: it is not.
    pub retry: Option<RetryPolicy>,
    /// Where records go that cannot be processed; `None`: logged and skipped.
    pub dead_letter: Option<DeadLetterTopic>,
    /// Called when its partitions are assigned or revoked (see
    /// [`crate::consumer_loop::PartitionsChanged`]); `None`: nobody is told.
    pub on_partitions_changed: Option<RebalanceHook>,
    /// When it moves to its cluster's standby and how far it rewinds there (used only where
    /// the cluster names a standby).
    pub failover: FailoverPolicy,
}

/// What a producer's options become.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerSettings {
    /// librdkafka properties of its cluster's client (shared by the producers to the cluster).
    pub properties: ClientProperties,
    /// When it moves to its cluster's standby (used only where the cluster names one).
    pub failover: FailoverPolicy,
}

impl ProducerSettings {
    /// Checks a producer's options (given in `place`) and maps them.
    pub fn from_options(options: &Options, place: &str) -> Result<Self> {
        check(options, Client::Producer, place)?;
        Ok(Self {
            properties: translate(options, Client::Producer)?,
            failover: failover_policy(options, place)?,
        })
    }
}

/// `failover_after`, `failover_rewind` (seconds) and `failback` over the defaults.
pub(super) fn failover_policy(options: &Options, place: &str) -> Result<FailoverPolicy> {
    let mut policy = FailoverPolicy::default();
    let seconds = |name: &str, positive: bool| -> Result<Option<Duration>> {
        let Some(value) = options.get(name) else {
            return Ok(None);
        };
        match value.as_f64() {
            Some(s) if s.is_finite() && (s > 0.0 || (!positive && s == 0.0)) => {
                Ok(Some(Duration::from_secs_f64(s)))
            }
            _ => Err(Error::Config(format!(
                "{name} must be a {} number of seconds (in {place}), got {}",
                if positive { "positive" } else { "non-negative" },
                kind_of(value)
            ))),
        }
    };
    if let Some(after) = seconds("failover_after", true)? {
        policy.after = after;
    }
    if let Some(rewind) = seconds("failover_rewind", false)? {
        policy.rewind = rewind;
    }
    match options.get("failback") {
        None => {}
        Some(Value::Bool(flag)) => policy.failback = *flag,
        Some(other) => {
            return Err(Error::Config(format!(
                "failback must be a bool (in {place}), got {}",
                kind_of(other)
            )))
        }
    }
    Ok(policy)
}

/// A consumer's dead-letter topic and its cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterTopic {
    /// The topic.
    pub topic: String,
    /// Its cluster; `None`: the consumer's.
    pub cluster: Option<ClusterChoice>,
}

impl DeadLetterTopic {
    /// FastKafka-style arguments (`dead_letter_topic=`, `dead_letter_brokers=`) of the consumer
    /// declared in `place`: brokers need a topic.
    pub fn from_arguments(
        topic: Option<String>,
        brokers: Option<KafkaBrokers>,
        place: &str,
    ) -> Result<Option<Self>> {
        match (topic, brokers) {
            (Some(topic), brokers) => Ok(Some(Self {
                topic,
                cluster: brokers.map(ClusterChoice::Brokers),
            })),
            (None, Some(_)) => Err(Error::Config(format!(
                "{place}: dead_letter_brokers without dead_letter_topic; name the topic"
            ))),
            (None, None) => Ok(None),
        }
    }
}

impl Default for ConsumerSettings {
    /// FastKafka's defaults: no group, earliest, 100 records, commits every 5 s.
    fn default() -> Self {
        Self {
            group_id: None,
            auto_offset_reset: OffsetReset::Earliest,
            max_poll_records: 100,
            hand_over_cap: None,
            commit_interval: Some(Duration::from_secs(5)),
            properties: ClientProperties::new(),
            default_properties: ClientProperties::new(),
            retry: None,
            dead_letter: None,
            on_partitions_changed: None,
            failover: FailoverPolicy::default(),
        }
    }
}

/// The most records a poll hands a fast one-message-at-a-time handler.
const MAX_HAND_OVER: usize = 2000;

impl ConsumerSettings {
    /// Hands over at most `cap` records at once (Python's executors' `max_buffer_size`),
    /// polling no more than that either.
    pub fn cap_hand_over(&mut self, cap: usize) {
        let cap = cap.max(1);
        self.max_poll_records = self.max_poll_records.min(cap);
        self.hand_over_cap = Some(cap);
    }

    /// How far the loop may grow a hand-over beyond `max_poll_records` for a fast handler
    /// ([`crate::ConsumerLoopConfig::max_poll_records_when_fast`]): up to `MAX_HAND_OVER`
    /// records, only for a handler to whom the batch size is invisible
    /// ([`HandOver::SizedToHandler`]).
    pub fn max_poll_records_when_fast(&self, hand_over: HandOver) -> Option<usize> {
        let cap = self.hand_over_cap.unwrap_or(usize::MAX);
        (hand_over == HandOver::SizedToHandler)
            .then(|| self.max_poll_records.max(MAX_HAND_OVER).min(cap))
    }

    /// Checks a consumer's options (given in `place`) and maps them.
    pub fn from_options(options: &Options, place: &str) -> Result<Self> {
        check(options, Client::Consumer, place)?;
        let mut settings = Self {
            properties: translate(options, Client::Consumer)?,
            failover: failover_policy(options, place)?,
            ..Self::default()
        };
        if let Some(group) = options.get("group_id") {
            settings.group_id = match group {
                Value::Null => None,
                Value::String(group) => Some(group.clone()),
                other => {
                    return Err(Error::Config(format!(
                        "group_id must be a string or None, got {}",
                        kind_of(other)
                    )))
                }
            };
        }
        if let Some(reset) = options.get("auto_offset_reset") {
            settings.auto_offset_reset = match reset.as_str() {
                Some(reset) => reset.parse()?,
                None => {
                    return Err(Error::Config(format!(
                        "auto_offset_reset must be 'earliest' or 'latest', got {}",
                        kind_of(reset)
                    )))
                }
            };
        }
        if let Some(max) = options.get("max_poll_records") {
            settings.max_poll_records = match max.as_u64() {
                Some(max) if max >= 1 => usize::try_from(max).unwrap_or(usize::MAX),
                _ => {
                    return Err(Error::Config(format!(
                        "max_poll_records must be a positive int, got {max}"
                    )))
                }
            };
        }
        let interval_ms = match options.get("auto_commit_interval_ms") {
            None => 5000,
            Some(interval) => interval.as_u64().ok_or_else(|| {
                Error::Config(format!(
                    "auto_commit_interval_ms must be a non-negative int, got {interval}"
                ))
            })?,
        };
        let auto_commit = match options.get("enable_auto_commit") {
            None => true,
            Some(Value::Bool(flag)) => *flag,
            Some(other) => {
                return Err(Error::Config(format!(
                    "enable_auto_commit must be a bool, got {}",
                    kind_of(other)
                )))
            }
        };
        settings.commit_interval = auto_commit.then(|| Duration::from_millis(interval_ms));
        Ok(settings)
    }
}
