//! The consumer loop: poll a batch, hand it to a handler, store its offsets, commit now and
//! then, stop cleanly.
//!
//! One loop per subscribed consumer, as a tokio task. The handler gets a whole batch (up to
//! `max_poll_records`) at once: for Python that means one GIL acquisition and one event-loop
//! wake-up per batch instead of per message, which is where the throughput comes from
//! (DESIGN.md §3).
//!
//! Delivery is at-least-once: offsets are stored only after the handler returned for the batch,
//! and only stored offsets are committed — periodically, on stop, and by the transport when a
//! rebalance takes a partition away. A handler that cannot process one message must deal with
//! it itself (log it, dead-letter it) and return `Ok`: an `Err` means "stop this consumer",
//! which is what `throw_exceptions=True` asks for.

use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::record::Record;
use crate::transport::ClusterConsumer;

/// The wait after a failed poll, doubling up to [`LAST_RETRY`] while failures go on.
const FIRST_RETRY: Duration = Duration::from_millis(100);
const LAST_RETRY: Duration = Duration::from_secs(5);

/// Processes the batches of one consumer.
#[async_trait]
pub trait BatchHandler: Send + 'static {
    /// Handles `records` (never empty). `Ok` stores their offsets; `Err` stops the consumer
    /// without storing them.
    async fn handle(&mut self, records: &[Record]) -> Result<()>;
}

/// How a [`ConsumerLoop`] polls and commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerLoopConfig {
    /// The largest batch handed to the handler (FastKafka's default: 100).
    pub max_poll_records: usize,
    /// How often stored offsets are committed while running; `None` commits only when
    /// partitions are revoked and on stop.
    pub commit_interval: Option<Duration>,
}

impl Default for ConsumerLoopConfig {
    fn default() -> Self {
        Self {
            max_poll_records: 100,
            commit_interval: Some(Duration::from_secs(5)),
        }
    }
}

/// A running consumer loop. Dropping it without [`ConsumerLoop::stop`] lets the task run on.
#[derive(Debug)]
pub struct ConsumerLoop {
    shutdown: watch::Sender<bool>,
    task: JoinHandle<Result<()>>,
}

impl ConsumerLoop {
    /// Starts a loop over `consumer` on the current tokio runtime.
    pub fn spawn<H: BatchHandler>(
        consumer: Box<dyn ClusterConsumer>,
        handler: H,
        config: ConsumerLoopConfig,
    ) -> Self {
        let (shutdown, stop_requested) = watch::channel(false);
        let task = tokio::spawn(run(consumer, handler, config, stop_requested));
        Self { shutdown, task }
    }

    /// Whether the loop ended on its own (its handler failed) without being stopped.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Asks the loop to stop, waits for the batch in flight to finish, commits and leaves the
    /// group. Returns the handler's error if that is what ended the loop.
    pub async fn stop(self) -> Result<()> {
        // The receiver is gone only if the task already ended; its result says why.
        let _ = self.shutdown.send(true);
        match self.task.await {
            Ok(result) => result,
            Err(join_error) => Err(Error::Handler(format!(
                "consumer loop panicked: {join_error}"
            ))),
        }
    }
}

async fn run<H: BatchHandler>(
    mut consumer: Box<dyn ClusterConsumer>,
    mut handler: H,
    config: ConsumerLoopConfig,
    mut stop_requested: watch::Receiver<bool>,
) -> Result<()> {
    let mut last_commit = Instant::now();
    let mut retry_after = FIRST_RETRY;
    let outcome = loop {
        let polled = tokio::select! {
            biased;
            _ = stop_requested.wait_for(|stop| *stop) => break Ok(()),
            polled = consumer.poll(config.max_poll_records) => polled,
        };
        let batch = match polled {
            Ok(batch) => {
                retry_after = FIRST_RETRY;
                batch
            }
            Err(error @ Error::Closed(_)) => break Err(error),
            Err(error) => {
                // A cluster that keeps failing must not turn this loop into a busy loop.
                tracing::warn!(%error, "poll failed; retrying in {retry_after:?}");
                tokio::select! {
                    biased;
                    _ = stop_requested.wait_for(|stop| *stop) => break Ok(()),
                    _ = tokio::time::sleep(retry_after) => {}
                }
                retry_after = (retry_after * 2).min(LAST_RETRY);
                continue;
            }
        };
        if let Err(error) = handler.handle(&batch).await {
            break Err(error);
        }
        consumer.store_offsets(&batch)?;
        if config
            .commit_interval
            .is_some_and(|interval| last_commit.elapsed() >= interval)
        {
            if let Err(error) = consumer.commit().await {
                tracing::warn!(%error, "periodic commit failed; will retry");
            }
            last_commit = Instant::now();
        }
    };
    let closed = consumer.close().await;
    outcome.and(closed)
}
