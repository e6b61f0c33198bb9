//! [`RunningRuntime`]: a started app's consumer loops and bound producers — supervision while
//! it runs, and the ordered stop.

use std::fmt;
use std::time::Duration;

use std::sync::Arc;

use futures_util::stream::{FuturesUnordered, StreamExt};

use super::{AbandonHook, ProducerHandle};
use crate::consumer_loop::{ConsumerLoop, Seeker};
use crate::error::{Error, Result};
use crate::health::{
    spawn_rechecks, HealthProbe, HealthReport, RecheckTask, WatchedCluster, WatchedConsumer,
};
use crate::record::TopicPartition;
use crate::transport::Cluster;

pub(super) struct RunningConsumer {
    pub(super) name: String,
    pub(super) topic: String,
    pub(super) seeker: Seeker,
    pub(super) running: ConsumerLoop,
    pub(super) on_abandon: Option<AbandonHook>,
}

impl fmt::Debug for RunningConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunningConsumer")
            .field("name", &self.name)
            .finish()
    }
}

/// A started [`Runtime`](super::Runtime); stop it to commit and flush. Dropped without a stop,
/// it still stops what it started, in the background: each consumer loop finishes its batch,
/// commits and leaves (see [`ConsumerLoop`]), and the producers are unbound (a send after it
/// fails as it does once stopped); only the producers' flush, which a stop awaits, is not
/// waited for.
#[derive(Debug)]
pub struct RunningRuntime {
    pub(super) consumers: Vec<RunningConsumer>,
    pub(super) producers: BoundProducers,
    stop_timeout: Duration,
    /// What its health reads; empty until the start is complete.
    health: HealthProbe,
    /// Asks unreachable clusters again while it runs; dropped (stopped) with it.
    rechecks: Option<RecheckTask>,
}

/// The producers a started runtime bound to their clusters; unbound when dropped.
#[derive(Debug, Default)]
pub(super) struct BoundProducers(pub(super) Vec<ProducerHandle>);

impl Drop for BoundProducers {
    fn drop(&mut self) {
        for producer in &self.0 {
            producer.bind(None);
        }
    }
}

impl RunningRuntime {
    pub(super) fn new(stop_timeout: Duration) -> Self {
        Self {
            consumers: Vec::new(),
            producers: BoundProducers::default(),
            stop_timeout,
            health: HealthProbe::new(Vec::new(), Vec::new()),
            rechecks: None,
        }
    }

    /// Once started: what its health watches, and the rechecks of its clusters.
    pub(super) fn watch_health(
        &mut self,
        consumers: Vec<WatchedConsumer>,
        clusters: Vec<WatchedCluster>,
    ) {
        self.rechecks = Some(spawn_rechecks(
            clusters.iter().map(|c| c.cluster.clone()).collect(),
        ));
        self.health = HealthProbe::new(consumers, clusters);
    }

    /// Asks consumer `consumer` to read `partition` of its topic from `offset` on; see
    /// [`Seeker::seek`] (from a rebalance hook, use its [`Seeker`]). Fails for an unknown
    /// consumer, naming the known ones.
    pub fn seek(&self, consumer: &str, partition: i32, offset: i64) -> Result<()> {
        let Some(found) = self.consumers.iter().find(|c| c.name == consumer) else {
            let known: Vec<&str> = self.consumers.iter().map(|c| c.name.as_str()).collect();
            return Err(Error::Config(format!(
                "no consumer '{consumer}' to seek; the app's consumers: {}",
                known.join(", ")
            )));
        };
        found
            .seeker
            .seek(TopicPartition::new(found.topic.as_str(), partition), offset)
    }

    /// Its liveness and readiness now (see [`crate::health`]).
    pub fn health(&self) -> HealthReport {
        self.health.check()
    }

    /// What checks its health from elsewhere (a probe server), for as long as it is kept:
    /// during the stop it says "stopping", not ready.
    pub fn health_probe(&self) -> HealthProbe {
        self.health.clone()
    }

