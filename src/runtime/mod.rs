//! The one app runtime under both APIs: what an app *is* once its functions are registered,
//! and how it starts, runs and stops.
//!
//! [`Runtime`] holds the registrations — consumers (topic, cluster, settings, a factory for
//! their [`BatchHandler`]) and producers (topic, cluster, client options) — and
//! [`Runtime::start`] brings them up on a [`Transport`]: one producer client per cluster
//! (producers to one cluster must agree on its options), every cluster checked within the
//! start timeout, consumers subscribed concurrently, a failed start rolled back.
//! [`RunningRuntime`] supervises the consumer loops ([`RunningRuntime::wait_for_failure`]) and
//! stops them in order: each finishes its batch in flight and commits (a batch stuck past the
//! stop timeout is abandoned), then producers flush and the undelivered are reported.
//!
//! The typed Rust [`App`](crate::app::App) and the Python package's `FastKafka` (through
//! `fastkafka._core.Runtime`) are facades over this: they turn typed functions or Python
//! coroutines into batch handlers and keep what is language-specific (codecs, mocks, background
//! tasks). A capability added here serves both (DESIGN.md §11). Client options cross into it
//! once, in FastKafka's names ([`options`]).

pub mod options;
mod producer;
mod running;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use options::{Client, ConsumerSettings, DeadLetterTopic, Options};
pub use producer::ProducerHandle;
use running::RunningConsumer;
pub use running::RunningRuntime;

use crate::config::{ClusterId, KafkaBrokers};
use crate::consumer_loop::failures::FailurePolicy;
use crate::consumer_loop::{slow_batch_warning, BatchHandler, ConsumerLoop, ConsumerLoopConfig};
use crate::error::{Error, Result};
use crate::transport::{ClientProperties, Cluster, Subscription, Transport};

/// Which cluster a consumer or producer uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterChoice {
    /// The app's `kafka_brokers`, in the app's environment.
    App,
    /// Other brokers with the same environments (FastKafka's `brokers=`), in the app's
    /// environment.
    Brokers(KafkaBrokers),
    /// One cluster whatever the environment: a test mirror follows the app it mirrors.
    Fixed(ClusterId),
}

/// Builds a consumer's batch handler at each start.
pub type HandlerFactory = Arc<dyn Fn() -> Result<Box<dyn BatchHandler>> + Send + Sync>;

/// Called when stopping has waited this long for a consumer's batch in flight: cancel it, so
/// that the loop ends without storing its offsets.
pub type AbandonHook = Arc<dyn Fn(Duration) + Send + Sync>;

/// A registered consumer.
pub struct ConsumerRegistration {
    /// Its name in logs and errors (its function's, in Python).
    pub name: String,
    /// The topic it reads.
    pub topic: String,
    /// Its cluster.
    pub cluster: ClusterChoice,
    /// Group, start position, batch size, commits and client properties.
    pub settings: ConsumerSettings,
    /// Makes its batch handler.
    pub handler: HandlerFactory,
    /// How to cancel a batch stuck at stop; without one, a stuck loop is left behind.
    pub on_abandon: Option<AbandonHook>,
    /// Hand the handler one partition's records per call (batch consumers).
    pub one_partition_per_call: bool,
}

impl fmt::Debug for ConsumerRegistration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsumerRegistration")
            .field("name", &self.name)
            .field("topic", &self.topic)
            .field("cluster", &self.cluster)
            .finish()
    }
}

#[derive(Debug)]
struct ProducerRegistration {
    handle: ProducerHandle,
    cluster: ClusterChoice,
    properties: ClientProperties,
}

/// An app's registrations and lifecycle settings; see the module docs.
#[derive(Debug)]
pub struct Runtime {
    brokers: KafkaBrokers,
    environment: String,
    consumers: Vec<ConsumerRegistration>,
    producers: Vec<ProducerRegistration>,
    client_options: Options,
    default_group_prefix: Option<String>,
    start_timeout: Duration,
    stop_timeout: Duration,
}

impl Runtime {
    /// A runtime whose registrations use `brokers` unless they name their own, in the
    /// `localhost` environment until [`Runtime::set_environment`] picks another.
    pub fn new(brokers: KafkaBrokers) -> Self {
        Self::in_environment(brokers, "localhost")
    }

