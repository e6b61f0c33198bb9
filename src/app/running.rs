//! [`RunningApp`]: a started [`App`](super::App) — what it started (the runtime's consumers and
//! producers, its background tasks), supervised while it runs, stopped by `stop` or a drop.

use crate::error::{Error, Result};
use crate::health::{HealthProbe, HealthReport};
use crate::runtime::RunningRuntime;

/// A started [`App`](super::App); stop it to commit and flush. Dropped without a stop (a panic,
/// an early return), it still stops what it started, in the background: its consumers finish their
/// batch, commit and leave (see [`ConsumerLoop`](crate::ConsumerLoop)), its background tasks
/// are cancelled; only the producers' flush, which a stop awaits, is not waited for.
#[derive(Debug)]
pub struct RunningApp {
    pub(super) runtime: RunningRuntime,
    pub(super) background: BackgroundTasks,
}

/// A running app's background tasks, cancelled when dropped.
#[derive(Debug)]
pub(super) struct BackgroundTasks(pub(super) Vec<tokio::task::JoinHandle<()>>);

impl Drop for BackgroundTasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

impl RunningApp {
    /// Waits until a consumer ends other than by [`RunningApp::stop`] — a handler panicked,
    /// or its cluster closed it — and returns why, naming the consumer. Never resolves while
    /// every consumer runs.
    pub async fn wait_for_failure(&self) -> Error {
        self.runtime.wait_for_failure().await
    }

    /// Asks `consumer` to read `partition` of its topic from `offset` on (replay or skip),
    /// applied before it hands over another record of that partition; see
    /// [`Seeker::seek`](crate::consumer_loop::Seeker::seek).
    pub fn seek(&self, consumer: &str, partition: i32, offset: i64) -> Result<()> {
        self.runtime.seek(consumer, partition, offset)
    }

    /// Its liveness and readiness now, and why (see [`crate::health`]): what a Kubernetes
    /// probe route serves, as JSON (`serde_json::to_string(&report)`).
    pub fn health(&self) -> HealthReport {
        self.runtime.health()
    }

    /// [`RunningApp::health`] from elsewhere (a probe server's task), for as long as it is
    /// kept: while the app stops it says "stopping".
    pub fn health_probe(&self) -> HealthProbe {
        self.runtime.health_probe()
    }

    /// Cancels the background tasks, then stops the runtime: every consumer finishes its
    /// batch in flight and commits, producers flush. Returns the first consumer error.
    pub async fn stop(mut self) -> Result<()> {
        let tasks = std::mem::take(&mut self.background.0);
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            // A cancelled task's JoinError says only that it was cancelled.
            let _ = task.await;
        }
        self.runtime.stop().await
    }
}
