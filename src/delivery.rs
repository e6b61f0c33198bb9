//! Delivery tracking: which records a batch's handler produced, to any cluster, and whether
//! each was acknowledged — so that an input's offset is stored only once everything done on
//! its behalf is delivered (at-least-once *across* clusters).
//!
//! The consumer loop gives each batch a [`DeliveryTracker`] and makes it [`current`] while the
//! handler runs (a tokio task-local, so a Rust producer called from the handler finds it;
//! Python handlers get it handed over with the batch and pass it to their producer calls).
//! A transport counts each record it accepts for a tracker ([`DeliveryTracker::sent`]) and
//! settles it when the cluster answers ([`DeliveryTracker::delivered`] or
//! [`DeliveryTracker::failed`]); a send refused before the client took it is a delivery
//! failure too ([`DeliveryTracker::refused`]). The loop stores a batch's offsets once its
//! tracker is settled without failure, in batch order; a failure makes it handle the batch
//! again (or dead-letter it, as the consumer's policy says).
//!
//! A refusal happens inside the handler's call, so it can be pinned on the record being handled:
//! the facade that sees the producer's error come out of a handler takes it
//! ([`DeliveryTracker::take_refusal`]) and reports that record as undelivered, which retries
//! just that record in place. A refusal nobody took (the handler swallowed the error, or a task
//! it started was refused) fails the whole batch, like a failure the cluster reports.
//!
//! Work a handler starts and does not await is tied to its batch as well: a task started
//! with [`spawn`] (Rust) or `asyncio.create_task` inside a handler (Python, see
//! `python/fastkafka/_tasks.py`) counts as pending until it ends, and its sends count
//! towards the batch. A plain `tokio::spawn` does not carry the task-local: what it sends is
//! tied to no input, like sends from code outside any handler.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

use crate::error::Error;

/// The acknowledgements of the records one batch's handler produced.
#[derive(Debug, Default)]
pub struct DeliveryTracker {
    pending: AtomicUsize,
    failure: Mutex<Option<Error>>,
    /// Refused sends not pinned on a record yet (see the module docs).
    refusals: Mutex<Refusals>,
    settled: Notify,
}

/// Refused sends of a batch that no record was blamed for.
#[derive(Debug, Default)]
struct Refusals {
    unblamed: usize,
    /// The first unblamed refusal's error.
    first: Option<Error>,
}

tokio::task_local! {
    static CURRENT: Arc<DeliveryTracker>;
}

/// The tracker of the batch whose handler is running on this task, if any.
pub fn current() -> Option<Arc<DeliveryTracker>> {
    CURRENT.try_with(Arc::clone).ok()
}

/// Runs `future` with `tracker` as the [`current`] one.
pub async fn tracking<F: Future>(tracker: Arc<DeliveryTracker>, future: F) -> F::Output {
    CURRENT.scope(tracker, future).await
}

impl DeliveryTracker {
    /// A tracker with nothing sent yet.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// `count` more records were handed to a client; each will be delivered or fail.
    pub fn sent(&self, count: usize) {
        self.pending.fetch_add(count, Ordering::AcqRel);
    }

    /// A send was refused before the client took it (the queue stayed full, the record is too
    /// large, the topic is unknown): a delivery failure like one the cluster reports, without
    /// a record to wait for.
    pub fn refused(&self, error: Error) {
        let mut refusals = self.refusals.lock().unwrap_or_else(PoisonError::into_inner);
        refusals.unblamed += 1;
        refusals.first.get_or_insert(error);
    }

    /// Blames one refused send on the record whose handler the caller saw fail with that
    /// refusal's error: it no longer fails the whole batch. Returns the (first) refusal's
    /// error, or `None` if there is none to blame. Another refusal, swallowed by the handler,
    /// still fails the batch.
    pub fn take_refusal(&self) -> Option<Error> {
        let mut refusals = self.refusals.lock().unwrap_or_else(PoisonError::into_inner);
        if refusals.unblamed == 0 {
            return None;
        }
        refusals.unblamed -= 1;
        if refusals.unblamed == 0 {
            refusals.first.take()
        } else {
            refusals.first.clone()
        }
    }

    /// Whether some delivery failed, or a refusal was not pinned on a record: the batch will be
    /// handled again (or dead-lettered), so what its handler reported is moot.
    pub fn has_failed(&self) -> bool {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
            || self
                .refusals
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .unblamed
                > 0
    }

    /// Work on the batch's behalf started (a task its handler spawned): the batch is not
    /// settled until [`DeliveryTracker::work_finished`] is called for it.
    pub fn work_started(&self) {
        self.sent(1);
    }

    /// Work counted by [`DeliveryTracker::work_started`] ended (its sends, if any, are
    /// counted on their own).
    pub fn work_finished(&self) {
        self.settle_one();
    }

    /// A record counted by [`DeliveryTracker::sent`] was not taken after all (a full queue).
    pub fn unsent(&self) {
        self.settle_one();
    }

    /// A record was acknowledged by its cluster.
    pub fn delivered(&self) {
        self.settle_one();
    }

    /// A record could not be delivered; the first failure is what [`DeliveryTracker::outcome`]
    /// reports.
    pub fn failed(&self, error: Error) {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert(error);
        self.settle_one();
    }

