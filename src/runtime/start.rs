//! [`Runtime::start`]: bringing an app's registrations up on a transport — clusters checked
//! while the consumers subscribe, producers bound (dead-letter producers too), each consumer's
//! loop configured and started, a failed start rolled back.

use std::sync::Arc;

use futures_util::future::Either;

use super::running::{RunningConsumer, RunningRuntime};
use super::{ConsumerRegistration, HandOver, ProducerHandle, Runtime};
use crate::config::ClusterId;
use crate::consumer_loop::failures::FailurePolicy;
use crate::consumer_loop::{slow_batch_warning, BatchHandler, ConsumerLoop, ConsumerLoopConfig};
use crate::error::{Error, Result};
use crate::health::WatchedConsumer;
use crate::metrics::{ConsumerLabels, ConsumerMetrics};
use crate::transport::{Cluster, ClusterConsumer, Subscription, Transport};

/// What a consumer's start needs that can fail without I/O, found before any client connects.
struct ConsumerPlan {
    cluster: ClusterId,
    dead_letters_to: Option<ClusterId>,
    handler: Box<dyn BatchHandler>,
}

impl Runtime {
    /// Brings the app up on `transport`; returns once every consumer is subscribed.
    ///
    /// Every cluster must answer first: an unreachable one fails the start with an error naming
    /// it, the environment and the functions that use it — unless it names a standby that
    /// answers, on which its consumers and producers then start. The consumers of clusters
    /// without a standby subscribe *while* the clusters are checked: the check's round trips
    /// overlap the consumers' connection, group join and first fetch, which an app on a distant
    /// cluster would otherwise pay one after the other at every start. A consumer whose cluster
    /// has a standby subscribes after the check, on the side it chose. The loops start only
    /// once every check and every subscription succeeded; if one fails, the clients subscribed
    /// so far are closed, the producers stopped, and the first error is returned (a cluster's
    /// failed check first). The start timeout bounds all of it: a subscription still unfinished
    /// then (a group that never settles) fails the start like an error.
    pub async fn start(&self, transport: Arc<dyn Transport>) -> Result<RunningRuntime> {
        let deadline = tokio::time::Instant::now() + self.start_timeout;
        let mut plans = Vec::with_capacity(self.consumers.len());
        for consumer in &self.consumers {
            self.check_consumer(consumer)?;
            let dead_letters_to = consumer.settings.dead_letter.as_ref().map(|target| {
                self.cluster_id(target.cluster.as_ref().unwrap_or(&consumer.cluster))
            });
            plans.push(ConsumerPlan {
                cluster: self.cluster_id(&consumer.cluster)?,
                dead_letters_to: dead_letters_to.transpose()?,
                handler: (consumer.handler)()?,
            });
        }
        let producer_clusters = (self.producers.iter())
            .map(|producer| self.cluster_id(&producer.cluster))
            .collect::<Result<Vec<_>>>()?;
        let mut clusters = self.used_clusters(&*transport)?;
        let subscribing = futures_util::future::join_all(self.consumers.iter().zip(&plans).map(
            |(consumer, plan)| {
                let cluster = clusters.without_standby(&plan.cluster);
                async move { Some(self.subscribe(cluster?, consumer, deadline).await) }
            },
        ));
        let (sides, early) = {
            let checking = std::pin::pin!(self.check_clusters(&clusters, deadline));
            match futures_util::future::select(checking, std::pin::pin!(subscribing)).await {
                // A failed check drops the subscriptions under way (their clients close).
                Either::Left((sides, subscribing)) => (sides?, subscribing.await),
                Either::Right((subscribed, checking)) => match checking.await {
                    Ok(sides) => (sides, subscribed),
                    Err(error) => {
                        close_unstarted(subscribed.into_iter().flatten().flatten()).await;
                        return Err(error);
                    }
                },
            }
        };
        clusters.start_on(sides);
        let mut running = RunningRuntime::new(self.stop_timeout);
        for (producer, id) in self.producers.iter().zip(&producer_clusters) {
            let cluster = clusters.for_use(id, producer.failover);
            producer.handle.bind(Some(cluster));
            running.producers.0.push(producer.handle.clone());
        }
        let mut consumer_clusters = Vec::with_capacity(plans.len());
        let mut dead_letters = Vec::with_capacity(plans.len());
        for (consumer, plan) in self.consumers.iter().zip(&plans) {
            let failover = consumer.settings.failover;
            consumer_clusters.push(clusters.for_use(&plan.cluster, failover));
            // A consumer's dead letters go through a producer of their own, bound like the
            // others.
            let dead_letter = consumer
                .settings
                .dead_letter
                .as_ref()
                .zip(plan.dead_letters_to.as_ref());
            dead_letters.push(dead_letter.map(|(target, id)| {
                let name = format!("dead letters of '{}'", consumer.name);
                let handle = ProducerHandle::new(name, target.topic.clone());
                handle.bind(Some(clusters.for_use(id, failover)));
                running.producers.0.push(handle.clone());
                handle
            }));
        }
        // The consumers left: those whose cluster has a standby (none if one already failed).
        let early_failed = early.iter().any(|early| matches!(early, Some(Err(_))));
        let left: Vec<bool> = early
            .iter()
            .map(|early| early.is_none() && !early_failed)
            .collect();
        let late = futures_util::future::join_all(
            (self.consumers.iter().zip(left).zip(&consumer_clusters)).map(
                |((consumer, left), cluster)| async move {
                    let cluster = left.then(|| cluster.clone())?;
                    Some(self.subscribe(cluster, consumer, deadline).await)
                },
            ),
        )
        .await;
        let mut subscribed = Vec::with_capacity(plans.len());
        let mut first_error = None;
        for result in early
            .into_iter()
            .zip(late)
            .filter_map(|(early, late)| early.or(late))
        {
            match result {
                Ok(consumer) => subscribed.push(consumer),
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        if let Some(error) = first_error {
            close_unstarted(subscribed).await;
            running.stop().await.ok();
            return Err(error);
        }
        let mut watched = Vec::with_capacity(plans.len());
        let starts = (self.consumers.iter().zip(plans).zip(consumer_clusters))
            .zip(subscribed.into_iter().zip(dead_letters));
        for (((consumer, plan), cluster), (subscribed, dead_letter)) in starts {
            let (running_consumer, health) =
                self.start_loop(cluster, consumer, plan.handler, subscribed, dead_letter);
            running.consumers.push(running_consumer);
            watched.push(health);
        }
        running.watch_health(watched, clusters.watched());
        Ok(running)
    }

    /// Subscribes `consumer` on `cluster` (the client connects, joins its group or is given
    /// every partition) within the start timeout; its loop starts later ([`Self::start_loop`]).
    async fn subscribe(
        &self,
        cluster: Arc<dyn Cluster>,
        consumer: &ConsumerRegistration,
        deadline: tokio::time::Instant,
    ) -> Result<Box<dyn ClusterConsumer>> {
        let settings = &consumer.settings;
        let subscribing = cluster.subscribe(Subscription {
            topics: vec![consumer.topic.clone()],
            group_id: self.group_of(consumer),
            auto_offset_reset: settings.auto_offset_reset,
            properties: settings.properties.clone(),
            default_properties: settings.default_properties.clone(),
            seeks_on_assign: settings.on_partitions_changed.is_some(),
            start_times: None,
        });
        match tokio::time::timeout_at(deadline, subscribing).await {
            Ok(subscribed) => subscribed,
            Err(_) => Err(Error::Transport {
                cluster: cluster.id().to_string(),
                message: format!(
                    "consumer '{}' was not subscribed within the start timeout ({:?})",
                    consumer.name, self.start_timeout
                ),
            }),
        }
    }

    /// Starts the loop of `consumer`, subscribed on `cluster`.
    fn start_loop(
        &self,
        cluster: Arc<dyn Cluster>,
        consumer: &ConsumerRegistration,
        handler: Box<dyn BatchHandler>,
        subscribed: Box<dyn ClusterConsumer>,
        dead_letter: Option<ProducerHandle>,
    ) -> (RunningConsumer, WatchedConsumer) {
        let settings = &consumer.settings;
        let group_id = self.group_of(consumer);
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
        (running, health)
    }
}

/// Closes consumers subscribed during a start that failed, before their loops started.
async fn close_unstarted(consumers: impl IntoIterator<Item = Box<dyn ClusterConsumer>>) {
    let closing = consumers.into_iter().map(|consumer| consumer.close());
    for closed in futures_util::future::join_all(closing).await {
        if let Err(error) = closed {
            tracing::warn!("closing a consumer of a start that failed: {error}");
        }
    }
}
