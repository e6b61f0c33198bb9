//! `asyncapi_docs`: a Python app's AsyncAPI spec (YAML) and HTML page, written by the same
//! code as a Rust app's ([`crate::docs`]). Python hands over what only it knows — message
//! models as JSON Schemas (pydantic), docstrings, codecs — one tuple per function.

use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::to_py_err;
use super::transport::PyKafkaBrokers;
use crate::docs::{AppInfo, ChannelDoc, Direction, Docs, MessageDoc};
use crate::error::Error;
use crate::runtime::ClusterChoice;

/// One function as Python describes it: `(function, "consumes" | "produces", topic,
/// brokers override or None, description or None, message)`.
type FunctionTuple<'py> = (
    String,
    String,
    String,
    Option<Bound<'py, PyKafkaBrokers>>,
    Option<String>,
    Bound<'py, PyDict>,
);

fn depythonize<T: serde::de::DeserializeOwned>(
    what: &str,
    value: &Bound<'_, PyAny>,
) -> PyResult<T> {
    pythonize::depythonize(value).map_err(|e| to_py_err(Error::Config(format!("{what}: {e}"))))
}

/// The AsyncAPI spec (YAML, in `asyncapi_version` "2.6" or "3.0") and the HTML page of an app
/// whose default clusters are `kafka_brokers`.
#[pyfunction]
#[pyo3(signature = (kafka_brokers, info, functions, asyncapi_version = "2.6"))]
pub(super) fn asyncapi_docs(
    kafka_brokers: &Bound<'_, PyKafkaBrokers>,
    info: &Bound<'_, PyDict>,
    functions: Vec<FunctionTuple<'_>>,
    asyncapi_version: &str,
) -> PyResult<(String, String)> {
    let version = asyncapi_version.parse().map_err(to_py_err)?;
    let info: AppInfo = depythonize("app info", info.as_any())?;
    let channels = functions
        .into_iter()
        .map(
            |(function, direction, topic, brokers, description, message)| {
                let direction = match direction.as_str() {
                    "consumes" => Direction::Consumes,
                    "produces" => Direction::Produces,
                    other => {
                        return Err(to_py_err(Error::Config(format!(
                            "direction must be 'consumes' or 'produces', got '{other}'"
                        ))))
                    }
                };
                let message: MessageDoc =
                    depythonize(&format!("message of '{function}'"), message.as_any())?;
                Ok(ChannelDoc {
                    function,
                    direction,
                    topic,
                    cluster: brokers.map_or(ClusterChoice::App, |brokers| {
                        ClusterChoice::Brokers(brokers.get().0.clone())
                    }),
                    description,
                    message,
                })
            },
        )
        .collect::<PyResult<Vec<_>>>()?;
    let docs = Docs::new(info, &kafka_brokers.get().0, &channels).map_err(to_py_err)?;
    Ok((crate::docs::to_yaml(&docs.asyncapi(version)), docs.html()))
}
