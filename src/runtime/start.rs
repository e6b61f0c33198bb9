//! [`Runtime::start`]: bringing an app's registrations up on a transport — clusters checked,
//! producers bound (dead-letter producers too), consumers subscribed concurrently with their
//! loops configured, a failed start rolled back.

use std::sync::Arc;

use super::running::{RunningConsumer, RunningRuntime};
use super::{ConsumerRegistration, HandOver, ProducerHandle, Runtime};
use crate::config::ClusterId;
use crate::consumer_loop::failures::FailurePolicy;
use crate::consumer_loop::{slow_batch_warning, ConsumerLoop, ConsumerLoopConfig};
use crate::error::{Error, Result};
use crate::health::{WatchedCluster, WatchedConsumer};
use crate::metrics::{ConsumerLabels, ConsumerMetrics};
use crate::transport::failover::{FailoverCluster, FailoverPolicy, Side};
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
            if self.cluster_id(&consumer.cluster)? == *id
                || self.cluster_id(dead_letters_to)? == *id
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
    /// it, the environment and the functions that use it — unless it names a standby that
    /// answers, on which its consumers and producers then start. Then the producers are bound and the
    /// consumers subscribe concurrently; if one fails, those that started are stopped again and
    /// the first error is returned. The start timeout bounds all of it: a subscription still
    /// unfinished then (a group that never settles) fails the start like an error.
    pub async fn start(&self, transport: Arc<dyn Transport>) -> Result<RunningRuntime> {
        let deadline = tokio::time::Instant::now() + self.start_timeout;
        for consumer in &self.consumers {
            self.check_consumer(consumer)?;
        }
        let properties = self.producer_properties_by_cluster()?;
        let users = self
            .producers
            .iter()
            .map(|p| (&p.cluster, p.handle.name()))
            .chain(self.consumers.iter().map(|c| (&c.cluster, c.name.as_str())))
            .chain(self.consumers.iter().filter_map(|c| {
                let dead_letter = c.settings.dead_letter.as_ref()?;
                Some((dead_letter.cluster.as_ref()?, c.name.as_str()))
            }));
        let mut clusters = UsedClusters::default();
        for (choice, name) in users {
            let id = self.cluster_id(choice)?;
            let standby = self.standby_of(choice)?;
            if clusters.add_user(&id, standby.as_ref(), name)? {
                continue;
            }
            let producer = match properties.iter().find(|(known, _)| *known == id) {
                Some((_, properties)) => properties.clone(),
                None => self.consumers_security_on(&id)?,
            };
            // A standby is reached as its primary is: same client properties.
            let standby = standby
                .map(|standby| transport.cluster_with(&standby, &producer))
                .transpose()?;
            clusters.0.push(UsedCluster {
                cluster: transport.cluster_with(&id, &producer)?,
                standby,
                used_by: vec![name.to_owned()],
                pairs: Vec::new(),
                starts_on: Side::Primary,
            });
        }
        let checks = clusters.0.iter().map(|used| async move {
            let timeout = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(standby) = &used.standby else {
                let primary = &*used.cluster;
                crate::transport::check_at_start(
                    primary,
                    &self.environment,
                    &used.used_by,
                    timeout,
                )
                .await?;
                return Ok(Side::Primary);
            };
            // Half the time for the primary: an app restarted while its primary is lost still
            // starts, on the standby, within the start timeout.
            let primary = crate::transport::check_at_start(
                &*used.cluster,
                &self.environment,
                &used.used_by,
                timeout / 2,
            );
            let (primary, standby_answers) =
                futures_util::future::join(primary, standby.check_reachable(timeout / 2)).await;
            match (primary, standby_answers) {
                (Ok(()), Ok(())) => Ok(Side::Primary),
                (Ok(()), Err(error)) => {
                    // Needed only once the primary is lost: the app starts without it.
                    tracing::warn!(
                        target: "fastkafka::failover",
                        "standby {} of cluster {} does not answer at start (the app starts; it \
                         cannot fail over until the standby answers): {error}",
                        standby.id(),
                        used.cluster.id()
                    );
                    Ok(Side::Primary)
                }
                (Err(error), Ok(())) => {
                    tracing::warn!(
                        target: "fastkafka::failover",
                        "starting on standby {} of cluster {}: {error}",
                        standby.id(),
                        used.cluster.id()
                    );
                    Ok(Side::Standby)
                }
                (Err(error), Err(_)) => Err(error),
            }
        });
        let sides = futures_util::future::join_all(checks).await;
        for (used, side) in clusters.0.iter_mut().zip(sides) {
            used.starts_on = side?;
        }
        let mut running = RunningRuntime::new(self.stop_timeout);
        for producer in &self.producers {
            let id = self.cluster_id(&producer.cluster)?;
            producer
                .handle
                .bind(Some(clusters.for_use(&id, producer.failover)));
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
                    let id = self.cluster_id(choice)?;
                    handle.bind(Some(clusters.for_use(&id, consumer.settings.failover)));
                    running.producers.0.push(handle.clone());
                    Some(handle)
                }
                None => None,
            };
            dead_letters.push(handle);
        }
        let mut consumer_clusters = Vec::with_capacity(self.consumers.len());
        for consumer in &self.consumers {
            let id = self.cluster_id(&consumer.cluster)?;
            consumer_clusters.push(clusters.for_use(&id, consumer.settings.failover));
        }
        let subscriptions = self
            .consumers
            .iter()
            .zip(dead_letters)
            .zip(consumer_clusters)
            .map(|((consumer, dead_letter), cluster)| async move {
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
        running.watch_health(watched, clusters.watched());
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
                start_times: None,
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

/// Each cluster an app uses, created once at its start, with its standby's client and the
/// pairs made of them ([`FailoverCluster`], one per failover policy in use).
#[derive(Default)]
struct UsedClusters(Vec<UsedCluster>);

struct UsedCluster {
    cluster: Arc<dyn Cluster>,
    standby: Option<Arc<dyn Cluster>>,
    used_by: Vec<String>,
    pairs: Vec<(FailoverPolicy, FailoverCluster)>,
    /// Where its pairs start: the standby when the primary did not answer at start.
    starts_on: Side,
}

impl UsedClusters {
    /// Counts `name` as a user of cluster `id` if it is known (`true`); a second user must not
    /// name another standby for it.
    fn add_user(
        &mut self,
        id: &ClusterId,
        standby: Option<&ClusterId>,
        name: &str,
    ) -> Result<bool> {
        let Some(used) = self.0.iter_mut().find(|used| used.cluster.id() == id) else {
            return Ok(false);
        };
        let known = used.standby.as_ref().map(|standby| standby.id());
        if known != standby {
            let describe = |standby: Option<&ClusterId>| {
                standby.map_or("none".to_owned(), ClusterId::to_string)
            };
            return Err(Error::Config(format!(
                "cluster {id} is given two standbys: {} (for {}) and {} (for {name}); name one \
                 standby per cluster in every kafka_brokers that lists it",
                describe(known),
                used.used_by.join(", "),
                describe(standby)
            )));
        }
        used.used_by.push(name.to_owned());
        Ok(true)
    }

    /// The cluster a registration on `id` with `policy` uses: `id` itself, or `id` paired with
    /// its standby under `policy`.
    fn for_use(&mut self, id: &ClusterId, policy: FailoverPolicy) -> Arc<dyn Cluster> {
        let used = self
            .0
            .iter_mut()
            .find(|used| used.cluster.id() == id)
            .expect("every registration's cluster was created at the start");
        let Some(standby) = &used.standby else {
            return used.cluster.clone();
        };
        if let Some((_, pair)) = used.pairs.iter().find(|(known, _)| *known == policy) {
            return Arc::new(pair.clone());
        }
        let pair = FailoverCluster::starting_on(
            used.cluster.clone(),
            standby.clone(),
            policy,
            used.starts_on,
        );
        used.pairs.push((policy, pair.clone()));
        Arc::new(pair)
    }

    /// What the health report watches: each cluster, as a pair where it has a standby.
    fn watched(self) -> Vec<WatchedCluster> {
        self.0
            .into_iter()
            .map(|used| WatchedCluster {
                cluster: match used.pairs.into_iter().next() {
                    Some((_, pair)) => Arc::new(pair),
                    None => used.cluster,
                },
                used_by: used.used_by,
            })
            .collect()
    }
}
