//! Cluster configuration: which Kafka cluster each consumer and producer talks to.
//!
//! FastKafka's model, kept as is so existing apps run unchanged: `kafka_brokers` maps an
//! *environment* name (`development`, `production`, ...) to one broker `{url, port, ...}` or a
//! list of them (several bootstrap servers of one cluster). An app picks one environment with
//! `bootstrap_servers_id` (or `fastkafka run --kafka-broker`), and that choice applies to every
//! cluster at once: a decorator's `brokers=` override must define the same environments as the
//! app, so picking `production` can never leave one handler pointing at a development cluster.
//!
//! A cluster is identified by its resolved bootstrap servers ([`ClusterId`]): two
//! configurations that resolve to the same servers are the same cluster, share one producer and,
//! in the in-memory broker, one set of topics.
//!
//! An entry may name a `standby`: the cluster its consumers and producers fail over to when it
//! is lost ([`crate::transport::failover`]). It takes the same forms as an entry (one broker or
//! a list) and is an identity of its own; FastKafka ignored unknown keys, so such a file stays
//! valid for it.
//!
//! Validation is written out by hand rather than derived: each mistake gets a message that names
//! the environment, the key and the allowed values, which serde's untagged enums cannot give.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::error::{Error, Result};

mod parse;
use parse::{describe, parse_entry};

/// The port a broker entry gets when it names none (Kafka's well-known port, as in FastKafka).
pub const DEFAULT_PORT: u16 = 9092;

/// One bootstrap server of a cluster, as written in `kafka_brokers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddress {
    /// Host name or IP address.
    pub url: String,
    /// TCP port.
    pub port: u16,
    /// Free text, shown in generated documentation.
    pub description: String,
    /// The protocol name for documentation (`kafka` unless given).
    pub protocol: String,
    /// Security settings for documentation, kept as given.
    pub security: Option<Value>,
}

impl BrokerAddress {
    /// A broker at `url:port` with the default description and protocol.
    pub fn new(url: impl Into<String>, port: u16) -> Self {
        Self {
            url: url.into(),
            port,
            description: String::new(),
            protocol: "kafka".to_owned(),
            security: None,
        }
    }

    /// `host:port`, as Kafka clients take it.
    pub fn address(&self) -> String {
        format!("{}:{}", self.url, self.port)
    }
}

/// The identity of a cluster: its bootstrap servers, sorted and joined by commas.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClusterId(Arc<str>);

impl ClusterId {
    /// The identity of a cluster reached through `addresses` (`host:port` each); their order
    /// and repetitions do not matter.
    pub fn from_addresses<I, S>(addresses: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut all: Vec<String> = addresses.into_iter().map(Into::into).collect();
        all.sort();
        all.dedup();
        Self(all.join(",").into())
    }

