//! What runs a consumer's batches: the typed handlers behind one object-safe trait, one
//! message at a time (with bounded concurrency) or a partition's batch at once, logging and
//! skipping what cannot be decoded or fails.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;

use super::Codec;
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

pub(super) struct EachMessage<T, C, F> {
    pub(super) name: String,
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
    F: Fn(T, Metadata) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
    E: fmt::Display + Send + 'static,
{
    async fn handle(&mut self, records: &[Record]) -> Result<()> {
        let concurrency = self.concurrency.load(Ordering::Relaxed);
        if concurrency <= 1 {
            for record in records {
                self.handle_one(record).await;
            }
        } else {
            let this = &*self;
            futures_util::stream::iter(records)
                .for_each_concurrent(concurrency, |record| this.handle_one(record))
                .await;
        }
        Ok(())
    }
}

impl<T, C, F, Fut, E> EachMessage<T, C, F>
where
    T: Send + 'static,
    C: Codec<T>,
    F: Fn(T, Metadata) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
    E: fmt::Display + Send + 'static,
{
    /// Decodes and handles one record; what fails is logged and skipped.
    async fn handle_one(&self, record: &Record) {
        match self.codec.decode(&record.value) {
            Ok(value) => {
                if let Err(error) = (self.handler)(value, Metadata::of(record)).await {
                    log_failure(&self.name, record, "handler failed", &error);
                }
            }
            Err(error) => log_failure(&self.name, record, "cannot decode", &error),
        }
    }
}

pub(super) struct WholeBatch<T, C, F> {
    pub(super) name: String,
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
    async fn handle(&mut self, records: &[Record]) -> Result<()> {
        let mut values = Vec::with_capacity(records.len());
        let mut metadata = Vec::with_capacity(records.len());
        for record in records {
            match self.codec.decode(&record.value) {
                Ok(value) => {
                    values.push(value);
                    metadata.push(Metadata::of(record));
                }
                Err(error) => log_failure(&self.name, record, "cannot decode", &error),
            }
        }
        if !values.is_empty() {
            if let Err(error) = (self.handler)(values, metadata).await {
                log_failure(&self.name, &records[0], "batch handler failed", &error);
            }
        }
        Ok(())
    }
}

fn log_failure(name: &str, record: &Record, what: &str, error: &dyn fmt::Display) {
    tracing::error!(
        consumer = %name,
        topic = %record.topic,
        partition = record.partition,
        offset = record.offset,
        %error,
        "{what}; skipping the record"
    );
}