    /// A runtime in `environment`, taken unchecked (FastKafka took `bootstrap_servers_id`
    /// so): an environment `brokers` lacks fails the start, naming the known ones.
    pub fn in_environment(brokers: KafkaBrokers, environment: impl Into<String>) -> Self {
        Self {
            brokers,
            environment: environment.into(),
            consumers: Vec::new(),
            producers: Vec::new(),
            client_options: Options::new(),
            default_group_prefix: None,
            start_timeout: Duration::from_secs(30),
            stop_timeout: Duration::from_secs(30),
        }
    }

    /// The app's default clusters, by environment.
    pub fn brokers(&self) -> &KafkaBrokers {
        &self.brokers
    }

    /// The environment whose clusters the app uses.
    pub fn environment(&self) -> &str {
        &self.environment
    }

    /// Picks the environment for every cluster of the app (FastKafka's
    /// `bootstrap_servers_id`); it must be one of `kafka_brokers`.
    pub fn set_environment(&mut self, environment: &str) -> Result<()> {
        if self.brokers.brokers(environment).is_err() {
            let known: Vec<String> = self
                .brokers
                .environments()
                .map(|name| format!("'{name}'"))
                .collect();
            return Err(Error::Config(format!(
                "Given kafka_broker_name '{environment}' is not found in kafka_brokers; known \
                 environments: [{}]",
                known.join(", ")
            )));
        }
        self.environment = environment.to_owned();
        Ok(())
    }

    /// How long starting waits for each cluster to answer (default 30 s).
    pub fn set_start_timeout(&mut self, timeout: Duration) {
        self.start_timeout = timeout;
    }

    /// How long stopping waits for a batch in flight before abandoning it (default 30 s).
    pub fn set_stop_timeout(&mut self, timeout: Duration) {
        self.stop_timeout = timeout;
    }

    /// See [`Runtime::set_start_timeout`].
    pub fn start_timeout(&self) -> Duration {
        self.start_timeout
    }

    /// See [`Runtime::set_stop_timeout`].
    pub fn stop_timeout(&self) -> Duration {
        self.stop_timeout
    }

    /// Gives every consumer without a `group_id` the group `<prefix>.<name>` (`None`:
    /// FastKafka's behaviour, no group). `fastkafka run` sets it so that its workers share
    /// each consumer's partitions instead of each processing every message.
    pub fn set_default_group_prefix(&mut self, prefix: Option<String>) {
        self.default_group_prefix = prefix;
    }

    /// The cluster `choice` names in the current environment.
    pub fn cluster_of(&self, choice: &ClusterChoice) -> Result<ClusterId> {
        match choice {
            ClusterChoice::App => self.brokers.resolve(&self.environment),
            ClusterChoice::Brokers(brokers) => brokers.resolve(&self.environment),
            ClusterChoice::Fixed(id) => Ok(id.clone()),
        }
    }

    fn check_choice(&self, choice: &ClusterChoice) -> Result<()> {
        match choice {
            ClusterChoice::Brokers(brokers) => brokers.check_override_of(&self.brokers),
            ClusterChoice::App | ClusterChoice::Fixed(_) => Ok(()),
        }
    }

    /// Registers a consumer (its cluster override must define the app's environments) and
    /// returns its settings, to adjust before the start.
    pub fn add_consumer(
        &mut self,
        consumer: ConsumerRegistration,
    ) -> Result<&mut ConsumerSettings> {
        self.check_choice(&consumer.cluster)?;
        self.consumers.push(consumer);
        Ok(&mut self.consumers.last_mut().expect("just pushed").settings)
    }

    /// Sets the app-level client options (`FastKafka(**options)`): each consumer and producer
    /// registered after this inherits those of its kind, under its own options.
    pub fn set_client_options(&mut self, options: Options) -> Result<()> {
        options::check(&options, Client::App, "FastKafka()")?;
        self.client_options = options;
        Ok(())
    }

    /// A consumer's `options` (given in `place`) over the app's, checked and mapped.
    pub fn consumer_settings(&self, options: &Options, place: &str) -> Result<ConsumerSettings> {
        options::check(options, Client::Consumer, place)?;
        let mut merged = Client::Consumer.inherit(&self.client_options);
        merged.extend(options.iter().map(|(k, v)| (k.clone(), v.clone())));
        ConsumerSettings::from_options(&merged, place)
    }

