//! `Record`: a consumed record as Python sees it — read-only views over the engine's record;
//! and `RecordBatch`, the records of one batch handed to Python.
//!
//! A batch's payloads are built as `bytes` at once, in one list: decoding them is all a
//! handler's common path needs, so it reads that list and nothing else. A record's other
//! fields come as a `Record`, built only when asked for (metadata, a failure, a span): at a
//! hundred thousand records a second, a Python object per record that the handler never sees
//! was about a third of the time Python's thread waited between batches.

use bytes::Bytes;
use pyo3::exceptions::PyIndexError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyIterator, PyList, PyTuple};

use crate::record::Record;

/// A key, value or header value as Python sees it: `bytes`, or None where Kafka has null.
pub(super) fn optional_bytes<'py>(
    py: Python<'py>,
    bytes: &Option<Bytes>,
) -> Option<Bound<'py, PyBytes>> {
    bytes.as_deref().map(|bytes| PyBytes::new(py, bytes))
}

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
        optional_bytes(py, &self.0.key)
    }

    /// Its payload, or None for a tombstone.
    #[getter]
    fn value<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        optional_bytes(py, &self.0.value)
    }

    /// Its headers as `(name, value)` pairs (a value may be None: a null header value).
    #[getter]
    fn headers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let pairs = self.0.headers.iter().map(|(name, value)| {
            PyTuple::new(
                py,
                [
                    name.into_pyobject(py)?.into_any(),
                    optional_bytes(py, value).into_pyobject(py)?.into_any(),
                ],
            )
        });
        PyList::new(py, pairs.collect::<PyResult<Vec<_>>>()?)
    }

    /// Coordinates and sizes only: a repr ends up in logs, and payloads may be private.
    fn __repr__(&self) -> String {
        format!(
            "Record(topic={:?}, partition={}, offset={}, key=<{} bytes>, value={})",
            self.0.topic,
            self.0.partition,
            self.0.offset,
            self.0.key.as_ref().map_or(0, Bytes::len),
            self.0
                .value
                .as_ref()
                .map_or("None".to_owned(), |value| format!(
                    "<{} bytes>",
                    value.len()
                ))
        )
    }
}

/// The records of one batch: a sequence of `Record`, and their payloads as `values`.
#[pyclass(name = "RecordBatch", module = "fastkafka._core", frozen, sequence)]
pub(super) struct PyRecordBatch {
    records: Vec<Record>,
    values: Py<PyList>,
}

impl PyRecordBatch {
    pub(super) fn new(py: Python<'_>, records: Vec<Record>) -> PyResult<Self> {
        let values = records
            .iter()
            .map(|record| optional_bytes(py, &record.value));
        let values = PyList::new(py, values)?;
        Ok(Self {
            records,
            values: values.unbind(),
        })
    }
}

#[pymethods]
impl PyRecordBatch {
    /// The records' payloads, in batch order (None for a tombstone).
    #[getter]
    fn values<'py>(&self, py: Python<'py>) -> Bound<'py, PyList> {
        self.values.bind(py).clone()
    }

    fn __len__(&self) -> usize {
        self.records.len()
    }

    /// The record at `index` (negative: from the end).
    fn __getitem__(&self, index: isize) -> PyResult<PyRecord> {
        let len = self.records.len() as isize;
        let at = if index < 0 { index + len } else { index };
        usize::try_from(at)
            .ok()
            .and_then(|at| self.records.get(at))
            .map(|record| PyRecord(record.clone()))
            .ok_or_else(|| PyIndexError::new_err(format!("index {index} out of a batch of {len}")))
    }

    /// The records, each built now (the paths that iterate read them all).
    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyIterator>> {
        let records = self.records.iter().map(|record| PyRecord(record.clone()));
        PyList::new(py, records)?.try_iter()
    }

    fn __repr__(&self) -> String {
        format!("RecordBatch(<{} records>)", self.records.len())
    }
}
