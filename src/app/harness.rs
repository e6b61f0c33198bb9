//! [`TestHarness`]: the Rust counterpart of Python's `Tester`, on the same in-memory broker; its
//! watches are consumers on the app runtime, as the Tester's mirrors are.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::{App, Codec};
use crate::config::KafkaBrokers;
use crate::consumer_loop::failures::Handled;
use crate::consumer_loop::BatchHandler;
use crate::error::{Error, Result};
use crate::record::{OutgoingRecord, Record};
use crate::runtime::{
    ClusterChoice, ConsumerRegistration, ConsumerSettings, HandOver, RunningRuntime, Runtime,
};
use crate::transport::memory::MemoryBroker;
use crate::transport::{Cluster, Transport};

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

    /// Every record `topic` on the app's cluster (or `brokers`') holds now, partition by
    /// partition, with its headers: what a consumer dead-lettered, for instance (see
    /// [`crate::consumer_loop::failures::headers`]).
    pub fn records(&self, topic: &str, brokers: Option<&KafkaBrokers>) -> Result<Vec<Record>> {
        let id = brokers
            .unwrap_or(&self.brokers)
            .resolve(&self.environment)?;
        Ok(self.broker.memory_cluster(&id).records(topic))
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
    ///
    /// A watch is a consumer on the app runtime, like the Python Tester's mirrors: it runs
    /// until the watch is dropped.
    pub async fn watch<T, C: Codec<T>>(
        &self,
        topic: &str,
        brokers: Option<&KafkaBrokers>,
        codec: C,
    ) -> Result<Watch<T>> {
        let cluster = self.cluster(brokers)?.id().clone();
        let (sender, arrived) = mpsc::unbounded_channel();
        let mut runtime = Runtime::new(self.brokers.clone());
        runtime.add_consumer(ConsumerRegistration {
            name: format!("watch of '{topic}'"),
            topic: topic.to_owned(),
            cluster: ClusterChoice::Fixed(cluster),
            settings: ConsumerSettings::default(),
            handler: Arc::new(move || {
                Ok(Box::new(Forward(sender.clone())) as Box<dyn BatchHandler>)
            }),
            on_abandon: None,
            hand_over: HandOver::UpToMaxPollRecords,
        })?;
        let running = runtime.start(self.transport()).await?;
        Ok(Watch {
            topic: topic.to_owned(),
            arrived,
            codec: Box::new(codec),
            running: Some(running),
        })
    }
}

/// Hands a watch's records to it.
struct Forward(mpsc::UnboundedSender<Record>);

#[async_trait]
impl BatchHandler for Forward {
    async fn handle(&mut self, records: &[Record]) -> Result<Handled> {
        for record in records {
            // A dropped watch stops its consumer; until then nobody is left to read.
            let _ = self.0.send(record.clone());
        }
        Ok(Handled::all())
    }
}

/// What arrives on one (topic, cluster), decoded.
pub struct Watch<T> {
    topic: String,
    arrived: mpsc::UnboundedReceiver<Record>,
    codec: Box<dyn Codec<T>>,
    running: Option<RunningRuntime>,
}

impl<T> fmt::Debug for Watch<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watch").field("topic", &self.topic).finish()
    }
}

impl<T> Drop for Watch<T> {
    fn drop(&mut self) {
        if let (Some(running), Ok(tokio)) =
            (self.running.take(), tokio::runtime::Handle::try_current())
        {
            tokio.spawn(async move {
                if let Err(error) = running.stop().await {
                    tracing::warn!(%error, "a test watch ended with an error");
                }
            });
        }
    }
}

impl<T: 'static> Watch<T> {
    /// The next message, waiting up to 5 seconds.
    pub async fn next(&mut self) -> Result<T> {
        self.next_within(Duration::from_secs(5)).await
    }

    /// The next message, waiting up to `timeout`.
    pub async fn next_within(&mut self, timeout: Duration) -> Result<T> {
        let received = tokio::time::timeout(timeout, self.arrived.recv()).await;
        let record = received
            .map_err(|_| Error::Transport {
                cluster: String::new(),
                message: format!("nothing arrived on '{}' within {timeout:?}", self.topic),
            })?
            .ok_or(Error::Closed("the watch's consumer"))?;
        self.codec
            .decode_value(record.value.as_deref())
            .map_err(|e| Error::Handler(format!("cannot decode a record of '{}': {e}", self.topic)))
    }
}
