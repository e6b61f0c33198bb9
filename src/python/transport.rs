//! The transports as Python sees them: `KafkaBrokers` (configuration), `MemoryBroker` and
//! `KafkaTransport` (what an app runs on), and `Cluster`, one cluster to produce to directly.

use std::sync::Arc;

use bytes::Bytes;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;

#[cfg(feature = "kafka")]
use super::attach_if_open;
use super::record::PyRecord;
use super::{cluster_id, to_py_err};
use crate::config::KafkaBrokers;
use crate::delivery::DeliveryTracker;
use crate::error::Error;
use crate::record::OutgoingRecord;
use crate::transport::memory::MemoryBroker;
use crate::transport::{ClientProperties, Cluster, Transport};

/// FastKafka's `kafka_brokers`: environment name → one broker `{url, port, ...}` or a list.
#[pyclass(name = "KafkaBrokers", module = "fastkafka._core", frozen)]
pub(super) struct PyKafkaBrokers(pub(super) KafkaBrokers);

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
pub(super) struct PyMemoryBroker(MemoryBroker);

impl PyMemoryBroker {
    /// The broker itself.
    pub(super) fn broker(&self) -> &MemoryBroker {
        &self.0
    }
}

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
        cluster_handle(&self.0, bootstrap_servers, &producer_properties)
    }

    /// Makes the cluster `bootstrap_servers` refuse every record produced to it, for `reason`,
    /// until called with None: a test's outage of a destination cluster. Refused records fail
    /// their delivery as on a real cluster that stays down, so the batches that produced them
    /// are not committed and are handled again until the cluster takes them.
    #[pyo3(signature = (bootstrap_servers, reason = Some("refused by the test")))]
    fn refuse_deliveries(&self, bootstrap_servers: &str, reason: Option<&str>) {
        self.0
            .refuse_deliveries(&cluster_id(bootstrap_servers), reason);
    }

    /// Takes the cluster `bootstrap_servers` down, as if every broker of it were lost, until
    /// `bring_back`: it reports itself unreachable, records produced to it wait (their inputs
    /// are not committed), its consumers get nothing. An app whose `kafka_brokers` names a
    /// standby for it fails over after `failover_after` seconds.
    fn take_down(&self, bootstrap_servers: &str) {
        self.0.take_down(&cluster_id(bootstrap_servers));
    }

    /// Ends the outage `take_down` began: records held meanwhile are delivered.
    fn bring_back(&self, bootstrap_servers: &str) {
        self.0.bring_back(&cluster_id(bootstrap_servers));
    }

    /// From now on copies every record appended to cluster `source` onto cluster `target`
    /// with its timestamp, as MirrorMaker 2 keeps a standby in step.
    fn mirror(&self, source: &str, target: &str) {
        self.0.mirror(&cluster_id(source), &cluster_id(target));
    }

    /// Every record of `topic` on the cluster `bootstrap_servers`, partition by partition
    /// (what a test reads back, e.g. a dead-letter topic).
    fn records(&self, bootstrap_servers: &str, topic: &str) -> Vec<PyRecord> {
        self.0
            .memory_cluster(&cluster_id(bootstrap_servers))
            .records(topic)
            .into_iter()
            .map(PyRecord)
            .collect()
    }

    /// The offset `group_id` committed for `topic`'s `partition` on the cluster
    /// `bootstrap_servers` (the next record it will read), or None before its first commit.
    fn committed_offset(
        &self,
        bootstrap_servers: &str,
        group_id: &str,
        topic: &str,
        partition: i32,
    ) -> Option<i64> {
        self.0
            .memory_cluster(&cluster_id(bootstrap_servers))
            .committed_offset(
                group_id,
                &crate::record::TopicPartition::new(topic, partition),
            )
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

/// The cluster `bootstrap_servers` names on `transport`, as a handle Python can produce to.
fn cluster_handle(
    transport: &dyn Transport,
    bootstrap_servers: &str,
    producer_properties: &ClientProperties,
) -> PyResult<PyCluster> {
    transport
        .cluster_with(&cluster_id(bootstrap_servers), producer_properties)
        .map(PyCluster)
        .map_err(to_py_err)
}

/// Real Kafka clusters through librdkafka; `properties` (librdkafka names) apply to every
/// client it creates.
#[cfg(feature = "kafka")]
#[pyclass(name = "KafkaTransport", module = "fastkafka._core", frozen)]
pub(super) struct PyKafkaTransport(Arc<crate::transport::kafka::KafkaTransport>);

#[cfg(feature = "kafka")]
#[pymethods]
impl PyKafkaTransport {
    /// `token_function()`, if given, returns an OAUTHBEARER token (a string) for clients
    /// whose `sasl.mechanism` is `OAUTHBEARER`; it is called on librdkafka's threads.
    #[new]
    #[pyo3(signature = (properties = ClientProperties::new(), token_function = None))]
    fn new(properties: ClientProperties, token_function: Option<Py<PyAny>>) -> PyResult<Self> {
        // Python sends from its event loop's thread, which runs every handler: handing records
        // to librdkafka happens on a thread of each cluster's own (see `with_send_lanes`).
        let mut transport = crate::transport::kafka::KafkaTransport::new(properties)
            .map_err(to_py_err)?
            .with_send_lanes();
        if let Some(function) = token_function {
            transport = transport.with_token_provider(Arc::new(PyTokenProvider(function)));
        }
        Ok(Self(Arc::new(transport)))
    }

    /// The cluster identified by `bootstrap_servers`, whose one producer client gets
    /// `producer_properties`.
    #[pyo3(signature = (bootstrap_servers, producer_properties = ClientProperties::new()))]
    fn cluster(
        &self,
        bootstrap_servers: &str,
        producer_properties: ClientProperties,
    ) -> PyResult<PyCluster> {
        cluster_handle(&*self.0, bootstrap_servers, &producer_properties)
    }
}

/// OAUTHBEARER tokens from a Python function (see `fastkafka._lifecycle.token_function`).
#[cfg(feature = "kafka")]
#[derive(Debug)]
struct PyTokenProvider(Py<PyAny>);

#[cfg(feature = "kafka")]
impl crate::transport::kafka::oauth::TokenProvider for PyTokenProvider {
    fn token(&self) -> Result<crate::transport::kafka::oauth::BearerToken, String> {
        let value = attach_if_open(|py| {
            self.0
                .bind(py)
                .call0()
                .and_then(|token| token.extract::<String>())
                .map_err(|error| error.to_string())
        })
        .unwrap_or_else(|| Err("the Python interpreter is shutting down".to_owned()))?;
        Ok(crate::transport::kafka::oauth::BearerToken::from_value(
            value,
        ))
    }
}

/// The version of the bundled librdkafka, e.g. `"2.12.1"`.
#[cfg(feature = "kafka")]
#[pyfunction]
pub(super) fn librdkafka_version() -> String {
    rdkafka::util::get_rdkafka_version().1
}

/// The engine transport behind a Python transport object (`MemoryBroker`, `KafkaTransport`).
pub(super) fn transport_of(transport: &Bound<'_, PyAny>) -> PyResult<Arc<dyn Transport>> {
    if let Ok(broker) = transport.cast::<PyMemoryBroker>() {
        return Ok(Arc::new(broker.get().0.clone()));
    }
    #[cfg(feature = "kafka")]
    if let Ok(kafka) = transport.cast::<PyKafkaTransport>() {
        let shared: Arc<crate::transport::kafka::KafkaTransport> = Arc::clone(&kafka.get().0);
        return Ok(shared);
    }
    Err(PyTypeError::new_err(format!(
        "an app runs on a MemoryBroker or a KafkaTransport, got {}",
        transport.get_type().name()?
    )))
}

/// A record as Python hands it to `Cluster.produce`: `(key, value, headers)`, where a value
/// of None is a tombstone and a header's value may be None too.
pub(super) type RecordTuple = (
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Option<Vec<(String, Option<Vec<u8>>)>>,
);

/// One cluster, to produce to directly (tests use it to feed an app raw bytes).
#[pyclass(name = "Cluster", module = "fastkafka._core", frozen)]
pub(super) struct PyCluster(Arc<dyn Cluster>);

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
        enqueue(py, &self.0, topic, to_outgoing(records), None)
    }

    /// Hands one record to the cluster without waiting for delivery (the per-message fast
    /// path of `produce`, returning the same: None, or an awaitable when the queue is full).
    #[pyo3(signature = (topic, value, key = None))]
    fn send<'py>(
        &self,
        py: Python<'py>,
        topic: &str,
        value: Option<&[u8]>,
        key: Option<&[u8]>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        enqueue_one(py, &self.0, topic, one_record(value, key), None)
    }

    fn __repr__(&self) -> String {
        format!("Cluster({:?})", self.0.id().bootstrap_servers())
    }
}