    /// A producer's `options` (given in `place`) over the app's, as client properties.
    pub fn producer_properties(&self, options: &Options, place: &str) -> Result<ClientProperties> {
        options::check(options, Client::Producer, place)?;
        let mut merged = Client::Producer.inherit(&self.client_options);
        merged.extend(options.iter().map(|(k, v)| (k.clone(), v.clone())));
        options::producer_properties(&merged, place)
    }

    /// Registers a producer to `topic` whose cluster's client gets `properties`; the handle
    /// sends while the runtime runs.
    pub fn add_producer(
        &mut self,
        name: impl Into<String>,
        topic: impl Into<String>,
        cluster: ClusterChoice,
        properties: ClientProperties,
    ) -> Result<ProducerHandle> {
        self.check_choice(&cluster)?;
        let handle = ProducerHandle::new(name.into(), topic.into());
        self.producers.push(ProducerRegistration {
            handle: handle.clone(),
            cluster,
            properties,
        });
        Ok(handle)
    }

    /// Every topic the app consumes from or produces to.
    pub fn topics(&self) -> Vec<&str> {
        let mut topics: Vec<&str> = self
            .consumers
            .iter()
            .flat_map(|c| {
                let dead_letter = c.settings.dead_letter.as_ref().map(|d| d.topic.as_str());
                std::iter::once(c.topic.as_str()).chain(dead_letter)
            })
            .chain(self.producers.iter().map(|p| p.handle.topic()))
            .collect();
        topics.sort_unstable();
        topics.dedup();
        topics
    }

    fn group_of(&self, consumer: &ConsumerRegistration) -> Option<String> {
        match (&consumer.settings.group_id, &self.default_group_prefix) {
            (Some(group), _) => Some(group.clone()),
            (None, Some(prefix)) => Some(format!("{prefix}.{}", consumer.name)),
            (None, None) => None,
        }
    }

    /// Producers to one cluster share its client, so they must agree on its properties.
    fn producer_properties_by_cluster(&self) -> Result<Vec<(ClusterId, ClientProperties)>> {
        let mut by_cluster: Vec<(ClusterId, &ProducerRegistration)> = Vec::new();
        for producer in &self.producers {
            let id = self.cluster_of(&producer.cluster)?;
            let Some((_, first)) = by_cluster.iter().find(|(known, _)| *known == id) else {
                by_cluster.push((id, producer));
                continue;
            };
            let differing: Vec<&str> = first
                .properties
                .keys()
                .chain(producer.properties.keys())
                .filter(|name| first.properties.get(*name) != producer.properties.get(*name))
                .map(String::as_str)
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            if !differing.is_empty() {
                // Names only: a value may be a password.
                return Err(Error::Config(format!(
                    "producers '{}' and '{}' send to cluster {id} with different values for \
                     {}; they share one producer client, so give them the same options",
                    first.handle.name(),
                    producer.handle.name(),
                    differing.join(", ")
                )));
            }
        }
        Ok(by_cluster
            .into_iter()
            .map(|(id, producer)| (id, producer.properties.clone()))
            .collect())
    }

