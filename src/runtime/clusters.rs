//! The clusters an app uses, as its start sees them ([`UsedClusters`]): each created once
//! with its standby's client and the client properties it is reached with, checked at once
//! ([`Runtime::check_clusters`]), and paired with its standby ([`FailoverCluster`]) under each
//! failover policy its registrations use.

use std::sync::Arc;

use super::Runtime;
use crate::config::ClusterId;
use crate::error::{Error, Result};
use crate::health::WatchedCluster;
use crate::transport::failover::{FailoverCluster, FailoverPolicy, Side};
use crate::transport::{ClientProperties, Cluster, Transport};

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

    /// Each cluster the app's registrations use, with its standby's client (same client
    /// properties: a standby is reached as its primary is).
    pub(super) fn used_clusters(&self, transport: &dyn Transport) -> Result<UsedClusters> {
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
        Ok(clusters)
    }

    /// Checks every cluster at once; returns the side each starts on (the standby where its
    /// primary does not answer but the standby does), or the first cluster's error.
    pub(super) async fn check_clusters(
        &self,
        clusters: &UsedClusters,
        deadline: tokio::time::Instant,
    ) -> Result<Vec<Side>> {
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
        futures_util::future::join_all(checks)
            .await
            .into_iter()
            .collect()
    }
}

/// Each cluster an app uses, created once at its start, with its standby's client and the
/// pairs made of them ([`FailoverCluster`], one per failover policy in use).
#[derive(Default)]
pub(super) struct UsedClusters(Vec<UsedCluster>);

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

    /// Sets the side each cluster's pairs start on, in the order [`Runtime::check_clusters`]
    /// returned them.
    pub(super) fn start_on(&mut self, sides: Vec<Side>) {
        for (used, side) in self.0.iter_mut().zip(sides) {
            used.starts_on = side;
        }
    }

    /// The cluster `id` when it has no standby (what its registrations use whatever their
    /// failover policy), else None: its pairs wait for the start's check.
    pub(super) fn without_standby(&self, id: &ClusterId) -> Option<Arc<dyn Cluster>> {
        let used = self.0.iter().find(|used| used.cluster.id() == id)?;
        used.standby.is_none().then(|| used.cluster.clone())
    }

    /// The cluster a registration on `id` with `policy` uses: `id` itself, or `id` paired with
    /// its standby under `policy`.
    pub(super) fn for_use(&mut self, id: &ClusterId, policy: FailoverPolicy) -> Arc<dyn Cluster> {
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
    pub(super) fn watched(self) -> Vec<WatchedCluster> {
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
