//! [`ProducerHandle`]: where one registered producer sends, bound to its cluster's client
//! while the runtime runs. Handles exist before the app starts, so handlers can capture them
//! (the typed `app::Producer` wraps one; Python's `_core.Producer` is one). A module of its own
//! below the runtime: the runtime binds handles at start and unbinds them at stop, the consumer
//! loop sends dead letters through one, and neither reaches into the other for it.

use std::fmt;
use std::sync::{Arc, RwLock};

use tracing::Instrument;

use crate::delivery::DeliveryTracker;
use crate::error::{Error, Result};
use crate::record::OutgoingRecord;
use crate::transport::Cluster;

/// One producer's topic and, while its runtime runs, its cluster.
#[derive(Clone)]
pub struct ProducerHandle(Arc<Slot>);

struct Slot {
    name: String,
    topic: String,
    cluster: RwLock<Option<Arc<dyn Cluster>>>,
}

impl fmt::Debug for ProducerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProducerHandle")
            .field("name", &self.0.name)
            .field("topic", &self.0.topic)
            .finish()
    }
}

impl ProducerHandle {
    pub(crate) fn new(name: String, topic: String) -> Self {
        Self(Arc::new(Slot {
            name,
            topic,
            cluster: RwLock::new(None),
        }))
    }

    /// The producer's name (its function's, in Python).
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The topic it sends to.
    pub fn topic(&self) -> &str {
        &self.0.topic
    }

    /// The cluster it sends to while its runtime runs; `None` while stopped.
    pub fn cluster(&self) -> Option<Arc<dyn Cluster>> {
        self.0
            .cluster
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The bound cluster, or [`Error::Closed`] while the runtime is stopped.
    pub fn bound(&self) -> Result<Arc<dyn Cluster>> {
        self.cluster().ok_or(Error::Closed("the producer's app"))
    }

    /// [`ProducerHandle::bound`] for a send counted in `tracker`: a send while the app is
    /// stopped is refused, which fails the batch it was made for.
    pub fn bound_for(&self, tracker: Option<&Arc<DeliveryTracker>>) -> Result<Arc<dyn Cluster>> {
        crate::transport::refused_for(tracker, self.bound())
    }

    /// Hands `records` to the cluster's client in order, awaiting room while its queue is
    /// full (never blocking a thread); see [`crate::transport::produce_when_room`]. Called
    /// from a consumer's handler, the records count towards that batch's deliveries
    /// ([`crate::delivery::current`]): its offsets are stored only once they are delivered.
    pub async fn produce(&self, records: Vec<OutgoingRecord>) -> Result<()> {
        let send = self.sending(records.len())?;
        let unsent = send.span.in_scope(|| {
            crate::transport::try_produce_in_batch(
                &*send.cluster,
                &self.0.topic,
                records,
                send.tracker.as_ref(),
            )
        })?;
        self.when_room(send, unsent).await
    }

    /// [`ProducerHandle::produce`] for one record: the per-message path, without a `Vec`.
    pub async fn produce_one(&self, record: OutgoingRecord) -> Result<()> {
        let send = self.sending(1)?;
        let unsent = send.span.in_scope(|| {
            crate::transport::try_produce_one_in_batch(
                &*send.cluster,
                &self.0.topic,
                record,
                send.tracker.as_ref(),
            )
        })?;
        match unsent {
            None => Ok(()),
            Some(record) => self.when_room(send, vec![record]).await,
        }
    }

    /// One dead letter: [`ProducerHandle::produce`], except that a letter too large for the
    /// cluster is refused without failing the batch, so that it can go again without the
    /// record it carries (`consumer_loop/dead_letters.rs`).
    pub(crate) async fn produce_letter(&self, letter: OutgoingRecord) -> Result<()> {
        let send = self.sending(1)?;
        let taken = send.span.in_scope(|| {
            send.cluster
                .try_produce_tracked(&self.0.topic, vec![letter], send.tracker.as_ref())
        });
        let unsent = match taken {
            Err(too_large @ Error::RecordTooLarge { .. }) => return Err(too_large),
            taken => crate::transport::refused_for(send.tracker.as_ref(), taken)?,
        };
        self.when_room(send, unsent).await
    }

    /// A send of `count` records starting: its cluster, span and batch.
    fn sending(&self, count: usize) -> Result<Sending> {
        let tracker = crate::delivery::current();
        let cluster = self.bound_for(tracker.as_ref())?;
        let span = crate::spans::send(
            &self.0.name,
            &self.0.topic,
            cluster.id().bootstrap_servers(),
            count,
        );
        Ok(Sending {
            cluster,
            span,
            tracker,
        })
    }

    /// Sends what a full queue did not take. The client takes records at once unless its
    /// queue is full: that common case stays synchronous, and the waiting future (large) is
    /// only built when needed — moving it through every call's future cost a Rust handler a
    /// tenth of its time.
    async fn when_room(&self, send: Sending, unsent: Vec<OutgoingRecord>) -> Result<()> {
        if unsent.is_empty() {
            return Ok(());
        }
        let topic = self.0.topic.clone();
        let Sending {
            cluster,
            span,
            tracker,
        } = send;
        Box::pin(async move {
            crate::transport::produce_when_room(&*cluster, &topic, unsent, tracker.as_ref())
                .instrument(span)
                .await
        })
        .await
    }

    pub(crate) fn bind(&self, cluster: Option<Arc<dyn Cluster>>) -> Option<Arc<dyn Cluster>> {
        std::mem::replace(
            &mut *self
                .0
                .cluster
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
            cluster,
        )
    }
}

/// One send in progress: the cluster it goes to, its `send` span, and the tracker of the batch
/// whose handler sends it (if any).
struct Sending {
    cluster: Arc<dyn Cluster>,
    span: tracing::Span,
    tracker: Option<Arc<DeliveryTracker>>,
}
