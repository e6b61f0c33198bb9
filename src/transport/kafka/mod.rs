//! The Kafka transport: real clusters through librdkafka (rust-rdkafka), behind the `kafka`
//! feature.
//!
//! - One [`KafkaCluster`] per [`ClusterId`], holding the cluster's one producer client, whose
//!   own thread serves delivery reports (`reports.rs`), so [`Cluster::produce`] only
//!   enqueues and returns (FastKafka's semantics: a send returns once the client has the
//!   record). Delivery failures are logged with topic and error and counted.
//! - One librdkafka consumer per subscription. Offsets are never stored automatically
//!   (`enable.auto.offset.store=false`) nor committed by librdkafka's timer
//!   (`enable.auto.commit=false`): the consumer loop stores a batch's offsets after its handler
//!   returned and commits periodically and on close, and the rebalance callback commits before a
//!   partition is taken away. That is the at-least-once guarantee.
//! - Without a group, a consumer is assigned every partition of its topics (FastKafka's
//!   behaviour with `group_id=None`) and commits nothing.
//!
//! librdkafka calls block (metadata, synchronous commits, close), so they run on tokio's
//! blocking pool, never on a runtime worker.
//!
//! # Layout
//! - this file: [`KafkaTransport`] and the clients' configuration (a consumer's defaults
//!   included);
//! - `cluster.rs`: [`KafkaCluster`] and its producer client; `reports.rs`: the thread that
//!   serves the client's delivery reports (asleep while there are none) and what each does;
//!   `redirect.rs`: records a failover takes from the client, sent on to the standby in order;
//!   `send_lane.rs`: the lane a cluster's records may wait in for a thread of its own to hand
//!   them to the client ([`KafkaTransport::with_send_lanes`], what Python apps use);
//! - [`offsets`]: the offset tools' reads and commits (`fastkafka offsets`); [`oauth`]: SASL
//!   OAUTHBEARER tokens from the app's provider;
//! - `checkpoints.rs`: MirrorMaker 2's translated offsets, where a consumer taking over from
//!   another cluster starts;
//! - `consumer.rs`: the consumer — subscription or assignment (`groupless.rs`: every
//!   partition, for a consumer without a group), polling, offsets, and which errors are fatal; `rebalance.rs`: its context, which commits before a rebalance, tells
//!   the consumer's [`Membership`](crate::transport::Membership) what changed and, for a
//!   consumer whose hook may seek, fixes assigned partitions' starts first.

mod checkpoints;
mod cluster;
mod consumer;
mod enqueue;
mod groupless;
mod native;
pub mod oauth;
pub mod offsets;
mod rebalance;
mod redirect;
mod reports;
mod send_lane;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

pub use cluster::KafkaCluster;
use oauth::TokenProvider;

use crate::config::ClusterId;
use crate::error::{Error, Result};
use crate::transport::{
    ClientProperties, Cluster, OffsetReset, Reachability, Subscription, Transport,
};

/// How long flushing or a synchronous commit may take.
const BLOCKING_CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `subscribe` waits for the group to assign partitions before returning anyway.
const ASSIGNMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Properties the transport owns; a user setting them would break at-least-once delivery.
const RESERVED_PROPERTIES: &[&str] = &[
    "bootstrap.servers",
    "enable.auto.offset.store",
    "enable.auto.commit",
];

/// What every client of a cluster does with an error librdkafka reports outside any call:
/// log it, and when every broker is down, mark the cluster unreachable (the health view and
/// [`Cluster::recheck`] take it from there).
fn client_error(
    cluster: &ClusterId,
    reachability: &Reachability,
    error: &KafkaError,
    reason: &str,
) {
    if matches!(error, KafkaError::Global(RDKafkaErrorCode::AllBrokersDown)) {
        reachability.went_down();
    }
    tracing::error!(target: "librdkafka", cluster = %cluster, "{error}: {reason}");
}

/// Real Kafka clusters, reached with librdkafka.
pub struct KafkaTransport {
    properties: ClientProperties,
    /// Whether each cluster hands records to its client from a thread of its own.
    send_lanes: bool,
    /// Where every client gets OAUTHBEARER tokens, if the app gave one.
    token_provider: Option<Arc<dyn TokenProvider>>,
    clusters: Mutex<HashMap<ClusterId, (ClientProperties, Arc<KafkaCluster>)>>,
}

impl KafkaTransport {
    /// A transport whose clients all get `properties` (librdkafka names), on top of which
    /// producer and consumer properties are applied.
    pub fn new(properties: ClientProperties) -> Result<Self> {
        check_not_reserved(&properties)?;
        Ok(Self {
            properties,
            send_lanes: false,
            token_provider: None,
            clusters: Mutex::new(HashMap::new()),
        })
    }

    /// Makes each cluster hand records to its producer client from a thread of its own: a
    /// send then costs its caller a lock and a push instead of librdkafka's ~0.8 µs, for apps
    /// whose sending thread is their bottleneck (Python's event loop). Order, delivery
    /// tracking and backpressure are those of a direct enqueue; the client's refusals other
    /// than a record too large for `message.max.bytes` fail the record's delivery instead of
    /// the send.
    pub fn with_send_lanes(mut self) -> Self {
        self.send_lanes = true;
        self
    }

