//! A multi-cluster Kafka app for Rust users: the same model as the Python decorators.
//!
//! # Layout
//! - this file: [`App`] (typed registrations), [`ConsumerOptions`], [`RunningApp`] — a typed
//!   facade over the one app runtime, [`crate::runtime`], which also runs the Python package's
//!   apps: start, supervision and stop are written there once;
//! - `codec.rs`: [`Codec`], [`Json`], [`DocumentedJson`]; `producer.rs`: [`Producer`];
//! - `options.rs`: [`ConsumerOptions`], a consumer's settings adjusted after registering it;
//! - `handlers.rs`: [`Metadata`] and the handlers that run a consumer's batches;
//! - `harness.rs`: [`TestHarness`] and [`Watch`], to test an app in memory.
//!
//! Register typed consumers and producers against topics, each on the app's cluster or on a
//! `brokers` override, then [`App::start`] them on a [`Transport`] (the in-memory broker in
//! tests, `transport::kafka::KafkaTransport` — feature `kafka` — in production). Consumers
//! run on the same runtime and consumer loop as the Python package — batches, offsets stored
//! after the handler, commits on rebalance and stop — so delivery is at-least-once here too; a
//! message
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
//!     async move { forward.send(&signal).await }
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
mod options;
mod producer;
mod running;

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

pub use codec::{Codec, DocumentedJson, Json};
pub use handlers::Metadata;
use handlers::{EachMessage, WholeBatch};
pub use harness::{TestHarness, Watch};
pub use options::ConsumerOptions;
pub use producer::Producer;
pub use running::RunningApp;

use crate::config::{ClusterId, KafkaBrokers};
use crate::consumer_loop::BatchHandler;
use crate::docs::{AppInfo, Docs, MessageDoc};
use crate::error::Result;
use crate::health::HealthLimits;
use crate::record::Record;
use crate::runtime::{
    ClusterChoice, ConsumerRegistration, ConsumerSettings, Described, HandOver, ProducerSettings,
    Runtime,
};
use crate::transport::failover::FailoverPolicy;
use crate::transport::{ClientProperties, Transport};

type BackgroundTask = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// A Kafka app: typed consumers and producers, each bound to a topic on a cluster.
pub struct App {
    runtime: Runtime,
    background: Vec<BackgroundTask>,
    /// The failover policy of consumers and producers registered from now on.
    failover: FailoverPolicy,
}

impl fmt::Debug for App {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("App")
            .field("runtime", &self.runtime)
            .finish()
    }
}

impl App {
    /// An app whose handlers use `brokers` unless they name their own; the environment is
    /// `localhost` until [`App::environment`] picks another.
    pub fn new(brokers: KafkaBrokers) -> Self {
        Self {
            runtime: Runtime::new(brokers),
            background: Vec::new(),
            failover: FailoverPolicy::default(),
        }
    }

    /// When consumers and producers registered after this move to their cluster's standby
    /// (where `kafka_brokers` names one) and back, and how far consumers rewind there; see
    /// [`crate::transport::failover`]. [`ConsumerOptions::failover`] sets one consumer's.
    pub fn failover(mut self, policy: FailoverPolicy) -> Self {
        self.failover = policy;
        self
    }

