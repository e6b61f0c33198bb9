//! `fastkafka._core`: the Python face of the engine.
//!
//! Deliberately thin: it converts at the boundary and delegates to the core. Payloads cross as
//! `bytes` (decoding is pydantic's job on the Python side); configuration crosses with
//! pythonize and is checked once, by [`crate::config`] and [`crate::runtime::options`]. An app
//! is a [`crate::runtime::Runtime`] (`runtime.rs`): the same registrations, start, supervision
//! and stop as a Rust app, with Python batch handlers. Records reach Python a *batch* at a
//! time: per batch, a consumer loop takes the GIL once to build a `RecordBatch` (the payloads as
//! `bytes`, each record's other fields only when asked for) and schedules the app's batch
//! coroutine on the asyncio loop that started the app.
//!
//! Why two event loops: Kafka I/O, waiting and offset bookkeeping live on the one tokio
//! runtime owned by Rust (pyo3-async-runtimes'); handlers are Python coroutines and run on the
//! app's asyncio loop. A Rust future handed to Python becomes an awaitable whose cancellation
//! drops the future, so every future here is safe to drop.
//!
//! Errors are raised as the classes of `fastkafka.exceptions`, which declares the hierarchy once
//! so that a configuration error is also a `ValueError` for existing `except` clauses.
//!
//! # Layout
//! - this file: errors, blocking calls, the module's contents;
//! - `transport.rs`: `KafkaBrokers`, `MemoryBroker`, `KafkaTransport`, `Cluster`;
//! - `runtime.rs`: `Runtime` — an app's engine; `running.rs`: `RunningRuntime`, a started app
//!   (stop, health, seeks); `batches.rs`: a batch handed to Python and its report back, and
//!   rebalance hooks called on Python; `producer.rs`: `Producer`, `DeliveryTracker`;
//! - `record.rs`: `Record`, `RecordBatch`; `logging.rs`: `tracing` → Python `logging`;
//! - `mirrors.rs`: the Tester's mirrors (`mirror_runtime`, `Mirror`) and `dead_letters`;
//! - `docs.rs`: what a registration's docs say, and `Runtime.asyncapi_docs`; `offsets.rs` (feature
//!   `kafka`): `consumer_offsets`, `reset_offsets`, the offset tools.

mod batches;
mod docs;
mod logging;
mod mirrors;
#[cfg(feature = "kafka")]
mod offsets;
mod producer;
mod record;
mod running;
mod runtime;
mod transport;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use crate::config::ClusterId;
use crate::error::Error;

/// Cleared at interpreter exit (`atexit`): a thread that takes the GIL while CPython finalizes
/// is ended mid-call by CPython, which aborts the process. So engine threads — logging, batch
/// handlers, failure reports — enter Python only through [`attach_if_open`].
static PYTHON_OPEN: AtomicBool = AtomicBool::new(true);

/// Engine threads inside [`attach_if_open`] now: closing waits for them to leave.
static ENTERED: AtomicUsize = AtomicUsize::new(0);

/// How long closing waits for engine threads already inside Python to leave.
const CLOSING_WAIT: Duration = Duration::from_secs(5);

