//! [`PyBatchHandler`]: how a consumer loop hands a batch to Python — one attach to build the
//! records and schedule the app's batch coroutine on its asyncio loop, one to read the report
//! back — and the report's shape ([`handled_of`]): what the handler could not process. And
//! [`python_rebalance_hook`]: a consumer's rebalance hooks, called the same way.

use std::sync::{Arc, PoisonError};

use async_trait::async_trait;
use pyo3::prelude::*;
use pyo3_async_runtimes::TaskLocals;

use super::attach_if_open;
use super::producer::PyDeliveryTracker;
use super::record::PyRecordBatch;
use super::running::PySeeker;
use super::runtime::LoopCell;
use crate::consumer_loop::failures::{Failure, FailureKind, Handled};
use crate::consumer_loop::{BatchHandler, PartitionsChanged, RebalanceHook};
use crate::error::Error;
use crate::record::Record;
use crate::transport::PartitionsChange;

/// Hands each batch to a Python coroutine function on the asyncio loop that started the app.
pub(super) struct PyBatchHandler {
    pub(super) on_batch: Arc<Py<PyAny>>,
    pub(super) locals: Arc<TaskLocals>,
}

#[async_trait]
impl BatchHandler for PyBatchHandler {
    async fn handle(&mut self, records: &[Record]) -> crate::Result<Handled> {
        // While the interpreter finalizes there is no Python to hand a batch to: the loop
        // ends (nothing stored, so the batch is consumed again by the next run).
        let tracker = crate::delivery::current().unwrap_or_default();
        let records = records.to_vec(); // payloads by reference count; before taking the GIL
        super::keep_thread_state();
        let handled = attach_if_open(|py| {
            let batch = PyRecordBatch::new(py, records)?;
            let coroutine = self
                .on_batch
                .bind(py)
                .call1((batch, PyDeliveryTracker(tracker)))?;
            pyo3_async_runtimes::into_future_with_locals(&self.locals, coroutine)
        })
        .ok_or(Error::Closed("the Python interpreter"))?;
        let outcome = match handled {
            Ok(future) => future.await,
            Err(error) => Err(error),
        };
        // Reading a Python object runs Python code: through the gate, like any entry.
        attach_if_open(|py| match outcome {
            Ok(report) => handled_of(report.bind(py)).map_err(|error| {
                Error::Handler(format!("on_batch returned an unreadable report: {error}"))
            }),
            Err(error) => Err(Error::Handler(error.to_string())),
        })
        .unwrap_or(Err(Error::Closed("the Python interpreter")))
    }
}

/// A failure as `ConsumerRunner` reports it: (indices, the model an undecodable record should
/// have been, retryable, error type, message, traceback, whether it is a refused output).
type PyFailure = (
    Vec<usize>,
    Option<String>,
    bool,
    String,
    String,
    Option<String>,
    bool,
);

/// What `on_batch` returned: `None` when everything was handled, else (the index it stopped
/// after, the failures).
fn handled_of(report: &Bound<'_, PyAny>) -> PyResult<Handled> {
    if report.is_none() {
        return Ok(Handled::all());
    }
    let (stopped_after, failures): (Option<usize>, Vec<PyFailure>) = report.extract()?;
    Ok(Handled {
        stopped_after,
        failures: failures
            .into_iter()
            .map(
                |(indices, undecodable_as, retryable, error_type, message, details, refused)| {
                    Failure {
                        indices,
                        kind: match (undecodable_as, refused) {
                            (Some(into), _) => FailureKind::Undecodable { into },
                            (None, true) => FailureKind::Undelivered,
                            (None, false) => FailureKind::Handler,
                        },
                        retryable,
                        error_type,
                        message,
                        details,
                    }
                },
            )
            .collect(),
    })
}

/// A rebalance hook that calls `hook(kind, cluster, partitions, seeker)` — `kind` "assigned"
/// or "revoked", `partitions` a list of (topic, partition), `seeker` a `Seeker` — on the
/// asyncio loop that started the app, and waits for the coroutine it returns.
pub(super) fn python_rebalance_hook(hook: Py<PyAny>, event_loop: LoopCell) -> RebalanceHook {
    let hook = Arc::new(hook);
    RebalanceHook::new(move |changed: PartitionsChanged| {
        let (hook, event_loop) = (hook.clone(), event_loop.clone());
        async move {
            let locals = event_loop
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
                .ok_or(Error::Closed("the app's event loop"))?;
            let (kind, partitions) = match changed.change {
                PartitionsChange::Assigned(partitions) => ("assigned", partitions),
                PartitionsChange::Revoked(partitions) => ("revoked", partitions),
            };
            let partitions: Vec<(String, i32)> = partitions
                .into_iter()
                .map(|p| (p.topic.to_string(), p.partition))
                .collect();
            let called = attach_if_open(|py| {
                let seeker = PySeeker(changed.seeker);
                let arguments = (kind, changed.cluster.as_ref(), partitions, seeker);
                let coroutine = hook.bind(py).call1(arguments)?;
                pyo3_async_runtimes::into_future_with_locals(&locals, coroutine)
            })
            .ok_or(Error::Closed("the Python interpreter"))?;
            match called {
                Ok(future) => future.await.map(drop),
                Err(error) => Err(error),
            }
            .map_err(|error| Error::Handler(error.to_string()))
        }
    })
}
