//! AsyncAPI documentation of a multi-cluster app, for both APIs: the spec (2.6 or 3.0) and a
//! self-contained HTML page.
//!
//! An app is described by its info ([`AppInfo`]), its default `kafka_brokers` and one
//! [`ChannelDoc`] per consumer or producer: its topic, its cluster (the app's or a `brokers=`
//! override), its direction and its message ([`MessageDoc`], a JSON Schema from pydantic or
//! schemars, or an Avro schema). [`Docs::new`] resolves that into servers and channels:
//!
//! - **one server per cluster per environment**: the app's cluster keeps the environment names
//!   (FastKafka's shape: `development`, `production`), cluster *k* ≥ 2 gets
//!   `<environment>_cluster_<k>`; each server carries the brokers' description, protocol and
//!   security scheme; a cluster's standby is a server of its own, `<server>_standby`;
//! - **one channel per (topic, cluster)**, bound to the servers of its cluster: the topic's name
//!   on the app's cluster, `<topic>_cluster_<k>` elsewhere (the Kafka binding names the topic);
//! - operations named after the functions, with their descriptions; in 2.6 consumers are
//!   `subscribe` and producers `publish`, as FastKafka wrote them, in 3.0 `receive` and `send`.
//!
//! Then [`Docs::asyncapi`] writes the spec, [`to_yaml`] its YAML and [`Docs::html`] the page.
//! The HTML is rendered here rather than by AsyncAPI's web component: one static page with
//! no script to fetch or run, a few kilobytes instead of a multi-megabyte bundle, readable
//! offline and testable from its DOM.

mod html;
mod spec;
mod yaml;

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

pub use yaml::to_yaml;

use crate::config::KafkaBrokers;
use crate::error::{Error, Result};
use crate::runtime::{ClusterChoice, Runtime};
pub use crate::runtime::{Direction, MessageDoc};

/// Which AsyncAPI version to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AsyncApiVersion {
    /// 2.6.0, the shape FastKafka wrote (the default).
    #[default]
    V2_6,
    /// 3.0.0.
    V3_0,
}

impl std::str::FromStr for AsyncApiVersion {
    type Err = Error;

    fn from_str(value: &str) -> Result<Self> {
        match value {
            "2.6" | "2.6.0" => Ok(Self::V2_6),
            "3.0" | "3.0.0" => Ok(Self::V3_0),
            other => Err(Error::Config(format!(
                "asyncapi_version must be '2.6' or '3.0', got '{other}'"
            ))),
        }
    }
}

/// The app's title, version, description and contact.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppInfo {
    /// The title (default `fastkafka app`).
    #[serde(default)]
    pub title: String,
    /// The app's version (default `0.1.0`).
    #[serde(default)]
    pub version: String,
    /// Free text (Markdown in AsyncAPI).
    #[serde(default)]
    pub description: String,
    /// AsyncAPI's contact object: `name`, `url`, `email`.
    #[serde(default)]
    pub contact: Option<Value>,
}

/// One consumer or producer, as documented.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelDoc {
    /// The function's name: the operation's id.
    pub function: String,
    /// Consumer or producer.
    pub direction: Direction,
    /// Its topic.
    pub topic: String,
    /// Its cluster: [`ClusterChoice::App`] or [`ClusterChoice::Brokers`].
    pub cluster: ClusterChoice,
    /// Its description (a docstring, `description=`).
    pub description: Option<String>,
    /// Its message.
    pub message: MessageDoc,
}

/// One server: a cluster in one environment.
#[derive(Debug, Clone, PartialEq)]
struct Server {
    name: String,
    cluster: usize,
    environment: String,
    /// The cluster's bootstrap servers, `host:port` joined by commas.
    url: String,
    /// Host and port when the cluster is one broker (FastKafka's servers were), for the 2.x
    /// shape FastKafka wrote.
    single: Option<(String, u16)>,
    protocol: String,
    description: String,
    security: Option<Value>,
}

