//! [`HealthReport`]: what a health check answers — for the probes' JSON bodies, Python's
//! `app.health()` and Rust callers alike.

use serde::Serialize;

/// An app's health: what the probes answer (`live`, `ready`) and why, as JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthReport {
    /// Whether the app makes progress (see the module docs).
    pub live: bool,
    /// Whether the app should be sent work (see the module docs).
    pub ready: bool,
    /// `running`, `stopping` or `not running`.
    pub state: String,
    /// Each reason it is not live or not ready, naming consumer, topic and cluster.
    pub problems: Vec<String>,
    /// Every consumer.
    pub consumers: Vec<ConsumerHealth>,
    /// Every cluster the app uses.
    pub clusters: Vec<ClusterHealth>,
}

impl HealthReport {
    /// The health of an app that is not running (not started yet, or stopped): live, since
    /// nothing is stuck, and not ready.
    pub fn not_running() -> Self {
        Self {
            live: true,
            ready: false,
            state: "not running".to_owned(),
            problems: vec!["the app is not running".to_owned()],
            consumers: Vec::new(),
            clusters: Vec::new(),
        }
    }
}

/// One consumer's health.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConsumerHealth {
    /// The consumer (its function's name in Python).
    pub name: String,
    /// The topic it reads.
    pub topic: String,
    /// Its cluster's bootstrap servers.
    pub cluster: String,
    /// Its group, if any.
    pub group_id: Option<String>,
    /// See [`HealthReport::live`].
    pub live: bool,
    /// Live and holding its partitions.
    pub ready: bool,
    /// Seconds since it last waited for records (0 while it waits).
    pub since_poll_s: f64,
    /// Seconds its handler has had the current batch; `None` between batches.
    pub handling_for_s: Option<f64>,
    /// Whether it holds its partitions.
    pub holds_partitions: bool,
    /// The partitions of its topic it holds now.
    pub partitions: Vec<i32>,
    /// Its liveness limits, in seconds.
    pub polling_ttl_s: f64,
    /// See `polling_ttl_s`.
    pub consuming_ttl_s: f64,
    /// Why it is not live or not ready.
    pub problems: Vec<String>,
}

/// One cluster's health.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterHealth {
    /// Its bootstrap servers.
    pub cluster: String,
    /// Whether it answers.
    pub reachable: bool,
    /// Seconds since every broker of it went down, while they are.
    pub unreachable_for_s: Option<f64>,
    /// The app's functions that use it.
    pub used_by: Vec<String>,
    /// Its standby, where it names one ([`crate::transport::failover`]); `reachable` is then
    /// the side's that takes the traffic.
    pub standby: Option<StandbyHealth>,
}

/// A cluster's standby in the health report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StandbyHealth {
    /// Its bootstrap servers.
    pub cluster: String,
    /// Whether it takes the traffic now (the primary was lost).
    pub active: bool,
    /// How many times the traffic moved between the two, either way.
    pub switches: u64,
    /// Why it last moved, if it did.
    pub last_switch: Option<String>,
}
