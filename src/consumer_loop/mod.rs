//! The consumer loop: poll a batch, hand it to a handler, store its offsets, commit now and
//! then, stop cleanly.
//!
//! One loop per subscribed consumer, as a tokio task. The handler gets a whole batch (up to
//! `max_poll_records`) at once: for Python that means one GIL acquisition and one event-loop
//! wake-up per batch instead of per message, which is where the throughput comes from
//! (DESIGN.md §3). While the handler works on a batch, the loop polls the next one
//! (`read_ahead.rs`), so the handler's thread does not wait for the poll between batches.
//!
//! A loop that ends other than by [`ConsumerLoop::stop`] — its handler asked it to stop, its
//! cluster closed it, or it panicked (a panic is caught and becomes an [`Error::Panicked`]) —
//! reports why through [`ConsumerLoop::failure`], so the app above it can fail instead of
//! running on with a dead consumer.
//!
//! Delivery is at-least-once, across clusters: offsets are stored only after the handler returned
//! for the batch *and* everything done on its behalf was acknowledged ([`crate::delivery`]), in
//! batch order (`awaiting.rs`: what happens when outputs fail). Only stored offsets are
//! committed — periodically, on stop (`stopping.rs`), and by the transport when a rebalance
//! takes a partition away.
//!
//! A handler reports the records it could not process ([`Handled`]) and [`failures`] decides
//! what happens to them: retried in place, dead-lettered, or logged and skipped. An `Err` from
//! a handler means "stop this consumer", which is what `throw_exceptions=True` asks for.

mod awaiting;
mod config;
mod dead_letters;
pub mod failures;
mod handling;
mod partitions;
mod poll_size;
mod read_ahead;
mod state;
mod stopping;

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::FutureExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use awaiting::{store_delivered, Progress, Window};
pub use config::ConsumerLoopConfig;
use failures::Handled;
use handling::by_partition;
pub use handling::slow_batch_warning;
use partitions::Partitions;
pub use partitions::{PartitionsChanged, RebalanceHook, Seeker};
pub use poll_size::HAND_OVER_TARGET;
use state::{LoopState, FIRST_RETRY, LAST_RETRY};
pub use stopping::LoopFailure;

use crate::error::{Error, Result};
use crate::record::Record;
use crate::transport::ClusterConsumer;

/// How often the loop reads its consumer's lag and rebalances into its metrics.
const METRICS_REFRESH: Duration = Duration::from_millis(500);

/// Processes the batches of one consumer.
#[async_trait]
pub trait BatchHandler: Send + 'static {
    /// Handles `records` (never empty) and reports those it could not process; the loop
    /// stores the offsets of the others once what they produced is delivered. `Err` stops
    /// the consumer without storing them.
    async fn handle(&mut self, records: &[Record]) -> Result<Handled>;
}

#[async_trait]
impl BatchHandler for Box<dyn BatchHandler> {
    async fn handle(&mut self, records: &[Record]) -> Result<Handled> {
        (**self).handle(records).await
    }
}

/// A running consumer loop. Dropping it stops the loop as [`ConsumerLoop::stop`] does — its
/// batch in flight finishes, its offsets are committed, it leaves its group — in the
/// background, on the loop's own task (a drop cannot wait): nothing outlives its owner.
#[derive(Debug)]
pub struct ConsumerLoop {
    shutdown: watch::Sender<bool>,
    /// Set when stopping: when the stop must be over, if it has a deadline
    /// ([`ConsumerLoop::stop_by`]).
    stop_deadline: Arc<OnceLock<Option<Instant>>>,
    task: JoinHandle<Result<()>>,
    failure: watch::Receiver<Option<Error>>,
    seeker: Seeker,
}

