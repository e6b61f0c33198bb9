//! The Kafka client options an app and its consumers and producers accept, and what each
//! becomes — once, for the Rust and the Python API alike.
//!
//! FastKafka passed its keyword arguments to aiokafka, so apps are written with aiokafka's
//! option names. Each is listed here with what it becomes: a librdkafka property, a setting of
//! the consumer loop, or — for the aiokafka options librdkafka has no counterpart for — an
//! error saying what to do instead. A name with a dot in it is a raw librdkafka property,
//! passed through as is (librdkafka rejects unknown ones at start, naming them). Anything else
//! is a mistake, rejected with a [`Error::Config`] naming it, never silently ignored.
//!
//! Values are JSON values (what pythonize makes of Python's, what a Rust user writes with
//! `serde_json::json!`); no error shows a value, since it may be a password.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::transport::ClientProperties;

/// Options by name, as given: `{"group_id": "g", "session_timeout_ms": 10000, ...}`.
pub type Options = BTreeMap<String, Value>;

/// The key of [`unrepresentable`] values.
const TYPE_ONLY: &str = "$type";

/// Stands for a value JSON cannot hold (a Python function, bytes, an SSL context): the option
/// check names the option and the value's type, never the value.
pub fn unrepresentable(type_name: &str) -> Value {
    serde_json::json!({ TYPE_ONLY: type_name })
}

/// Options of both clients: aiokafka name → librdkafka property.
const COMMON: &[(&str, &str)] = &[
    ("client_id", "client.id"),
    ("metadata_max_age_ms", "metadata.max.age.ms"),
    ("retry_backoff_ms", "retry.backoff.ms"),
    ("connections_max_idle_ms", "connections.max.idle.ms"),
    ("security_protocol", "security.protocol"),
    ("ssl_cafile", "ssl.ca.location"),
    ("ssl_certfile", "ssl.certificate.location"),
    ("ssl_keyfile", "ssl.key.location"),
    ("sasl_mechanism", "sasl.mechanism"),
    ("sasl_plain_username", "sasl.username"),
    ("sasl_plain_password", "sasl.password"),
    ("sasl_kerberos_service_name", "sasl.kerberos.service.name"),
];

const CONSUMER: &[(&str, &str)] = &[
    ("group_instance_id", "group.instance.id"),
    ("fetch_max_wait_ms", "fetch.wait.max.ms"),
    ("fetch_max_bytes", "fetch.max.bytes"),
    ("fetch_min_bytes", "fetch.min.bytes"),
    ("max_partition_fetch_bytes", "max.partition.fetch.bytes"),
    ("check_crcs", "check.crcs"),
    (
        "partition_assignment_strategy",
        "partition.assignment.strategy",
    ),
    ("max_poll_interval_ms", "max.poll.interval.ms"),
    ("session_timeout_ms", "session.timeout.ms"),
    ("heartbeat_interval_ms", "heartbeat.interval.ms"),
    ("isolation_level", "isolation.level"),
    ("request_timeout_ms", "socket.timeout.ms"),
];

const PRODUCER: &[(&str, &str)] = &[
    ("acks", "acks"),
    ("compression_type", "compression.type"),
    ("max_batch_size", "batch.size"),
    ("max_request_size", "message.max.bytes"),
    ("linger_ms", "linger.ms"),
    ("enable_idempotence", "enable.idempotence"),
    ("request_timeout_ms", "request.timeout.ms"),
    ("send_backoff_ms", "retry.backoff.ms"),
];

/// Consumer options the consumer loop itself implements.
const CONSUMER_LOOP: &[&str] = &[
    "group_id",
    "auto_offset_reset",
    "max_poll_records",
    "enable_auto_commit",
    "auto_commit_interval_ms",
];

/// Options of a cluster's standby ([`crate::transport::failover`]), for the app and both
/// clients (`failover_rewind` means something to consumers only, and is refused on
/// producers).
const FAILOVER: &[&str] = &["failover_after", "failover_rewind", "failback"];

/// aiokafka options with no librdkafka counterpart: accepted names, refused with a reason.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("key_deserializer", "use decoder= on @app.consumes"),
    ("value_deserializer", "use decoder= on @app.consumes"),
    ("key_serializer", "use encoder= on @app.produces"),
    ("value_serializer", "use encoder= on @app.produces"),
    (
        "partitioner",
        "librdkafka partitions by key (pass 'partitioner' as a raw property name)",
    ),
    (
        "ssl_context",
        "give ssl_cafile/ssl_certfile/ssl_keyfile instead",
    ),
    (
        "sasl_oauth_token_provider",
        "give it to FastKafka(...): every client of the app gets its tokens from one provider",
    ),
    (
        "sasl_kerberos_domain_name",
        "not supported by the librdkafka transport",
    ),
    ("transactional_id", "transactions are not supported"),
    ("transaction_timeout_ms", "transactions are not supported"),
    (
        "rebalance_timeout_ms",
        "librdkafka uses max_poll_interval_ms",
    ),
    (
        "consumer_timeout_ms",
        "not used: the consumer loop waits for records without a timeout",
    ),
    (
        "exclude_internal_topics",
        "internal topics are never subscribed to by name",
    ),
    ("api_version", "librdkafka negotiates the API version"),
];