/// Hands `records` to `cluster`'s client without blocking, counting them in `tracker` (the
/// producing batch's). What a full queue did not take is sent by the awaitable returned (None
/// when everything was taken): the caller awaits backpressure instead of blocking the event
/// loop's thread.
pub(super) fn enqueue<'py>(
    py: Python<'py>,
    cluster: &Arc<dyn Cluster>,
    topic: &str,
    records: Vec<OutgoingRecord>,
    tracker: Option<Arc<DeliveryTracker>>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let rest = crate::transport::try_produce_in_batch(&**cluster, topic, records, tracker.as_ref())
        .map_err(|error| refused_err(error, tracker.is_some()))?;
    when_room(py, cluster, topic, rest, tracker)
}

/// [`enqueue`] for one record (`send`, the per-message path): no `Vec` unless the queue is
/// full.
pub(super) fn enqueue_one<'py>(
    py: Python<'py>,
    cluster: &Arc<dyn Cluster>,
    topic: &str,
    record: OutgoingRecord,
    tracker: Option<Arc<DeliveryTracker>>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    match crate::transport::try_produce_one_in_batch(&**cluster, topic, record, tracker.as_ref())
        .map_err(|error| refused_err(error, tracker.is_some()))?
    {
        None => Ok(None),
        Some(record) => when_room(py, cluster, topic, vec![record], tracker),
    }
}

