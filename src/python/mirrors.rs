//! The Tester's side of the test mirrors ([`crate::runtime::mirrors`]): which mirrors the apps
//! under test need and a runtime that runs them, and a consumer's dead letters read back. The
//! Tester keeps only what is Python's: mocks, the `to_x`/`on_x` attributes, awaiting.

use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use super::producer::PyProducer;
use super::record::optional_bytes;
use super::runtime::{python_handler, PyRuntime};
use super::to_py_err;
use super::transport::PyMemoryBroker;
use crate::consumer_loop::failures::{headers, DeadLetter};
use crate::runtime::mirrors::{self, Mirror, MirrorRole};
use crate::runtime::Runtime;

/// One mirror: a (cluster, topic) of the apps and the functions it serves.
#[pyclass(name = "Mirror", module = "fastkafka._core", frozen)]
pub(super) struct PyMirror {
    mirror: Mirror,
    producer: Option<Py<PyProducer>>,
}

#[pymethods]
impl PyMirror {
    /// "feeds" (a producer to what the apps consume) or "reads" (a consumer of what they
    /// produce).
    #[getter]
    fn role(&self) -> &'static str {
        match self.mirror.role {
            MirrorRole::Feeds => "feeds",
            MirrorRole::Reads => "reads",
        }
    }

    /// `to_<topic>` or `on_<topic>`; mirrors of one topic on several clusters share it.
    #[getter]
    fn name(&self) -> &str {
        &self.mirror.name
    }

    /// Its topic.
    #[getter]
    fn topic(&self) -> &str {
        &self.mirror.topic
    }

    /// Its cluster's bootstrap servers.
    #[getter]
    fn bootstrap_servers(&self) -> &str {
        self.mirror.cluster.bootstrap_servers()
    }

    /// The functions it serves: (index of the app, function name).
    #[getter]
    fn serves(&self) -> Vec<(usize, String)> {
        self.mirror
            .serves
            .iter()
            .map(|served| (served.app, served.function.clone()))
            .collect()
    }

    /// A feed mirror's producer (None for a read mirror).
    #[getter]
    fn producer(&self, py: Python<'_>) -> Option<Py<PyProducer>> {
        self.producer
            .as_ref()
            .map(|producer| producer.clone_ref(py))
    }
}

fn runtimes<'a>(apps: &'a [PyRef<'_, PyRuntime>]) -> Vec<&'a Runtime> {
    apps.iter().map(|app| app.runtime()).collect()
}

/// The mirrors of `apps` (their runtimes) in their current environments, on a runtime of their
/// own: `reader(mirror)` gives each read mirror's `on_batch` coroutine function; read mirrors
/// start from the beginning `in_memory`, else at the end.
#[pyfunction]
pub(super) fn mirror_runtime(
    py: Python<'_>,
    apps: Vec<PyRef<'_, PyRuntime>>,
    in_memory: bool,
    reader: Py<PyAny>,
) -> PyResult<(PyRuntime, Vec<PyMirror>)> {
    let planned = mirrors::mirrors_of(&runtimes(&apps)).map_err(to_py_err)?;
    let event_loop = Arc::new(Mutex::new(None));
    let mut failed = None;
    let made = mirrors::mirror_runtime(&planned, mirrors::mirror_start(in_memory), |mirror| {
        let unbound = PyMirror {
            mirror: mirror.clone(),
            producer: None,
        };
        match reader.bind(py).call1((unbound,)) {
            Ok(on_batch) => Ok(python_handler(on_batch.unbind(), event_loop.clone())),
            Err(error) => {
                failed = Some(error);
                Err(crate::error::Error::Closed("the mirror's reader"))
            }
        }
    });
    if let Some(error) = failed {
        return Err(error);
    }
    let (runtime, producers) = made.map_err(to_py_err)?;
    let mirrors = planned
        .into_iter()
        .zip(producers)
        .map(|(mirror, producer)| {
            let producer = producer
                .map(|handle| Py::new(py, PyProducer(handle)))
                .transpose()?;
            Ok(PyMirror { mirror, producer })
        })
        .collect::<PyResult<Vec<_>>>()?;
    Ok((PyRuntime::wrapping(runtime, event_loop), mirrors))
}

/// A message as a dead-letter topic received it, read back.
#[pyclass(name = "DeadLetter", module = "fastkafka._core", frozen)]
pub(super) struct PyDeadLetter(DeadLetter);

#[pymethods]
impl PyDeadLetter {
    /// The original key.
    #[getter]
    fn key<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        optional_bytes(py, &self.0.key)
    }

    /// The original value; None for a tombstone, or a record too large to carry (its
    /// `value_dropped` header says why).
    #[getter]
    fn value<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        optional_bytes(py, &self.0.value)
    }

    /// Every header, the record's own and fastkafka's, by name.
    #[getter]
    fn headers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        for (name, value) in &self.0.headers {
            dict.set_item(name, optional_bytes(py, value))?;
        }
        Ok(dict)
    }

    /// The topic it was read from.
    #[getter]
    fn topic(&self) -> &str {
        &self.0.topic
    }

    /// Its partition there.
    #[getter]
    fn partition(&self) -> i32 {
        self.0.partition
    }

    /// Its offset there.
    #[getter]
    fn offset(&self) -> i64 {
        self.0.offset
    }

    /// The consumer that gave up on it.
    #[getter]
    fn consumer(&self) -> &str {
        &self.0.consumer
    }

    /// The error's type (an exception's class name, `Undecodable`, `DeliveryFailed`).
    #[getter]
    fn error_type(&self) -> &str {
        &self.0.error_type
    }

    /// The error's message.
    #[getter]
    fn error_message(&self) -> &str {
        &self.0.error_message
    }

    /// How many times it was handled.
    #[getter]
    fn attempts(&self) -> u32 {
        self.0.attempts
    }

    fn __eq__(&self, other: &Self) -> bool {
        self.0 == other.0
    }

    fn __repr__(&self) -> String {
        format!(
            "DeadLetter(topic={:?}, partition={}, offset={}, consumer={:?}, error_type={:?}, \
             error_message={:?}, attempts={}, key={:?}, value={:?})",
            self.0.topic,
            self.0.partition,
            self.0.offset,
            self.0.consumer,
            self.0.error_type,
            self.0.error_message,
            self.0.attempts,
            self.0.key,
            self.0.value
        )
    }
}

/// What consumer `consumer` (its function's name, in exactly one of `apps`) sent to its
/// dead-letter topic so far on `broker`, oldest first per partition.
#[pyfunction]
pub(super) fn dead_letters(
    apps: Vec<PyRef<'_, PyRuntime>>,
    broker: &Bound<'_, PyMemoryBroker>,
    consumer: &str,
) -> PyResult<Vec<PyDeadLetter>> {
    let targets = mirrors::dead_letter_targets(&runtimes(&apps)).map_err(to_py_err)?;
    let letters = mirrors::dead_letters(&targets, broker.get().broker(), consumer);
    Ok(letters
        .map_err(to_py_err)?
        .into_iter()
        .map(PyDeadLetter)
        .collect())
}

/// The dead-letter headers by meaning (`fastkafka.failures.DEAD_LETTER_HEADERS`).
pub(super) fn dead_letter_headers(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let dict = PyDict::new(py);
    for (meaning, name) in headers::BY_MEANING {
        dict.set_item(meaning, name)?;
    }
    Ok(dict)
}
