//! `fastkafka._core`: the Python face of the engine.
//!
//! Deliberately thin: it converts at the boundary and delegates to the core. Payloads cross as
//! `bytes` (decoding is pydantic's job on the Python side), configuration crosses with pythonize
//! and is validated by [`crate::config`], and records reach Python a *batch* at a time: one
//! [`ConsumerLoop`](crate::ConsumerLoop) per consumer runs on the tokio runtime and, per batch,
//! takes the GIL once to build a list of `Record`s and schedule the app's batch coroutine on
//! the asyncio loop that subscribed it.
//!
//! Why two event loops: Kafka I/O, waiting and offset bookkeeping live on the one tokio
//! runtime owned by Rust (pyo3-async-runtimes'); handlers are Python coroutines and run on the
//! app's asyncio loop. A Rust future handed to Python becomes an awaitable whose cancellation
//! drops the future, so every future here is safe to drop.
//!
//! Errors are raised as the classes of `fastkafka.exceptions`, which declares the hierarchy once
//! so that a configuration error is also a `ValueError` for existing `except` clauses.

mod logging;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyList, PyTuple};
use pyo3_async_runtimes::TaskLocals;

use crate::config::{ClusterId, KafkaBrokers};
use crate::consumer_loop::{BatchHandler, ConsumerLoop, ConsumerLoopConfig, LoopFailure};
use crate::error::Error;
use crate::record::{OutgoingRecord, Record};
use crate::transport::memory::MemoryBroker;
use crate::transport::{ClientProperties, Cluster, Subscription, Transport};

/// Raises `error` as the matching class of `fastkafka.exceptions`.
fn to_py_err(error: Error) -> PyErr {
    static EXCEPTIONS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    Python::attach(|py| {
        let class_name = match &error {
            Error::Config(_) => "ConfigError",
            Error::Transport { .. } => "TransportError",
            Error::Closed(_) => "ClosedError",
            Error::Handler(_) | Error::ConsumerEnded { .. } => "HandlerError",
        };
        let module = EXCEPTIONS.get_or_try_init(py, || {
            PyModule::import(py, "fastkafka.exceptions").map(Bound::unbind)
        });
        match module.and_then(|m| m.bind(py).getattr(class_name)) {
            Ok(class) => match class.call1((error.to_string(),)) {
                Ok(instance) => PyErr::from_value(instance),
                Err(e) => e,
            },
            Err(import_error) => import_error,
        }
    })
}