    /// The bootstrap servers, `host:port[,host:port...]`.
    pub fn bootstrap_servers(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClusterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Environment name → the bootstrap servers of one cluster in that environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaBrokers {
    environments: BTreeMap<String, Vec<BrokerAddress>>,
    /// Environment name → the brokers of the cluster it fails over to, where one is named.
    standbys: BTreeMap<String, Vec<BrokerAddress>>,
}

impl KafkaBrokers {
    /// FastKafka's default: one environment, `localhost`, with a broker at `localhost:9092`.
    pub fn localhost() -> Self {
        let mut broker = BrokerAddress::new("localhost", DEFAULT_PORT);
        broker.description = "local kafka broker".to_owned();
        Self::from_environments([("localhost".to_owned(), vec![broker])])
            .expect("the default configuration is valid")
    }

    /// Builds a configuration in code.
    ///
    /// Fails when there is no environment or an environment has no broker.
    pub fn from_environments<I>(environments: I) -> Result<Self>
    where
        I: IntoIterator<Item = (String, Vec<BrokerAddress>)>,
    {
        let environments: BTreeMap<_, _> = environments.into_iter().collect();
        if environments.is_empty() {
            return Err(Error::Config(
                "kafka_brokers must define at least one environment, e.g. \
                 {'localhost': {'url': 'localhost', 'port': 9092}}"
                    .to_owned(),
            ));
        }
        if let Some((name, _)) = environments.iter().find(|(_, brokers)| brokers.is_empty()) {
            return Err(Error::Config(format!(
                "kafka_brokers['{name}'] is an empty list; give at least one broker \
                 {{'url': ..., 'port': ...}}"
            )));
        }
        Ok(Self {
            environments,
            standbys: BTreeMap::new(),
        })
    }

    /// The same configuration with `standby` as the cluster `environment`'s consumers and
    /// producers fail over to.
    pub fn with_standby(mut self, environment: &str, standby: Vec<BrokerAddress>) -> Result<Self> {
        self.brokers(environment)?;
        if standby.is_empty() {
            return Err(Error::Config(format!(
                "the standby of kafka_brokers['{environment}'] needs at least one broker"
            )));
        }
        self.standbys.insert(environment.to_owned(), standby);
        Ok(self)
    }

    /// Reads FastKafka's `kafka_brokers` shape from a JSON-like value:
    /// `{env: {url, port, description?, protocol?, security?} | [{...}, ...]}`.
    ///
    /// `port` may be a number or a string holding one; unknown keys in a broker entry are
    /// ignored, as FastKafka ignored them.
    pub fn from_value(value: &Value) -> Result<Self> {
        let Value::Object(map) = value else {
            return Err(Error::Config(format!(
                "kafka_brokers must be a mapping of environment name to broker(s), got {}",
                describe(value)
            )));
        };
        let mut environments = Vec::with_capacity(map.len());
        let mut standbys = Vec::new();
        for (name, entry) in map {
            let path = format!("kafka_brokers['{name}']");
            let (brokers, standby) = parse_entry(&path, entry)?;
            environments.push((name.clone(), brokers));
            if let Some(standby) = standby {
                standbys.push((name.clone(), standby));
            }
        }
        let mut brokers = Self::from_environments(environments)?;
        for (name, standby) in standbys {
            brokers = brokers.with_standby(&name, standby)?;
        }
        Ok(brokers)
    }

    /// The cluster `environment`'s consumers and producers fail over to, if it names one.
    pub fn standby(&self, environment: &str) -> Result<Option<ClusterId>> {
        self.brokers(environment)?;
        Ok(self.standbys.get(environment).map(|brokers| id_of(brokers)))
    }

    /// The standby brokers of `environment` as written, if it names one (for documentation).
    pub fn standby_brokers(&self, environment: &str) -> Option<&[BrokerAddress]> {
        self.standbys.get(environment).map(Vec::as_slice)
    }

    /// The environment names, sorted.
    pub fn environments(&self) -> impl Iterator<Item = &str> {
        self.environments.keys().map(String::as_str)
    }

    /// The brokers of one environment.
    pub fn brokers(&self, environment: &str) -> Result<&[BrokerAddress]> {
        self.environments
            .get(environment)
            .map(Vec::as_slice)
            .ok_or_else(|| {
                Error::Config(format!(
                    "unknown kafka broker environment '{environment}'; known environments: {}",
                    self.environment_list()
                ))
            })
    }

    /// The cluster that `environment` names.
    pub fn resolve(&self, environment: &str) -> Result<ClusterId> {
        Ok(id_of(self.brokers(environment)?))
    }

    /// Checks that `self`, used as a `brokers=` override, defines exactly the environments of
    /// the app's `default`, so one environment choice selects a cluster for every handler.
    pub fn check_override_of(&self, default: &KafkaBrokers) -> Result<()> {
        if self.environments.keys().eq(default.environments.keys()) {
            return Ok(());
        }
        let omitted: Vec<&str> = default
            .environments()
            .filter(|name| !self.environments.contains_key(*name))
            .collect();
        let extra: Vec<&str> = self
            .environments()
            .filter(|name| !default.environments.contains_key(*name))
            .collect();
        Err(Error::Config(format!(
            "To override application default brokers, you must define all of the broker options. \
             Default defined: {}, omitted: {omitted:?}, not in the default: {extra:?}",
            default.environment_list()
        )))
    }

    fn environment_list(&self) -> String {
        format!("{:?}", self.environments().collect::<Vec<_>>())
    }
}

impl<'de> Deserialize<'de> for KafkaBrokers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Self::from_value(&value).map_err(serde::de::Error::custom)
    }
}

fn id_of(brokers: &[BrokerAddress]) -> ClusterId {
    ClusterId::from_addresses(brokers.iter().map(BrokerAddress::address))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn overrides_must_define_the_same_environments() {
        let app = KafkaBrokers::from_value(&json!({"dev": {"url": "a"}, "prod": {"url": "b"}}));
        let partial = KafkaBrokers::from_value(&json!({"dev": {"url": "c"}}));
        let message = partial
            .unwrap()
            .check_override_of(app.as_ref().unwrap())
            .unwrap_err()
            .to_string();
        assert!(message.starts_with("To override application default brokers"));
        assert!(message.contains("omitted: [\"prod\"]"));
    }
}
