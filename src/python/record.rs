//! `Record`: a consumed record as Python handlers see it — read-only views over the engine's
//! record, built once per batch.

use bytes::Bytes;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use crate::record::Record;

/// A record read from a topic.
#[pyclass(name = "Record", module = "fastkafka._core", frozen)]
pub(super) struct PyRecord(pub(super) Record);

#[pymethods]
impl PyRecord {
    /// The topic it was read from.
    #[getter]
    fn topic(&self) -> &str {
        &self.0.topic
    }

    /// The partition it was read from.
    #[getter]
    fn partition(&self) -> i32 {
        self.0.partition
    }

    /// Its offset in the partition.
    #[getter]
    fn offset(&self) -> i64 {
        self.0.offset
    }

    /// When it was produced, in milliseconds since the Unix epoch.
    #[getter]
    fn timestamp(&self) -> i64 {
        self.0.timestamp_ms
    }

    /// 0 when the timestamp is the producer's (CreateTime), 1 when the broker's
    /// (LogAppendTime).
    #[getter]
    fn timestamp_type(&self) -> u8 {
        match self.0.timestamp_type {
            crate::record::TimestampType::CreateTime => 0,
            crate::record::TimestampType::LogAppendTime => 1,
        }
    }

    /// Its key, or None.
    #[getter]
    fn key<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        self.0.key.as_ref().map(|key| PyBytes::new(py, key))
    }

    /// Its payload.
    #[getter]
    fn value<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.0.value)
    }

    /// Its headers as `(name, value)` pairs.
    #[getter]
    fn headers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let pairs = self.0.headers.iter().map(|(name, value)| {
            PyTuple::new(
                py,
                [
                    name.into_pyobject(py)?.into_any(),
                    PyBytes::new(py, value).into_any(),
                ],
            )
        });
        PyList::new(py, pairs.collect::<PyResult<Vec<_>>>()?)
    }

    /// Coordinates and sizes only: a repr ends up in logs, and payloads may be private.
    fn __repr__(&self) -> String {
        format!(
            "Record(topic={:?}, partition={}, offset={}, key=<{} bytes>, value=<{} bytes>)",
            self.0.topic,
            self.0.partition,
            self.0.offset,
            self.0.key.as_ref().map_or(0, Bytes::len),
            self.0.value.len()
        )
    }
}