/// Runs `future` on the engine's runtime, blocking the calling thread with the GIL released.
///
/// Lifecycle calls (subscribe, stop, flush) block instead of returning awaitables on purpose:
/// Python runs them in its own worker threads (`asyncio.to_thread`), which asyncio joins before
/// the interpreter exits. An awaitable completed by a Rust thread would have that thread call
/// into the event loop, and if the interpreter is finalizing by then, CPython ends the thread
/// mid-call, which aborts the process.
fn block_on<T, F>(py: Python<'_>, future: F) -> PyResult<T>
where
    T: Send,
    F: std::future::Future<Output = crate::Result<T>> + Send,
{
    py.detach(|| pyo3_async_runtimes::tokio::get_runtime().block_on(future))
        .map_err(to_py_err)
}

fn cluster_id(bootstrap_servers: &str) -> ClusterId {
    ClusterId::from_addresses(bootstrap_servers.split(',').map(str::trim))
}

/// FastKafka's `kafka_brokers`: environment name → one broker `{url, port, ...}` or a list.
#[pyclass(name = "KafkaBrokers", module = "fastkafka._core", frozen)]
struct PyKafkaBrokers(KafkaBrokers);

#[pymethods]
impl PyKafkaBrokers {
    /// Validates `brokers`; raises `ConfigError` naming the bad key or value.
    #[new]
    fn new(brokers: &Bound<'_, PyAny>) -> PyResult<Self> {
        let value: serde_json::Value = pythonize::depythonize(brokers).map_err(|e| {
            to_py_err(Error::Config(format!(
                "kafka_brokers must be a mapping of environment name to broker(s): {e}"
            )))
        })?;
        KafkaBrokers::from_value(&value)
            .map(Self)
            .map_err(to_py_err)
    }

    /// FastKafka's default: `{"localhost": {"url": "localhost", "port": 9092}}`.
    #[staticmethod]
    fn localhost() -> Self {
        Self(KafkaBrokers::localhost())
    }

    /// The environment names, sorted.
    fn environments(&self) -> Vec<String> {
        self.0.environments().map(str::to_owned).collect()
    }

    /// The bootstrap servers (`host:port[,...]`) that identify the cluster of `environment`.
    fn resolve(&self, environment: &str) -> PyResult<String> {
        self.0
            .resolve(environment)
            .map(|id| id.bootstrap_servers().to_owned())
            .map_err(to_py_err)
    }

    /// Raises `ConfigError` unless this override defines exactly the environments of `default`.
    fn check_override_of(&self, default: &Bound<'_, PyKafkaBrokers>) -> PyResult<()> {
        self.0
            .check_override_of(&default.get().0)
            .map_err(to_py_err)
    }

    fn __repr__(&self) -> String {
        format!("KafkaBrokers(environments={:?})", self.environments())
    }
}

/// An in-memory broker: isolated clusters with Kafka's semantics, for tests and demos.
#[pyclass(name = "MemoryBroker", module = "fastkafka._core", frozen)]
struct PyMemoryBroker(MemoryBroker);

#[pymethods]
impl PyMemoryBroker {
    /// A broker whose topics get `default_partitions` partitions when first used.
    #[new]
    #[pyo3(signature = (default_partitions = 1))]
    fn new(default_partitions: usize) -> Self {
        Self(MemoryBroker::with_default_partitions(default_partitions))
    }

    /// The cluster identified by `bootstrap_servers` (created empty on first use);
    /// `producer_properties` are accepted for symmetry with `KafkaTransport` and ignored.
    #[pyo3(signature = (bootstrap_servers, producer_properties = ClientProperties::new()))]
    fn cluster(
        &self,
        bootstrap_servers: &str,
        producer_properties: ClientProperties,
    ) -> PyResult<PyCluster> {
        cluster_of(&self.0, bootstrap_servers, &producer_properties)
    }

    /// Creates `topic` with `partitions` partitions on the cluster `bootstrap_servers`.
    fn create_topic(
        &self,
        bootstrap_servers: &str,
        topic: &str,
        partitions: usize,
    ) -> PyResult<()> {
        self.0
            .create_topic(&cluster_id(bootstrap_servers), topic, partitions)
            .map_err(to_py_err)
    }
}

fn cluster_of(
    transport: &dyn Transport,
    bootstrap_servers: &str,
    producer_properties: &ClientProperties,
) -> PyResult<PyCluster> {
    transport
        .cluster_with(&cluster_id(bootstrap_servers), producer_properties)
        .map(|cluster| PyCluster(DropOffThread::new(cluster)))
        .map_err(to_py_err)
}

/// Owns a value whose drop may block — the last handle to a librdkafka client joins the
/// client's threads — and drops it on a thread of its own. Python objects are dropped with the
/// GIL held, and a librdkafka thread may be waiting for the GIL (to log) at that moment:
/// joining it there would deadlock the interpreter.
struct DropOffThread<T: Send + 'static>(Option<T>);

impl<T: Send + 'static> DropOffThread<T> {
    fn new(value: T) -> Self {
        Self(Some(value))
    }
}

impl<T: Send + 'static> std::ops::Deref for DropOffThread<T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.0.as_ref().expect("present until dropped")
    }
}

