//! [`ConsumerOptions`]: a registered consumer's settings, adjusted right after registering it —
//! a view into the runtime's registration, so nothing is copied or checked twice.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::config::KafkaBrokers;
use crate::consumer_loop::failures::RetryPolicy;
use crate::consumer_loop::{PartitionsChanged, RebalanceHook};
use crate::error::Result;
use crate::runtime::{ClusterChoice, ConsumerSettings, DeadLetterTopic, Options};
use crate::transport::failover::FailoverPolicy;
use crate::transport::OffsetReset;

/// How a consumer reads, adjusted right after registering it: group, start position, batch
/// size, commit interval, client options, concurrency. The defaults are FastKafka's: no group,
/// earliest, 100 records, one message after another.
pub struct ConsumerOptions<'a> {
    pub(super) settings: &'a mut ConsumerSettings,
    pub(super) concurrency: Arc<AtomicUsize>,
}

impl fmt::Debug for ConsumerOptions<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsumerOptions")
            .field("settings", &self.settings)
            .finish()
    }
}

impl ConsumerOptions<'_> {
    /// Handle up to `limit` messages of a batch at once (default 1: one after another, in
    /// order). The next batch starts when the whole batch is done, so offsets never pass an
    /// unfinished message — Python's `DynamicTaskExecutor`.
    pub fn concurrency(&mut self, limit: usize) -> &mut Self {
        self.concurrency.store(limit.max(1), Ordering::Relaxed);
        self
    }

    /// Join `group_id`: its members share the partitions and the committed offsets.
    pub fn group_id(&mut self, group_id: impl Into<String>) -> &mut Self {
        self.settings.group_id = Some(group_id.into());
        self
    }

    /// Where to start without a committed offset.
    pub fn auto_offset_reset(&mut self, reset: OffsetReset) -> &mut Self {
        self.settings.auto_offset_reset = reset;
        self
    }

    /// How many records a batch handler gets per call at most (of one partition). A
    /// per-message handler, which does not see its calls' size, gets at least this many per call
    /// when they are waiting, and more as its speed allows: ~20 ms of its work, up to 2,000
    /// ([`HandOver::SizedToHandler`](crate::runtime::HandOver::SizedToHandler)).
    pub fn max_poll_records(&mut self, max: usize) -> &mut Self {
        self.settings.max_poll_records = max.max(1);
        self
    }

    /// How often processed offsets are committed (`None`: only on rebalance and stop).
    pub fn commit_interval(&mut self, interval: Option<Duration>) -> &mut Self {
        self.settings.commit_interval = interval;
        self
    }

    /// Retry a message whose handler returned an error, in place: its partition pauses and
    /// reads it again after the policy's backoff (other partitions go on), up to the policy's
    /// attempts; then it is dead-lettered (see [`ConsumerOptions::dead_letter`]) or logged
    /// and skipped. Messages that cannot be decoded are never retried.
    pub fn retry(&mut self, policy: RetryPolicy) -> &mut Self {
        self.settings.retry = Some(policy);
        self
    }

    /// Send what this consumer cannot process — undecodable messages, handler errors (after
    /// the retries), a batch whose outputs cannot be delivered — to `topic` on the consumer's
    /// cluster, with headers saying where each came from and why
    /// ([`crate::consumer_loop::failures::headers`]). Its offset is committed only once the
    /// dead letter is delivered.
    pub fn dead_letter(&mut self, topic: impl Into<String>) -> &mut Self {
        self.settings.dead_letter = Some(DeadLetterTopic {
            topic: topic.into(),
            cluster: None,
        });
        self
    }

    /// Like [`ConsumerOptions::dead_letter`], on the cluster of `brokers` (in the app's
    /// environment).
    pub fn dead_letter_on(
        &mut self,
        topic: impl Into<String>,
        brokers: &KafkaBrokers,
    ) -> &mut Self {
        self.settings.dead_letter = Some(DeadLetterTopic {
            topic: topic.into(),
            cluster: Some(ClusterChoice::Brokers(brokers.clone())),
        });
        self
    }

    /// Calls `hook` when the consumer's partitions are assigned or revoked: revoked ones after
    /// their offsets were committed, assigned ones before any of their records is handled. A
    /// seek the hook asks for (`changed.seeker`) is applied before the first record, so a hook
    /// can replay or skip; see [`PartitionsChanged`]. A hook that fails is logged.
    pub fn on_partitions_changed<F, Fut>(&mut self, hook: F) -> &mut Self
    where
        F: Fn(PartitionsChanged) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        self.settings.on_partitions_changed = Some(RebalanceHook::new(hook));
        self
    }

    /// When this consumer moves to its cluster's standby and back, and how far it rewinds
    /// there (where `kafka_brokers` names a standby; default: the app's, see
    /// [`crate::app::App::failover`]).
    pub fn failover(&mut self, policy: FailoverPolicy) -> &mut Self {
        self.settings.failover = policy;
        self
    }

    /// A librdkafka client property for this consumer.
    pub fn property(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.settings.properties.insert(name.into(), value.into());
        self
    }

    /// Options in FastKafka's (aiokafka's) names — `{"group_id": "g", "session_timeout_ms":
    /// 10000}` — checked and mapped exactly as the Python decorators' are; they replace the
    /// settings made so far.
    pub fn options(&mut self, options: &Options) -> Result<&mut Self> {
        *self.settings = ConsumerSettings::from_options(options, "ConsumerOptions::options")?;
        Ok(self)
    }
}
