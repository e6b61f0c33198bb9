//! Liveness and readiness: a view of the running runtime (DESIGN.md §15), computed here once
//! for `fastkafka run`'s probes, Python's `app.health()` and Rust's
//! [`RunningApp::health`](crate::app::RunningApp::health).
//!
//! - **Live** unless a consumer has not polled for its `polling_ttl`, one batch has been in its
//!   handler for longer than its `consuming_ttl`, or a consumer loop ended. Both limits default
//!   to the consumer's `max.poll.interval.ms` (librdkafka's default: 300 s): past it the group
//!   has given the consumer's partitions to another member anyway. A consumer waits in a poll
//!   for as long as no records come: waiting there is polling.
//! - **Ready** while it runs (not while stopping), every cluster it uses answers, and every
//!   consumer holds its partitions (a group-less consumer: once assigned every partition).
//!
//! The loops publish what they do in a [`ConsumerPulse`] (three clock reads and atomic stores
//! per batch, nothing per record); the transport publishes
//! [`Reachability`](crate::transport::Reachability) and [`Membership`] flags from its callbacks; [`HealthProbe::check`] reads them all, so a check
//! never waits on a loop, a lock or the network. A cluster marked unreachable is asked again
//! every second (`spawn_rechecks`) until it answers. What a check answers, [`HealthReport`]
//! and its parts, is in `report.rs`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::consumer_loop::LoopFailure;
use crate::error::{Error, Result};
use crate::transport::status::{clock_ms, since};
use crate::transport::{ClientProperties, Cluster, Membership};

mod report;

pub use report::{ClusterHealth, ConsumerHealth, HealthReport, StandbyHealth};

/// How often a cluster marked unreachable is asked whether it answers again.
const RECHECK_EVERY: Duration = Duration::from_secs(1);

/// The liveness limits of an app's consumers; `None` takes each consumer's
/// `max.poll.interval.ms`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HealthLimits {
    /// Longest a consumer may go without polling and stay live.
    pub polling_ttl: Option<Duration>,
    /// Longest one batch may stay in its handler and the consumer stay live.
    pub consuming_ttl: Option<Duration>,
}

impl HealthLimits {
    /// Limits given in seconds (FastKafka-style keyword arguments and `fastkafka run` flags),
    /// checked: each must be a positive, finite number.
    pub fn from_seconds(polling_ttl: Option<f64>, consuming_ttl: Option<f64>) -> Result<Self> {
        let checked = |name: &str, seconds: Option<f64>| -> Result<Option<Duration>> {
            match seconds {
                None => Ok(None),
                Some(s) if s.is_finite() && s > 0.0 => Ok(Some(Duration::from_secs_f64(s))),
                Some(s) => Err(Error::Config(format!(
                    "{name} must be a positive number of seconds, got {s}"
                ))),
            }
        };
        Ok(Self {
            polling_ttl: checked("polling_ttl", polling_ttl)?,
            consuming_ttl: checked("consuming_ttl", consuming_ttl)?,
        })
    }

    /// The limits of a consumer whose client has `properties`: (polling, consuming).
    pub(crate) fn for_consumer(&self, properties: &ClientProperties) -> (Duration, Duration) {
        let max_poll_interval = max_poll_interval(properties);
        (
            self.polling_ttl.unwrap_or(max_poll_interval),
            self.consuming_ttl.unwrap_or(max_poll_interval),
        )
    }
}

/// A consumer's `max.poll.interval.ms` (librdkafka's default: 300 000 ms).
pub(crate) fn max_poll_interval(properties: &ClientProperties) -> Duration {
    let interval_ms = properties
        .get("max.poll.interval.ms")
        .and_then(|value| value.parse::<u64>().ok())
        .unwrap_or(300_000);
    Duration::from_millis(interval_ms)
}

/// What a consumer loop is doing, published for its health: whether it waits in a poll or
/// since when it does not, and since when its handler has the batch in hand.
#[derive(Debug)]
pub struct ConsumerPulse {
    /// When the loop last stopped waiting for records ([`clock_ms`]); 0 while it waits.
    left_poll_at: AtomicU64,
    /// When the batch in the handler's hands was handed over; 0 while there is none.
    handling_since: AtomicU64,
}