/// Stops engine threads from entering Python, then waits (GIL released) until those already
/// inside have left: a thread that was running Python code when CPython starts finalizing —
/// e.g. handing a batch over, which writes to the event loop's self-pipe and so releases the
/// GIL mid-call — would be ended by CPython when it takes the GIL back, aborting the process.
/// The package registers it with `atexit`, which runs before CPython starts finalizing.
#[pyfunction]
fn close_python_entries(py: Python<'_>) {
    PYTHON_OPEN.store(false, Ordering::SeqCst);
    py.detach(|| {
        let deadline = std::time::Instant::now() + CLOSING_WAIT;
        while ENTERED.load(Ordering::SeqCst) > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
}

/// Runs `f` with the GIL from an engine thread, unless the interpreter is exiting (`None`).
pub(crate) fn attach_if_open<R>(f: impl for<'py> FnOnce(Python<'py>) -> R) -> Option<R> {
    ENTERED.fetch_add(1, Ordering::SeqCst);
    // Checked after counting ourselves in: closing either sees us, or we see it closed.
    let entered = PYTHON_OPEN
        .load(Ordering::SeqCst)
        .then(|| Python::try_attach(f))
        .flatten();
    ENTERED.fetch_sub(1, Ordering::SeqCst);
    entered
}

/// Gives the calling engine thread a Python thread state that outlives each attach (for the
/// tokio workers that hand batches over). Without it, every attach from a thread without one
/// creates a thread state and the detach destroys it — with Python 3.11+'s frame stack, an
/// `mmap` and a `munmap` per batch, and the `munmap`'s TLB shootdown interrupts the event
/// loop's core too (measured under `make bench`: ~15% of the tokio threads' time). Kept states
/// are cleared by CPython when it finalizes; the thread never enters Python after that
/// ([`attach_if_open`]).
pub(crate) fn keep_thread_state() {
    thread_local! {
        static KEPT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    if KEPT.get() {
        return;
    }
    let kept = attach_if_open(|_py| {
        // SAFETY: the GIL is held (this attach's own `PyGILState_Ensure`): a second one only
        // raises the thread state's counter, which keeps the state alive when the attach's
        // release brings it back to one, and releases the GIL.
        unsafe { pyo3::ffi::PyGILState_Ensure() };
    });
    KEPT.set(kept.is_some());
}

/// The class of `fastkafka.exceptions` each variant is raised as: one per variant, so that
/// Python code can tell them apart as Rust code does.
fn exception_class(error: &Error) -> &'static str {
    match error {
        Error::Config(_) => "ConfigError",
        Error::Transport { .. } => "TransportError",
        Error::RecordTooLarge { .. } => "RecordTooLargeError",
        Error::Fatal { .. } => "FatalClusterError",
        Error::Undelivered { .. } => "DeliveryError",
        Error::Closed(_) => "ClosedError",
        Error::Thread { .. } => "ThreadStartError",
        Error::Encode { .. } => "EncodeError",
        Error::Decode { .. } => "DecodeError",
        Error::TimedOut { .. } => "WaitTimeoutError",
        Error::Handler(_) => "HandlerError",
        Error::Panicked { .. } => "PanicError",
        Error::ConsumerEnded { .. } => "ConsumerEndedError",
    }
}

/// Raises `error` as its class of `fastkafka.exceptions` ([`exception_class`]); a consumer's
/// end keeps why as the exception's `__cause__`. Called on engine threads too (an awaitable's
/// failure), so it enters Python through the gate: once the interpreter is exiting, the error
/// becomes a plain `RuntimeError` built without entering Python (nobody is left to catch it).
pub(crate) fn to_py_err(error: Error) -> PyErr {
    static EXCEPTIONS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    let message = error.to_string();
    let raised = attach_if_open(|py| {
        let module = EXCEPTIONS.get_or_try_init(py, || {
            PyModule::import(py, "fastkafka.exceptions").map(Bound::unbind)
        });
        let raised = match module.and_then(|m| m.bind(py).getattr(exception_class(&error))) {
            Ok(class) => match class.call1((error.to_string(),)) {
                Ok(instance) => PyErr::from_value(instance),
                Err(e) => e,
            },
            Err(import_error) => import_error,
        };
        if let Error::ConsumerEnded { source, .. } = error {
            raised.set_cause(py, Some(to_py_err(*source)));
        }
        raised
    });
    raised.unwrap_or_else(|| pyo3::exceptions::PyRuntimeError::new_err(message))
}

/// `future`, except that its output is never handed back while the interpreter exits: an
/// awaitable built with `future_into_py` enters Python on an engine thread to complete, outside
/// [`attach_if_open`]'s gate, so once the gate is closed it stays pending instead (its event
/// loop is gone by then anyway).
pub(crate) async fn unless_exiting<F: std::future::Future>(future: F) -> F::Output {
    let output = future.await;
    if !PYTHON_OPEN.load(Ordering::SeqCst) {
        std::future::pending::<()>().await;
    }
    output
}

/// Runs `future` on the engine's runtime, blocking the calling thread with the GIL released.
///
/// Lifecycle calls (start, stop, flush) block instead of returning awaitables on purpose:
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

/// The engine of `fastkafka`: transports, the app runtime, records.
#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    logging::install();
    m.add_function(wrap_pyfunction!(close_python_entries, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    #[cfg(feature = "kafka")]
    {
        m.add_class::<transport::PyKafkaTransport>()?;
        m.add_function(wrap_pyfunction!(transport::librdkafka_version, m)?)?;
        m.add_function(wrap_pyfunction!(offsets::consumer_offsets, m)?)?;
        m.add_function(wrap_pyfunction!(offsets::reset_offsets, m)?)?;
    }
    m.add_class::<transport::PyKafkaBrokers>()?;
    m.add_class::<transport::PyMemoryBroker>()?;
    m.add_class::<transport::PyCluster>()?;
    m.add_class::<runtime::PyRuntime>()?;
    m.add_class::<running::PyRunningRuntime>()?;
    m.add_class::<running::PySeeker>()?;
    m.add_function(wrap_pyfunction!(running::health_when_not_running, m)?)?;
    m.add_class::<producer::PyProducer>()?;
    m.add_class::<producer::PyDeliveryTracker>()?;
    m.add_class::<record::PyRecord>()?;
    m.add_class::<record::PyRecordBatch>()?;
    m.add_function(wrap_pyfunction!(render_metrics, m)?)?;
    m.add_class::<batches::PyFailure>()?;
    m.add_class::<batches::PyBatchReport>()?;
    m.add_class::<mirrors::PyMirror>()?;
    m.add_class::<mirrors::PyDeadLetter>()?;
    m.add_function(wrap_pyfunction!(mirrors::mirror_runtime, m)?)?;
    m.add_function(wrap_pyfunction!(mirrors::dead_letters, m)?)?;
    m.add("DEAD_LETTER_HEADERS", mirrors::dead_letter_headers(m.py())?)?;
    Ok(())
}

/// This process's consumer and producer figures in Prometheus' text format
/// (`crate::metrics::render`).
#[pyfunction]
fn render_metrics(py: Python<'_>) -> String {
    py.detach(crate::metrics::render)
}
