//! Codecs: how a typed app turns values into payload bytes and back (JSON through serde by
//! default, what the Python side writes with pydantic).

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::docs::MessageDoc;

/// Turns values into payload bytes and back.
pub trait Codec<T>: Send + Sync + 'static {
    /// The value a payload holds.
    fn decode(&self, payload: &[u8]) -> std::result::Result<T, String>;
    /// The payload of a value.
    fn encode(&self, value: &T) -> std::result::Result<Vec<u8>, String>;
    /// What its messages look like, for the app's AsyncAPI docs; `None` documents them by
    /// their type's name only.
    fn message_doc(&self) -> Option<MessageDoc> {
        None
    }
}

/// JSON like [`Json`], and documented with the type's JSON Schema (schemars) in the app's
/// AsyncAPI docs: `#[derive(Serialize, Deserialize, schemars::JsonSchema)]` on the type.
#[derive(Debug, Clone, Copy, Default)]
pub struct DocumentedJson;

impl<T: Serialize + DeserializeOwned + schemars::JsonSchema> Codec<T> for DocumentedJson {
    fn decode(&self, payload: &[u8]) -> std::result::Result<T, String> {
        Json.decode(payload)
    }

    fn encode(&self, value: &T) -> std::result::Result<Vec<u8>, String> {
        Codec::<T>::encode(&Json, value)
    }

    fn message_doc(&self) -> Option<MessageDoc> {
        Some(MessageDoc::json::<T>())
    }
}

/// JSON through serde, the default codec (what the Python side writes with pydantic).
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

impl<T: Serialize + DeserializeOwned> Codec<T> for Json {
    fn decode(&self, payload: &[u8]) -> std::result::Result<T, String> {
        serde_json::from_slice(payload).map_err(|e| e.to_string())
    }

    fn encode(&self, value: &T) -> std::result::Result<Vec<u8>, String> {
        serde_json::to_vec(value).map_err(|e| e.to_string())
    }
}
