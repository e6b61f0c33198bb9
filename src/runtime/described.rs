//! What a registration says of itself for its documentation: its direction, a description and
//! its message. Kept with the registrations (not in [`crate::docs`]) so that the runtime is the
//! one registry of an app — the docs, the test mirrors and the CLI read it from there — while
//! the docs module depends on the runtime and never the other way round.
//!
//! A message's schema is made when the docs are written, not when the function is registered:
//! importing an app (every `fastkafka run` worker does) should not pay for JSON Schemas nobody
//! reads.

use std::fmt;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use crate::error::Result;

/// Whether a function reads or writes its channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// A consumer.
    Consumes,
    /// A producer.
    Produces,
}

/// What one consumer's or producer's messages look like.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageDoc {
    /// The message's name: its type's (`TestMsg`).
    pub name: String,
    /// Its schema: a JSON Schema (definitions under `$defs`, referred to as `#/$defs/X`), or —
    /// with `schema_format` — a schema in that format (an Avro schema).
    pub payload: Value,
    /// The payload's content type (`application/json`).
    #[serde(default = "json_content")]
    pub content_type: String,
    /// AsyncAPI's schema format when the payload is not a JSON Schema
    /// (`application/vnd.apache.avro;version=1.9.0`).
    #[serde(default)]
    pub schema_format: Option<String>,
    /// Whether the function takes or returns a list of them (a batch).
    #[serde(default)]
    pub batch: bool,
    /// Whether records carry a key the function sets (a `KafkaEvent`).
    #[serde(default)]
    pub keyed: bool,
}

fn json_content() -> String {
    "application/json".to_owned()
}

impl MessageDoc {
    /// A JSON message of `T`, its schema from schemars.
    pub fn json<T: schemars::JsonSchema>() -> Self {
        let schema = schemars::SchemaGenerator::default().into_root_schema_for::<T>();
        Self {
            name: T::schema_name().into_owned(),
            payload: schema.to_value(),
            content_type: json_content(),
            schema_format: None,
            batch: false,
            keyed: false,
        }
    }
}

/// Makes a registration's [`MessageDoc`] when the docs ask for it.
pub type DescribeMessage = Arc<dyn Fn() -> Result<MessageDoc> + Send + Sync>;

/// What a consumer or producer says of itself in the docs.
#[derive(Clone, Default)]
pub struct Described {
    /// Its description (a docstring, `description=`).
    pub description: Option<String>,
    /// Its message; `None`: an empty schema named after nothing in particular (`message`).
    pub message: Option<DescribeMessage>,
}

impl Described {
    /// A description of a function whose message is known now.
    pub fn of(description: Option<String>, message: MessageDoc) -> Self {
        Self {
            description,
            message: Some(Arc::new(move || Ok(message.clone()))),
        }
    }

    /// Its message, made now.
    pub fn message(&self) -> Result<MessageDoc> {
        match &self.message {
            Some(describe) => describe(),
            None => Ok(MessageDoc {
                name: "message".to_owned(),
                payload: serde_json::json!({}),
                content_type: json_content(),
                schema_format: None,
                batch: false,
                keyed: false,
            }),
        }
    }
}

impl fmt::Debug for Described {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Described")
            .field("description", &self.description)
            .field("message", &self.message.as_ref().map(|_| "…"))
            .finish()
    }
}
