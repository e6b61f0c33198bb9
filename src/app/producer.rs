//! Typed producers: a codec over the runtime's [`ProducerHandle`], which is created before the
//! app starts (so handlers can capture it) and bound to its cluster while the app runs.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use bytes::Bytes;

use super::Codec;
use crate::error::{Error, Result};
use crate::producer::ProducerHandle;
use crate::record::{Header, OutgoingRecord};

/// A typed producer bound to one (topic, cluster); clone it into handlers freely.
pub struct Producer<T> {
    pub(super) handle: ProducerHandle,
    pub(super) codec: Arc<dyn Codec<T>>,
    pub(super) _values: PhantomData<fn(&T)>,
}

impl<T> Clone for Producer<T> {
    fn clone(&self) -> Self {
        Self {
            handle: self.handle.clone(),
            codec: self.codec.clone(),
            _values: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("topic", &self.handle.topic())
            .finish()
    }
}

impl<T: 'static> Producer<T> {
    /// Sends one record; returns once the client has it (delivery happens in the background).
    /// While the client's queue is full it waits for room without blocking its thread
    /// (backpressure), and fails after [`QUEUE_FULL_TIMEOUT`](crate::transport::QUEUE_FULL_TIMEOUT).
    pub async fn send(&self, value: &T) -> Result<()> {
        let record = OutgoingRecord::new(self.encode(value)?);
        self.handle.produce_one(record).await
    }

    /// Sends one record with a key: records with one key land on one partition, in order.
    pub async fn send_keyed(&self, key: impl Into<Bytes>, value: &T) -> Result<()> {
        self.send_records(Some(key.into()), Vec::new(), std::slice::from_ref(value))
            .await
    }

    /// Sends `values` as one batch, each with `key` (if any) and `headers`.
    pub async fn send_records(
        &self,
        key: Option<Bytes>,
        headers: Vec<Header>,
        values: &[T],
    ) -> Result<()> {
        let records = values
            .iter()
            .map(|value| {
                Ok(OutgoingRecord {
                    key: key.clone(),
                    value: Some(self.encode(value)?),
                    headers: headers.clone(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        self.handle.produce(records).await
    }

    fn encode(&self, value: &T) -> Result<Bytes> {
        let payload = self.codec.encode(value).map_err(|message| Error::Encode {
            topic: self.handle.topic().to_owned(),
            message,
        })?;
        Ok(payload.into())
    }
}
