//! How a consumer loop ends: stored what is delivered while the stop allows, then the final
//! commit and leaving the group; and [`LoopFailure`], how the app learns that one ended without
//! being stopped — each bounded by the stop's deadline when it has one
//! ([`super::ConsumerLoop::stop_by`]), so that a cluster that is down cannot hold the stop. What
//! is not committed is consumed again by the next run, and the log says from where.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::awaiting::{store_delivered, Awaiting, Window};
use super::state::LoopState;
use super::ConsumerLoopConfig;
use crate::error::{Error, Result};
use crate::record::TopicPartition;

/// Stores what is delivered within the grace period (a delivery that failed is not retried any
/// more, one still on its way is not waited for longer: their batches are consumed again by
/// the next run) — unless the loop failed (`settle_first` false) — then commits and closes the
/// consumer.
pub(super) async fn finish(
    mut state: LoopState,
    config: &ConsumerLoopConfig,
    stop_requested: &mut watch::Receiver<bool>,
    deadline: Option<Instant>,
    settle_first: bool,
) -> Result<()> {
    if settle_first {
        let stopping_at = Instant::now();
        let mut settle_until = stopping_at + config.delivery_grace_at_stop;
        if let Some(deadline) = deadline {
            settle_until = settle_until.min(deadline - closing_share(stopping_at, deadline));
        }
        let settling = store_delivered(&mut state, Window::CLOSED, config, stop_requested);
        if tokio::time::timeout_at(settle_until, settling)
            .await
            .is_err()
        {
            tracing::warn!(
                "{}: {} handled record(s) in {} batch(es) still waited for their outputs to be \
                 acknowledged {:.1?} after stop; not committed, consumed again by the next run: \
                 {}",
                config.name,
                state.awaiting.records(),
                state.awaiting.batches(),
                stopping_at.elapsed(),
                uncommitted_from(&state.awaiting),
            );
        }
    }
    let closing = state.consumer.close();
    let Some(deadline) = deadline else {
        return closing.await;
    };
    match tokio::time::timeout_at(deadline, closing).await {
        Ok(closed) => closed,
        Err(_) => {
            tracing::warn!(
                "{}: the final commit and leaving the group did not finish by the stop's \
                 deadline; what was stored since the last commit is consumed again by the next \
                 run",
                config.name,
            );
            Ok(())
        }
    }
}

/// The part of a stop's time left for the final commit and leaving the group: a quarter of what
/// is left, at most 2 s.
fn closing_share(now: Instant, deadline: Instant) -> Duration {
    (deadline.saturating_duration_since(now) / 4).min(Duration::from_secs(2))
}

/// Where each partition of the batches still awaiting delivery starts: what the next run reads
/// again (`topic/partition@offset, ...`).
fn uncommitted_from(awaiting: &Awaiting) -> String {
    let mut firsts: Vec<(TopicPartition, i64)> = Vec::new();
    for record in awaiting.iter_records() {
        let partition = record.topic_partition();
        match firsts.iter_mut().find(|(known, _)| *known == partition) {
            Some((_, offset)) => *offset = (*offset).min(record.offset),
            None => firsts.push((partition, record.offset)),
        }
    }
    firsts
        .iter()
        .map(|(partition, offset)| format!("{}/{}@{offset}", partition.topic, partition.partition))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Resolves when a [`ConsumerLoop`](super::ConsumerLoop) ends other than by `stop`; see
/// [`ConsumerLoop::failure`](super::ConsumerLoop::failure).
#[derive(Debug, Clone)]
pub struct LoopFailure(watch::Receiver<Option<Error>>);

impl LoopFailure {
    pub(super) fn new(failure: watch::Receiver<Option<Error>>) -> Self {
        Self(failure)
    }

    /// The error that ended the loop, if it has failed by now.
    pub fn current(&self) -> Option<Error> {
        self.0.borrow().clone()
    }

    /// The error that ended the loop; `None` once the loop is gone without failing (it was
    /// stopped, or dropped).
    pub async fn wait(mut self) -> Option<Error> {
        match self.0.wait_for(Option::is_some).await {
            Ok(failed) => failed.clone(),
            Err(_) => None,
        }
    }
}