    fn settle_one(&self) {
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.settled.notify_waiters();
        }
    }

    /// Whether every record sent so far was acknowledged or failed, and every task started
    /// for the batch ended.
    pub fn is_settled(&self) -> bool {
        self.pending.load(Ordering::Acquire) == 0
    }

    /// How many records are still waiting for their cluster's answer, plus the tasks started
    /// on the batch's behalf that have not ended.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }

    /// Waits until every record sent so far is settled.
    pub async fn settled(&self) {
        loop {
            let notified = self.settled.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_settled() {
                return;
            }
            notified.await;
        }
    }

    /// The first delivery failure, or else a refusal no record was blamed for, if any
    /// (meaningful once settled).
    pub fn outcome(&self) -> Result<(), Error> {
        let failure = self.failure.lock().unwrap_or_else(PoisonError::into_inner);
        let refusals = self.refusals.lock().unwrap_or_else(PoisonError::into_inner);
        match failure.as_ref().or(refusals.first.as_ref()) {
            Some(error) => Err(error.clone()),
            None => Ok(()),
        }
    }
}

/// Spawns `future` on the current tokio runtime, tied to the batch whose handler calls this: the
/// batch's offsets are stored only after the task ended and everything it sent was
/// acknowledged, and its sends count towards the batch. Outside a handler it is a plain
/// `tokio::spawn`. (A plain `tokio::spawn` from a handler ties nothing: its sends belong to
/// no input, and the input may commit before they are acknowledged.)
pub fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let Some(tracker) = current() else {
        return tokio::spawn(future);
    };
    tracker.work_started();
    // Dropped when the task ends, is aborted or panics: the batch never waits forever.
    let finished = WorkFinished(tracker.clone());
    tokio::spawn(tracking(tracker, async move {
        let _finished = finished;
        future.await
    }))
}

/// Ends a [`spawn`]ed task's work on its batch when dropped.
struct WorkFinished(Arc<DeliveryTracker>);

impl Drop for WorkFinished {
    fn drop(&mut self) {
        self.0.work_finished();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn settles_when_every_record_is_answered_and_keeps_the_first_failure() {
        let tracker = DeliveryTracker::new();
        assert!(tracker.is_settled());
        tracker.sent(3);
        tracker.delivered();
        tracker.failed(Error::Handler("first".into()));
        assert!(!tracker.is_settled());
        let waiting = tokio::spawn({
            let tracker = tracker.clone();
            async move { tracker.settled().await }
        });
        tracker.failed(Error::Handler("second".into()));
        waiting.await.unwrap();
        assert!(matches!(tracker.outcome(), Err(Error::Handler(m)) if m == "first"));
    }

    #[tokio::test]
    async fn a_spawned_task_holds_its_batch_until_it_ends_and_its_sends_count() {
        let tracker = DeliveryTracker::new();
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let [task] = tracking(tracker.clone(), async {
            [spawn(async move {
                wait.await.unwrap();
                current()
                    .expect("the task sees its batch's tracker")
                    .sent(1);
            })]
        })
        .await;
        assert!(!tracker.is_settled(), "held while the task runs");
        go.send(()).unwrap();
        task.await.unwrap();
        assert_eq!(
            tracker.pending(),
            1,
            "the task ended; its send is still pending"
        );
        tracker.delivered();
        assert!(tracker.is_settled());
    }

    #[tokio::test]
    async fn a_spawned_task_that_panics_or_is_aborted_lets_its_batch_go() {
        let tracker = DeliveryTracker::new();
        let (panicking, pending) = tracking(tracker.clone(), async {
            (
                spawn(async { panic!("boom") }),
                spawn(std::future::pending::<()>()),
            )
        })
        .await;
        assert!(panicking.await.is_err());
        pending.abort();
        let _ = pending.await;
        assert!(tracker.is_settled());
        assert!(tracker.outcome().is_ok());
    }

    #[tokio::test]
    async fn a_refused_send_fails_the_batch_unless_a_record_takes_the_blame() {
        let tracker = DeliveryTracker::new();
        tracker.refused(Error::Handler("queue full".into()));
        assert!(tracker.is_settled() && tracker.has_failed());
        assert!(matches!(tracker.outcome(), Err(Error::Handler(m)) if m == "queue full"));
        assert!(matches!(tracker.take_refusal(), Some(Error::Handler(m)) if m == "queue full"));
        assert!(!tracker.has_failed());
        assert!(tracker.outcome().is_ok());

        // Two refusals, one blamed: the other (a handler swallowed it) still fails the batch.
        tracker.refused(Error::Handler("too large".into()));
        tracker.refused(Error::Handler("too large".into()));
        assert!(tracker.take_refusal().is_some());
        assert!(tracker.has_failed() && tracker.outcome().is_err());
    }

    #[tokio::test]
    async fn the_current_tracker_is_the_one_in_scope() {
        assert!(current().is_none());
        let tracker = DeliveryTracker::new();
        let seen = tracking(tracker.clone(), async { current() }).await;
        assert!(Arc::ptr_eq(&seen.unwrap(), &tracker));
    }
}
