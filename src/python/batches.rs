//! [`PyBatchHandler`]: how a consumer loop hands a batch to Python — one attach to build the
//! records and schedule the app's batch coroutine on its asyncio loop, one to read the report
//! back — and the report's shape ([`handled_of`]): what the handler could not process.

use std::sync::Arc;

use async_trait::async_trait;
use pyo3::prelude::*;
use pyo3_async_runtimes::TaskLocals;

use super::attach_if_open;
use super::producer::PyDeliveryTracker;
use super::record::PyRecordBatch;
use crate::consumer_loop::failures::{Failure, FailureKind, Handled};
use crate::consumer_loop::BatchHandler;
use crate::error::Error;
use crate::record::Record;

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
