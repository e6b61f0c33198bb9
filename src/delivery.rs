//! Delivery tracking: which records a batch's handler produced, to any cluster, and whether
//! each was acknowledged — so that an input's offset is stored only once everything its
//! handler produced is delivered (at-least-once *across* clusters).
//!
//! The consumer loop gives each batch a [`DeliveryTracker`] and makes it [`current`] while the
//! handler runs (a tokio task-local, so a Rust producer called from the handler finds it;
//! Python handlers get it handed over with the batch and pass it to their producer calls).
//! A transport counts each record it accepts for a tracker ([`DeliveryTracker::sent`]) and
//! settles it when the cluster answers ([`DeliveryTracker::delivered`] or
//! [`DeliveryTracker::failed`]). The loop stores a batch's offsets once its tracker is
//! settled without failure, in batch order; a failure makes it handle the batch again.

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
    settled: Notify,
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

    /// Whether every record sent so far was acknowledged or failed.
    pub fn is_settled(&self) -> bool {
        self.pending.load(Ordering::Acquire) == 0
    }

    /// How many records are still waiting for their cluster's answer.
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

    /// The first delivery failure, if any (meaningful once settled).
    pub fn outcome(&self) -> Result<(), Error> {
        match &*self.failure.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(error) => Err(error.clone()),
            None => Ok(()),
        }
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
        assert_eq!(tracker.outcome(), Err(Error::Handler("first".into())));
    }

    #[tokio::test]
    async fn the_current_tracker_is_the_one_in_scope() {
        assert!(current().is_none());
        let tracker = DeliveryTracker::new();
        let seen = tracking(tracker.clone(), async { current() }).await;
        assert!(Arc::ptr_eq(&seen.unwrap(), &tracker));
    }
}
