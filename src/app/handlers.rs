//! What runs a consumer's batches: the typed handlers behind one object-safe trait, one
//! message at a time (with bounded concurrency) or a partition's batch at once, logging and
//! skipping what cannot be decoded or fails.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
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

/// Object-safe face of a typed handler, so registrations of different types share a list.
pub(super) trait BatchHandlerObject: Send {
    fn handle<'a>(
        &'a mut self,
        records: &'a [Record],
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>>;
}

pub(super) struct HandlerBox(pub(super) Box<dyn BatchHandlerObject>);

#[async_trait]
impl BatchHandler for HandlerBox {
    async fn handle(&mut self, records: &[Record]) -> Result<()> {
        self.0.handle(records).await
    }
}

pub(super) struct EachMessage<T, C, F> {
    pub(super) name: String,
    pub(super) codec: Arc<C>,
    pub(super) handler: Arc<F>,
    pub(super) concurrency: usize,
    pub(super) _values: PhantomData<fn() -> T>,
}

impl<T, C, F, Fut, E> BatchHandlerObject for EachMessage<T, C, F>
where
    T: Send + 'static,
    C: Codec<T>,
    F: Fn(T, Metadata) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
    E: fmt::Display + Send + 'static,
{
    fn handle<'a>(
        &'a mut self,
        records: &'a [Record],
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>> {
        let (name, codec, handler) = (&self.name, &self.codec, &self.handler);
        let handle_one = move |record: &'a Record| async move {
            match codec.decode(&record.value) {
                Ok(value) => {
                    if let Err(error) = handler(value, Metadata::of(record)).await {
                        log_failure(name, record, "handler failed", &error);
                    }
                }
                Err(error) => log_failure(name, record, "cannot decode", &error),
            }
        };
        let concurrency = self.concurrency;
        Box::pin(async move {
            if concurrency == 1 {
                for record in records {
                    handle_one(record).await;
                }
            } else {
                futures_util::stream::iter(records)
                    .for_each_concurrent(concurrency, handle_one)
                    .await;
            }
            Ok(())
        })
    }
}

pub(super) struct WholeBatch<T, C, F> {
    pub(super) name: String,
    pub(super) codec: Arc<C>,
    pub(super) handler: Arc<F>,
    pub(super) _values: PhantomData<fn() -> T>,
}

impl<T, C, F, Fut, E> BatchHandlerObject for WholeBatch<T, C, F>
where
    T: Send + 'static,
    C: Codec<T>,
    F: Fn(Vec<T>, Vec<Metadata>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
    E: fmt::Display + Send + 'static,
{
    /// One handler call per partition of the polled batch (as in Python): a batch handler
    /// sees one partition's records in order, never two partitions interleaved.
    fn handle<'a>(
        &'a mut self,
        records: &'a [Record],
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>> {
        Box::pin(async move {
            for partition in by_partition(records) {
                let mut values = Vec::with_capacity(partition.len());
                let mut metadata = Vec::with_capacity(partition.len());
                for record in &partition {
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
                        log_failure(&self.name, partition[0], "batch handler failed", &error);
                    }
                }
            }
            Ok(())
        })
    }
}

/// The records of each partition, in order; partitions in the order they first appear.
fn by_partition(records: &[Record]) -> Vec<Vec<&Record>> {
    let mut partitions: Vec<Vec<&Record>> = Vec::new();
    for record in records {
        let same = partitions
            .iter_mut()
            .find(|group| group[0].topic == record.topic && group[0].partition == record.partition);
        match same {
            Some(group) => group.push(record),
            None => partitions.push(vec![record]),
        }
    }
    partitions
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
