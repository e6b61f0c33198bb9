//! [`TestHarness`]: the Rust counterpart of Python's `Tester`, on the same in-memory broker and
//! the same mirrors ([`crate::runtime::mirrors`]): what a test may feed and watch follows from
//! the app's registrations, as the Tester's `to_<topic>` and `on_<topic>` do.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::{App, Codec};
use crate::config::KafkaBrokers;
use crate::consumer_loop::failures::{DeadLetter, Handled};
use crate::consumer_loop::BatchHandler;
use crate::error::{Error, Result};
use crate::record::{OutgoingRecord, Record};
use crate::runtime::mirrors::{self, DeadLetterTarget, Mirror, MirrorRole};
use crate::runtime::{HandlerFactory, RunningRuntime};
use crate::transport::memory::MemoryBroker;
use crate::transport::{OffsetReset, Transport};

/// The Rust counterpart of Python's `Tester`: runs an app on an in-memory broker, feeds the
/// (topic, cluster)s it consumes and watches those it produces to.
#[derive(Debug)]
pub struct TestHarness {
    broker: MemoryBroker,
    brokers: KafkaBrokers,
    environment: String,
    /// The app's mirrors, or why there are none (an environment its brokers lack).
    mirrors: Result<Vec<Mirror>>,
    dead_letters: Result<Vec<DeadLetterTarget>>,
}

impl TestHarness {
    /// A harness for `app` on `broker`; start the app with [`TestHarness::transport`]. The
    /// mirrors follow the app's registrations and environment as they are now.
    pub fn new(app: &App, broker: MemoryBroker) -> Self {
        let runtime = app.runtime();
        Self {
            broker,
            brokers: runtime.brokers().clone(),
            environment: runtime.environment().to_owned(),
            mirrors: mirrors::mirrors_of(&[runtime]),
            dead_letters: mirrors::dead_letter_targets(&[runtime]),
        }
    }

    /// The transport to start the app on.
    pub fn transport(&self) -> Arc<dyn Transport> {
        Arc::new(self.broker.clone())
    }

    /// Every record `topic` on the app's cluster (or `brokers`') holds now, partition by
    /// partition, with its headers.
    pub fn records(&self, topic: &str, brokers: Option<&KafkaBrokers>) -> Result<Vec<Record>> {
        let id = brokers
            .unwrap_or(&self.brokers)
            .resolve(&self.environment)?;
        Ok(self.broker.memory_cluster(&id).records(topic))
    }

    /// What consumer `consumer` (its name, e.g. `consumer of 'jobs'`) sent to its dead-letter
    /// topic so far, oldest first per partition: where each came from and why it failed.
    pub fn dead_letters(&self, consumer: &str) -> Result<Vec<DeadLetter>> {
        mirrors::dead_letters(
            self.dead_letters.as_ref().map_err(Clone::clone)?,
            &self.broker,
            consumer,
        )
    }

    /// The mirror of `role` for `topic` on the app's cluster (or `brokers`'). A test may
    /// watch any (topic, cluster) — that nothing arrives where nothing should is worth
    /// asserting — but feed only what the app consumes.
    fn mirror(
        &self,
        role: MirrorRole,
        topic: &str,
        brokers: Option<&KafkaBrokers>,
    ) -> Result<Mirror> {
        let cluster = brokers
            .unwrap_or(&self.brokers)
            .resolve(&self.environment)?;
        let mirrors = self.mirrors.as_ref().map_err(Clone::clone)?;
        let found = mirrors
            .iter()
            .find(|m| m.role == role && m.topic == topic && m.cluster == cluster);
        match (found, role) {
            (Some(mirror), _) => Ok(mirror.clone()),
            (None, MirrorRole::Reads) => Ok(Mirror::unserved(role, topic, cluster)),
            (None, MirrorRole::Feeds) => Err(Error::Config(format!(
                "no consumer of the app reads '{topic}' on cluster {cluster}, so the harness \
                 has nothing to feed there"
            ))),
        }
    }

    /// Sends `value` to `topic` on the app's cluster (or `brokers`), as a producer would; the
    /// app must consume it there.
    pub fn send<T, C: Codec<T>>(
        &self,
        topic: &str,
        brokers: Option<&KafkaBrokers>,
        codec: &C,
        value: &T,
    ) -> Result<()> {
        let mirror = self.mirror(MirrorRole::Feeds, topic, brokers)?;
        let payload = codec.encode(value).map_err(|message| Error::Encode {
            topic: topic.to_owned(),
            message,
        })?;
        self.broker
            .cluster(&mirror.cluster)?
            .produce(topic, vec![OutgoingRecord::new(payload)])
    }

    /// Starts reading `topic` on the app's cluster (or `brokers`) from its beginning; the app
    /// must produce to it there. Call it before starting the app so nothing the app produces
    /// is missed.
    ///
    /// A watch is the topic's read mirror on a runtime of its own, as the Python Tester's
    /// are: it runs until the watch is dropped.
    pub async fn watch<T, C: Codec<T>>(
        &self,
        topic: &str,
        brokers: Option<&KafkaBrokers>,
        codec: C,
    ) -> Result<Watch<T>> {
        let mirror = self.mirror(MirrorRole::Reads, topic, brokers)?;
        let (sender, arrived) = mpsc::unbounded_channel();
        let forward: HandlerFactory =
            Arc::new(move || Ok(Box::new(Forward(sender.clone())) as Box<dyn BatchHandler>));
        let (runtime, _) =
            mirrors::mirror_runtime(std::slice::from_ref(&mirror), OffsetReset::Earliest, |_| {
                Ok(forward.clone())
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
            .map_err(|_| Error::TimedOut {
                what: format!("nothing arrived on '{}'", self.topic),
                after: timeout,
            })?
            .ok_or(Error::Closed("the watch's consumer"))?;
        self.codec
            .decode_value(record.value.as_deref())
            .map_err(|message| Error::Decode {
                topic: self.topic.clone(),
                message,
            })
    }
}