    /// Makes every client whose `sasl.mechanism` is `OAUTHBEARER` get its tokens from
    /// `provider` (see [`oauth`]).
    pub fn with_token_provider(mut self, provider: Arc<dyn TokenProvider>) -> Self {
        self.token_provider = Some(provider);
        self
    }
}

impl fmt::Debug for KafkaTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaTransport")
            .field("properties", &redacted(&self.properties))
            .finish()
    }
}

impl Transport for KafkaTransport {
    fn cluster_with(
        &self,
        id: &ClusterId,
        producer: &ClientProperties,
    ) -> Result<Arc<dyn Cluster>> {
        check_not_reserved(producer)?;
        let mut clusters = self.clusters.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((existing, cluster)) = clusters.get(id) {
            if let Some(name) = first_difference(existing, producer) {
                return Err(Error::Config(format!(
                    "producers to cluster {id} disagree on '{name}'; they share one client, so \
                     give them the same value"
                )));
            }
            return Ok(cluster.clone());
        }
        let cluster = Arc::new(KafkaCluster::connect(
            id,
            &self.properties,
            producer,
            self.send_lanes,
            self.token_provider.clone(),
        )?);
        clusters.insert(id.clone(), (producer.clone(), cluster.clone()));
        Ok(cluster)
    }
}

/// The first pause before reconnecting to a broker, unless the properties set it. librdkafka's
/// 100 ms also throttles a client's *first* connection to a broker a metadata answer names, by
/// half of it, whenever that connection is not opened in the bootstrap connection's turn: a
/// fresh process's first output came 0.13 s or 0.18 s after its start, run by run, for
/// fastkafka and a hand-written rust-rdkafka loop alike (`make bench`). At 10 ms it came at
/// 0.13-0.14 s in every run. Retries still back off exponentially, to
/// `reconnect.backoff.max.ms` (10 s).
const RECONNECT_BACKOFF_MS: &str = "10";

fn client_config(id: &ClusterId, properties: &ClientProperties) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", id.bootstrap_servers());
    config.set("reconnect.backoff.ms", RECONNECT_BACKOFF_MS);
    for (name, value) in properties {
        config.set(name, value);
    }
    config
}

/// The client configuration of a consumer on cluster `id`: the cluster's `properties`, the
/// subscription's over them, its default properties where neither set them, and the settings
/// fastkafka manages (offsets stored by the consumer loop only, its group or none).
fn consumer_config(
    id: &ClusterId,
    properties: &ClientProperties,
    subscription: &Subscription,
) -> ClientConfig {
    let mut config = client_config(id, properties);
    for (name, value) in &subscription.properties {
        config.set(name, value);
    }
    for (name, value) in &subscription.default_properties {
        if config.get(name).is_none() {
            config.set(name, value);
        }
    }
    config
        .set("enable.auto.offset.store", "false")
        .set("enable.auto.commit", "false")
        .set(
            "auto.offset.reset",
            match subscription.auto_offset_reset {
                OffsetReset::Earliest => "earliest",
                OffsetReset::Latest => "latest",
            },
        );
    match &subscription.group_id {
        Some(group_id) => config.set("group.id", group_id),
        // librdkafka wants a group id even for manual assignment; this one never joins a
        // group (the consumer is assigned, not subscribed) and never commits.
        None => config.set("group.id", standalone_group_id()),
    };
    config
}

fn standalone_group_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "fastkafka-standalone-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn check_not_reserved(properties: &ClientProperties) -> Result<()> {
    match properties
        .keys()
        .find(|name| RESERVED_PROPERTIES.contains(&name.as_str()))
    {
        Some(name) => Err(Error::Config(format!(
            "the client property '{name}' is managed by fastkafka (it guarantees at-least-once \
             delivery and binds each handler to its cluster) and cannot be set"
        ))),
        None => Ok(()),
    }
}

/// librdkafka refused `config`: the error names the property, never its value. librdkafka's
/// own text quotes the value (`Invalid value "..." for configuration property "..."`), and a
/// misspelled secret (`sasl.pasword`) is not recognisably secret, so every configured value is
/// taken out of what it says.
fn config_error(id: &ClusterId, client: &str, config: &ClientConfig, error: KafkaError) -> Error {
    let said = match error {
        KafkaError::ClientConfig(_, description, key, _) => {
            format!("property '{key}': {description}")
        }
        KafkaError::ClientCreation(description) => description,
        other => other.to_string(),
    };
    Error::Config(format!(
        "invalid {client} configuration for cluster {id}: {}",
        without_values(&said, config)
    ))
}