impl ConsumerLoop {
    /// Starts a loop over `consumer` on the current tokio runtime.
    pub fn spawn<H: BatchHandler>(
        consumer: Box<dyn ClusterConsumer>,
        handler: H,
        config: ConsumerLoopConfig,
    ) -> Self {
        let (shutdown, stop_requested) = watch::channel(false);
        let (report_failure, failure) = watch::channel(None);
        let name = config.name.clone();
        let stop_deadline = Arc::new(OnceLock::new());
        let deadline = stop_deadline.clone();
        let partitions = Partitions::new(consumer.membership());
        let seeker = partitions.seeker();
        let task = tokio::spawn(async move {
            let looping = run(
                consumer,
                handler,
                config,
                (stop_requested.clone(), deadline),
                partitions,
            );
            let outcome = AssertUnwindSafe(looping)
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| {
                    Err(Error::Panicked {
                        what: "consumer loop".to_owned(),
                        message: panic_message(panic.as_ref()).to_owned(),
                    })
                });
            if let Err(error) = &outcome {
                if !*stop_requested.borrow() {
                    tracing::error!(%error, "{name}: consumer loop ended without being stopped");
                    report_failure.send_replace(Some(error.clone()));
                }
            }
            outcome
        });
        Self {
            shutdown,
            stop_deadline,
            task,
            failure,
            seeker,
        }
    }

    /// Asks the loop's consumer to read a partition from another offset; see [`Seeker::seek`].
    pub fn seeker(&self) -> Seeker {
        self.seeker.clone()
    }

    /// Resolves with the error if the loop ends other than by [`ConsumerLoop::stop`].
    pub fn failure(&self) -> LoopFailure {
        LoopFailure::new(self.failure.clone())
    }

    /// Whether the loop ended on its own (its handler failed) without being stopped.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Asks the loop to stop, waits for the batch in flight to finish, commits and leaves the
    /// group. Returns the handler's error if that is what ended the loop.
    pub async fn stop(self) -> Result<()> {
        self.stop_with(None).await
    }

    /// [`ConsumerLoop::stop`], over by `deadline` unless its handler does not return (see
    /// `stopping.rs`: what is not acknowledged or committed by then is consumed again).
    pub async fn stop_by(self, deadline: Instant) -> Result<()> {
        self.stop_with(Some(deadline)).await
    }

    async fn stop_with(self, deadline: Option<Instant>) -> Result<()> {
        let _ = self.stop_deadline.set(deadline);
        // The receiver is gone only if the task already ended; its result says why.
        let _ = self.shutdown.send(true);
        match self.task.await {
            Ok(result) => result,
            Err(join_error) => Err(Error::Panicked {
                what: "consumer loop".to_owned(),
                message: join_error.to_string(),
            }),
        }
    }
}