/// None when a full queue left nothing (`rest` is empty), else the awaitable that sends `rest`.
fn when_room<'py>(
    py: Python<'py>,
    cluster: &Arc<dyn Cluster>,
    topic: &str,
    rest: Vec<OutgoingRecord>,
    tracker: Option<Arc<DeliveryTracker>>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    if rest.is_empty() {
        return Ok(None);
    }
    let (cluster, topic) = (Arc::clone(cluster), topic.to_owned());
    pyo3_async_runtimes::tokio::future_into_py(py, async move {
        let tracked = tracker.is_some();
        let sending =
            crate::transport::produce_when_room(&*cluster, &topic, rest, tracker.as_ref());
        super::unless_exiting(sending)
            .await
            .map_err(|error| refused_err(error, tracked))
    })
    .map(Some)
}

/// A refused send's exception. One made for a batch (`tracked`) carries `fastkafka_refused`,
/// so that the consumer's runner can blame the refusal on the record whose handler raised it
/// (`DeliveryTracker.take_refusal`).
pub(super) fn refused_err(error: Error, tracked: bool) -> PyErr {
    let raised = to_py_err(error);
    if tracked {
        super::attach_if_open(|py| {
            // An exception instance takes attributes; failing that, the batch fails whole.
            let _ = raised.value(py).setattr("fastkafka_refused", true);
        });
    }
    raised
}

pub(super) fn to_outgoing(records: Vec<RecordTuple>) -> Vec<OutgoingRecord> {
    records
        .into_iter()
        .map(|(key, value, headers)| OutgoingRecord {
            key: key.map(Bytes::from),
            value: value.map(Bytes::from),
            headers: headers
                .unwrap_or_default()
                .into_iter()
                .map(|(name, value)| (name, value.map(Bytes::from)))
                .collect(),
        })
        .collect()
}

pub(super) fn one_record(value: Option<&[u8]>, key: Option<&[u8]>) -> OutgoingRecord {
    OutgoingRecord {
        key: key.map(Bytes::copy_from_slice),
        value: value.map(Bytes::copy_from_slice),
        headers: Vec::new(),
    }
}
