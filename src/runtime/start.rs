//! [`Runtime::start`]: bringing an app's registrations up on a transport — clusters checked,
//! producers bound (dead-letter producers too), consumers subscribed concurrently with their
//! loops configured, a failed start rolled back.

use std::sync::Arc;

use super::running::{RunningConsumer, RunningRuntime};
use super::{ClusterChoice, ConsumerRegistration, HandOver, ProducerHandle, Runtime};
use crate::config::ClusterId;
use crate::consumer_loop::failures::FailurePolicy;
use crate::consumer_loop::{slow_batch_warning, ConsumerLoop, ConsumerLoopConfig};
use crate::error::{Error, Result};
use crate::health::{WatchedCluster, WatchedConsumer};
use crate::metrics::{ConsumerLabels, ConsumerMetrics};
use crate::transport::{ClientProperties, Cluster, Subscription, Transport};

/// Whether a client property is about how to connect securely (TLS, SASL).
fn is_security_property(name: &str) -> bool {
    ["security.", "sasl.", "ssl.", "enable.ssl."]
        .iter()
        .any(|prefix| name.starts_with(prefix))
}

impl Runtime {
    /// For a cluster no producer sends to: the security properties of the first consumer that
    /// reads from it or dead-letters to it, so that the client that checks it at start (and
    /// sends dead letters to it) connects as the consumers do. Without them a consume-only
    /// TLS or SASL cluster could not start.
    fn consumers_security_on(&self, id: &ClusterId) -> Result<ClientProperties> {
        for consumer in &self.consumers {
            let dead_letters_to = consumer
                .settings
                .dead_letter
                .as_ref()
                .and_then(|target| target.cluster.as_ref())
                .unwrap_or(&consumer.cluster);
            if self.cluster_of(&consumer.cluster)? == *id
                || self.cluster_of(dead_letters_to)? == *id
            {
                return Ok(consumer
                    .settings
                    .properties
                    .iter()
                    .filter(|(name, _)| is_security_property(name))
                    .map(|(name, value)| (name.clone(), value.clone()))
                    .collect());
            }
        }
        Ok(ClientProperties::new())
    }

    /// Brings the app up on `transport`; returns once every consumer is subscribed.
    ///
    /// Every cluster must answer first: an unreachable one fails the start with an error naming
    /// it, the environment and the functions that use it. Then the producers are bound and the
    /// consumers subscribe concurrently; if one fails, those that started are stopped again and
    /// the first error is returned. The start timeout bounds all of it: a subscription still
    /// unfinished then (a group that never settles) fails the start like an error.
    pub async fn start(&self, transport: Arc<dyn Transport>) -> Result<RunningRuntime> {
        let deadline = tokio::time::Instant::now() + self.start_timeout;
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
                    let producer = match properties.iter().find(|(known, _)| *known == id) {
                        Some((_, properties)) => properties.clone(),
                        None => self.consumers_security_on(&id)?,
                    };
                    clusters.push((transport.cluster_with(&id, &producer)?, vec![name]));
                }
            }
        }
        let checks = clusters.iter().map(|(cluster, names)| {
            let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
            async move {
                let timeout = deadline.saturating_duration_since(tokio::time::Instant::now());
                crate::transport::check_at_start(&**cluster, &self.environment, &names, timeout)
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
            running.producers.0.push(producer.handle.clone());
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
                    running.producers.0.push(handle.clone());
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
                    async move {
                        let cluster = cluster?;
                        let id = cluster.id().to_string();
                        let subscribing = self.subscribe(cluster, consumer, dead_letter);
                        match tokio::time::timeout_at(deadline, subscribing).await {
                            Ok(subscribed) => subscribed,
                            Err(_) => Err(Error::Transport {
                                cluster: id,
                                message: format!(
                                    "consumer '{}' was not subscribed within the start timeout \
                                     ({:?})",
                                    consumer.name, self.start_timeout
                                ),
                            }),
                        }
                    }
                });
        let subscribed = futures_util::future::join_all(subscriptions).await;
        let mut first_error = None;
        let mut watched = Vec::new();
        for result in subscribed {
            match result {
                Ok((consumer, health)) => {
                    running.consumers.push(consumer);
                    watched.push(health);
                }
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        if let Some(error) = first_error {
            running.stop().await.ok();
            return Err(error);
        }
        running.watch_health(
            watched,
            clusters
                .into_iter()
                .map(|(cluster, names)| WatchedCluster {
                    cluster,
                    used_by: names.into_iter().map(str::to_owned).collect(),
                })
                .collect(),
        );
        Ok(running)
    }

    async fn subscribe(
        &self,
        cluster: Arc<dyn Cluster>,
        consumer: &ConsumerRegistration,
        dead_letter: Option<ProducerHandle>,
    ) -> Result<(RunningConsumer, WatchedConsumer)> {
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
                default_properties: settings.default_properties.clone(),
                seeks_on_assign: settings.on_partitions_changed.is_some(),
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
            cluster: cluster.id().bootstrap_servers().into(),
            on_partitions_changed: settings.on_partitions_changed.clone(),
            max_poll_records: settings.max_poll_records,
            max_poll_records_when_fast: settings.max_poll_records_when_fast(consumer.hand_over),
            commit_interval: settings.commit_interval,
            slow_batch_warning: slow_batch_warning(&settings.properties),
            one_partition_per_call: consumer.hand_over == HandOver::OnePartition,
            failures: FailurePolicy {
                retry: settings.retry,
                dead_letter,
            },
            metrics: ConsumerMetrics::register(ConsumerLabels {
                consumer: consumer.name.clone(),
                cluster: cluster.id().bootstrap_servers().to_owned(),
                topic: consumer.topic.clone(),
                group: group_id.clone().unwrap_or_default(),
            }),
            ..ConsumerLoopConfig::default()
        };
        let (polling_ttl, consuming_ttl) = self.health_limits.for_consumer(&settings.properties);
        let membership = subscribed.membership();
        let pulse = config.pulse.clone();
        let running = ConsumerLoop::spawn(subscribed, handler, config);
        let health = WatchedConsumer {
            name: consumer.name.clone(),
            topic: consumer.topic.clone(),
            cluster: cluster.id().bootstrap_servers().to_owned(),
            group_id,
            pulse,
            membership,
            failure: running.failure(),
            polling_ttl,
            consuming_ttl,
        };
        let running = RunningConsumer {
            name: consumer.name.clone(),
            topic: consumer.topic.clone(),
            seeker: running.seeker(),
            running,
            on_abandon: consumer.on_abandon.clone(),
        };
        Ok((running, health))
    }
}
