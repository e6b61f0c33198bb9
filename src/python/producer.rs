//! `Producer` (a registered producer's handle: sends while its app runs) and
//! `DeliveryTracker` (the deliveries of the batch being handled, which producer calls made while
//! handling it report to).

use std::sync::Arc;

use pyo3::prelude::*;

use super::transport::{enqueue, enqueue_one, one_record, refused_err, to_outgoing, RecordTuple};
use crate::delivery::DeliveryTracker;
use crate::producer::ProducerHandle;

/// A registered producer: sends to its topic while its app runs.
#[pyclass(name = "Producer", module = "fastkafka._core", frozen)]
pub(super) struct PyProducer(pub(super) ProducerHandle);

#[pymethods]
impl PyProducer {
    /// Its function's name.
    #[getter]
    fn name(&self) -> &str {
        self.0.name()
    }

    /// The topic it sends to.
    #[getter]
    fn topic(&self) -> &str {
        self.0.topic()
    }

    /// Whether its app runs (it can send).
    #[getter]
    fn is_bound(&self) -> bool {
        self.0.cluster().is_some()
    }

    /// The cluster it sends to while its app runs, else None.
    #[getter]
    fn bootstrap_servers(&self) -> Option<String> {
        self.0
            .cluster()
            .map(|cluster| cluster.id().bootstrap_servers().to_owned())
    }

    /// Hands records `(key, value, headers)` to the cluster without waiting for delivery;
    /// returns None, or — when the producer queue is full — an awaitable to await
    /// (backpressure). Raises `ClosedError` while the app is stopped. `tracker` is the batch
    /// being handled (given to its `on_batch`): its offsets wait for these deliveries.
    #[pyo3(signature = (records, tracker = None))]
    fn produce<'py>(
        &self,
        py: Python<'py>,
        records: Vec<RecordTuple>,
        tracker: Option<&Bound<'py, PyDeliveryTracker>>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let tracker = tracker.map(|tracker| tracker.get().0.clone());
        let cluster = self
            .0
            .bound_for(tracker.as_ref())
            .map_err(|error| refused_err(error, tracker.is_some()))?;
        enqueue(py, &cluster, self.0.topic(), to_outgoing(records), tracker)
    }

    /// One record: the per-message fast path of `produce`, returning the same.
    #[pyo3(signature = (value, key = None, tracker = None))]
    fn send<'py>(
        &self,
        py: Python<'py>,
        value: Option<&[u8]>,
        key: Option<&[u8]>,
        tracker: Option<&Bound<'py, PyDeliveryTracker>>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let tracker = tracker.map(|tracker| tracker.get().0.clone());
        let cluster = self
            .0
            .bound_for(tracker.as_ref())
            .map_err(|error| refused_err(error, tracker.is_some()))?;
        enqueue_one(
            py,
            &cluster,
            self.0.topic(),
            one_record(value, key),
            tracker,
        )
    }

    fn __repr__(&self) -> String {
        format!("Producer({:?}, topic={:?})", self.0.name(), self.0.topic())
    }
}

/// The deliveries of the batch being handled: handed to `on_batch` with the records, and given
/// back to `Producer.send`/`produce`, so that the batch's offsets are stored only once what
/// its handler produced is acknowledged.
#[pyclass(name = "DeliveryTracker", module = "fastkafka._core", frozen)]
pub(super) struct PyDeliveryTracker(pub(super) Arc<DeliveryTracker>);

#[pymethods]
impl PyDeliveryTracker {
    /// How many records are still waiting for their cluster's answer, plus the tasks started
    /// while handling the batch that have not ended.
    #[getter]
    fn pending(&self) -> usize {
        self.0.pending()
    }

    /// Whether a send made for the batch failed, or was refused and not blamed on a record
    /// (`take_refusal`): the batch will be handled again (or dead-lettered), so handling the
    /// rest of it now is moot.
    #[getter]
    fn failed(&self) -> bool {
        self.0.has_failed()
    }

    /// Blames one refused send on the record whose handler raised its error (an exception
    /// with `fastkafka_refused` set): returns the refusal's message, or None if there is none.
    fn take_refusal(&self) -> Option<String> {
        self.0.take_refusal().map(|error| error.to_string())
    }

    /// A task started while handling the batch: its offsets wait until `work_finished`.
    fn work_started(&self) {
        self.0.work_started();
    }

    /// A task counted by `work_started` ended.
    fn work_finished(&self) {
        self.0.work_finished();
    }
}
