//! Codecs: how a typed app turns values into payload bytes and back (JSON through serde by
//! default, what the Python side writes with pydantic).

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Turns values into payload bytes and back.
pub trait Codec<T>: Send + Sync + 'static {
    /// The value a payload holds.
    fn decode(&self, payload: &[u8]) -> std::result::Result<T, String>;
    /// The payload of a value.
    fn encode(&self, value: &T) -> std::result::Result<Vec<u8>, String>;
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
