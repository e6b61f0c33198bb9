//! `Runtime`: a Python app's engine — the one app runtime ([`crate::runtime`]) with Python
//! batch handlers.
//!
//! `FastKafka` registers each decorated function here as it is decorated, handing over its
//! options in FastKafka's names (checked and mapped in Rust, once); a consumer's batch
//! handler is a coroutine function (the app's `ConsumerRunner.handle_batch`), run on the
//! asyncio loop that started the app. Start and stop block the calling thread (Python runs
//! them on its lifecycle threads) and do everything a Rust app's do: clusters checked,
//! consumers subscribed concurrently with rollback, supervision, ordered stop with abandon,
//! flush and the undelivered summary. `Producer` is a registered producer's handle.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyDict;
use pyo3_async_runtimes::TaskLocals;
use serde_json::Value;

use super::batches::{python_rebalance_hook, PyBatchHandler};
use super::producer::PyProducer;
use super::running::PyRunningRuntime;
use super::transport::{transport_of, PyKafkaBrokers};
use super::{attach_if_open, block_on, cluster_id, docs, to_py_err};
use crate::consumer_loop::failures::RetryPolicy;
use crate::consumer_loop::BatchHandler;
use crate::error::Error;
use crate::health::HealthLimits;
use crate::runtime::{
    options, AbandonHook, ClusterChoice, ConsumerRegistration, DeadLetterTopic, HandOver,
    HandlerFactory, Options, Runtime,
};
use crate::transport::DropOffThread;

/// How much a Python consumer's client prefetches unless options say otherwise. librdkafka's
/// own bound is 64 MB of payload per consumer (`queued.max.messages.kbytes`), plus several
/// hundred bytes of bookkeeping per record: for small records, far more memory than a handler
/// on one asyncio thread can use. The bound is also the most a client fetches per round trip
/// (librdkafka lowers `fetch.max.bytes` to it), so it must cover a distant cluster's round
/// trip at the handler's pace: 1.5 MB allows ~30 MB/s at 50 ms, where 256 KB would cap a
/// consumer at ~5 MB/s (docs/performance.md, "Why the engine is shaped so"). The short backoff is librdkafka's advice for a low bound: a fetch waits 5 ms, not
/// 1 s, once the queue has room. Rust apps keep librdkafka's defaults: a Rust handler can
/// drain 1.5 MB faster than a broker that paces its fetches (Tansu) refills it.
const PREFETCH_DEFAULTS: [(&str, &str); 2] = [
    ("queued.max.messages.kbytes", "1536"),
    ("fetch.queue.backoff.ms", "5"),
];

/// The asyncio loop (and context) of the current start, shared with the handler factories.
pub(super) type LoopCell = Arc<Mutex<Option<Arc<TaskLocals>>>>;

/// A Python app's registrations and lifecycle (see the module docs).
#[pyclass(name = "Runtime", module = "fastkafka._core")]
pub(super) struct PyRuntime {
    runtime: DropOffThread<Runtime>,
    event_loop: LoopCell,
}

impl PyRuntime {
    /// The app's registrations (for the offset tools and the test mirrors).
    pub(super) fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// A runtime built elsewhere (the test mirrors) whose Python handlers run on the event
    /// loop `event_loop` will hold once it starts.
    pub(super) fn wrapping(runtime: Runtime, event_loop: LoopCell) -> Self {
        Self {
            runtime: DropOffThread::new(runtime),
            event_loop,
        }
    }
}

#[pymethods]
impl PyRuntime {
    /// An app on `kafka_brokers` in `environment` whose clients inherit `options`
    /// (`FastKafka(**options)`, checked here); the timeouts are in seconds.
    #[new]
    #[pyo3(signature = (kafka_brokers, environment, options = None, *, start_timeout = 30.0, stop_timeout = 30.0))]
    fn new(
        kafka_brokers: &Bound<'_, PyKafkaBrokers>,
        environment: &str,
        options: Option<&Bound<'_, PyDict>>,
        start_timeout: f64,
        stop_timeout: f64,
    ) -> PyResult<Self> {
        // Unchecked, as FastKafka took it: an unknown environment fails the start instead.
        let mut runtime = Runtime::in_environment(kafka_brokers.get().0.clone(), environment);
        runtime
            .set_client_options(options_of(options)?)
            .map_err(to_py_err)?;
        runtime.set_start_timeout(seconds("start_timeout", start_timeout)?);
        runtime.set_stop_timeout(seconds("stop_timeout", stop_timeout)?);
        Ok(Self {
            runtime: DropOffThread::new(runtime),
            event_loop: Arc::new(Mutex::new(None)),
        })
    }

