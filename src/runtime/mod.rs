//! The one app runtime under both APIs: what an app *is* once its functions are registered,
//! and how it starts, runs and stops.
//!
//! [`Runtime`] holds the registrations — consumers (topic, cluster, settings, a factory for
//! their [`BatchHandler`]) and producers (topic, cluster, client options) — and
//! [`Runtime::start`] brings them up on a [`Transport`](crate::transport::Transport): one producer client per cluster
//! (producers to one cluster must agree on its options), every cluster checked within the
//! start timeout while the consumers subscribe, a failed start rolled back.
//! [`RunningRuntime`] supervises the consumer loops ([`RunningRuntime::wait_for_failure`]) and
//! stops them in order: each finishes its batch in flight and commits (a batch stuck past the
//! stop timeout is abandoned), then producers flush and the undelivered are reported.
//!
//! The typed Rust [`App`](crate::app::App) and the Python package's `FastKafka` (through
//! `fastkafka._core.Runtime`) are facades over this: they turn typed functions or Python
//! coroutines into batch handlers and keep what is language-specific (codecs, mocks, background
//! tasks). A capability added here serves both (DESIGN.md §11). Client options cross into it
//! once, in FastKafka's names ([`options`]).

mod clusters;
mod described;
pub mod mirrors;
pub mod options;
mod running;
mod settings;
mod start;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use crate::producer::ProducerHandle;
pub use described::{DescribeMessage, Described, Direction, MessageDoc};
pub use options::{Client, Options};
pub use running::RunningRuntime;
pub use settings::{ConsumerSettings, DeadLetterTopic, ProducerSettings};

use crate::config::{ClusterId, KafkaBrokers};
use crate::consumer_loop::BatchHandler;
use crate::error::{Error, Result};
use crate::health::HealthLimits;
use crate::offsets::ConsumerGroupTarget;
use crate::transport::failover::FailoverPolicy;
use crate::transport::ClientProperties;

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
    /// How many records each call of its handler gets.
    pub hand_over: HandOver,
    /// What the docs say of it.
    pub described: Described,
}

/// How many records each call of a consumer's handler gets, which follows from what the
/// handler does with them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HandOver {
    /// Up to `max_poll_records`: the default, and the only choice for a handler that sees
    /// the size (Python's concurrent executor, which has a call's records in flight at once;
    /// the test mirrors).
    #[default]
    UpToMaxPollRecords,
    /// One partition's records, in order, per call (batch consumers).
    OnePartition,
    /// Sized to ~20 ms of the handler's measured work, between `max_poll_records` and 2,000
    /// ([`crate::ConsumerLoopConfig::max_poll_records_when_fast`]): for a handler that takes
    /// one message after another (or a bounded number at once), to whom the size is
    /// invisible — Python's sequential consumers, Rust's per-message ones. Larger calls cost
    /// fewer thread wake-ups (Python's hand-off) and less of the loop's work per call
    /// (tracking, storing offsets): locally, a Rust app went from 0.71x to 0.79-1.09x the
    /// hand-written loop (docs/performance.md).
    SizedToHandler,
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
    failover: FailoverPolicy,
    described: Described,
}