impl Server {
    fn of(
        name: String,
        cluster: usize,
        environment: &str,
        addresses: &[crate::config::BrokerAddress],
        default_description: String,
    ) -> Self {
        let first = &addresses[0];
        Self {
            name,
            cluster,
            environment: environment.to_owned(),
            url: addresses
                .iter()
                .map(|broker| broker.address())
                .collect::<Vec<_>>()
                .join(","),
            single: (addresses.len() == 1).then(|| (first.url.clone(), first.port)),
            protocol: first.protocol.clone(),
            description: if first.description.is_empty() {
                default_description
            } else {
                first.description.clone()
            },
            security: first.security.clone(),
        }
    }
}

/// One (topic, cluster) and the functions that use it.
#[derive(Debug, Clone, PartialEq)]
struct Channel {
    id: String,
    topic: String,
    cluster: usize,
    servers: Vec<String>,
    operations: Vec<Operation>,
}

#[derive(Debug, Clone, PartialEq)]
struct Operation {
    function: String,
    direction: Direction,
    description: Option<String>,
    /// Key of `Docs::messages`.
    message: String,
}

/// An app's documentation, resolved: servers, channels, messages and schemas.
#[derive(Debug, Clone, PartialEq)]
pub struct Docs {
    info: AppInfo,
    servers: Vec<Server>,
    channels: Vec<Channel>,
    /// Message name → the message and its payload (with `$ref`s into `schemas`).
    messages: BTreeMap<String, (MessageDoc, Value)>,
    /// Shared JSON Schemas, by name.
    schemas: BTreeMap<String, Value>,
}