    /// How long starting may take in all, in seconds: clusters checked, consumers subscribed.
    #[getter]
    fn start_timeout(&self) -> f64 {
        self.runtime.start_timeout().as_secs_f64()
    }

    #[setter]
    fn set_start_timeout(&mut self, timeout: f64) -> PyResult<()> {
        self.runtime
            .set_start_timeout(seconds("start_timeout", timeout)?);
        Ok(())
    }

    /// How long stopping may take in all, in seconds: batches in flight, outputs awaiting
    /// acknowledgement, commits, the producers' flush.
    #[getter]
    fn stop_timeout(&self) -> f64 {
        self.runtime.stop_timeout().as_secs_f64()
    }

    #[setter]
    fn set_stop_timeout(&mut self, timeout: f64) -> PyResult<()> {
        self.runtime
            .set_stop_timeout(seconds("stop_timeout", timeout)?);
        Ok(())
    }

    /// Its consumers' liveness limits in seconds (`polling_ttl`, `consuming_ttl`; `None`:
    /// each consumer's `max.poll.interval.ms`), for the next start. Raises `ConfigError` for
    /// a value that is not a positive number.
    #[pyo3(signature = (polling_ttl, consuming_ttl))]
    fn set_health_limits(
        &mut self,
        polling_ttl: Option<f64>,
        consuming_ttl: Option<f64>,
    ) -> PyResult<()> {
        let limits = HealthLimits::from_seconds(polling_ttl, consuming_ttl).map_err(to_py_err)?;
        self.runtime.set_health_limits(limits);
        Ok(())
    }

    /// See `set_health_limits`: (polling_ttl, consuming_ttl) in seconds, `None` where unset.
    #[getter]
    fn health_limits(&self) -> (Option<f64>, Option<f64>) {
        let limits = self.runtime.health_limits();
        (
            limits.polling_ttl.map(|d| d.as_secs_f64()),
            limits.consuming_ttl.map(|d| d.as_secs_f64()),
        )
    }

    /// The environment whose clusters the app uses.
    #[getter]
    fn environment(&self) -> &str {
        self.runtime.environment()
    }

    /// Picks the environment; raises `ConfigError` unless it is one of `kafka_brokers`.
    fn set_environment(&mut self, environment: &str) -> PyResult<()> {
        self.runtime.set_environment(environment).map_err(to_py_err)
    }

    /// Gives consumers without a `group_id` the group `<prefix>.<name>` (None: no group).
    fn set_default_group_prefix(&mut self, prefix: Option<String>) {
        self.runtime.set_default_group_prefix(prefix);
    }

    /// The bootstrap servers a function with `brokers` uses in the current environment.
    #[pyo3(signature = (brokers = None))]
    fn cluster_id(&self, brokers: Option<&Bound<'_, PyKafkaBrokers>>) -> PyResult<String> {
        self.runtime
            .cluster_id(&choice(brokers, None))
            .map(|id| id.bootstrap_servers().to_owned())
            .map_err(to_py_err)
    }

    /// The AsyncAPI spec (YAML, `asyncapi_version` "2.6" or "3.0") and HTML page of what is
    /// registered; `info` holds the app's title, version, description and contact.
    #[pyo3(signature = (info, asyncapi_version = "2.6"))]
    fn asyncapi_docs(
        &self,
        info: &Bound<'_, PyDict>,
        asyncapi_version: &str,
    ) -> PyResult<(String, String)> {
        docs::asyncapi_docs(&self.runtime, info, asyncapi_version)
    }