impl<T: Send + 'static> Drop for DropOffThread<T> {
    fn drop(&mut self) {
        if let Some(value) = self.0.take() {
            let spawned = std::thread::Builder::new()
                .name("fastkafka-drop".to_owned())
                .spawn(move || drop(value));
            if let Err(error) = spawned {
                tracing::error!(%error, "could not drop a Kafka client off the Python thread");
            }
        }
    }
}

/// Real Kafka clusters through librdkafka; `properties` (librdkafka names) apply to every
/// client it creates.
#[cfg(feature = "kafka")]
#[pyclass(name = "KafkaTransport", module = "fastkafka._core", frozen)]
struct PyKafkaTransport(DropOffThread<crate::transport::kafka::KafkaTransport>);

#[cfg(feature = "kafka")]
#[pymethods]
impl PyKafkaTransport {
    #[new]
    #[pyo3(signature = (properties = ClientProperties::new()))]
    fn new(properties: ClientProperties) -> PyResult<Self> {
        crate::transport::kafka::KafkaTransport::new(properties)
            .map(|transport| Self(DropOffThread::new(transport)))
            .map_err(to_py_err)
    }

    /// The cluster identified by `bootstrap_servers`, whose one producer client gets
    /// `producer_properties`.
    #[pyo3(signature = (bootstrap_servers, producer_properties = ClientProperties::new()))]
    fn cluster(
        &self,
        bootstrap_servers: &str,
        producer_properties: ClientProperties,
    ) -> PyResult<PyCluster> {
        cluster_of(&*self.0, bootstrap_servers, &producer_properties)
    }
}

/// The version of the bundled librdkafka, e.g. `"2.12.1"`.
#[cfg(feature = "kafka")]
#[pyfunction]
fn librdkafka_version() -> String {
    rdkafka::util::get_rdkafka_version().1
}

/// A record as Python hands it to `Cluster.produce`: `(key, value, headers)`.
type RecordTuple = (Option<Vec<u8>>, Vec<u8>, Option<Vec<(String, Vec<u8>)>>);

/// One cluster: produce to it, subscribe consumers to it.
#[pyclass(name = "Cluster", module = "fastkafka._core", frozen)]
struct PyCluster(DropOffThread<Arc<dyn Cluster>>);

#[pymethods]
impl PyCluster {
    /// The cluster's bootstrap servers, which identify it.
    #[getter]
    fn bootstrap_servers(&self) -> String {
        self.0.id().bootstrap_servers().to_owned()
    }

