//! [`Redirect`]: the records a failover takes from a lost cluster's client, sent on to the
//! standby in the order they were first sent.
//!
//! librdkafka purges a client's records in two steps — its partitions' queues first, then what
//! its broker threads hold (the oldest: being batched, or in flight) — so their reports come
//! newest first for the records in flight. Sending each on as its report comes would put a
//! key's oldest records on the standby after newer ones. So the reports are kept until the
//! client holds nothing more (or holds no less than at the last look: what is left is not
//! records), then sent on oldest first by the time librdkafka stamped each with when it was
//! sent; records stamped in the same millisecond keep the order of their reports.

use std::sync::{Arc, Mutex, PoisonError};

use rdkafka::message::{BorrowedMessage, Message};

use super::native;
use crate::delivery::DeliveryTracker;
use crate::record::OutgoingRecord;
use crate::transport::resend;
use crate::transport::Cluster;

/// Where a client's purged records go, and those kept until they can go in order.
#[derive(Default)]
pub(super) struct Redirect(Mutex<Option<Target>>);

struct Target {
    to: Arc<dyn Cluster>,
    kept: Vec<Kept>,
    /// What the client held at the last look.
    last_held: Option<usize>,
}

struct Kept {
    topic: String,
    sent_ms: i64,
    record: OutgoingRecord,
    tracker: Arc<DeliveryTracker>,
}

impl Redirect {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Target>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// From now on purged records go to `to`.
    pub(super) fn point_at(&self, to: Arc<dyn Cluster>) {
        let mut target = self.lock();
        match target.as_mut() {
            Some(target) => target.to = to,
            None => {
                *target = Some(Target {
                    to,
                    kept: Vec::new(),
                    last_held: None,
                })
            }
        }
    }

    /// Keeps a purged record's report for [`Redirect::send_on`]; `false` when no failover asked
    /// for it (the record then failed, as any purged one).
    pub(super) fn keep(
        &self,
        message: &BorrowedMessage<'_>,
        tracker: Arc<DeliveryTracker>,
    ) -> bool {
        let mut target = self.lock();
        let Some(target) = target.as_mut() else {
            return false;
        };
        target.kept.push(Kept {
            topic: message.topic().to_owned(),
            sent_ms: message.timestamp().to_millis().unwrap_or(i64::MAX),
            record: native::outgoing(message),
            tracker,
        });
        true
    }

    /// Once the client holds nothing more (`held`, counted after a purge) — or no less than at
    /// the last look — sends what was kept on, oldest first. Blocks while the target's queue is
    /// full.
    pub(super) fn send_on(&self, held: usize) {
        let (to, mut kept) = {
            let mut target = self.lock();
            let Some(target) = target.as_mut() else {
                return;
            };
            let settled = held == 0 || target.last_held == Some(held);
            target.last_held = Some(held);
            if !settled || target.kept.is_empty() {
                return;
            }
            (target.to.clone(), std::mem::take(&mut target.kept))
        };
        kept.sort_by_key(|kept| kept.sent_ms); // stable: same-millisecond records keep order
        for kept in kept {
            resend(&*to, &kept.topic, vec![kept.record], Some(&kept.tracker));
        }
    }
}
