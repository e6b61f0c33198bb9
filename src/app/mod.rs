//! A multi-cluster Kafka app for Rust users: the same model as the Python decorators.
//!
//! # Layout
//! - this file: [`App`] (registrations, start, stop), [`ConsumerOptions`], [`RunningApp`];
//! - `codec.rs`: [`Codec`], [`Json`]; `producer.rs`: [`Producer`];
//! - `handlers.rs`: [`Metadata`] and the handlers that run a consumer's batches;
//! - `harness.rs`: [`TestHarness`] and [`Watch`], to test an app in memory.
//!
//! Register typed consumers and producers against topics, each on the app's cluster or on a
//! `brokers` override, then [`App::start`] them on a [`Transport`] (the in-memory broker in
//! tests, `transport::kafka::KafkaTransport` — feature `kafka` — in production). Consumers
//! run on the same [`ConsumerLoop`] as the Python package — batches, offsets stored after the
//! handler, commits on rebalance and stop — so delivery is at-least-once here too; a message
//! that cannot be decoded, or whose handler returns an error, is logged with its topic,
//! partition and offset and skipped.
//!
//! Producers are handles created before the app starts ([`App::producer`]) so handlers can
//! capture them; they are bound to their cluster when the app starts and refuse to send while
//! it is stopped.
//!
//! ```
//! use fastkafka::app::{App, Json};
//! use fastkafka::{KafkaBrokers, MemoryBroker};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
//! struct Signal { msg: String }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> fastkafka::Result<()> {
//! let brokers: KafkaBrokers =
//!     serde_json::from_str(r#"{"localhost": {"url": "server_1", "port": 9092}}"#).unwrap();
//! let mut app = App::new(brokers);
//! let predictions = app.producer::<Signal>("predictions", None, Json)?;
//! let forward = predictions.clone();
//! app.consumer("signals", None, Json, move |signal: Signal| {
//!     let forward = forward.clone();
//!     async move { forward.send(&signal) }
//! })?;
//!
//! let broker = MemoryBroker::new();
//! let mut harness = fastkafka::app::TestHarness::new(&app, broker);
//! let mut seen = harness.watch::<Signal, _>("predictions", None, Json).await?;
//! let running = app.start(harness.transport()).await?;
//! harness.send("signals", None, &Json, &Signal { msg: "hi".into() })?;
//! assert_eq!(seen.next().await?, Signal { msg: "hi".into() });
//! running.stop().await?;
//! # Ok(())
//! # }
//! ```

mod codec;
mod handlers;
mod harness;
mod producer;

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::StreamExt;

pub use codec::{Codec, Json};
pub use handlers::Metadata;
use handlers::{BatchHandlerObject, EachMessage, HandlerBox, WholeBatch};
pub use harness::{TestHarness, Watch};
pub use producer::Producer;
use producer::ProducerSlot;

use crate::config::{ClusterId, KafkaBrokers};
use crate::consumer_loop::{slow_batch_warning, ConsumerLoop, ConsumerLoopConfig};
use crate::error::{Error, Result};
use crate::transport::{ClientProperties, OffsetReset, Subscription, Transport};

/// How a consumer reads: its group, start position, batch size, commit interval and client
/// properties. The defaults are FastKafka's: no group, earliest, 100 records.
#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    concurrency: usize,
    group_id: Option<String>,
    auto_offset_reset: OffsetReset,
    loop_config: ConsumerLoopConfig,
    properties: ClientProperties,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        Self {
            concurrency: 1,
            group_id: None,
            auto_offset_reset: OffsetReset::Earliest,
            loop_config: ConsumerLoopConfig::default(),
            properties: ClientProperties::new(),
        }
    }
}

impl ConsumerOptions {
    /// Handle up to `limit` messages of a batch at once (default 1: one after another, in
    /// order). The next batch starts when the whole batch is done, so offsets never pass an
    /// unfinished message — Python's `DynamicTaskExecutor`.
    pub fn concurrency(&mut self, limit: usize) -> &mut Self {
        self.concurrency = limit.max(1);
        self
    }

    /// Join `group_id`: its members share the partitions and the committed offsets.
    pub fn group_id(&mut self, group_id: impl Into<String>) -> &mut Self {
        self.group_id = Some(group_id.into());
        self
    }