    /// Hands records `(key, value, headers)` to the cluster without waiting for delivery.
    /// Records with equal keys land on the same partition. Returns None, or — when the
    /// producer queue is full — an awaitable that sends the rest once there is room: await
    /// it (backpressure), never block on it.
    fn produce<'py>(
        &self,
        py: Python<'py>,
        topic: &str,
        records: Vec<RecordTuple>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let outgoing = records
            .into_iter()
            .map(|(key, value, headers)| OutgoingRecord {
                key: key.map(Bytes::from),
                value: Bytes::from(value),
                headers: headers
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(name, value)| (name, Bytes::from(value)))
                    .collect(),
            })
            .collect();
        self.hand_over(py, topic, outgoing)
    }

    /// How many produced records failed delivery so far (each is also logged).
    #[getter]
    fn delivery_failures(&self) -> u64 {
        self.0.delivery_failures()
    }

    /// Blocks (run it in a worker thread) until the cluster answers, or raises
    /// `TransportError` after `timeout` seconds naming the cluster, `environment` and the
    /// functions in `used_by`.
    fn check_at_start(
        &self,
        py: Python<'_>,
        environment: String,
        used_by: Vec<String>,
        timeout: f64,
    ) -> PyResult<()> {
        let cluster = self.0.clone();
        let timeout = Duration::try_from_secs_f64(timeout).map_err(|_| {
            to_py_err(Error::Config(format!(
                "start_timeout must be a non-negative number of seconds, got {timeout}"
            )))
        })?;
        block_on(py, async move {
            crate::transport::check_at_start(&*cluster, &environment, &used_by, timeout).await
        })
    }

    /// Hands one record to the cluster without waiting for delivery (the per-message fast
    /// path of `produce`, returning the same: None, or an awaitable when the queue is full).
    #[pyo3(signature = (topic, value, key = None))]
    fn send<'py>(
        &self,
        py: Python<'py>,
        topic: &str,
        value: &[u8],
        key: Option<&[u8]>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let record = OutgoingRecord {
            key: key.map(Bytes::copy_from_slice),
            value: Bytes::copy_from_slice(value),
            headers: Vec::new(),
        };
        self.hand_over(py, topic, vec![record])
    }

    /// Blocks until everything produced so far is delivered (run it in a worker thread), then
    /// warns with the number of records that failed delivery, if any.
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        let cluster = self.0.clone();
        block_on(py, async move {
            crate::transport::flush_and_report(&*cluster).await
        })
    }

    /// Subscribes to `topics` and starts a consumer loop that awaits `on_batch(records)` on
    /// `event_loop` for each batch. Blocks (run it in a worker thread) until the consumer is
    /// subscribed and its partitions assigned, and returns the running `ConsumerLoop`.
    ///
    /// If the loop ends other than by `stop` (a batch coroutine raised, the cluster closed the
    /// consumer, the loop panicked), `on_failure(message)` is called on `event_loop`.
    ///
    /// `name` (the handler's) appears in the loop's log lines, e.g. the warning for a batch
    /// that runs close to `max.poll.interval.ms`.
    #[pyo3(signature = (topics, on_batch, event_loop, *, group_id = None, auto_offset_reset = "earliest", max_poll_records = 100, commit_interval_ms = Some(5000), properties = ClientProperties::new(), on_failure = None, name = "consumer"))]
    #[allow(clippy::too_many_arguments)]
    fn subscribe(
        &self,
        py: Python<'_>,
        topics: Vec<String>,
        on_batch: Py<PyAny>,
        event_loop: Bound<'_, PyAny>,
        group_id: Option<String>,
        auto_offset_reset: &str,
        max_poll_records: usize,
        commit_interval_ms: Option<u64>,
        properties: ClientProperties,
        on_failure: Option<Py<PyAny>>,
        name: &str,
    ) -> PyResult<PyConsumerLoop> {
        if max_poll_records == 0 {
            return Err(to_py_err(Error::Config(
                "max_poll_records must be at least 1".to_owned(),
            )));
        }
        let subscription = Subscription {
            topics,
            group_id,
            auto_offset_reset: auto_offset_reset.parse().map_err(to_py_err)?,
            properties,
        };
        let failure_target = on_failure.map(|callback| (event_loop.clone().unbind(), callback));
        let locals = TaskLocals::new(event_loop).copy_context(py)?;
        let cluster = self.0.clone();
        let config = ConsumerLoopConfig {
            name: name.into(),
            max_poll_records,
            commit_interval: commit_interval_ms.map(Duration::from_millis),
            slow_batch_warning: crate::consumer_loop::slow_batch_warning(&subscription.properties),
        };
        block_on(py, async move {
            let consumer = cluster.subscribe(subscription).await?;
            let handler = PyBatchHandler { on_batch, locals };
            let running = ConsumerLoop::spawn(consumer, handler, config);
            if let Some((event_loop, callback)) = failure_target {
                tokio::spawn(report_failure(running.failure(), event_loop, callback));
            }
            Ok(PyConsumerLoop(Mutex::new(Some(running))))
        })
    }

    fn __repr__(&self) -> String {
        format!("Cluster({:?})", self.0.id().bootstrap_servers())
    }
}

