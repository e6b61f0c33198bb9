//! Reading `kafka_brokers` entries by hand: one broker or a list, an optional `standby` in the
//! same forms, ports as numbers or strings — each mistake named by its path
//! (`kafka_brokers['prod'][1]['port']`) and the values allowed.

use serde_json::Value;

use super::{id_of, BrokerAddress, DEFAULT_PORT};
use crate::error::{Error, Result};

/// One environment's entry — a broker or a list of them — and the standby it names, if any.
/// In a list, the entries that name a standby must name the same one.
pub(super) fn parse_entry(
    path: &str,
    entry: &Value,
) -> Result<(Vec<BrokerAddress>, Option<Vec<BrokerAddress>>)> {
    let items = items_of(path, entry);
    let mut brokers = Vec::with_capacity(items.len());
    let mut standby: Option<(String, Vec<BrokerAddress>)> = None;
    for (item_path, item) in items {
        brokers.push(parse_broker(&item_path, item)?);
        let Some(named) = item.get("standby").filter(|v| !v.is_null()) else {
            continue;
        };
        let standby_path = format!("{item_path}['standby']");
        let named = parse_standby(&standby_path, named)?;
        match &standby {
            Some((first_path, first)) if id_of(first) != id_of(&named) => {
                return Err(Error::Config(format!(
                    "{standby_path} names another standby than {first_path}; the brokers of one \
                     environment are one cluster with one standby"
                )))
            }
            Some(_) => {}
            None => standby = Some((standby_path, named)),
        }
    }
    Ok((brokers, standby.map(|(_, standby)| standby)))
}

/// The broker entries of `value` — one, or each of a list — with their paths for errors.
fn items_of<'a>(path: &str, value: &'a Value) -> Vec<(String, &'a Value)> {
    match value {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| (format!("{path}[{i}]"), item))
            .collect(),
        other => vec![(path.to_owned(), other)],
    }
}

/// A standby: one broker or a list, with no standby of its own.
fn parse_standby(path: &str, value: &Value) -> Result<Vec<BrokerAddress>> {
    let items = items_of(path, value);
    if items.is_empty() {
        return Err(Error::Config(format!(
            "{path} is an empty list; give at least one broker {{'url': ..., 'port': ...}}"
        )));
    }
    items
        .into_iter()
        .map(|(item_path, item)| {
            if item.get("standby").is_some_and(|v| !v.is_null()) {
                return Err(Error::Config(format!(
                    "{item_path} names a standby of its own; a standby cannot have one"
                )));
            }
            parse_broker(&item_path, item)
        })
        .collect()
}

fn parse_broker(path: &str, value: &Value) -> Result<BrokerAddress> {
    let Value::Object(map) = value else {
        return Err(Error::Config(format!(
            "{path} must be a mapping with 'url' and 'port', got {}",
            describe(value)
        )));
    };
    let url = match map.get("url") {
        Some(Value::String(url)) if !url.trim().is_empty() => url.trim().to_owned(),
        Some(other) => {
            return Err(Error::Config(format!(
                "{path}['url'] must be a non-empty host name, got {}",
                describe(other)
            )))
        }
        None => {
            return Err(Error::Config(format!(
                "{path} is missing the required key 'url' (allowed keys: url, port, description, \
                 protocol, security, standby)"
            )))
        }
    };
    let port = match map.get("port") {
        None | Some(Value::Null) => DEFAULT_PORT,
        Some(value) => parse_port(value).ok_or_else(|| {
            Error::Config(format!(
                "{path}['port'] must be a port number from 1 to 65535 (an int or a string of \
                 digits), got {}",
                describe(value)
            ))
        })?,
    };
    let text = |key: &str, default: &str| -> Result<String> {
        match map.get(key) {
            None | Some(Value::Null) => Ok(default.to_owned()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(Error::Config(format!(
                "{path}['{key}'] must be a string, got {}",
                describe(other)
            ))),
        }
    };
    Ok(BrokerAddress {
        url,
        port,
        description: text("description", "")?,
        protocol: text("protocol", "kafka")?,
        security: map.get("security").filter(|v| !v.is_null()).cloned(),
    })
}

fn parse_port(value: &Value) -> Option<u16> {
    let port = match value {
        Value::Number(n) => n.as_u64()?,
        Value::String(s) => s.trim().parse::<u64>().ok()?,
        _ => return None,
    };
    u16::try_from(port).ok().filter(|p| *p != 0)
}

pub(super) fn describe(value: &Value) -> String {
    match value {
        Value::String(s) => format!("'{s}'"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KafkaBrokers;
    use serde_json::json;

    fn config_error(value: Value) -> String {
        match KafkaBrokers::from_value(&value) {
            Err(Error::Config(message)) => message,
            other => panic!("expected a configuration error, got {other:?}"),
        }
    }

    #[test]
    fn one_broker_or_a_list_per_environment() {
        let brokers = KafkaBrokers::from_value(&json!({
            "development": {"url": "dev", "port": "9093", "unknown": 1},
            "production": [{"url": "b", "port": 9092}, {"url": "a"}],
        }))
        .unwrap();
        assert_eq!(
            brokers.resolve("development").unwrap().bootstrap_servers(),
            "dev:9093"
        );
        assert_eq!(
            brokers.resolve("production").unwrap().bootstrap_servers(),
            "a:9092,b:9092"
        );
    }

    #[test]
    fn mistakes_name_the_key_and_the_allowed_values() {
        let missing_url = config_error(json!({"dev": {"port": 1}}));
        assert!(missing_url.contains("kafka_brokers['dev']") && missing_url.contains("'url'"));
        let bad_port = config_error(json!({"dev": {"url": "h", "port": "ninety"}}));
        assert!(bad_port.contains("['port']") && bad_port.contains("'ninety'"));
        let unknown = KafkaBrokers::localhost().resolve("prod").unwrap_err();
        assert!(unknown.to_string().contains("'prod'"));
        assert!(unknown.to_string().contains("[\"localhost\"]"));
    }

    #[test]
    fn an_entry_may_name_a_standby_in_the_forms_of_an_entry() {
        let brokers = KafkaBrokers::from_value(&json!({
            "dev": {"url": "dev"},
            "prod": [
                {"url": "b", "standby": [{"url": "s2"}, {"url": "s1", "port": 9093}]},
                {"url": "a", "standby": [{"url": "s1", "port": 9093}, {"url": "s2"}]},
            ],
        }))
        .unwrap();
        assert_eq!(brokers.standby("dev").unwrap(), None);
        assert_eq!(
            brokers
                .standby("prod")
                .unwrap()
                .unwrap()
                .bootstrap_servers(),
            "s1:9093,s2:9092"
        );
        assert_eq!(
            brokers.resolve("prod").unwrap().bootstrap_servers(),
            "a:9092,b:9092"
        );
    }

    #[test]
    fn standby_mistakes_name_the_entry() {
        let two = config_error(json!({"prod": [
            {"url": "a", "standby": {"url": "s1"}},
            {"url": "b", "standby": {"url": "s2"}},
        ]}));
        assert!(two.contains("kafka_brokers['prod'][1]['standby']"), "{two}");
        let nested = config_error(json!({"prod": {"url": "a", "standby": {
            "url": "s", "standby": {"url": "t"}}}}));
        assert!(nested.contains("cannot have one"), "{nested}");
        let bad = config_error(json!({"prod": {"url": "a", "standby": {"port": 1}}}));
        assert!(bad.contains("kafka_brokers['prod']['standby']") && bad.contains("'url'"));
    }
}