    /// Where to start without a committed offset.
    pub fn auto_offset_reset(&mut self, reset: OffsetReset) -> &mut Self {
        self.auto_offset_reset = reset;
        self
    }

    /// The largest batch handed to the handler at once.
    pub fn max_poll_records(&mut self, max: usize) -> &mut Self {
        self.loop_config.max_poll_records = max.max(1);
        self
    }

    /// How often processed offsets are committed (`None`: only on rebalance and stop).
    pub fn commit_interval(&mut self, interval: Option<Duration>) -> &mut Self {
        self.loop_config.commit_interval = interval;
        self
    }

    /// A librdkafka client property for this consumer.
    pub fn property(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.properties.insert(name.into(), value.into());
        self
    }
}

type HandlerFactory = Arc<dyn Fn(&ConsumerOptions) -> Box<dyn BatchHandlerObject> + Send + Sync>;
type BackgroundTask = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

struct ConsumerRegistration {
    name: String,
    topic: String,
    brokers: Option<KafkaBrokers>,
    options: ConsumerOptions,
    handler: HandlerFactory,
}

/// A Kafka app: typed consumers and producers, each bound to a topic on a cluster.
pub struct App {
    brokers: KafkaBrokers,
    environment: String,
    consumers: Vec<ConsumerRegistration>,
    producers: Vec<Arc<ProducerSlot>>,
    background: Vec<BackgroundTask>,
    start_timeout: Duration,
}

impl fmt::Debug for App {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("App")
            .field("environment", &self.environment)
            .field(
                "consumers",
                &self.consumers.iter().map(|c| &c.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl App {
    /// An app whose handlers use `brokers` unless they name their own; the environment is
    /// `localhost` until [`App::environment`] picks another.
    pub fn new(brokers: KafkaBrokers) -> Self {
        Self {
            brokers,
            environment: "localhost".to_owned(),
            consumers: Vec::new(),
            producers: Vec::new(),
            background: Vec::new(),
            start_timeout: Duration::from_secs(30),
        }
    }

    /// How long [`App::start`] waits for each cluster to answer (default 30 s).
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// A task started with the app, once its consumers are ready (so it may use producers),
    /// and cancelled when the app stops — Python's `@app.run_in_background()`.
    pub fn background<F, Fut>(&mut self, task: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.background.push(Arc::new(move || Box::pin(task())));
    }

    /// Picks the environment for every cluster of the app (FastKafka's
    /// `bootstrap_servers_id`).
    pub fn environment(mut self, environment: impl Into<String>) -> Result<Self> {
        let environment = environment.into();
        self.brokers.brokers(&environment)?;
        self.environment = environment;
        Ok(self)
    }

    /// The cluster a handler with `brokers` uses.
    pub fn cluster_of(&self, brokers: Option<&KafkaBrokers>) -> Result<ClusterId> {
        brokers.unwrap_or(&self.brokers).resolve(&self.environment)
    }

    fn check_override(&self, brokers: Option<&KafkaBrokers>) -> Result<Option<KafkaBrokers>> {
        match brokers {
            Some(brokers) => {
                brokers.check_override_of(&self.brokers)?;
                Ok(Some(brokers.clone()))
            }
            None => Ok(None),
        }
    }

    /// A producer of `T` to `topic` on the app's cluster, or on `brokers`.
    pub fn producer<T: 'static>(
        &mut self,
        topic: impl Into<String>,
        brokers: Option<&KafkaBrokers>,
        codec: impl Codec<T>,
    ) -> Result<Producer<T>> {
        let slot = Arc::new(ProducerSlot {
            topic: topic.into(),
            brokers: self.check_override(brokers)?,
            cluster: RwLock::new(None),
        });
        self.producers.push(slot.clone());
        Ok(Producer {
            slot,
            codec: Arc::new(codec),
            _values: PhantomData,
        })
    }

    /// A consumer of `topic` whose `handler` gets each message; returns its options to adjust.
    pub fn consumer<T, C, F, Fut, E>(
        &mut self,
        topic: impl Into<String>,
        brokers: Option<&KafkaBrokers>,
        codec: C,
        handler: F,
    ) -> Result<&mut ConsumerOptions>
    where
        T: Send + 'static,
        C: Codec<T>,
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        self.consumer_with_metadata(topic, brokers, codec, move |value, _| handler(value))
    }

    /// A consumer whose `handler` also gets each message's [`Metadata`].
    pub fn consumer_with_metadata<T, C, F, Fut, E>(
        &mut self,
        topic: impl Into<String>,
        brokers: Option<&KafkaBrokers>,
        codec: C,
        handler: F,
    ) -> Result<&mut ConsumerOptions>
    where
        T: Send + 'static,
        C: Codec<T>,
        F: Fn(T, Metadata) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        let (codec, handler) = (Arc::new(codec), Arc::new(handler));
        self.register("consumer", topic.into(), brokers, move |name, options| {
            EachMessage {
                name,
                codec: codec.clone(),
                handler: handler.clone(),
                concurrency: options.concurrency,
                _values: PhantomData,
            }
        })
    }

