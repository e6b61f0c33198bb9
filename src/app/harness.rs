//! [`TestHarness`]: the Rust counterpart of Python's `Tester`.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::{App, Codec};
use crate::config::KafkaBrokers;
use crate::error::{Error, Result};
use crate::record::OutgoingRecord;
use crate::transport::memory::MemoryBroker;
use crate::transport::{Cluster, ClusterConsumer, Subscription, Transport};

/// The Rust counterpart of Python's `Tester`: runs an app on an in-memory broker, sends to a
/// (topic, cluster) and watches what arrives on another.
#[derive(Debug)]
pub struct TestHarness {
    broker: MemoryBroker,
    brokers: KafkaBrokers,
    environment: String,
}

impl TestHarness {
    /// A harness for `app` on `broker`; start the app with [`TestHarness::transport`].
    pub fn new(app: &App, broker: MemoryBroker) -> Self {
        Self {
            broker,
            brokers: app.runtime().brokers().clone(),
            environment: app.runtime().environment().to_owned(),
        }
    }

    /// The transport to start the app on.
    pub fn transport(&self) -> Arc<dyn Transport> {
        Arc::new(self.broker.clone())
    }

    fn cluster(&self, brokers: Option<&KafkaBrokers>) -> Result<Arc<dyn Cluster>> {
        let id = brokers
            .unwrap_or(&self.brokers)
            .resolve(&self.environment)?;
        self.broker.cluster(&id)
    }

    /// Sends `value` to `topic` on the app's cluster (or `brokers`), as a producer would.
    pub fn send<T, C: Codec<T>>(
        &self,
        topic: &str,
        brokers: Option<&KafkaBrokers>,
        codec: &C,
        value: &T,
    ) -> Result<()> {
        let payload = codec
            .encode(value)
            .map_err(|e| Error::Handler(format!("cannot encode: {e}")))?;
        self.cluster(brokers)?
            .produce(topic, vec![OutgoingRecord::new(payload)])
    }

    /// Starts reading `topic` on the app's cluster (or `brokers`) from its beginning. Call it
    /// before starting the app so nothing the app produces is missed.
    pub async fn watch<T, C: Codec<T>>(
        &self,
        topic: &str,
        brokers: Option<&KafkaBrokers>,
        codec: C,
    ) -> Result<Watch<T>> {
        let consumer = self
            .cluster(brokers)?
            .subscribe(Subscription::new([topic]))
            .await?;
        Ok(Watch {
            topic: topic.to_owned(),
            consumer,
            codec: Box::new(codec),
            arrived: VecDeque::new(),
        })
    }
}

/// What arrives on one (topic, cluster), decoded.
pub struct Watch<T> {
    topic: String,
    consumer: Box<dyn ClusterConsumer>,
    codec: Box<dyn Codec<T>>,
    arrived: VecDeque<T>,
}

impl<T> fmt::Debug for Watch<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watch").field("topic", &self.topic).finish()
    }
}

impl<T: 'static> Watch<T> {
    /// The next message, waiting up to 5 seconds.
    pub async fn next(&mut self) -> Result<T> {
        self.next_within(Duration::from_secs(5)).await
    }

    /// The next message, waiting up to `timeout`.
    pub async fn next_within(&mut self, timeout: Duration) -> Result<T> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(value) = self.arrived.pop_front() {
                return Ok(value);
            }
            let polled = tokio::time::timeout_at(deadline, self.consumer.poll(100)).await;
            let records = polled.map_err(|_| Error::Transport {
                cluster: String::new(),
                message: format!("nothing arrived on '{}' within {timeout:?}", self.topic),
            })??;
            for record in records {
                let value = self.codec.decode(&record.value).map_err(|e| {
                    Error::Handler(format!("cannot decode a record of '{}': {e}", self.topic))
                })?;
                self.arrived.push_back(value);
            }
        }
    }
}
