//! `RunningRuntime`: a started Python app's handle — stop, health, seeks — over the runtime's
//! [`RunningRuntime`]; `Seeker`, what a rebalance hook seeks with.

use std::sync::{Mutex, PoisonError};

use pyo3::prelude::*;

use super::{block_on, to_py_err};
use crate::consumer_loop::Seeker;
use crate::error::Error;
use crate::health::{HealthProbe, HealthReport};
use crate::record::TopicPartition;
use crate::runtime::RunningRuntime;
use crate::transport::DropOffThread;

/// A started app. Collected without `stop`, it stops what it started all the same, in the
/// background: the runtime is dropped on the drop-off thread (its consumers finish their
/// batch, commit and leave; its producers are unbound) and the failure watcher is cancelled.
#[pyclass(name = "RunningRuntime", module = "fastkafka._core", frozen)]
pub(super) struct PyRunningRuntime {
    running: Mutex<Option<DropOffThread<RunningRuntime>>>,
    watcher: tokio::task::JoinHandle<()>,
    /// Kept past the stop: while stopping, the app says so.
    health: HealthProbe,
}

impl Drop for PyRunningRuntime {
    fn drop(&mut self) {
        // Its consumers' failures have nobody left to tell; it would wait for them forever.
        self.watcher.abort();
    }
}

impl PyRunningRuntime {
    pub(super) fn new(running: RunningRuntime, watcher: tokio::task::JoinHandle<()>) -> Self {
        Self {
            health: running.health_probe(),
            running: Mutex::new(Some(DropOffThread::new(running))),
            watcher,
        }
    }
}

#[pymethods]
impl PyRunningRuntime {
    /// The app's liveness and readiness now, and why, as a JSON-ready dict (see
    /// `crate::health`). Never blocks: it reads flags the engine keeps.
    fn health<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        health_dict(py, &self.health.check())
    }

    /// Stops the app: every consumer finishes its batch in flight (or, after the stop
    /// timeout, has it abandoned) and commits, then producers flush. Blocks (run it on a
    /// lifecycle thread: batches in flight need the event loop). Raises the first consumer
    /// error; stopping twice is a no-op.
    /// Asks consumer `consumer` to read `partition` of its topic from `offset` on, before it
    /// hands over another record of that partition. Raises `ConfigError` for an unknown
    /// consumer, `ClosedError` once the app stopped.
    fn seek(&self, consumer: &str, partition: i32, offset: i64) -> PyResult<()> {
        let running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        match running.as_ref() {
            Some(running) => running.seek(consumer, partition, offset).map_err(to_py_err),
            None => Err(to_py_err(Error::Closed("the app (it stopped)"))),
        }
    }

    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        self.watcher.abort();
        let running = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match running {
            Some(running) => block_on(py, running.into_inner().stop()),
            None => Ok(()),
        }
    }
}

/// The health of an app that is not running, in the shape `RunningRuntime.health` returns.
#[pyfunction]
pub(super) fn health_when_not_running(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    health_dict(py, &HealthReport::not_running())
}

fn health_dict<'py>(py: Python<'py>, report: &HealthReport) -> PyResult<Bound<'py, PyAny>> {
    pythonize::pythonize(py, report).map_err(|e| to_py_err(Error::Config(e.to_string())))
}

/// What a rebalance hook seeks with (`PartitionsChanged.seek`): the consumer's own
/// [`Seeker`], usable while the app is still starting.
#[pyclass(name = "Seeker", module = "fastkafka._core", frozen)]
pub(super) struct PySeeker(pub(super) Seeker);

#[pymethods]
impl PySeeker {
    /// The consumer reads `partition` of `topic` from `offset` on, before it hands over
    /// another record of it. Raises `ClosedError` once the consumer stopped.
    fn seek(&self, topic: &str, partition: i32, offset: i64) -> PyResult<()> {
        self.0
            .seek(TopicPartition::new(topic, partition), offset)
            .map_err(to_py_err)
    }
}