impl PyCluster {
    /// Hands `records` to the client without blocking. What a full queue did not take is
    /// sent by the awaitable returned (None when everything was taken): the caller awaits
    /// backpressure instead of blocking the event loop's thread.
    fn hand_over<'py>(
        &self,
        py: Python<'py>,
        topic: &str,
        records: Vec<OutgoingRecord>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let rest = self.0.try_produce(topic, records).map_err(to_py_err)?;
        if rest.is_empty() {
            return Ok(None);
        }
        let (cluster, topic) = (Arc::clone(&self.0), topic.to_owned());
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            crate::transport::produce_when_room(&*cluster, &topic, rest)
                .await
                .map_err(to_py_err)
        })
        .map(Some)
    }
}

/// Calls `callback(message)` on `event_loop` if the loop fails; returns quietly when it
/// was stopped (or the event loop is closed: nobody is left to tell).
async fn report_failure(failure: LoopFailure, event_loop: Py<PyAny>, callback: Py<PyAny>) {
    if let Some(error) = failure.wait().await {
        Python::attach(|py| {
            let scheduled = event_loop
                .bind(py)
                .call_method1("call_soon_threadsafe", (callback, error.to_string()));
            if let Err(error) = scheduled {
                tracing::warn!(%error, "could not report a consumer failure to Python");
            }
        });
    }
}

/// Hands each batch to a Python coroutine function on the asyncio loop that subscribed.
struct PyBatchHandler {
    on_batch: Py<PyAny>,
    locals: TaskLocals,
}

#[async_trait]
impl BatchHandler for PyBatchHandler {
    async fn handle(&mut self, records: &[Record]) -> crate::Result<()> {
        let handled = Python::attach(|py| {
            let batch = PyList::new(py, records.iter().map(|r| PyRecord(r.clone())))?;
            let coroutine = self.on_batch.bind(py).call1((batch,))?;
            pyo3_async_runtimes::into_future_with_locals(&self.locals, coroutine)
        });
        let outcome = match handled {
            Ok(future) => future.await.map(drop),
            Err(error) => Err(error),
        };
        outcome.map_err(|error| Error::Handler(error.to_string()))
    }
}

/// A running consumer loop.
#[pyclass(name = "ConsumerLoop", module = "fastkafka._core", frozen)]
struct PyConsumerLoop(Mutex<Option<ConsumerLoop>>);

#[pymethods]
impl PyConsumerLoop {
    /// Stops consuming, waits for the batch in flight, commits and leaves the group; blocks
    /// (run it in a worker thread, the batch in flight needs the event loop). Raises
    /// `HandlerError` if a failing batch handler ended the loop earlier. Stopping twice is a
    /// no-op.
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        let running = self
            .0
            .lock()
            .map_err(|_| PyRuntimeError::new_err("consumer loop state poisoned"))?
            .take();
        match running {
            Some(running) => block_on(py, running.stop()),
            None => Ok(()),
        }
    }

    /// Whether the loop has ended (stopped, or ended by a failing batch handler).
    #[getter]
    fn is_finished(&self) -> bool {
        self.0
            .lock()
            .map(|running| running.as_ref().is_none_or(ConsumerLoop::is_finished))
            .unwrap_or(true)
    }
}

/// A record read from a topic.
#[pyclass(name = "Record", module = "fastkafka._core", frozen)]
struct PyRecord(Record);

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

/// The engine of `fastkafka`: clusters, the in-memory broker and consumer loops.
#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    logging::install();
    m.add_function(wrap_pyfunction!(logging::stop_log_forwarding, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    #[cfg(feature = "kafka")]
    {
        m.add_class::<PyKafkaTransport>()?;
        m.add_function(wrap_pyfunction!(librdkafka_version, m)?)?;
    }
    m.add_class::<PyKafkaBrokers>()?;
    m.add_class::<PyMemoryBroker>()?;
    m.add_class::<PyCluster>()?;
    m.add_class::<PyConsumerLoop>()?;
    m.add_class::<PyRecord>()?;
    Ok(())
}