impl Default for ConsumerPulse {
    fn default() -> Self {
        Self {
            left_poll_at: AtomicU64::new(clock_ms()),
            handling_since: AtomicU64::new(0),
        }
    }
}

impl ConsumerPulse {
    pub(crate) fn polling(&self) {
        self.left_poll_at.store(0, Ordering::Relaxed);
    }

    pub(crate) fn left_poll(&self) {
        self.left_poll_at.store(clock_ms(), Ordering::Relaxed);
    }

    pub(crate) fn handling(&self) {
        self.handling_since.store(clock_ms(), Ordering::Relaxed);
    }

    pub(crate) fn handled(&self) {
        self.handling_since.store(0, Ordering::Relaxed);
    }

    /// How long since the loop last waited for records (zero while it waits).
    fn since_poll(&self) -> Duration {
        match self.left_poll_at.load(Ordering::Relaxed) {
            0 => Duration::ZERO,
            at => since(at),
        }
    }

    fn handling_for(&self) -> Option<Duration> {
        match self.handling_since.load(Ordering::Relaxed) {
            0 => None,
            at => Some(since(at)),
        }
    }
}

/// One consumer as its health sees it.
pub(crate) struct WatchedConsumer {
    pub(crate) name: String,
    pub(crate) topic: String,
    pub(crate) cluster: String,
    pub(crate) group_id: Option<String>,
    pub(crate) pulse: Arc<ConsumerPulse>,
    pub(crate) membership: Membership,
    pub(crate) failure: LoopFailure,
    pub(crate) polling_ttl: Duration,
    pub(crate) consuming_ttl: Duration,
}

/// One cluster as its health sees it, with the functions that use it.
pub(crate) struct WatchedCluster {
    pub(crate) cluster: Arc<dyn Cluster>,
    pub(crate) used_by: Vec<String>,
}

struct Watched {
    stopping: AtomicBool,
    consumers: Vec<WatchedConsumer>,
    clusters: Vec<WatchedCluster>,
}

/// Checks a running app's health from anywhere (a probe server, another task), for as long as
/// it is kept, during and after the stop too. Clones share what they watch.
#[derive(Clone)]
pub struct HealthProbe(Arc<Watched>);

impl std::fmt::Debug for HealthProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthProbe")
            .field("consumers", &self.0.consumers.len())
            .field("clusters", &self.0.clusters.len())
            .finish()
    }
}

impl HealthProbe {
    pub(crate) fn new(consumers: Vec<WatchedConsumer>, clusters: Vec<WatchedCluster>) -> Self {
        Self(Arc::new(Watched {
            stopping: AtomicBool::new(false),
            consumers,
            clusters,
        }))
    }

    /// From now on the app is stopping: not ready.
    pub(crate) fn stopping(&self) {
        self.0.stopping.store(true, Ordering::Relaxed);
    }

    /// The app's health now.
    pub fn check(&self) -> HealthReport {
        let mut problems = Vec::new();
        let mut live = true;
        let stopping = self.0.stopping.load(Ordering::Relaxed);
        let mut ready = !stopping;
        if stopping {
            problems.push("the app is stopping".to_owned());
        }
        let clusters: Vec<ClusterHealth> = self
            .0
            .clusters
            .iter()
            .map(|watched| {
                let unreachable_for = watched.cluster.unreachable_for();
                if let Some(down) = unreachable_for {
                    ready = false;
                    problems.push(format!(
                        "cluster {} (used by {}): unreachable for {:.1} s (every broker down)",
                        watched.cluster.id(),
                        watched.used_by.join(", "),
                        down.as_secs_f64()
                    ));
                }
                ClusterHealth {
                    cluster: watched.cluster.id().to_string(),
                    reachable: unreachable_for.is_none(),
                    unreachable_for_s: unreachable_for.map(|d| d.as_secs_f64()),
                    used_by: watched.used_by.clone(),
                    standby: watched
                        .cluster
                        .failover_status()
                        .map(|status| StandbyHealth {
                            cluster: status.standby,
                            active: status.on_standby,
                            switches: status.switches,
                            last_switch: status.last_switch,
                        }),
                }
            })
            .collect();
        let consumers = self
            .0
            .consumers
            .iter()
            .map(|watched| {
                let health = watched.check(stopping);
                live &= health.live;
                ready &= health.ready;
                problems.extend(health.problems.iter().map(|problem| {
                    format!(
                        "{} (topic '{}', cluster {}): {problem}",
                        watched.name, watched.topic, watched.cluster
                    )
                }));
                health
            })
            .collect();
        HealthReport {
            live,
            ready,
            state: if stopping { "stopping" } else { "running" }.to_owned(),
            problems,
            consumers,
            clusters,
        }
    }
}

