//! The AsyncAPI documents: 2.6.0 (FastKafka's shape) and 3.0.0, from resolved [`Docs`].

use serde_json::{json, Map, Value};

use super::{Channel, Direction, Docs, MessageDoc, Operation};

const KAFKA_BINDING_VERSION: &str = "0.4.0";

fn info(docs: &Docs) -> Value {
    let info = &docs.info;
    let mut out = Map::new();
    let title = if info.title.is_empty() {
        "fastkafka app"
    } else {
        &info.title
    };
    let version = if info.version.is_empty() {
        "0.1.0"
    } else {
        &info.version
    };
    out.insert("title".into(), title.into());
    out.insert("version".into(), version.into());
    if !info.description.is_empty() {
        out.insert("description".into(), info.description.clone().into());
    }
    if let Some(contact) = &info.contact {
        out.insert("contact".into(), contact.clone());
    }
    Value::Object(out)
}

fn security_scheme_name(server: &str) -> String {
    format!("{server}_security")
}

fn security_schemes(docs: &Docs) -> Map<String, Value> {
    docs.servers
        .iter()
        .filter_map(|server| {
            let scheme = server.security.clone()?;
            Some((security_scheme_name(&server.name), scheme))
        })
        .collect()
}

fn message_object(key: &str, message: &MessageDoc, payload: &Value, v3: bool) -> Value {
    let mut out = Map::new();
    out.insert("name".into(), key.into());
    out.insert("title".into(), key.into());
    out.insert("contentType".into(), message.content_type.clone().into());
    match (&message.schema_format, v3) {
        (Some(format), false) => {
            out.insert("schemaFormat".into(), format.clone().into());
            out.insert("payload".into(), payload.clone());
        }
        (Some(format), true) => {
            out.insert(
                "payload".into(),
                json!({ "schemaFormat": format, "schema": payload }),
            );
        }
        (None, _) => {
            out.insert("payload".into(), payload.clone());
        }
    }
    if message.keyed {
        out.insert(
            "bindings".into(),
            json!({ "kafka": { "key": { "type": "string" }, "bindingVersion": KAFKA_BINDING_VERSION } }),
        );
    }
    Value::Object(out)
}

fn components(docs: &Docs, v3: bool) -> Value {
    let messages: Map<String, Value> = docs
        .messages
        .iter()
        .map(|(key, (message, payload))| (key.clone(), message_object(key, message, payload, v3)))
        .collect();
    let mut out = Map::new();
    out.insert("messages".into(), Value::Object(messages));
    out.insert(
        "schemas".into(),
        Value::Object(docs.schemas.clone().into_iter().collect()),
    );
    let schemes = security_schemes(docs);
    if !schemes.is_empty() {
        out.insert("securitySchemes".into(), Value::Object(schemes));
    }
    Value::Object(out)
}

fn channel_binding(channel: &Channel) -> Value {
    json!({ "kafka": { "topic": channel.topic, "bindingVersion": KAFKA_BINDING_VERSION } })
}

fn describe(operations: &[&Operation]) -> Option<String> {
    let described: Vec<String> = operations
        .iter()
        .filter_map(|op| op.description.clone())
        .collect();
    (!described.is_empty()).then(|| described.join("\n\n"))
}

