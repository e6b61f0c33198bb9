//! What runs a consumer's batches: the typed handlers behind one object-safe trait, one
//! message at a time (with bounded concurrency) or a partition's batch at once. What cannot be
//! decoded or fails is reported to the consumer loop, which retries, dead-letters or skips it
//! ([`crate::consumer_loop::failures`]); every handler error counts as retryable.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use tracing::Instrument;

use super::Codec;
use crate::consumer_loop::failures::{Failure, FailureKind, Handled};
use crate::consumer_loop::BatchHandler;
use crate::error::Result;
use crate::record::{Header, Record};

/// Where a consumed message came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// The topic.
    pub topic: Arc<str>,
    /// The partition.
    pub partition: i32,
    /// The offset in the partition.
    pub offset: i64,
    /// When it was produced, in milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// Its key.
    pub key: Option<Bytes>,
    /// Its headers.
    pub headers: Vec<Header>,
}

impl Metadata {
    pub(super) fn of(record: &Record) -> Self {
        Self {
            topic: record.topic.clone(),
            partition: record.partition,
            offset: record.offset,
            timestamp_ms: record.timestamp_ms,
            key: record.key.clone(),
            headers: record.headers.clone(),
        }
    }
}

/// A handler called once per message: `handler` gets the decoded message and its record (from
/// which a handler that wants its [`Metadata`] has it built).
pub(super) struct EachMessage<T, C, F> {
    pub(super) codec: Arc<C>,
    pub(super) handler: Arc<F>,
    /// Shared with the consumer's options, which may change it until the app starts.
    pub(super) concurrency: Arc<AtomicUsize>,
    pub(super) _values: PhantomData<fn() -> T>,
}

#[async_trait]
impl<T, C, F, Fut, E> BatchHandler for EachMessage<T, C, F>
where
    T: Send + 'static,
    C: Codec<T>,
    F: Fn(T, &Record) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
    E: fmt::Display + Send + 'static,
{
    async fn handle(&mut self, records: &[Record]) -> Result<Handled> {
        let concurrency = self.concurrency.load(Ordering::Relaxed);
        let mut handled = Handled::all();
        if concurrency <= 1 {
            for (index, record) in records.iter().enumerate() {
                if let Some(failure) = self.handle_one(index, record).await {
                    // Stop at a handler failure: the loop may retry it before the records
                    // after it in its partition.
                    let stop = failure.kind == FailureKind::Handler;
                    handled.failures.push(failure);
                    if stop {
                        handled.stopped_after = Some(index);
                        break;
                    }
                }
            }
        } else {
            let this = &*self;
            let calls: Vec<_> = records
                .iter()
                .enumerate()
                .map(|(index, record)| this.handle_one(index, record))
                .collect();
            let outcomes: Vec<Option<Failure>> = futures_util::stream::iter(calls)
                .buffer_unordered(concurrency)
                .collect()
                .await;
            handled.failures = outcomes.into_iter().flatten().collect();
            handled.failures.sort_by_key(|failure| failure.indices[0]);
        }
        Ok(handled)
    }
}

impl<T, C, F, Fut, E> EachMessage<T, C, F>
where
    T: Send + 'static,
    C: Codec<T>,
    F: Fn(T, &Record) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
    E: fmt::Display + Send + 'static,
{
    /// Decodes and handles the record at `index`; says why if that fails.
    async fn handle_one(&self, index: usize, record: &Record) -> Option<Failure> {
        match self.codec.decode_value(record.value.as_deref()) {
            Ok(value) => {
                let span = crate::spans::process(record);
                let call = (self.handler)(value, record);
                // Wrapping the call in a span moves its whole future once more per message
                // (~4% of a Rust app's CPU in `make bench`): only done when someone records it.
                let outcome = if span.is_disabled() {
                    call.await
                } else {
                    call.instrument(span).await
                };
                outcome
                    .err()
                    .map(|error| handler_failure(vec![index], &error))
            }
            Err(error) => Some(undecodable::<T>(index, &error)),
        }
    }
}

pub(super) struct WholeBatch<T, C, F> {
    pub(super) codec: Arc<C>,
    pub(super) handler: Arc<F>,
    pub(super) _values: PhantomData<fn() -> T>,
}

#[async_trait]
impl<T, C, F, Fut, E> BatchHandler for WholeBatch<T, C, F>
where
    T: Send + 'static,
    C: Codec<T>,
    F: Fn(Vec<T>, Vec<Metadata>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
    E: fmt::Display + Send + 'static,
{
    /// Gets one partition's records per call (the loop splits batches: its registration
    /// asks for one partition per call).
    async fn handle(&mut self, records: &[Record]) -> Result<Handled> {
        let mut values = Vec::with_capacity(records.len());
        let mut metadata = Vec::with_capacity(records.len());
        let mut decoded = Vec::with_capacity(records.len());
        let mut handled = Handled::all();
        for (index, record) in records.iter().enumerate() {
            match self.codec.decode_value(record.value.as_deref()) {
                Ok(value) => {
                    values.push(value);
                    metadata.push(Metadata::of(record));
                    decoded.push(index);
                }
                Err(error) => handled.failures.push(undecodable::<T>(index, &error)),
            }
        }
        if !values.is_empty() {
            if let Err(error) = (self.handler)(values, metadata).await {
                handled.failures.push(handler_failure(decoded, &error));
            }
        }
        Ok(handled)
    }
}

/// What a handler's error reports: an undelivered output when one of its sends was refused (the
/// refusal is blamed on these records, which are retried in place), else a handler error.
fn handler_failure(indices: Vec<usize>, error: &dyn fmt::Display) -> Failure {
    let refusal = crate::delivery::current().and_then(|tracker| tracker.take_refusal());
    match refusal {
        Some(refusal) => Failure {
            indices,
            kind: FailureKind::Undelivered,
            retryable: true,
            error_type: "DeliveryFailed".to_owned(),
            message: refusal.to_string(),
            details: None,
        },
        None => Failure {
            indices,
            kind: FailureKind::Handler,
            retryable: true,
            error_type: "HandlerError".to_owned(),
            message: error.to_string(),
            details: None,
        },
    }
}

fn undecodable<T>(index: usize, error: &dyn fmt::Display) -> Failure {
    let into = std::any::type_name::<T>();
    Failure {
        indices: vec![index],
        kind: FailureKind::Undecodable {
            into: into.rsplit("::").next().unwrap_or(into).to_owned(),
        },
        retryable: false,
        error_type: "Undecodable".to_owned(),
        message: error.to_string(),
        details: None,
    }
}