impl Docs {
    /// The documentation of what `runtime` registered — the one registry of an app, for both
    /// APIs. Registrations bound to a fixed cluster (a test harness's mirrors) are not part of
    /// an app's interface and are left out.
    pub fn of(info: AppInfo, runtime: &Runtime) -> Result<Self> {
        let channels = runtime
            .registered()
            .filter(|registered| !matches!(registered.cluster, ClusterChoice::Fixed(_)))
            .map(|registered| {
                Ok(ChannelDoc {
                    function: registered.name.to_owned(),
                    direction: registered.direction,
                    topic: registered.topic.to_owned(),
                    cluster: registered.cluster.clone(),
                    description: registered.described.description.clone(),
                    message: registered.described.message()?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Self::new(info, runtime.brokers(), &channels)
    }

    /// Resolves `channels` of an app whose default clusters are `brokers`.
    pub fn new(info: AppInfo, brokers: &KafkaBrokers, channels: &[ChannelDoc]) -> Result<Self> {
        let mut clusters: Vec<&KafkaBrokers> = vec![brokers];
        let mut docs = Docs {
            info,
            servers: Vec::new(),
            channels: Vec::new(),
            messages: BTreeMap::new(),
            schemas: BTreeMap::new(),
        };
        for channel in channels {
            let cluster = match &channel.cluster {
                ClusterChoice::App => 1,
                ClusterChoice::Brokers(other) => {
                    match clusters.iter().position(|known| *known == other) {
                        Some(index) => index + 1,
                        None => {
                            clusters.push(other);
                            clusters.len()
                        }
                    }
                }
                ClusterChoice::Fixed(id) => {
                    return Err(Error::Config(format!(
                        "'{}' is bound to cluster {id} whatever the environment; only app \
                         clusters and brokers= overrides can be documented",
                        channel.function
                    )))
                }
            };
            let message = docs.add_message(&channel.message)?;
            let id = if cluster == 1 {
                channel.topic.clone()
            } else {
                format!("{}_cluster_{cluster}", channel.topic)
            };
            let operation = Operation {
                function: channel.function.clone(),
                direction: channel.direction,
                description: channel.description.clone(),
                message,
            };
            match docs.channels.iter_mut().find(|known| known.id == id) {
                Some(known) => known.operations.push(operation),
                None => docs.channels.push(Channel {
                    id,
                    topic: channel.topic.clone(),
                    cluster,
                    servers: Vec::new(),
                    operations: vec![operation],
                }),
            }
        }
        for (index, brokers) in clusters.iter().enumerate() {
            docs.add_servers(index + 1, brokers)?;
        }
        for channel in &mut docs.channels {
            channel.servers = docs
                .servers
                .iter()
                .filter(|server| server.cluster == channel.cluster)
                .map(|server| server.name.clone())
                .collect();
        }
        Ok(docs)
    }

    fn add_servers(&mut self, cluster: usize, brokers: &KafkaBrokers) -> Result<()> {
        for environment in brokers.environments() {
            let name = if cluster == 1 {
                environment.to_owned()
            } else {
                format!("{environment}_cluster_{cluster}")
            };
            let default_description = format!("cluster {cluster}, environment '{environment}'");
            let primary = brokers.brokers(environment)?;
            self.servers.push(Server::of(
                name.clone(),
                cluster,
                environment,
                primary,
                default_description.clone(),
            ));
            // A standby is a server of its own, bound to the same channels.
            if let Some(standby) = brokers.standby_brokers(environment) {
                self.servers.push(Server::of(
                    format!("{name}_standby"),
                    cluster,
                    environment,
                    standby,
                    format!(
                        "standby of {name} ({default_description}): its consumers and \
                             producers move here when it is lost"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Registers `message` (once per name and shape) and its schemas; returns its key.
    fn add_message(&mut self, message: &MessageDoc) -> Result<String> {
        let key = if message.batch {
            format!("{}Batch", message.name)
        } else {
            message.name.clone()
        };
        let payload = if message.schema_format.is_some() {
            message.payload.clone()
        } else {
            let mut schema = message.payload.clone();
            if let Some(object) = schema.as_object_mut() {
                // The document says which dialect its schemas are in.
                object.remove("$schema");
            }
            if let Some(Value::Object(definitions)) = schema
                .as_object_mut()
                .and_then(|object| object.remove("$defs"))
            {
                for (name, mut definition) in definitions {
                    rewrite_refs(&mut definition);
                    self.add_schema(name, definition)?;
                }
            }
            rewrite_refs(&mut schema);
            self.add_schema(message.name.clone(), schema)?;
            let reference =
                serde_json::json!({ "$ref": format!("#/components/schemas/{}", message.name) });
            if message.batch {
                serde_json::json!({ "type": "array", "items": reference })
            } else {
                reference
            }
        };
        // One message per name (schemas were checked above); a keyed use documents the key.
        let entry = self
            .messages
            .entry(key.clone())
            .or_insert_with(|| (message.clone(), payload));
        entry.0.keyed |= message.keyed;
        Ok(key)
    }

    /// Registers schema `name`. An undescribed schema (`{}`, a codec without one) gives way
    /// to a described one of the same name; two different descriptions are a mistake.
    fn add_schema(&mut self, name: String, schema: Value) -> Result<()> {
        let undescribed = |value: &Value| value.as_object().is_some_and(|o| o.is_empty());
        match self.schemas.get(&name) {
            Some(known) if undescribed(&schema) || *known == schema => Ok(()),
            Some(known) if !undescribed(known) => Err(Error::Config(format!(
                "two different schemas are both named '{name}'; give the types distinct names"
            ))),
            _ => {
                self.schemas.insert(name, schema);
                Ok(())
            }
        }
    }

    /// The AsyncAPI document.
    pub fn asyncapi(&self, version: AsyncApiVersion) -> Value {
        match version {
            AsyncApiVersion::V2_6 => spec::v2_6(self),
            AsyncApiVersion::V3_0 => spec::v3_0(self),
        }
    }

    /// A self-contained HTML page: servers, channels, operations and message schemas.
    pub fn html(&self) -> String {
        html::render(self)
    }
}

/// `#/$defs/X` (pydantic's and schemars' local definitions) → `#/components/schemas/X`.
fn rewrite_refs(value: &mut Value) {
    match value {
        Value::Object(object) => {
            for (key, inner) in object.iter_mut() {
                match inner {
                    Value::String(reference) if key == "$ref" => {
                        if let Some(name) = reference.strip_prefix("#/$defs/") {
                            *reference = format!("#/components/schemas/{name}");
                        }
                    }
                    other => rewrite_refs(other),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(rewrite_refs),
        _ => {}
    }
}