/// `text` with every value of `config` shown as `***`: quoted values whatever their length,
/// bare ones from four characters (shorter ones, like `1`, are no secret and would mangle the
/// text).
fn without_values(text: &str, config: &ClientConfig) -> String {
    let mut values: Vec<&str> = config
        .config_map()
        .into_values()
        .filter(|value| !value.is_empty())
        .collect();
    values.sort_by_key(|value| std::cmp::Reverse(value.len())); // the longest first
    let mut cleaned = text.to_owned();
    for value in values {
        cleaned = cleaned.replace(&format!("\"{value}\""), "\"***\"");
        if value.len() >= 4 {
            cleaned = cleaned.replace(value, "***");
        }
    }
    cleaned
}

fn first_difference<'a>(a: &'a ClientProperties, b: &'a ClientProperties) -> Option<&'a str> {
    a.keys()
        .chain(b.keys())
        .find(|name| a.get(*name) != b.get(*name))
        .map(String::as_str)
}

/// Whether a client property holds a secret, which no error, log line or repr may show.
fn is_secret(name: &str) -> bool {
    name.contains("password")
        || name.contains("secret")
        || matches!(name, "ssl.key.pem" | "sasl.oauthbearer.config")
}

fn redacted(properties: &ClientProperties) -> BTreeMap<&str, &str> {
    properties
        .iter()
        .map(|(name, value)| {
            let shown = if is_secret(name) {
                "***"
            } else {
                value.as_str()
            };
            (name.as_str(), shown)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn librdkafkas_refusals_name_the_property_without_its_value() {
        let id = ClusterId::from_addresses(["k:9092"]);
        for (name, value) in [
            ("sasl.pasword", "hunter2"),
            ("security.protocol", "hunter2-ssl"),
            ("linger.ms", "-hunter2"),
        ] {
            let mut config = ClientConfig::new();
            config.set("bootstrap.servers", "k:9092").set(name, value);
            let Err(error) = config.create::<rdkafka::producer::BaseProducer>() else {
                panic!("librdkafka took {name}={value}");
            };
            assert!(
                error.to_string().contains("hunter2"),
                "librdkafka quotes it: {error}"
            );
            let ours = config_error(&id, "producer", &config, error).to_string();
            assert!(!ours.contains("hunter2"), "{ours}");
            assert!(ours.contains(name), "names the property: {ours}");
        }
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let properties: ClientProperties = [
            ("sasl.password", "hunter2"),
            ("ssl.key.pem", "-----BEGIN PRIVATE KEY-----abc"),
            ("ssl.key.password", "pem-pass"),
            ("sasl.oauthbearer.config", "principal=me secret=s3"),
            ("sasl.oauthbearer.client.secret", "cs"),
            ("client.id", "billing"),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
        let shown = format!("{:?}", KafkaTransport::new(properties).unwrap());
        for secret in ["hunter2", "BEGIN PRIVATE", "pem-pass", "s3", "\"cs\""] {
            assert!(!shown.contains(secret), "{secret} shown in {shown}");
        }
        assert!(
            shown.contains("billing"),
            "other properties stay visible: {shown}"
        );
    }

    fn properties(pairs: &[(&str, &str)]) -> ClientProperties {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect()
    }

    #[test]
    fn the_first_reconnect_backoff_is_short_unless_set() {
        let id = ClusterId::from_addresses(["k:9092"]);
        let subscription = Subscription::new(["t"]);
        let defaults = consumer_config(&id, &ClientProperties::new(), &subscription);
        assert_eq!(
            defaults.get("reconnect.backoff.ms"),
            Some(RECONNECT_BACKOFF_MS)
        );
        let set = properties(&[("reconnect.backoff.ms", "250")]);
        let by_cluster = client_config(&id, &set);
        assert_eq!(by_cluster.get("reconnect.backoff.ms"), Some("250"));
    }

    #[test]
    fn a_consumers_default_properties_apply_unless_the_cluster_or_the_consumer_set_them() {
        let id = ClusterId::from_addresses(["k:9092"]);
        let mut subscription = Subscription::new(["t"]);
        subscription.default_properties = properties(&[
            ("queued.max.messages.kbytes", "1536"),
            ("fetch.queue.backoff.ms", "5"),
        ]);
        let defaults = consumer_config(&id, &ClientProperties::new(), &subscription);
        assert_eq!(defaults.get("queued.max.messages.kbytes"), Some("1536"));
        assert_eq!(defaults.get("fetch.queue.backoff.ms"), Some("5"));

        let cluster = properties(&[("queued.max.messages.kbytes", "65536")]);
        let by_cluster = consumer_config(&id, &cluster, &subscription);
        assert_eq!(by_cluster.get("queued.max.messages.kbytes"), Some("65536"));

        subscription.properties = properties(&[("fetch.queue.backoff.ms", "1000")]);
        let by_consumer = consumer_config(&id, &cluster, &subscription);
        assert_eq!(by_consumer.get("fetch.queue.backoff.ms"), Some("1000"));
        assert_eq!(by_consumer.get("queued.max.messages.kbytes"), Some("65536"));
        let rust = consumer_config(&id, &ClientProperties::new(), &Subscription::new(["t"]));
        assert_eq!(
            rust.get("queued.max.messages.kbytes"),
            None,
            "librdkafka's own default"
        );
    }
}