/// Which client a set of options is for: it decides the allowed names and their properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// A consumer: `@app.consumes(**options)`.
    Consumer,
    /// A producer: `@app.produces(**options)`.
    Producer,
    /// The app: `FastKafka(**options)`, defaults for both kinds of client.
    App,
}

impl Client {
    fn table(self) -> Vec<(&'static str, &'static str)> {
        let own: &[(&str, &str)] = match self {
            Client::Consumer => CONSUMER,
            Client::Producer => PRODUCER,
            Client::App => &[],
        };
        let mut table: Vec<_> = COMMON.iter().chain(own).copied().collect();
        if self == Client::App {
            // Consumer first: `request_timeout_ms` is in both, and each client's own table
            // maps it when the app's options reach it.
            table.extend(CONSUMER.iter().chain(PRODUCER).copied());
        }
        table
    }

    fn allows(self, name: &str) -> bool {
        is_raw(name)
            || self.table().iter().any(|(known, _)| *known == name)
            || UNSUPPORTED.iter().any(|(known, _)| *known == name)
            || (self != Client::Producer && CONSUMER_LOOP.contains(&name))
            || (FAILOVER.contains(&name)
                && !(self == Client::Producer && name == "failover_rewind"))
    }

    fn allowed_names(self) -> Vec<&'static str> {
        let mut names: Vec<&str> = self.table().into_iter().map(|(name, _)| name).collect();
        names.extend(UNSUPPORTED.iter().map(|(name, _)| *name));
        if self != Client::Producer {
            names.extend(CONSUMER_LOOP);
        }
        names.extend(FAILOVER.iter().filter(|name| self.allows(name)));
        names.sort_unstable();
        names.dedup();
        names
    }

    /// The app-level options that apply to this client: its own names and raw properties.
    pub fn inherit(self, app_options: &Options) -> Options {
        app_options
            .iter()
            .filter(|(name, _)| self.allows(name))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect()
    }
}

fn is_raw(name: &str) -> bool {
    name.contains('.')
}

/// Raises [`Error::Config`] naming every option of `given` not allowed for `client`, or the
/// first one that is known but unsupported; `place` says where they were given (`consumes()`).
pub fn check(given: &Options, client: Client, place: &str) -> Result<()> {
    let unknown: Vec<&str> = given
        .keys()
        .map(String::as_str)
        .filter(|name| !client.allows(name))
        .collect();
    if !unknown.is_empty() {
        return Err(Error::Config(format!(
            "Unallowed key arguments passed: {} (in {place}); allowed: {}, or a librdkafka \
             property with dots in its name",
            unknown.join(", "),
            client.allowed_names().join(", ")
        )));
    }
    for (name, value) in given {
        let Some((_, reason)) = UNSUPPORTED.iter().find(|(known, _)| known == name) else {
            continue;
        };
        if !(name == "api_version" && value.as_str() == Some("auto")) {
            return Err(Error::Config(format!(
                "Option '{name}' is not supported: {reason}"
            )));
        }
    }
    Ok(())
}

fn property_value(property: &str, value: &Value) -> Result<String> {
    Ok(match value {
        Value::Bool(flag) => flag.to_string(),
        Value::Null if property == "compression.type" => "none".to_owned(),
        Value::String(text) if property == "security.protocol" => text.to_lowercase(),
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        // The value is not shown: it may be a password or a key.
        other => {
            return Err(Error::Config(format!(
                "Option for librdkafka property '{property}' must be a string, number or bool, \
                 got {}",
                kind_of(other)
            )))
        }
    })
}

pub(super) fn kind_of(value: &Value) -> String {
    match value {
        Value::Null => "None".to_owned(),
        Value::Bool(_) => "a bool".to_owned(),
        Value::Number(_) => "a number".to_owned(),
        Value::String(_) => "a string".to_owned(),
        Value::Array(_) => "a list".to_owned(),
        Value::Object(object) => match object.get(TYPE_ONLY).and_then(Value::as_str) {
            Some(type_name) if object.len() == 1 => format!("a value of type {type_name}"),
            _ => "a mapping".to_owned(),
        },
    }
}

