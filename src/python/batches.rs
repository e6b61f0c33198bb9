//! [`PyBatchHandler`]: how a consumer loop hands a batch to Python — one attach to build the
//! records and schedule the app's batch coroutine on its asyncio loop, one to read the report
//! back — and the report's types (`Failure`, `BatchReport`): what the handler could not
//! process. And
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

/// Records of one handler call that could not be processed, for one reason: what
/// `ConsumerRunner` reports, built by one constructor per reason.
#[pyclass(name = "Failure", module = "fastkafka._core", frozen)]
pub(super) struct PyFailure(Failure);

#[pymethods]
impl PyFailure {
    /// The handler raised `error_type` with `message` (`details`: its traceback, for the log
    /// only) for the records at `indices`; `retryable` if the consumer's policy covers it.
    #[staticmethod]
    #[pyo3(signature = (indices, error_type, message, details, *, retryable))]
    fn handler(
        indices: Vec<usize>,
        error_type: String,
        message: String,
        details: Option<String>,
        retryable: bool,
    ) -> Self {
        Self(Failure {
            indices,
            kind: FailureKind::Handler,
            retryable,
            error_type,
            message,
            details,
        })
    }

    /// The record at `index` cannot be decoded into `into` (never retried).
    #[staticmethod]
    fn undecodable(index: usize, into: String, error_type: String, message: String) -> Self {
        Self(Failure {
            indices: vec![index],
            kind: FailureKind::Undecodable { into },
            retryable: false,
            error_type,
            message,
            details: None,
        })
    }

    /// What the handler sent for the records at `indices` was refused by the client: retried
    /// in place until it goes, never skipped.
    #[staticmethod]
    fn undelivered(indices: Vec<usize>, message: String) -> Self {
        Self(Failure {
            indices,
            kind: FailureKind::Undelivered,
            retryable: true,
            error_type: "DeliveryFailed".to_owned(),
            message,
            details: None,
        })
    }

    /// The error's type name.
    #[getter]
    fn error_type(&self) -> &str {
        &self.0.error_type
    }

    /// The error's message.
    #[getter]
    fn message(&self) -> &str {
        &self.0.message
    }

    /// Its traceback, if any.
    #[getter]
    fn details(&self) -> Option<&str> {
        self.0.details.as_deref()
    }

    /// Whether the consumer's retry policy covers it.
    #[getter]
    fn retryable(&self) -> bool {
        self.0.retryable
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.0)
    }
}

/// What a batch handler could not process: `failures`, and the index it stopped after (at a
/// retryable failure: the records after it were not handled) or None.
#[pyclass(name = "BatchReport", module = "fastkafka._core", frozen)]
pub(super) struct PyBatchReport(Handled);

#[pymethods]
impl PyBatchReport {
    #[new]
    fn new(stopped_after: Option<usize>, failures: Vec<PyRef<'_, PyFailure>>) -> Self {
        Self(Handled {
            stopped_after,
            failures: failures.iter().map(|failure| failure.0.clone()).collect(),
        })
    }
}

/// What `on_batch` returned: `None` when everything was handled, else a `BatchReport`.
fn handled_of(report: &Bound<'_, PyAny>) -> PyResult<Handled> {
    if report.is_none() {
        return Ok(Handled::all());
    }
    Ok(report.cast::<PyBatchReport>()?.get().0.clone())
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