/// What woke the loop up.
enum Wake {
    Polled(Result<Vec<Record>>),
    Commit,
    Settled,
    Resume,
    RefreshMetrics,
    /// Its partitions changed, or a seek was asked.
    Partitions,
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

async fn run<H: BatchHandler>(
    consumer: Box<dyn ClusterConsumer>,
    mut handler: H,
    config: ConsumerLoopConfig,
    (mut stop_requested, stop_deadline): (watch::Receiver<bool>, Arc<OnceLock<Option<Instant>>>),
    mut partitions: Partitions,
) -> Result<()> {
    let mut state = LoopState::new(consumer, &config);
    let outcome = loop {
        let commit_due = async {
            match config.commit_interval {
                Some(interval) if state.uncommitted => {
                    tokio::time::sleep_until(state.last_commit + interval).await
                }
                _ => std::future::pending().await,
            }
        };
        // An idle consumer must still store (or redeliver) a batch once its outputs settle.
        let oldest = state.awaiting.front().map(|batch| batch.tracker.clone());
        let oldest_settled = async move {
            match oldest {
                Some(tracker) => tracker.settled().await,
                None => std::future::pending().await,
            }
        };
        let next_resume = state.next_resume();
        let backoff_over = async move {
            match next_resume {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        // Lag and rebalances are read on a clock, not per batch: asking librdkafka for the
        // positions takes a round trip to its main thread (measured: ~20% more CPU per record).
        let next_metrics_refresh = state.next_metrics_refresh;
        let refresh_due = async {
            match &config.metrics {
                Some(_) => tokio::time::sleep_until(next_metrics_refresh).await,
                None => std::future::pending().await,
            }
        };
        // `poll` is cancel-safe, so waking up to commit or store loses no record.
        config.pulse.polling();
        let polled = tokio::select! {
            biased;
            _ = stop_requested.wait_for(|stop| *stop) => break Ok(()),
            () = commit_due => Wake::Commit,
            () = backoff_over => Wake::Resume,
            () = oldest_settled => Wake::Settled,
            () = refresh_due => Wake::RefreshMetrics,
            () = partitions.wait() => Wake::Partitions,
            polled = async {
                match state.read_ahead.take() {
                    Some(polled) => polled,
                    None => state.consumer.poll(state.poll_size.next()).await,
                }
            } => Wake::Polled(polled),
        };
        config.pulse.left_poll();
        let polled = match polled {
            Wake::Polled(polled) => Some(polled),
            Wake::RefreshMetrics => {
                if let Some(metrics) = &config.metrics {
                    metrics.set_lag(&state.consumer.lag());
                    metrics.set_rebalances(state.consumer.rebalances());
                }
                state.next_metrics_refresh = Instant::now() + METRICS_REFRESH;
                continue;
            }
            Wake::Commit => {
                state.commit(&config).await;
                continue;
            }
            Wake::Resume => {
                if let Err(error) = state.resume_due() {
                    break Err(error);
                }
                continue;
            }
            Wake::Partitions => {
                if let Err(error) = partitions.settle(&mut state, &config, None).await {
                    break Err(error);
                }
                continue;
            }
            // The oldest awaiting batch settled: store it (or redeliver it) below.
            Wake::Settled => None,
        };
        if let Some(polled) = polled {
            let mut batch = match polled {
                Ok(batch) => {
                    if let Some((since, failed)) = state.failing.take() {
                        tracing::info!(
                            "{}: polling works again after {:.1?} of failing ({failed} failed \
                             attempt(s))",
                            config.name,
                            since.elapsed(),
                        );
                    }
                    state.retry_after = FIRST_RETRY;
                    batch
                }
                // Retrying cannot help: the loop ends and the app fails, naming the cause.
                Err(error @ (Error::Closed(_) | Error::Fatal { .. })) => break Err(error),
                Err(error) => {
                    // No busy loop, no wall of retries: a warning when polling starts failing,
                    // a line when it works again, the attempts between at debug level.
                    let retry_after = state.retry_after;
                    if state.failing.is_none() {
                        tracing::warn!(
                            %error,
                            "{}: poll failed; retrying with backoff ({retry_after:?} doubling to \
                             {LAST_RETRY:?})",
                            config.name
                        );
                    } else {
                        tracing::debug!(%error, "{}: poll failed again", config.name);
                    }
                    state.failing.get_or_insert((Instant::now(), 0)).1 += 1;
                    tokio::select! {
                        biased;
                        _ = stop_requested.wait_for(|stop| *stop) => break Ok(()),
                        _ = tokio::time::sleep(retry_after) => {}
                    }
                    state.retry_after = (retry_after * 2).min(LAST_RETRY);
                    continue;
                }
            };
            // Hooks first: the handler's first record of a partition assigned (and sought)
            // meanwhile comes after them.
            if let Err(error) = partitions
                .settle(&mut state, &config, Some(&mut batch))
                .await
            {
                break Err(error);
            }
            // Outputs are tracked per handler call. While some partition's outputs are not
            // being delivered, each partition gets calls of its own, so that the others'
            // outputs (and commits) do not wait on it.
            let calls = if batch.is_empty() {
                Vec::new()
            } else if config.one_partition_per_call || !state.undelivered.is_empty() {
                by_partition(&batch)
            } else {
                vec![batch]
            };
            config.pulse.handling();
            let handled = state.handle_calls(&mut handler, calls, &config).await;
            config.pulse.handled();
            if let Err(error) = handled {
                break Err(error);
            }
        }
        match store_delivered(
            &mut state,
            Window::of(&config),
            &config,
            &mut stop_requested,
        )
        .await
        {
            Ok(Progress::GoOn { stored, rewinds }) => {
                state.uncommitted |= stored;
                if let Err(error) = state.pause_for_retry(rewinds) {
                    break Err(error);
                }
            }
            Ok(Progress::Stopped) => break Ok(()),
            Err(error) => break Err(error),
        }
        if config
            .commit_interval
            .is_some_and(|interval| state.last_commit.elapsed() >= interval)
        {
            state.commit(&config).await;
        }
    };
    // Asked to stop: what handled batches produced is waited for and stored first.
    let deadline = stop_deadline.get().copied().flatten();
    let closed = stopping::finish(
        state,
        &config,
        &mut stop_requested,
        deadline,
        outcome.is_ok(),
    )
    .await;
    // The partitions it gave up as it left: revoked after their final commit.
    partitions.tell_after_close(&config, deadline).await;
    outcome.and(closed)
}