/// A registered consumer or producer, as the docs and the test mirrors read it.
#[derive(Debug, Clone, Copy)]
pub struct Registered<'a> {
    /// Its name (its function's, in Python).
    pub name: &'a str,
    /// Whether it reads or writes `topic`.
    pub direction: Direction,
    /// Its topic.
    pub topic: &'a str,
    /// Its cluster.
    pub cluster: &'a ClusterChoice,
    /// What the docs say of it.
    pub described: &'a Described,
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
    health_limits: HealthLimits,
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
            health_limits: HealthLimits::default(),
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

    /// How long starting may take in all — clusters checked, consumers subscribed (default
    /// 30 s); see [`Runtime::start`].
    pub fn set_start_timeout(&mut self, timeout: Duration) {
        self.start_timeout = timeout;
    }

    /// How long stopping may take in all (default 30 s); see [`RunningRuntime::stop`].
    pub fn set_stop_timeout(&mut self, timeout: Duration) {
        self.stop_timeout = timeout;
    }

    /// The liveness limits of its consumers (`polling_ttl`, `consuming_ttl`; see
    /// [`crate::health`]), for the next start.
    pub fn set_health_limits(&mut self, limits: HealthLimits) {
        self.health_limits = limits;
    }

    /// See [`Runtime::set_health_limits`].
    pub fn health_limits(&self) -> HealthLimits {
        self.health_limits
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
    pub fn cluster_id(&self, choice: &ClusterChoice) -> Result<ClusterId> {
        match choice {
            ClusterChoice::App => self.brokers.resolve(&self.environment),
            ClusterChoice::Brokers(brokers) => brokers.resolve(&self.environment),
            ClusterChoice::Fixed(id) => Ok(id.clone()),
        }
    }

    /// The standby of the cluster `choice` names in the current environment, if it names one.
    pub fn standby_of(&self, choice: &ClusterChoice) -> Result<Option<ClusterId>> {
        match choice {
            ClusterChoice::App => self.brokers.standby(&self.environment),
            ClusterChoice::Brokers(brokers) => brokers.standby(&self.environment),
            ClusterChoice::Fixed(_) => Ok(None),
        }
    }

    fn check_choice(&self, choice: &ClusterChoice) -> Result<()> {
        match choice {
            ClusterChoice::Brokers(brokers) => brokers.check_override_of(&self.brokers),
            ClusterChoice::App | ClusterChoice::Fixed(_) => Ok(()),
        }
    }

    /// A consumer's cluster choices (its own and its dead-letter topic's) and retry policy,
    /// checked where it is registered and again at the start (the Rust API adjusts settings
    /// after registering).
    fn check_consumer(&self, consumer: &ConsumerRegistration) -> Result<()> {
        let place = format!("consumer '{}'", consumer.name);
        self.check_choice(&consumer.cluster)?;
        if let Some(cluster) = consumer
            .settings
            .dead_letter
            .as_ref()
            .and_then(|dead_letter| dead_letter.cluster.as_ref())
        {
            self.check_choice(cluster)
                .map_err(|error| Error::Config(format!("{place}: dead-letter brokers: {error}")))?;
        }
        if let Some(retry) = &consumer.settings.retry {
            retry
                .check()
                .map_err(|error| Error::Config(format!("{place}: {error}")))?;
        }
        Ok(())
    }

    /// Registers a consumer (its cluster override must define the app's environments) and
    /// returns its settings, to adjust before the start.
    pub fn add_consumer(
        &mut self,
        consumer: ConsumerRegistration,
    ) -> Result<&mut ConsumerSettings> {
        self.check_consumer(&consumer)?;
        self.consumers.push(consumer);
        Ok(&mut self.consumers.last_mut().expect("just pushed").settings)
    }

    /// Sets the app-level client options (`FastKafka(**options)`): each consumer and producer
    /// registered after this inherits those of its kind, under its own options.
    pub fn set_client_options(&mut self, options: Options) -> Result<()> {
        options::check(&options, Client::App, "FastKafka()")?;
        // Values the clients only read at registration are checked here, where they were given.
        settings::failover_policy(&options, "FastKafka()")?;
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

    /// A producer's `options` (given in `place`) over the app's, checked and mapped.
    pub fn producer_settings(&self, options: &Options, place: &str) -> Result<ProducerSettings> {
        options::check(options, Client::Producer, place)?;
        let mut merged = Client::Producer.inherit(&self.client_options);
        merged.extend(options.iter().map(|(k, v)| (k.clone(), v.clone())));
        ProducerSettings::from_options(&merged, place)
    }

    /// Registers a producer to `topic` whose cluster's client gets `settings.properties`; the
    /// handle sends while the runtime runs.
    pub fn add_producer(
        &mut self,
        name: impl Into<String>,
        topic: impl Into<String>,
        cluster: ClusterChoice,
        settings: ProducerSettings,
        described: Described,
    ) -> Result<ProducerHandle> {
        self.check_choice(&cluster)?;
        let handle = ProducerHandle::new(name.into(), topic.into());
        self.producers.push(ProducerRegistration {
            handle: handle.clone(),
            cluster,
            properties: settings.properties,
            failover: settings.failover,
            described,
        });
        Ok(handle)
    }

    /// Every consumer, then every producer, in the order they were registered.
    pub fn registered(&self) -> impl Iterator<Item = Registered<'_>> {
        let consumers = self.consumers.iter().map(|consumer| Registered {
            name: &consumer.name,
            direction: Direction::Consumes,
            topic: &consumer.topic,
            cluster: &consumer.cluster,
            described: &consumer.described,
        });
        let producers = self.producers.iter().map(|producer| Registered {
            name: producer.handle.name(),
            direction: Direction::Produces,
            topic: producer.handle.topic(),
            cluster: &producer.cluster,
            described: &producer.described,
        });
        consumers.chain(producers)
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

    /// Each consumer with a group, as the offset tools see it: its topic, its cluster in the
    /// current environment, its group (the default group included) and client properties.
    pub fn consumer_groups(&self) -> Result<Vec<ConsumerGroupTarget>> {
        self.consumers
            .iter()
            .filter_map(|consumer| {
                let group = self.group_of(consumer)?;
                Some(
                    self.cluster_id(&consumer.cluster)
                        .map(|cluster| ConsumerGroupTarget {
                            consumer: consumer.name.clone(),
                            topic: consumer.topic.clone(),
                            cluster,
                            group,
                            properties: consumer.settings.properties.clone(),
                        }),
                )
            })
            .collect()
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
            let id = self.cluster_id(&producer.cluster)?;
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
}