pub(super) fn translate(options: &Options, client: Client) -> Result<ClientProperties> {
    let table = client.table();
    let mut properties = ClientProperties::new();
    for (name, value) in options {
        let property = if is_raw(name) {
            Some(name.as_str())
        } else {
            table
                .iter()
                .find(|(known, _)| known == name)
                .map(|(_, p)| *p)
        };
        if let Some(property) = property {
            properties.insert(property.to_owned(), property_value(property, value)?);
        }
    }
    Ok(properties)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{ConsumerSettings, ProducerSettings};
    use serde_json::json;

    fn producer_properties(options: &Options, place: &str) -> Result<ClientProperties> {
        ProducerSettings::from_options(options, place).map(|settings| settings.properties)
    }

    fn options(value: Value) -> Options {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn aiokafka_names_become_librdkafka_properties() {
        let settings = ConsumerSettings::from_options(
            &options(json!({"group_id": "g", "session_timeout_ms": 10000,
                            "security_protocol": "SASL_SSL", "fetch.wait.max.ms": 5})),
            "consumes()",
        )
        .unwrap();
        assert_eq!(settings.group_id.as_deref(), Some("g"));
        assert_eq!(settings.properties["session.timeout.ms"], "10000");
        assert_eq!(settings.properties["security.protocol"], "sasl_ssl");
        assert_eq!(settings.properties["fetch.wait.max.ms"], "5");
        assert!(!settings.properties.contains_key("group.id"));
    }

    #[test]
    fn unknown_names_are_refused_by_name_and_values_never_shown() {
        let error = producer_properties(&options(json!({"max_poll_records": 5})), "produces()")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("max_poll_records (in produces())"),
            "{error}"
        );
        let error = producer_properties(
            &options(json!({"sasl_plain_password": ["hunter2"]})),
            "produces()",
        )
        .unwrap_err()
        .to_string();
        assert!(
            !error.contains("hunter2") && error.contains("sasl.password"),
            "{error}"
        );
    }

    #[test]
    fn unsupported_options_say_what_to_do() {
        let error = check(
            &options(json!({"key_serializer": null})),
            Client::App,
            "FastKafka()",
        )
        .unwrap_err();
        assert!(error.to_string().contains("use encoder="), "{error}");
        check(&options(json!({"api_version": "auto"})), Client::App, "x").unwrap();
    }

    #[test]
    fn disabling_auto_commit_commits_only_on_rebalance_and_stop() {
        let settings = ConsumerSettings::from_options(
            &options(json!({"enable_auto_commit": false})),
            "consumes()",
        )
        .unwrap();
        assert_eq!(settings.commit_interval, None);
    }

    #[test]
    fn app_options_reach_each_client_under_its_own_names() {
        let app = options(
            json!({"client_id": "c", "linger_ms": 5, "session_timeout_ms": 9,
                                 "socket.keepalive.enable": true}),
        );
        check(&app, Client::App, "FastKafka()").unwrap();
        let producer = producer_properties(&Client::Producer.inherit(&app), "x").unwrap();
        assert_eq!(producer.get("linger.ms").map(String::as_str), Some("5"));
        assert!(!producer.contains_key("session.timeout.ms"));
        assert_eq!(producer["socket.keepalive.enable"], "true");
        let consumer =
            ConsumerSettings::from_options(&Client::Consumer.inherit(&app), "x").unwrap();
        assert!(!consumer.properties.contains_key("linger.ms"));
        assert_eq!(consumer.properties["client.id"], "c");
    }

    #[test]
    fn failover_options_reach_both_clients_and_are_checked() {
        let app = options(json!({"failover_after": 5, "failover_rewind": 0.5, "failback": false}));
        check(&app, Client::App, "FastKafka()").unwrap();
        let consumer =
            ConsumerSettings::from_options(&Client::Consumer.inherit(&app), "x").unwrap();
        assert_eq!(consumer.failover.after, std::time::Duration::from_secs(5));
        assert_eq!(
            consumer.failover.rewind,
            std::time::Duration::from_millis(500)
        );
        assert!(!consumer.failover.failback);
        assert!(consumer.properties.is_empty(), "{:?}", consumer.properties);
        let producer =
            ProducerSettings::from_options(&Client::Producer.inherit(&app), "x").unwrap();
        assert_eq!(producer.failover.after, std::time::Duration::from_secs(5));
        assert!(producer.properties.is_empty());
        let rewind = producer_properties(&options(json!({"failover_rewind": 1})), "produces()")
            .unwrap_err()
            .to_string();
        assert!(
            rewind.contains("failover_rewind (in produces())"),
            "{rewind}"
        );
        let zero = ConsumerSettings::from_options(&options(json!({"failover_after": 0})), "c()")
            .unwrap_err()
            .to_string();
        assert!(
            zero.contains("failover_after must be a positive number"),
            "{zero}"
        );
    }
}