    /// How long [`App::start`] may take in all: clusters checked, consumers subscribed (default
    /// 30 s).
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.runtime.set_start_timeout(timeout);
        self
    }

    /// How long stopping may take in all (default 30 s); see
    /// [`RunningRuntime::stop`](crate::runtime::RunningRuntime::stop).
    pub fn stop_timeout(mut self, timeout: Duration) -> Self {
        self.runtime.set_stop_timeout(timeout);
        self
    }

    /// When its consumers stop being live: `polling_ttl` without a poll, one batch in a
    /// handler for longer than `consuming_ttl` (default: each consumer's
    /// `max.poll.interval.ms`); see [`crate::health`] and [`RunningApp::health`].
    pub fn health_limits(mut self, limits: HealthLimits) -> Self {
        self.runtime.set_health_limits(limits);
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
        self.runtime.set_environment(&environment.into())?;
        Ok(self)
    }

    /// The cluster a handler with `brokers` uses.
    pub fn cluster_id(&self, brokers: Option<&KafkaBrokers>) -> Result<ClusterId> {
        self.runtime.cluster_id(&choice(brokers))
    }

    /// The runtime under this app.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The app's AsyncAPI documentation: one server per cluster and environment, one channel
    /// per (topic, cluster), one operation per consumer and producer; message schemas come
    /// from the codecs ([`DocumentedJson`] gives JSON Schemas). Write it with
    /// [`Docs::asyncapi`] and [`crate::docs::to_yaml`], or [`Docs::html`].
    pub fn docs(&self, info: AppInfo) -> Result<Docs> {
        Docs::of(info, &self.runtime)
    }

    /// What the docs say of a function of `T`: the codec's message, else an empty schema
    /// named after the type.
    fn described<T>(message: Option<MessageDoc>, batch: bool) -> Described {
        let type_name = std::any::type_name::<T>();
        let mut message = message.unwrap_or_else(|| MessageDoc {
            name: type_name
                .rsplit("::")
                .next()
                .unwrap_or(type_name)
                .to_owned(),
            payload: serde_json::json!({}),
            content_type: "application/json".to_owned(),
            schema_format: None,
            batch: false,
            keyed: false,
        });
        message.batch = batch;
        Described::of(None, message)
    }

    /// A producer of `T` to `topic` on the app's cluster, or on `brokers`.
    pub fn producer<T: 'static>(
        &mut self,
        topic: impl Into<String>,
        brokers: Option<&KafkaBrokers>,
        codec: impl Codec<T>,
    ) -> Result<Producer<T>> {
        let topic = topic.into();
        let name = format!("producer to '{topic}'");
        let handle = self.runtime.add_producer(
            name.clone(),
            topic.clone(),
            choice(brokers),
            ProducerSettings {
                properties: ClientProperties::new(),
                failover: self.failover,
            },
            Self::described::<T>(codec.message_doc(), false),
        )?;
        Ok(Producer {
            handle,
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
    ) -> Result<ConsumerOptions<'_>>
    where
        T: Send + 'static,
        C: Codec<T>,
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        // No `Metadata` is built for a handler that does not take it (~1% of a Rust app's CPU
        // per message in `make bench`).
        self.each_message(topic, brokers, codec, move |value, _: &Record| {
            handler(value)
        })
    }

    /// A consumer whose `handler` also gets each message's [`Metadata`].
    pub fn consumer_with_metadata<T, C, F, Fut, E>(
        &mut self,
        topic: impl Into<String>,
        brokers: Option<&KafkaBrokers>,
        codec: C,
        handler: F,
    ) -> Result<ConsumerOptions<'_>>
    where
        T: Send + 'static,
        C: Codec<T>,
        F: Fn(T, Metadata) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        self.each_message(topic, brokers, codec, move |value, record: &Record| {
            handler(value, Metadata::of(record))
        })
    }

    /// Registers a one-message-at-a-time consumer whose `call` gets each decoded message and
    /// the record it came from.
    fn each_message<T, C, F, Fut, E>(
        &mut self,
        topic: impl Into<String>,
        brokers: Option<&KafkaBrokers>,
        codec: C,
        call: F,
    ) -> Result<ConsumerOptions<'_>>
    where
        T: Send + 'static,
        C: Codec<T>,
        F: Fn(T, &Record) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        let message = codec.message_doc();
        let (codec, call) = (Arc::new(codec), Arc::new(call));
        self.register::<T, _>(
            "consumer",
            topic.into(),
            brokers,
            message,
            false,
            move |concurrency| EachMessage {
                codec: codec.clone(),
                handler: call.clone(),
                concurrency,
                _values: PhantomData,
            },
        )
    }

    /// A consumer whose `handler` gets the decodable messages of each polled batch at once
    /// (at most `max_poll_records`), with their metadata aligned.
    pub fn batch_consumer<T, C, F, Fut, E>(
        &mut self,
        topic: impl Into<String>,
        brokers: Option<&KafkaBrokers>,
        codec: C,
        handler: F,
    ) -> Result<ConsumerOptions<'_>>
    where
        T: Send + 'static,
        C: Codec<T>,
        F: Fn(Vec<T>, Vec<Metadata>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        let message = codec.message_doc();
        let (codec, handler) = (Arc::new(codec), Arc::new(handler));
        // One partition per call, as in Python: a batch handler never sees two partitions'
        // records interleaved.
        self.register::<T, _>(
            "batch consumer",
            topic.into(),
            brokers,
            message,
            true,
            move |_| WholeBatch {
                codec: codec.clone(),
                handler: handler.clone(),
                _values: PhantomData,
            },
        )
    }

    /// Registers (and documents) a consumer of `T` whose handler `make` builds, per start,
    /// from its concurrency; a batch consumer gets one partition per call.
    fn register<T: 'static, H: BatchHandler>(
        &mut self,
        kind: &str,
        topic: String,
        brokers: Option<&KafkaBrokers>,
        message: Option<MessageDoc>,
        batch: bool,
        make: impl Fn(Arc<AtomicUsize>) -> H + Send + Sync + 'static,
    ) -> Result<ConsumerOptions<'_>> {
        let name = format!("{kind} of '{topic}'");
        let concurrency = Arc::new(AtomicUsize::new(1));
        let handler_concurrency = concurrency.clone();
        let added = self.runtime.add_consumer(ConsumerRegistration {
            name,
            topic,
            cluster: choice(brokers),
            settings: ConsumerSettings {
                failover: self.failover,
                ..ConsumerSettings::default()
            },
            handler: Arc::new(move || {
                let handler = make(handler_concurrency.clone());
                Ok(Box::new(handler) as Box<dyn BatchHandler>)
            }),
            on_abandon: None,
            hand_over: if batch {
                HandOver::OnePartition
            } else {
                HandOver::SizedToHandler
            },
            described: Self::described::<T>(message, batch),
        });
        let settings = added?;
        Ok(ConsumerOptions {
            settings,
            concurrency,
        })
    }

    /// Binds the producers and subscribes every consumer on `transport`, then starts the
    /// background tasks; returns once all consumers are ready. See [`Runtime::start`]: every
    /// cluster must answer within the start timeout, and a failed start is rolled back.
    pub async fn start(&self, transport: Arc<dyn Transport>) -> Result<RunningApp> {
        let runtime = self.runtime.start(transport).await?;
        let background = running::BackgroundTasks(
            self.background
                .iter()
                .map(|task| tokio::spawn(task()))
                .collect(),
        );
        Ok(RunningApp {
            runtime,
            background,
        })
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

fn choice(brokers: Option<&KafkaBrokers>) -> ClusterChoice {
    brokers.map_or(ClusterChoice::App, |brokers| {
        ClusterChoice::Brokers(brokers.clone())
    })
}
