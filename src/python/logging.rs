//! Rust `tracing` events → Python `logging`, so `logging.basicConfig(level=...)` controls the
//! engine's logs like any Python library's.
//!
//! An event of target `fastkafka::transport::kafka` goes to the logger
//! `fastkafka.transport.kafka`; librdkafka's own log lines (target `librdkafka`) go to
//! `fastkafka.librdkafka`. Forwarding takes the GIL, so events below a ceiling never leave
//! Rust: INFO by default, or the level in the `FASTKAFKA_RUST_LOG` environment variable
//! (`debug`, `trace`, ...). No event is emitted per message on the hot path.

use std::fmt::Write as _;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// Installs the bridge as the process's tracing subscriber (once; later calls do nothing, and
/// an embedding Rust program that installed its own subscriber keeps it).
pub fn install() {
    let ceiling = std::env::var("FASTKAFKA_RUST_LOG")
        .ok()
        .and_then(|level| level.parse::<Level>().ok())
        .unwrap_or(Level::INFO);
    let subscriber = tracing_subscriber::registry().with(PythonLogging { ceiling });
    let _ = tracing::subscriber::set_global_default(subscriber);
}

struct PythonLogging {
    ceiling: Level,
}

impl<S: Subscriber> Layer<S> for PythonLogging {
    fn enabled(&self, metadata: &tracing::Metadata<'_>, _: Context<'_, S>) -> bool {
        *metadata.level() <= self.ceiling
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let metadata = event.metadata();
        let mut message = MessageWriter::default();
        event.record(&mut message);
        let logger_name = logger_name(metadata.target());
        let level = python_level(*metadata.level());
        // During interpreter shutdown there is no Python to log to; the event is dropped.
        super::attach_if_open(|py| {
            if let Err(error) = log(py, &logger_name, level, &message.text) {
                error.print(py);
            }
        });
    }
}

fn log(py: Python<'_>, logger_name: &str, level: u8, message: &str) -> PyResult<()> {
    static LOGGING: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    let logging =
        LOGGING.get_or_try_init(py, || PyModule::import(py, "logging").map(Bound::unbind))?;
    let logger = logging.bind(py).call_method1("getLogger", (logger_name,))?;
    if logger.call_method1("isEnabledFor", (level,))?.is_truthy()? {
        logger.call_method1("log", (level, message))?;
    }
    Ok(())
}

fn logger_name(target: &str) -> String {
    if target == "librdkafka" || target.starts_with("rdkafka") {
        return "fastkafka.librdkafka".to_owned();
    }
    let dotted = target.replace("::", ".");
    if dotted == "fastkafka" || dotted.starts_with("fastkafka.") {
        dotted
    } else {
        format!("fastkafka.{dotted}")
    }
}

fn python_level(level: Level) -> u8 {
    match level {
        Level::ERROR => 40,
        Level::WARN => 30,
        Level::INFO => 20,
        Level::DEBUG | Level::TRACE => 10,
    }
}

/// Renders an event as `message key=value ...`.
#[derive(Default)]
struct MessageWriter {
    text: String,
}

impl Visit for MessageWriter {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.text.insert_str(0, value);
        } else {
            let _ = write!(self.text, " {}={}", field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.text.insert_str(0, &format!("{value:?}"));
        } else {
            let _ = write!(self.text, " {}={:?}", field.name(), value);
        }
    }
}