/// AsyncAPI 2.6.0: consumers `subscribe`, producers `publish` (FastKafka's choice).
pub(super) fn v2_6(docs: &Docs) -> Value {
    let servers: Map<String, Value> = docs
        .servers
        .iter()
        .map(|server| {
            let mut out = Map::new();
            match &server.single {
                // FastKafka's shape, which its users' tests of the spec read: the host in
                // `url`, the port as the default of the `port` variable (a string).
                Some((host, port)) => {
                    out.insert("url".into(), host.clone().into());
                    out.insert(
                        "variables".into(),
                        json!({ "port": { "default": port.to_string() } }),
                    );
                }
                // A cluster of several brokers has no one host: its bootstrap servers.
                None => {
                    out.insert("url".into(), server.url.clone().into());
                }
            }
            out.insert("protocol".into(), server.protocol.clone().into());
            out.insert("description".into(), server.description.clone().into());
            if server.security.is_some() {
                out.insert(
                    "security".into(),
                    json!([{ security_scheme_name(&server.name): [] }]),
                );
            }
            (server.name.clone(), Value::Object(out))
        })
        .collect();
    let channels: Map<String, Value> = docs
        .channels
        .iter()
        .map(|channel| {
            let mut item = Map::new();
            item.insert("servers".into(), json!(channel.servers));
            for (direction, verb) in [
                (Direction::Consumes, "subscribe"),
                (Direction::Produces, "publish"),
            ] {
                let ops: Vec<&Operation> = channel
                    .operations
                    .iter()
                    .filter(|op| op.direction == direction)
                    .collect();
                if ops.is_empty() {
                    continue;
                }
                let mut operation = Map::new();
                operation.insert(
                    "operationId".into(),
                    ops.iter()
                        .map(|op| op.function.as_str())
                        .collect::<Vec<_>>()
                        .join("_and_")
                        .into(),
                );
                if let Some(description) = describe(&ops) {
                    operation.insert("description".into(), description.into());
                }
                let mut refs: Vec<Value> = ops
                    .iter()
                    .map(|op| json!({ "$ref": format!("#/components/messages/{}", op.message) }))
                    .collect();
                refs.dedup();
                let message = if refs.len() == 1 {
                    refs.remove(0)
                } else {
                    json!({ "oneOf": refs })
                };
                operation.insert("message".into(), message);
                item.insert(verb.into(), Value::Object(operation));
            }
            item.insert("bindings".into(), channel_binding(channel));
            (channel.id.clone(), Value::Object(item))
        })
        .collect();
    json!({
        "asyncapi": "2.6.0",
        "defaultContentType": "application/json",
        "info": info(docs),
        "servers": servers,
        "channels": channels,
        "components": components(docs, false),
    })
}

/// A channel id AsyncAPI 3.0 accepts (`[\w.\-]`).
fn id_of(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// AsyncAPI 3.0.0: consumers `receive`, producers `send`.
pub(super) fn v3_0(docs: &Docs) -> Value {
    let servers: Map<String, Value> = docs
        .servers
        .iter()
        .map(|server| {
            let mut out = Map::new();
            out.insert("host".into(), server.url.clone().into());
            out.insert("protocol".into(), server.protocol.clone().into());
            out.insert("description".into(), server.description.clone().into());
            if server.security.is_some() {
                out.insert(
                    "security".into(),
                    json!([{ "$ref": format!("#/components/securitySchemes/{}", security_scheme_name(&server.name)) }]),
                );
            }
            (id_of(&server.name), Value::Object(out))
        })
        .collect();
    let mut channels = Map::new();
    let mut operations = Map::new();
    for channel in &docs.channels {
        let id = id_of(&channel.id);
        let mut messages = Map::new();
        for op in &channel.operations {
            messages.insert(
                op.message.clone(),
                json!({ "$ref": format!("#/components/messages/{}", op.message) }),
            );
        }
        channels.insert(
            id.clone(),
            json!({
                "address": channel.topic,
                "servers": channel.servers.iter()
                    .map(|name| json!({ "$ref": format!("#/servers/{}", id_of(name)) }))
                    .collect::<Vec<_>>(),
                "messages": messages,
                "bindings": channel_binding(channel),
            }),
        );
        for op in &channel.operations {
            let mut operation = Map::new();
            let action = match op.direction {
                Direction::Consumes => "receive",
                Direction::Produces => "send",
            };
            operation.insert("action".into(), action.into());
            operation.insert(
                "channel".into(),
                json!({ "$ref": format!("#/channels/{id}") }),
            );
            operation.insert(
                "messages".into(),
                json!([{ "$ref": format!("#/channels/{id}/messages/{}", op.message) }]),
            );
            if let Some(description) = &op.description {
                operation.insert("description".into(), description.clone().into());
            }
            operations.insert(id_of(&op.function), Value::Object(operation));
        }
    }
    json!({
        "asyncapi": "3.0.0",
        "defaultContentType": "application/json",
        "info": info(docs),
        "servers": servers,
        "channels": channels,
        "operations": operations,
        "components": components(docs, true),
    })
}