    /// Brings the app up on `transport`; returns once every consumer is subscribed.
    ///
    /// Every cluster must answer within the start timeout first: an unreachable one fails the
    /// start with an error naming it, the environment and the functions that use it. Then the
    /// producers are bound and the consumers subscribe concurrently; if one fails, those that
    /// started are stopped again and the first error is returned.
    pub async fn start(&self, transport: Arc<dyn Transport>) -> Result<RunningRuntime> {
        let properties = self.producer_properties_by_cluster()?;
        let mut clusters: Vec<(Arc<dyn Cluster>, Vec<&str>)> = Vec::new();
        let users = self
            .producers
            .iter()
            .map(|p| (&p.cluster, p.handle.name()))
            .chain(self.consumers.iter().map(|c| (&c.cluster, c.name.as_str())))
            .chain(self.consumers.iter().filter_map(|c| {
                let dead_letter = c.settings.dead_letter.as_ref()?;
                Some((dead_letter.cluster.as_ref()?, c.name.as_str()))
            }));
        for (choice, name) in users {
            let id = self.cluster_of(choice)?;
            match clusters.iter_mut().find(|(cluster, _)| *cluster.id() == id) {
                Some((_, names)) => names.push(name),
                None => {
                    let producer = properties
                        .iter()
                        .find(|(known, _)| *known == id)
                        .map(|(_, properties)| properties.clone())
                        .unwrap_or_default();
                    clusters.push((transport.cluster_with(&id, &producer)?, vec![name]));
                }
            }
        }
        let checks = clusters.iter().map(|(cluster, names)| {
            let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
            async move {
                crate::transport::check_at_start(
                    &**cluster,
                    &self.environment,
                    &names,
                    self.start_timeout,
                )
                .await
            }
        });
        for checked in futures_util::future::join_all(checks).await {
            checked?;
        }
        let cluster_for = |choice: &ClusterChoice| -> Result<Arc<dyn Cluster>> {
            let id = self.cluster_of(choice)?;
            Ok(clusters
                .iter()
                .find(|(cluster, _)| *cluster.id() == id)
                .map(|(cluster, _)| cluster.clone())
                .expect("every registration's cluster was created above"))
        };
        let mut running = RunningRuntime::new(self.stop_timeout);
        for producer in &self.producers {
            producer.handle.bind(Some(cluster_for(&producer.cluster)?));
            running.producers.push(producer.handle.clone());
        }
        // A consumer's dead letters go through a producer of their own, bound like the others.
        let mut dead_letters = Vec::new();
        for consumer in &self.consumers {
            let handle = match &consumer.settings.dead_letter {
                Some(target) => {
                    let handle = ProducerHandle::new(
                        format!("dead letters of '{}'", consumer.name),
                        target.topic.clone(),
                    );
                    let choice = target.cluster.as_ref().unwrap_or(&consumer.cluster);
                    handle.bind(Some(cluster_for(choice)?));
                    running.producers.push(handle.clone());
                    Some(handle)
                }
                None => None,
            };
            dead_letters.push(handle);
        }
        let subscriptions =
            self.consumers
                .iter()
                .zip(dead_letters)
                .map(|(consumer, dead_letter)| {
                    let cluster = cluster_for(&consumer.cluster);
                    async move { self.subscribe(cluster?, consumer, dead_letter).await }
                });
        let subscribed = futures_util::future::join_all(subscriptions).await;
        let mut first_error = None;
        for result in subscribed {
            match result {
                Ok(consumer) => running.consumers.push(consumer),
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        if let Some(error) = first_error {
            running.stop().await.ok();
            return Err(error);
        }
        Ok(running)
    }

    async fn subscribe(
        &self,
        cluster: Arc<dyn Cluster>,
        consumer: &ConsumerRegistration,
        dead_letter: Option<ProducerHandle>,
    ) -> Result<RunningConsumer> {
        if let Some(retry) = &consumer.settings.retry {
            retry
                .check()
                .map_err(|error| Error::Config(format!("consumer '{}': {error}", consumer.name)))?;
        }
        let settings = &consumer.settings;
        let group_id = self.group_of(consumer);
        let handler = (consumer.handler)()?;
        let subscribed = cluster
            .subscribe(Subscription {
                topics: vec![consumer.topic.clone()],
                group_id: group_id.clone(),
                auto_offset_reset: settings.auto_offset_reset,
                properties: settings.properties.clone(),
            })
            .await?;
        tracing::info!(
            target: "fastkafka::consumer",
            "{}: consuming topic '{}' from {} (group_id={}, auto_offset_reset={}, \
             max_poll_records={})",
            consumer.name,
            consumer.topic,
            cluster.id(),
            group_id.as_deref().unwrap_or("None"),
            settings.auto_offset_reset,
            settings.max_poll_records,
        );
        let config = ConsumerLoopConfig {
            name: consumer.name.as_str().into(),
            max_poll_records: settings.max_poll_records,
            commit_interval: settings.commit_interval,
            slow_batch_warning: slow_batch_warning(&settings.properties),
            one_partition_per_call: consumer.one_partition_per_call,
            failures: FailurePolicy {
                retry: settings.retry,
                dead_letter,
            },
            ..ConsumerLoopConfig::default()
        };
        Ok(RunningConsumer {
            name: consumer.name.clone(),
            topic: consumer.topic.clone(),
            running: ConsumerLoop::spawn(subscribed, handler, config),
            on_abandon: consumer.on_abandon.clone(),
        })
    }
}