    /// Resolves when a consumer ends other than by [`RunningRuntime::stop`] — its handler
    /// failed or panicked, or its cluster closed it — with why, naming the consumer. Never
    /// resolves while every consumer runs. Owns what it waits on, so it can be spawned.
    pub fn wait_for_failure(&self) -> impl std::future::Future<Output = Error> + Send + 'static {
        let mut failures: FuturesUnordered<_> = self
            .consumers
            .iter()
            .map(|consumer| {
                let (name, failure) = (consumer.name.clone(), consumer.running.failure());
                async move { failure.wait().await.map(|error| (name, error)) }
            })
            .collect();
        async move {
            while let Some(ended) = failures.next().await {
                if let Some((consumer, error)) = ended {
                    return Error::ConsumerEnded {
                        consumer,
                        source: Box::new(error),
                    };
                }
            }
            std::future::pending().await
        }
    }

    /// Stops every consumer concurrently — each finishes its batch in flight, commits and
    /// leaves its group — then unbinds and flushes the producers, reporting what was not
    /// delivered; the whole stop is over within the stop timeout. A batch still running after
    /// half of it is abandoned (its consumer's abandon hook cancels it; its offsets are not
    /// committed); consumers have until four fifths of it to settle their outputs, commit and
    /// leave, and a loop that still does not end is left behind, logged; the producers' flush
    /// gets what is left. Whatever is not acknowledged by then was not committed and is consumed
    /// again by the next run. Returns the first consumer error.
    pub async fn stop(mut self) -> Result<()> {
        self.health.stopping();
        let producers = std::mem::take(&mut self.producers.0);
        let timeout = self.stop_timeout;
        let started = tokio::time::Instant::now();
        let (abandon_at, consumers_by, deadline) = (
            started + timeout / 2,
            started + timeout.mul_f64(0.8),
            started + timeout,
        );
        let stops = self.consumers.into_iter().map(|consumer| async move {
            let RunningConsumer {
                name,
                topic,
                running,
                on_abandon,
                ..
            } = consumer;
            let stopping = running.stop_by(consumers_by);
            tokio::pin!(stopping);
            let outcome = match tokio::time::timeout_at(abandon_at, &mut stopping).await {
                Ok(outcome) => Some(outcome),
                Err(_) => {
                    if let Some(abandon) = &on_abandon {
                        abandon(abandon_at - started);
                    }
                    tokio::time::timeout_at(consumers_by, &mut stopping)
                        .await
                        .ok()
                }
            };
            match &outcome {
                None => tracing::error!(
                    target: "fastkafka::consumer",
                    "{name}: did not stop even after its batch was cancelled; leaving it behind"
                ),
                Some(Err(error)) => tracing::error!(
                    target: "fastkafka::consumer",
                    "{name}: consumer ended with an error: {error}"
                ),
                Some(Ok(())) => tracing::info!(
                    target: "fastkafka::consumer",
                    "{name}: stopped consuming topic '{topic}'"
                ),
            }
            outcome.unwrap_or(Ok(()))
        });
        let stopped = futures_util::future::join_all(stops).await;
        let mut clusters: Vec<Arc<dyn Cluster>> = Vec::new();
        for producer in &producers {
            if let Some(cluster) = producer.bind(None) {
                if !clusters.iter().any(|known| known.id() == cluster.id()) {
                    clusters.push(cluster);
                }
            }
        }
        let flushed = futures_util::future::join_all(clusters.iter().map(|cluster| async move {
            let flushing = crate::transport::flush_and_report(&**cluster);
            match tokio::time::timeout_at(deadline, flushing).await {
                Ok(flushed) => flushed,
                Err(_) => {
                    tracing::warn!(
                        "the stop timeout ({timeout:?}) ran out with records still on their way \
                         to {}: they are not delivered; the inputs they were produced for were \
                         not committed and are consumed again by the next run (records sent \
                         outside any handler are lost)",
                        cluster.id(),
                    );
                    Ok(())
                }
            }
        }))
        .await;
        let mut outcomes = stopped.into_iter().chain(flushed);
        outcomes.find(Result::is_err).unwrap_or(Ok(()))
    }
}
