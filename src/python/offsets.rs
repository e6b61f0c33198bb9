//! `consumer_offsets` and `reset_offsets`: the offset tools ([`crate::offsets`]) for a Python
//! app's consumers, what `fastkafka offsets show|reset` prints (feature `kafka`).

use pyo3::prelude::*;
use serde::Serialize;

use super::runtime::PyRuntime;
use super::{block_on, to_py_err};
use crate::error::Error;
use crate::offsets::{select, ConsumerGroupTarget, PartitionOffsets, ResetTo};
use crate::transport::kafka::offsets;

/// One consumer's group and what the tool found or did, per partition.
#[derive(Serialize)]
struct GroupReport<P> {
    consumer: String,
    topic: String,
    cluster: String,
    group: String,
    partitions: Vec<P>,
}

impl<P> GroupReport<P> {
    fn of(target: &ConsumerGroupTarget, partitions: Vec<P>) -> Self {
        Self {
            consumer: target.consumer.clone(),
            topic: target.topic.clone(),
            cluster: target.cluster.to_string(),
            group: target.group.clone(),
            partitions,
        }
    }
}

/// A partition as `show` prints it.
#[derive(Serialize)]
struct Shown {
    #[serde(flatten)]
    offsets: PartitionOffsets,
    lag: i64,
}

fn targets(runtime: &Bound<'_, PyRuntime>) -> PyResult<Vec<ConsumerGroupTarget>> {
    runtime
        .borrow()
        .runtime()
        .consumer_groups()
        .map_err(to_py_err)
}

/// Each consumer's group (or `consumer`'s alone) on its cluster: per partition the committed
/// offset, the watermarks and the lag, as a list of dicts.
#[pyfunction]
#[pyo3(signature = (runtime, consumer = None))]
pub(super) fn consumer_offsets<'py>(
    py: Python<'py>,
    runtime: &Bound<'py, PyRuntime>,
    consumer: Option<&str>,
) -> PyResult<Bound<'py, PyAny>> {
    let targets = targets(runtime)?;
    let chosen = select(&targets, consumer).map_err(to_py_err)?;
    let mut reports = Vec::new();
    for target in chosen {
        let partitions = block_on(py, offsets::read(target))?;
        let shown = partitions
            .into_iter()
            .map(|offsets| Shown {
                lag: offsets.lag(),
                offsets,
            })
            .collect();
        reports.push(GroupReport::of(target, shown));
    }
    to_python(py, &reports)
}

/// Moves each consumer's group (or `consumer`'s alone) to `to` — "earliest", "latest",
/// "time" (`value`: milliseconds since the epoch) or "shift" (`value`: records, + or -) — and
/// returns, per partition, the offsets before and `to`; `dry_run` commits nothing. Raises
/// `ConfigError` while a group has live members.
#[pyfunction]
#[pyo3(signature = (runtime, to, value = 0, *, consumer = None, dry_run = false))]
pub(super) fn reset_offsets<'py>(
    py: Python<'py>,
    runtime: &Bound<'py, PyRuntime>,
    to: &str,
    value: i64,
    consumer: Option<&str>,
    dry_run: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let to = match to {
        "earliest" => ResetTo::Earliest,
        "latest" => ResetTo::Latest,
        "time" => ResetTo::Time(value),
        "shift" => ResetTo::Shift(value),
        other => {
            return Err(to_py_err(Error::Config(format!(
                "a reset goes to 'earliest', 'latest', 'time' or 'shift', got '{other}'"
            ))))
        }
    };
    let targets = targets(runtime)?;
    let chosen = select(&targets, consumer).map_err(to_py_err)?;
    let mut reports = Vec::new();
    for target in chosen {
        let resets = block_on(py, offsets::reset(target, to, dry_run))?;
        reports.push(GroupReport::of(target, resets));
    }
    to_python(py, &reports)
}

fn to_python<'py, T: Serialize>(py: Python<'py>, value: &T) -> PyResult<Bound<'py, PyAny>> {
    pythonize::pythonize(py, value).map_err(|e| to_py_err(Error::Config(e.to_string())))
}