    /// Every topic registered, sorted.
    fn topics(&self) -> Vec<String> {
        self.runtime
            .topics()
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    /// Registers consumer `name` of `topic` on the app's cluster, on `brokers`, or on the
    /// cluster `bootstrap_servers` whatever the environment (test mirrors). `options` are
    /// the decorator's (FastKafka's names) over the app's; `max_poll_records_cap` bounds the
    /// batch size (an executor's buffer); `hand_over` is how many records a call gets:
    /// "up_to_max_poll_records", "one_partition" (batch consumers) or "sized_to_handler"
    /// (sequential consumers; see `HandOver`). `on_batch(records, deliveries)` is awaited for each
    /// batch and returns what it could not process (see `handled_of`);
    /// `on_abandon(seconds)` is called on the loop when stopping gave up waiting for it.
    /// `retry` is (attempts, backoff s, max backoff s); `dead_letter_topic` is on the
    /// consumer's cluster, or on `dead_letter_brokers`'. `on_partitions_changed(kind, cluster,
    /// partitions)` is awaited between batches when partitions are assigned or revoked.
    /// `description` and `message()` (a dict of the message's name, schema and codec, made
    /// only when docs are written) are what its AsyncAPI docs say.
    #[pyo3(signature = (name, topic, on_batch, *, brokers = None, bootstrap_servers = None, options = None, on_abandon = None, max_poll_records_cap = None, hand_over = "up_to_max_poll_records", retry = None, dead_letter_topic = None, dead_letter_brokers = None, on_partitions_changed = None, description = None, message = None))]
    #[allow(clippy::too_many_arguments)]
    fn add_consumer(
        &mut self,
        name: String,
        topic: String,
        on_batch: Py<PyAny>,
        brokers: Option<&Bound<'_, PyKafkaBrokers>>,
        bootstrap_servers: Option<&str>,
        options: Option<&Bound<'_, PyDict>>,
        on_abandon: Option<Py<PyAny>>,
        max_poll_records_cap: Option<usize>,
        hand_over: &str,
        retry: Option<(u32, f64, f64)>,
        dead_letter_topic: Option<String>,
        dead_letter_brokers: Option<&Bound<'_, PyKafkaBrokers>>,
        on_partitions_changed: Option<Py<PyAny>>,
        description: Option<String>,
        message: Option<Py<PyAny>>,
    ) -> PyResult<()> {
        let place = format!("consumes() of '{name}'");
        let mut settings = self
            .runtime
            .consumer_settings(&options_of(options)?, &place)
            .map_err(to_py_err)?;
        settings.default_properties = PREFETCH_DEFAULTS
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        if let Some((attempts, backoff, max_backoff)) = retry {
            settings.retry = Some(RetryPolicy {
                attempts,
                backoff: seconds("retry backoff", backoff)?,
                max_backoff: seconds("retry max_backoff", max_backoff)?,
            });
        }
        settings.dead_letter = DeadLetterTopic::from_arguments(
            dead_letter_topic,
            dead_letter_brokers.map(|brokers| brokers.get().0.clone()),
            &place,
        )
        .map_err(to_py_err)?;
        settings.on_partitions_changed =
            on_partitions_changed.map(|hook| python_rebalance_hook(hook, self.event_loop.clone()));
        if let Some(cap) = max_poll_records_cap {
            settings.cap_hand_over(cap);
        }
        let handler = python_handler(on_batch, self.event_loop.clone());
        let on_abandon = on_abandon.map(|callback| {
            let (callback, event_loop) = (Arc::new(callback), self.event_loop.clone());
            Arc::new(move |waited: Duration| {
                call_soon(&event_loop, &callback, |py| {
                    (waited.as_secs_f64(),)
                        .into_pyobject(py)
                        .map(Bound::into_any)
                });
            }) as AbandonHook
        });
        let described = docs::described(&name, description, message);
        self.runtime
            .add_consumer(ConsumerRegistration {
                name,
                topic,
                cluster: choice(brokers, bootstrap_servers),
                settings,
                handler,
                on_abandon,
                hand_over: hand_over_of(hand_over, &place)?,
                described,
            })
            .map_err(to_py_err)?;
        Ok(())
    }

    /// Registers producer `name` to `topic` (cluster as for `add_consumer`) with `options`
    /// over the app's; returns its handle, which sends while the app runs. `description` and
    /// `message` as for `add_consumer`.
    #[pyo3(signature = (name, topic, *, brokers = None, bootstrap_servers = None, options = None, description = None, message = None))]
    #[allow(clippy::too_many_arguments)]
    fn add_producer(
        &mut self,
        name: String,
        topic: String,
        brokers: Option<&Bound<'_, PyKafkaBrokers>>,
        bootstrap_servers: Option<&str>,
        options: Option<&Bound<'_, PyDict>>,
        description: Option<String>,
        message: Option<Py<PyAny>>,
    ) -> PyResult<PyProducer> {
        let place = format!("produces() of '{name}'");
        let settings = self
            .runtime
            .producer_settings(&options_of(options)?, &place)
            .map_err(to_py_err)?;
        let described = docs::described(&name, description, message);
        self.runtime
            .add_producer(
                name,
                topic,
                choice(brokers, bootstrap_servers),
                settings,
                described,
            )
            .map(PyProducer)
            .map_err(to_py_err)
    }

    /// Starts the app on `transport` (a `MemoryBroker` or `KafkaTransport`) with its batch
    /// handlers on `event_loop`; blocks (run it on a lifecycle thread) until every consumer
    /// is subscribed. If a consumer later ends other than by `stop`,
    /// `on_failure(name, error)` is called on `event_loop` with a `ConsumerEndedError` whose
    /// `__cause__` says why.
    fn start(
        &self,
        py: Python<'_>,
        transport: &Bound<'_, PyAny>,
        event_loop: Bound<'_, PyAny>,
        on_failure: Py<PyAny>,
    ) -> PyResult<PyRunningRuntime> {
        let transport = transport_of(transport)?;
        let locals = Arc::new(TaskLocals::new(event_loop).copy_context(py)?);
        *self
            .event_loop
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(locals);
        let runtime: &Runtime = &self.runtime;
        let running = block_on(py, runtime.start(transport))?;
        let failure = running.wait_for_failure();
        let (event_loop, on_failure) = (self.event_loop.clone(), Arc::new(on_failure));
        let watcher = pyo3_async_runtimes::tokio::get_runtime().spawn(async move {
            let ended = failure.await;
            let consumer = match &ended {
                Error::ConsumerEnded { consumer, .. } => consumer.clone(),
                _ => String::new(),
            };
            call_soon(&event_loop, &on_failure, move |py| {
                let error = to_py_err(ended).into_value(py);
                (consumer, error).into_pyobject(py).map(Bound::into_any)
            });
        });
        Ok(PyRunningRuntime::new(running, watcher))
    }
}

/// A batch handler factory for the coroutine function `on_batch`, run on the event loop of
/// the runtime's current start.
pub(super) fn python_handler(on_batch: Py<PyAny>, event_loop: LoopCell) -> HandlerFactory {
    let on_batch = Arc::new(on_batch);
    Arc::new(move || {
        let locals = event_loop
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or(Error::Closed("the app's event loop"))?;
        Ok(Box::new(PyBatchHandler {
            on_batch: on_batch.clone(),
            locals,
        }) as Box<dyn BatchHandler>)
    })
}

/// Schedules `callback(*arguments)` on the app's event loop from any thread; does nothing
/// if the interpreter is finalizing or the loop is closed (nobody is left to tell).
pub(super) fn call_soon(
    event_loop: &LoopCell,
    callback: &Py<PyAny>,
    arguments: impl FnOnce(Python<'_>) -> PyResult<Bound<'_, PyAny>>,
) {
    let Some(locals) = event_loop
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
    else {
        return;
    };
    attach_if_open(|py| {
        let scheduled = arguments(py).and_then(|arguments| {
            let mut call = vec![callback.bind(py).clone()];
            call.extend(arguments.cast::<pyo3::types::PyTuple>()?.iter());
            locals
                .event_loop(py)
                .call_method1("call_soon_threadsafe", pyo3::types::PyTuple::new(py, call)?)
        });
        if let Err(error) = scheduled {
            tracing::warn!(%error, "could not reach the app's event loop");
        }
    });
}

fn choice(
    brokers: Option<&Bound<'_, PyKafkaBrokers>>,
    bootstrap_servers: Option<&str>,
) -> ClusterChoice {
    match (bootstrap_servers, brokers) {
        (Some(servers), _) => ClusterChoice::Fixed(cluster_id(servers)),
        (None, Some(brokers)) => ClusterChoice::Brokers(brokers.get().0.clone()),
        (None, None) => ClusterChoice::App,
    }
}

/// Python keyword arguments as options. A value JSON cannot hold (a function, bytes, an SSL
/// context) stands in by its type: the option check then names the option and the type,
/// without showing the value.
fn options_of(options: Option<&Bound<'_, PyDict>>) -> PyResult<Options> {
    let Some(options) = options else {
        return Ok(Options::new());
    };
    options
        .iter()
        .map(|(name, value)| {
            let value = match pythonize::depythonize::<Value>(&value) {
                Ok(value) => value,
                Err(_) => options::unrepresentable(&value.get_type().name()?.to_string()),
            };
            Ok((name.extract::<String>()?, value))
        })
        .collect()
}

/// `add_consumer`'s `hand_over` argument.
fn hand_over_of(name: &str, place: &str) -> PyResult<HandOver> {
    match name {
        "up_to_max_poll_records" => Ok(HandOver::UpToMaxPollRecords),
        "one_partition" => Ok(HandOver::OnePartition),
        "sized_to_handler" => Ok(HandOver::SizedToHandler),
        other => Err(to_py_err(Error::Config(format!(
            "{place}: unknown hand_over {other:?}; use \"up_to_max_poll_records\", \
             \"one_partition\" or \"sized_to_handler\""
        )))),
    }
}

fn seconds(name: &str, value: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value).map_err(|_| {
        to_py_err(Error::Config(format!(
            "{name} must be >= 0 seconds, got {value}"
        )))
    })
}