impl WatchedConsumer {
    fn check(&self, stopping: bool) -> ConsumerHealth {
        let mut problems = Vec::new();
        let since_poll = self.pulse.since_poll();
        let handling_for = self.pulse.handling_for();
        let holds_partitions = self.membership.holds();
        let ended = self.failure.current().map(|error| error.to_string());
        let mut live = true;
        if let Some(error) = &ended {
            live = false;
            problems.push(format!("its loop ended: {error}"));
        }
        if since_poll > self.polling_ttl {
            live = false;
            problems.push(format!(
                "has not polled for {:.1} s (polling_ttl {:.1} s)",
                since_poll.as_secs_f64(),
                self.polling_ttl.as_secs_f64()
            ));
        }
        if let Some(handling_for) = handling_for.filter(|h| *h > self.consuming_ttl) {
            live = false;
            problems.push(format!(
                "one batch has been in its handler for {:.1} s (consuming_ttl {:.1} s)",
                handling_for.as_secs_f64(),
                self.consuming_ttl.as_secs_f64()
            ));
        }
        // Stopping consumers give their partitions up; that is not news.
        if !holds_partitions && !stopping {
            problems.push(match &self.group_id {
                Some(group) => format!(
                    "holds no partitions: group '{group}' has not assigned them (yet), or \
                     took them away"
                ),
                None => "holds no partitions yet".to_owned(),
            });
        }
        ConsumerHealth {
            name: self.name.clone(),
            topic: self.topic.clone(),
            cluster: self.cluster.clone(),
            group_id: self.group_id.clone(),
            live,
            ready: live && holds_partitions,
            since_poll_s: since_poll.as_secs_f64(),
            handling_for_s: handling_for.map(|d| d.as_secs_f64()),
            holds_partitions,
            partitions: self
                .membership
                .partitions()
                .iter()
                .map(|p| p.partition)
                .collect(),
            polling_ttl_s: self.polling_ttl.as_secs_f64(),
            consuming_ttl_s: self.consuming_ttl.as_secs_f64(),
            problems,
        }
    }
}

/// Asks each of `clusters` marked unreachable, every second, whether it answers again, until
/// the returned task is dropped.
pub(crate) fn spawn_rechecks(clusters: Vec<Arc<dyn Cluster>>) -> RecheckTask {
    RecheckTask(tokio::spawn(async move {
        let mut every = tokio::time::interval(RECHECK_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            futures_util::future::join_all(clusters.iter().map(|cluster| cluster.recheck())).await;
        }
    }))
}

/// The task of [`spawn_rechecks`]; dropping it stops it.
#[derive(Debug)]
pub(crate) struct RecheckTask(tokio::task::JoinHandle<()>);

impl Drop for RecheckTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_name_the_bad_value() {
        let error = HealthLimits::from_seconds(Some(-1.0), None).unwrap_err();
        assert!(error.to_string().contains("polling_ttl"), "{error}");
        let error = HealthLimits::from_seconds(None, Some(f64::NAN)).unwrap_err();
        assert!(error.to_string().contains("consuming_ttl"), "{error}");
    }

    #[test]
    fn limits_default_to_the_consumers_max_poll_interval() {
        let mut properties = ClientProperties::new();
        let limits = HealthLimits::from_seconds(None, Some(2.5)).unwrap();
        assert_eq!(
            limits.for_consumer(&properties),
            (Duration::from_secs(300), Duration::from_millis(2500))
        );
        properties.insert("max.poll.interval.ms".into(), "60000".into());
        assert_eq!(limits.for_consumer(&properties).0, Duration::from_secs(60));
    }

    #[test]
    fn a_waiting_poll_counts_as_polling() {
        let pulse = ConsumerPulse::default();
        pulse.polling();
        assert_eq!(pulse.since_poll(), Duration::ZERO);
        pulse.left_poll();
        pulse.handling();
        assert!(pulse.handling_for().is_some());
        pulse.handled();
        assert_eq!(pulse.handling_for(), None);
    }
}
