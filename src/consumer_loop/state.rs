//! [`LoopState`]: what a consumer loop keeps between wake-ups, as one value its steps borrow —
//! its consumer, the batches awaiting their outputs' acknowledgements, retry counts, paused
//! partitions, the poll size and read-ahead, and commit and poll-failure bookkeeping. Each
//! step (`handling.rs`, `awaiting.rs`, `partitions.rs`, `stopping.rs`) takes `&mut LoopState`
//! and the loop's fixed [`ConsumerLoopConfig`] instead of a parameter per piece.

use std::time::Duration;

use tokio::time::Instant;

use super::awaiting::{commit_stored, Awaiting};
use super::failures::{Attempts, Rewind};
use super::poll_size::PollSize;
use super::read_ahead::ReadAhead;
use super::ConsumerLoopConfig;
use crate::error::Result;
use crate::record::TopicPartition;
use crate::transport::ClusterConsumer;

/// The wait after a failed poll, doubling up to [`LAST_RETRY`] while failures go on.
pub(super) const FIRST_RETRY: Duration = Duration::from_millis(100);
pub(super) const LAST_RETRY: Duration = Duration::from_secs(2);

/// What a consumer loop keeps between wake-ups (see the module docs).
pub(super) struct LoopState {
    pub(super) consumer: Box<dyn ClusterConsumer>,
    /// Handled batches whose outputs are not all acknowledged yet, oldest first.
    pub(super) awaiting: Awaiting,
    /// Failed attempts per partition's failing record (handler failures).
    pub(super) attempts: Attempts,
    /// The same for records whose outputs were not delivered.
    pub(super) undelivered: Attempts,
    /// Partitions paused for a retry, with when they resume.
    pub(super) paused: Vec<(TopicPartition, Instant)>,
    pub(super) poll_size: PollSize,
    pub(super) read_ahead: ReadAhead,
    pub(super) last_commit: Instant,
    /// Whether offsets were stored since the last commit: an idle consumer commits them when
    /// the interval is up, not only after its next batch.
    pub(super) uncommitted: bool,
    /// While polls fail: the next backoff, and since when they fail and how many did.
    pub(super) retry_after: Duration,
    pub(super) failing: Option<(Instant, u64)>,
    pub(super) next_metrics_refresh: Instant,
}

impl LoopState {
    pub(super) fn new(consumer: Box<dyn ClusterConsumer>, config: &ConsumerLoopConfig) -> Self {
        Self {
            consumer,
            awaiting: Awaiting::default(),
            attempts: Attempts::default(),
            undelivered: Attempts::default(),
            paused: Vec::new(),
            poll_size: PollSize::new(config),
            read_ahead: ReadAhead::default(),
            last_commit: Instant::now(),
            uncommitted: false,
            retry_after: FIRST_RETRY,
            failing: None,
            next_metrics_refresh: Instant::now(),
        }
    }

    /// Commits what was stored; a failed commit leaves it uncommitted, for the next one.
    pub(super) async fn commit(&mut self, config: &ConsumerLoopConfig) {
        self.uncommitted = !commit_stored(self.consumer.as_mut(), config).await;
        self.last_commit = Instant::now();
    }

    /// Pauses each partition to rewind at its offset, for its backoff (forgetting what the
    /// read-ahead holds of it).
    pub(super) fn pause_for_retry(&mut self, rewinds: Vec<Rewind>) -> Result<()> {
        for rewind in rewinds {
            self.consumer.pause_at(&rewind.partition, rewind.offset)?;
            self.read_ahead.forget(&rewind.partition);
            self.paused
                .retain(|(partition, _)| *partition != rewind.partition);
            self.paused
                .push((rewind.partition, Instant::now() + rewind.backoff));
        }
        Ok(())
    }

    /// Resumes the paused partitions whose backoff is over.
    pub(super) fn resume_due(&mut self) -> Result<()> {
        let now = Instant::now();
        for (partition, _) in self.paused.iter().filter(|(_, at)| *at <= now) {
            self.consumer.resume(partition)?;
        }
        self.paused.retain(|(_, at)| *at > now);
        Ok(())
    }

    /// When the next paused partition resumes.
    pub(super) fn next_resume(&self) -> Option<Instant> {
        self.paused.iter().map(|(_, at)| *at).min()
    }
}