    /// A consumer whose `handler` gets the decodable messages of each polled batch at once
    /// (at most `max_poll_records`), with their metadata aligned.
    pub fn batch_consumer<T, C, F, Fut, E>(
        &mut self,
        topic: impl Into<String>,
        brokers: Option<&KafkaBrokers>,
        codec: C,
        handler: F,
    ) -> Result<&mut ConsumerOptions>
    where
        T: Send + 'static,
        C: Codec<T>,
        F: Fn(Vec<T>, Vec<Metadata>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        let (codec, handler) = (Arc::new(codec), Arc::new(handler));
        self.register("batch consumer", topic.into(), brokers, move |name, _| {
            WholeBatch {
                name,
                codec: codec.clone(),
                handler: handler.clone(),
                _values: PhantomData,
            }
        })
    }

    /// Registers a consumer whose handler `make` builds, per start, from its name and options.
    fn register<H: BatchHandlerObject + 'static>(
        &mut self,
        kind: &str,
        topic: String,
        brokers: Option<&KafkaBrokers>,
        make: impl Fn(String, &ConsumerOptions) -> H + Send + Sync + 'static,
    ) -> Result<&mut ConsumerOptions> {
        let brokers = self.check_override(brokers)?;
        let name = format!("{kind} of '{topic}'");
        let handler_name = name.clone();
        let handler: HandlerFactory = Arc::new(move |options: &ConsumerOptions| {
            Box::new(make(handler_name.clone(), options)) as Box<dyn BatchHandlerObject>
        });
        self.consumers.push(ConsumerRegistration {
            name,
            topic,
            brokers,
            options: ConsumerOptions::default(),
            handler,
        });
        Ok(&mut self.consumers.last_mut().expect("just pushed").options)
    }

    /// Binds the producers and subscribes every consumer on `transport`; returns once all
    /// consumers are ready.
    ///
    /// Every cluster must answer within the start timeout ([`App::start_timeout`]) first:
    /// an unreachable one fails the start with an error naming it, the environment and the
    /// consumers and producers that use it. Consumers subscribe concurrently; if one fails,
    /// those that started are stopped again.
    pub async fn start(&self, transport: Arc<dyn Transport>) -> Result<RunningApp> {
        let mut running = RunningApp {
            loops: Vec::new(),
            producers: self.producers.clone(),
            background: Vec::new(),
        };
        let mut clusters: Vec<(ClusterId, Vec<String>)> = Vec::new();
        let users = self
            .producers
            .iter()
            .map(|slot| (&slot.brokers, format!("producer to '{}'", slot.topic)))
            .chain(self.consumers.iter().map(|c| (&c.brokers, c.name.clone())));
        for (brokers, name) in users {
            let id = self.cluster_of(brokers.as_ref())?;
            match clusters.iter_mut().find(|(known, _)| *known == id) {
                Some((_, names)) => names.push(name),
                None => clusters.push((id, vec![name])),
            }
        }
        let checks = clusters.iter().map(|(id, names)| {
            let transport = transport.clone();
            async move {
                let cluster = transport.cluster(id)?;
                crate::transport::check_at_start(
                    &*cluster,
                    &self.environment,
                    names,
                    self.start_timeout,
                )
                .await
            }
        });
        for checked in futures_util::future::join_all(checks).await {
            checked?;
        }
        for slot in &self.producers {
            let cluster = transport.cluster(&self.cluster_of(slot.brokers.as_ref())?)?;
            *slot.cluster.write().unwrap_or_else(|p| p.into_inner()) = Some(cluster);
        }
        let subscriptions = self
            .consumers
            .iter()
            .map(|consumer| self.subscribe(&*transport, consumer));
        let subscribed = futures_util::future::join_all(subscriptions).await;
        let mut first_error = None;
        for (consumer, result) in self.consumers.iter().zip(subscribed) {
            match result {
                Ok(running_loop) => running.loops.push((consumer.name.clone(), running_loop)),
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        if let Some(error) = first_error {
            running.stop().await.ok();
            return Err(error);
        }
        running.background = self
            .background
            .iter()
            .map(|task| tokio::spawn(task()))
            .collect();
        Ok(running)
    }

    async fn subscribe(
        &self,
        transport: &dyn Transport,
        consumer: &ConsumerRegistration,
    ) -> Result<ConsumerLoop> {
        let id = self.cluster_of(consumer.brokers.as_ref())?;
        let cluster = transport.cluster(&id)?;
        let options = &consumer.options;
        let subscription = Subscription {
            topics: vec![consumer.topic.clone()],
            group_id: options.group_id.clone(),
            auto_offset_reset: options.auto_offset_reset,
            properties: options.properties.clone(),
        };
        let subscribed = cluster.subscribe(subscription).await?;
        tracing::info!(
            consumer = %consumer.name,
            cluster = %id,
            group_id = ?options.group_id,
            "consuming"
        );
        let config = ConsumerLoopConfig {
            name: consumer.name.as_str().into(),
            slow_batch_warning: slow_batch_warning(&options.properties),
            ..options.loop_config.clone()
        };
        Ok(ConsumerLoop::spawn(
            subscribed,
            HandlerBox((consumer.handler)(options)),
            config,
        ))
    }

    /// Runs the app on `transport` until `shutdown` completes (e.g. `tokio::signal::ctrl_c()`),
    /// then stops it cleanly: in-flight batches finish, offsets are committed, producers flush.
    pub async fn run_until<S: Future>(
        &self,
        transport: Arc<dyn Transport>,
        shutdown: S,
    ) -> Result<()> {
        let running = self.start(transport).await?;
        let failed = tokio::select! {
            _ = shutdown => None,
            failure = running.wait_for_failure() => Some(failure),
        };
        let stopped = running.stop().await;
        match failed {
            Some(failure) => Err(failure),
            None => stopped,
        }
    }
}

/// A started [`App`]; stop it to commit and flush.
#[derive(Debug)]
pub struct RunningApp {
    loops: Vec<(String, ConsumerLoop)>,
    producers: Vec<Arc<ProducerSlot>>,
    background: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningApp {
    /// Waits until a consumer ends other than by [`RunningApp::stop`] — a handler panicked,
    /// or its cluster closed it — and returns why, naming the consumer. Never resolves while
    /// every consumer runs.
    pub async fn wait_for_failure(&self) -> Error {
        let mut failures: futures_util::stream::FuturesUnordered<_> = self
            .loops
            .iter()
            .map(|(name, running)| {
                let (name, failure) = (name.clone(), running.failure());
                async move { failure.wait().await.map(|error| (name, error)) }
            })
            .collect();
        while let Some(ended) = failures.next().await {
            if let Some((name, error)) = ended {
                return Error::ConsumerEnded {
                    consumer: name,
                    source: Box::new(error),
                };
            }
        }
        std::future::pending().await
    }

    /// Stops every consumer (each finishes its batch in flight and commits), flushes and
    /// unbinds the producers. Returns the first consumer error, if a handler stopped one.
    pub async fn stop(self) -> Result<()> {
        for task in &self.background {
            task.abort();
        }
        for task in self.background {
            // A cancelled task's JoinError says only that it was cancelled.
            let _ = task.await;
        }
        let mut first_error = None;
        for (name, running) in self.loops {
            if let Err(error) = running.stop().await {
                tracing::error!(consumer = %name, %error, "consumer ended with an error");
                first_error.get_or_insert(error);
            }
        }
        for slot in &self.producers {
            let cluster = slot
                .cluster
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            if let Some(cluster) = cluster {
                crate::transport::flush_and_report(&*cluster).await?;
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}
