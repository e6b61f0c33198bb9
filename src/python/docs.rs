//! A Python app's AsyncAPI docs, written by the same code as a Rust app's ([`crate::docs`]) from
//! the same registry (the runtime's registrations). Python contributes what only it knows, at
//! registration: a docstring or `description=`, and a function that makes the message's schema
//! (pydantic's JSON Schema, or an Avro schema) — called only when docs are written.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::{attach_if_open, to_py_err};
use crate::docs::{AppInfo, Docs, MessageDoc};
use crate::error::{Error, Result};
use crate::runtime::{DescribeMessage, Described, Runtime};

fn depythonize<T: serde::de::DeserializeOwned>(what: &str, value: &Bound<'_, PyAny>) -> Result<T> {
    pythonize::depythonize(value).map_err(|e| Error::Config(format!("{what}: {e}")))
}

/// What the docs say of function `name`: `description`, and the message `message()` returns
/// (a dict in [`MessageDoc`]'s fields) when the docs are written.
pub(super) fn described(
    name: &str,
    description: Option<String>,
    message: Option<Py<PyAny>>,
) -> Described {
    let message = message.map(|make| {
        let (make, what) = (Arc::new(make), format!("message of '{name}'"));
        Arc::new(move || {
            attach_if_open(|py| {
                let made = make.bind(py).call0().map_err(|error| {
                    Error::Config(format!("{what}: its schema could not be made: {error}"))
                })?;
                depythonize::<MessageDoc>(&what, &made)
            })
            .unwrap_or(Err(Error::Closed("the Python interpreter")))
        }) as DescribeMessage
    });
    Described {
        description,
        message,
    }
}

/// The AsyncAPI spec (YAML, in `asyncapi_version` "2.6" or "3.0") and the HTML page of what
/// `runtime` registered.
pub(super) fn asyncapi_docs(
    runtime: &Runtime,
    info: &Bound<'_, PyDict>,
    asyncapi_version: &str,
) -> PyResult<(String, String)> {
    let version = asyncapi_version.parse().map_err(to_py_err)?;
    let info: AppInfo = depythonize("app info", info.as_any()).map_err(to_py_err)?;
    let docs = Docs::of(info, runtime).map_err(to_py_err)?;
    Ok((crate::docs::to_yaml(&docs.asyncapi(version)), docs.html()))
}
