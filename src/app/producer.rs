//! Typed producers: handles created before the app starts, so handlers can capture them, and
//! bound to their (topic, cluster) while the app runs.

use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, RwLock};

use bytes::Bytes;

use super::Codec;
use crate::config::KafkaBrokers;
use crate::error::{Error, Result};
use crate::record::{Header, OutgoingRecord};
use crate::transport::Cluster;

/// Where one producer sends: its topic, its cluster override, and the cluster it is bound to
/// while the app runs.
pub(super) struct ProducerSlot {
    pub(super) topic: String,
    pub(super) brokers: Option<KafkaBrokers>,
    pub(super) cluster: RwLock<Option<Arc<dyn Cluster>>>,
}

impl fmt::Debug for ProducerSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProducerSlot")
            .field("topic", &self.topic)
            .finish()
    }
}

/// A typed producer bound to one (topic, cluster); clone it into handlers freely.
pub struct Producer<T> {
    pub(super) slot: Arc<ProducerSlot>,
    pub(super) codec: Arc<dyn Codec<T>>,
    pub(super) _values: PhantomData<fn(&T)>,
}

impl<T> Clone for Producer<T> {
    fn clone(&self) -> Self {
        Self {
            slot: self.slot.clone(),
            codec: self.codec.clone(),
            _values: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("topic", &self.slot.topic)
            .finish()
    }
}

impl<T: 'static> Producer<T> {
    /// Sends one record; returns once the client has it (delivery happens in the background).
    pub fn send(&self, value: &T) -> Result<()> {
        self.send_records(None, Vec::new(), std::slice::from_ref(value))
    }

    /// Sends one record with a key: records with one key land on one partition, in order.
    pub fn send_keyed(&self, key: impl Into<Bytes>, value: &T) -> Result<()> {
        self.send_records(Some(key.into()), Vec::new(), std::slice::from_ref(value))
    }

    /// Sends `values` as one batch, each with `key` (if any) and `headers`.
    pub fn send_records(
        &self,
        key: Option<Bytes>,
        headers: Vec<Header>,
        values: &[T],
    ) -> Result<()> {
        let cluster = self
            .slot
            .cluster
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(Error::Closed("the producer's app"))?;
        let records = values
            .iter()
            .map(|value| {
                let payload = self.codec.encode(value).map_err(|e| {
                    Error::Handler(format!("cannot encode for '{}': {e}", self.slot.topic))
                })?;
                Ok(OutgoingRecord {
                    key: key.clone(),
                    value: payload.into(),
                    headers: headers.clone(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        cluster.produce(&self.slot.topic, records)
    }
}
