//! A test's outage of an in-memory cluster, and a mirror that keeps another cluster in step with
//! it — what a failover test needs ([`crate::transport::failover`]).
//!
//! A cluster taken down behaves as a real one whose brokers are all gone: it reports itself
//! unreachable from then on, records produced to it wait in their client's queue (unsettled in
//! their trackers) until it comes back or a failover hands them to the standby, its consumers
//! get nothing, and commits, subscriptions and start checks fail. A mirror copies every record
//! appended to one cluster onto another with its timestamp, as MirrorMaker 2 does.

use std::sync::{Arc, Mutex, Weak};

use super::state::{lock, wake};
use super::MemoryCluster;
use crate::delivery::DeliveryTracker;
use crate::error::{Error, Result};
use crate::record::OutgoingRecord;
use crate::transport::{Cluster, Reachability};

/// Records produced while the cluster was down, in the order they were sent.
pub(super) struct HeldSend {
    pub(super) topic: String,
    pub(super) records: Vec<OutgoingRecord>,
    pub(super) tracker: Option<Arc<DeliveryTracker>>,
}

/// A cluster's outage and mirrors.
#[derive(Default)]
pub(super) struct Outage {
    pub(super) reachability: Reachability,
    pub(super) held: Mutex<Vec<HeldSend>>,
    /// Clusters that get a copy of every record appended here.
    pub(super) mirrors: Mutex<Vec<Weak<MemoryCluster>>>,
}

impl Outage {
    pub(super) fn is_down(&self) -> bool {
        self.reachability.down_for().is_some()
    }
}

impl MemoryCluster {
    /// Takes the cluster down until [`MemoryCluster::bring_back`]; see the module docs.
    pub fn take_down(&self) {
        if self.shared.outage.reachability.went_down() {
            tracing::warn!("cluster {} taken down (a test's outage)", self.id);
        }
    }

    /// Ends an outage: records held meanwhile are appended (and acknowledged), consumers read
    /// again.
    pub fn bring_back(&self) {
        let Some(down_for) = self.shared.outage.reachability.answered() else {
            return;
        };
        tracing::warn!("cluster {} back after {down_for:?}", self.id);
        let held = std::mem::take(&mut *lock(&self.shared.outage.held));
        for send in held {
            let count = send.records.len();
            self.deliver(&send.topic, send.records);
            if let Some(tracker) = send.tracker {
                (0..count).for_each(|_| tracker.delivered());
            }
        }
        let everyone = self.state().all_readers();
        wake(&everyone);
    }

    /// From now on, every record appended here is also appended to `to` with its timestamp (a
    /// mirror that keeps timestamps, as MirrorMaker 2 does). Keyed records land on the same
    /// partition when both topics have as many partitions.
    pub fn mirror_to(&self, to: &Arc<MemoryCluster>) {
        lock(&self.shared.outage.mirrors).push(Arc::downgrade(to));
    }

    /// Holds `records` while the cluster is down; `None` when it is up (send them).
    pub(super) fn hold_if_down(
        &self,
        topic: &str,
        records: Vec<OutgoingRecord>,
        tracker: Option<&Arc<DeliveryTracker>>,
    ) -> Option<Vec<OutgoingRecord>> {
        if !self.shared.outage.is_down() {
            return Some(records);
        }
        if let Some(tracker) = tracker {
            tracker.sent(records.len());
        }
        lock(&self.shared.outage.held).push(HeldSend {
            topic: topic.to_owned(),
            records,
            tracker: tracker.cloned(),
        });
        None
    }

    /// Copies records just appended to `topic` (with `timestamp_ms`) to the mirrors.
    pub(super) fn copy_to_mirrors(
        &self,
        topic: &str,
        records: &[OutgoingRecord],
        timestamp_ms: i64,
    ) {
        let mirrors: Vec<Arc<MemoryCluster>> = lock(&self.shared.outage.mirrors)
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        for mirror in mirrors {
            // A copy is not copied on: two clusters mirrored both ways do not echo.
            mirror.append_at(topic, records.to_vec(), timestamp_ms, false);
        }
    }

    /// Hands the records held by an outage to `to`, each settled in its own tracker by `to`.
    pub(super) fn redirect_held(&self, to: &Arc<dyn Cluster>) {
        let held = std::mem::take(&mut *lock(&self.shared.outage.held));
        for send in held {
            crate::transport::resend(
                to.as_ref(),
                &send.topic,
                send.records,
                send.tracker.as_ref(),
            );
        }
    }

    /// Fails with a transport error naming the cluster while it is down.
    pub(super) fn check_up(&self, doing: &str) -> Result<()> {
        if self.shared.outage.is_down() {
            return Err(Error::Transport {
                cluster: self.id.to_string(),
                message: format!("cannot {doing}: every broker is down (a test's outage)"),
            });
        }
        Ok(())
    }
}
