//! [`ActiveClusterMetrics`]: which side of a primary/standby pair takes the traffic
//! ([`crate::transport::failover`]), and how often it moved.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use super::{enabled, escape, header, lock_registry};

/// One primary/standby pair's figures.
#[derive(Debug)]
pub struct ActiveClusterMetrics {
    primary: String,
    standby: String,
    on_standby: AtomicBool,
    failovers: AtomicU64,
    failbacks: AtomicU64,
}

impl ActiveClusterMetrics {
    /// Registers a pair (traffic on the primary); `None` when metrics are off. Rendered while
    /// the returned handle lives.
    pub fn register(primary: &str, standby: &str) -> Option<Arc<Self>> {
        if !enabled() {
            return None;
        }
        let metrics = Arc::new(Self {
            primary: primary.to_owned(),
            standby: standby.to_owned(),
            on_standby: AtomicBool::new(false),
            failovers: AtomicU64::new(0),
            failbacks: AtomicU64::new(0),
        });
        lock_registry().pairs.push(Arc::downgrade(&metrics));
        Some(metrics)
    }

    /// The traffic moved: to the standby (`true`) or back.
    pub fn set_on_standby(&self, on_standby: bool) {
        self.on_standby.store(on_standby, Ordering::Relaxed);
        let counter = if on_standby {
            &self.failovers
        } else {
            &self.failbacks
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

pub(super) fn render(out: &mut String, pairs: &[Arc<ActiveClusterMetrics>]) {
    if pairs.is_empty() {
        return;
    }
    // Pairs of one primary and standby under different policies are one pair to an operator.
    let mut seen: Vec<(&str, &str)> = Vec::new();
    let mut unique = Vec::new();
    for pair in pairs {
        if !seen.contains(&(pair.primary.as_str(), pair.standby.as_str())) {
            seen.push((&pair.primary, &pair.standby));
            unique.push(pair);
        }
    }
    header(
        out,
        "fastkafka_cluster_active",
        "gauge",
        "1 for the cluster of a primary/standby pair that takes the traffic, 0 for the other",
    );
    for pair in &unique {
        let on_standby = pair.on_standby.load(Ordering::Relaxed);
        for (cluster, role, active) in [
            (&pair.primary, "primary", !on_standby),
            (&pair.standby, "standby", on_standby),
        ] {
            let _ = std::fmt::Write::write_fmt(
                out,
                format_args!(
                    "fastkafka_cluster_active{{cluster=\"{}\",role=\"{role}\"}} {}\n",
                    escape(cluster),
                    u8::from(active)
                ),
            );
        }
    }
    header(
        out,
        "fastkafka_cluster_failovers_total",
        "counter",
        "Moves of a pair's traffic: to the standby (primary's series) and back (standby's)",
    );
    for pair in &unique {
        for (cluster, role, count) in [
            (&pair.primary, "primary", &pair.failovers),
            (&pair.standby, "standby", &pair.failbacks),
        ] {
            let _ = std::fmt::Write::write_fmt(
                out,
                format_args!(
                    "fastkafka_cluster_failovers_total{{cluster=\"{}\",role=\"{role}\"}} {}\n",
                    escape(cluster),
                    count.load(Ordering::Relaxed)
                ),
            );
        }
    }
}
