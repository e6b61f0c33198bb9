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
    /// The value of a tombstone (a record whose payload is null). By default a tombstone is
    /// not a value: the record fails to decode (and is dead-lettered, still a tombstone).
    fn decode_tombstone(&self) -> std::result::Result<T, String> {
        Err("a tombstone (a record with a null value) is not a value of this type".to_owned())
    }
    /// The value a record's payload holds, a tombstone's included.
    fn decode_value(&self, payload: Option<&[u8]>) -> std::result::Result<T, String> {
        match payload {
            Some(payload) => self.decode(payload),
            None => self.decode_tombstone(),
        }
    }
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

    fn decode_tombstone(&self) -> std::result::Result<T, String> {
        Json.decode_tombstone()
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
        serde_json::from_slice(payload).map_err(|error| describe_json_error(&error))
    }

    /// A tombstone reads as JSON's `null`, as pydantic reads it on the Python side: an
    /// `Option<T>` handler gets `None` (its `&Record` tells a tombstone from a `null` payload),
    /// other types fail to decode it.
    fn decode_tombstone(&self) -> std::result::Result<T, String> {
        self.decode(b"null")
    }

    fn encode(&self, value: &T) -> std::result::Result<Vec<u8>, String> {
        serde_json::to_vec(value).map_err(|e| e.to_string())
    }
}

/// Why a payload is not the JSON expected, for logs and dead-letter headers: serde's message
/// without the values it quotes from the payload (`invalid type: string "4111…"`), which may
/// be personal or secret data; what was expected and where stay.
fn describe_json_error(error: &serde_json::Error) -> String {
    const QUOTING: [&str; 3] = ["invalid type: ", "invalid value: ", "unknown variant "];
    let message = error.to_string();
    let Some(prefix) = QUOTING.iter().find(|prefix| message.starts_with(*prefix)) else {
        return message;
    };
    let rest = &message[prefix.len()..];
    // serde's `Unexpected` reads `string "…"`, `integer `…``, `char '…'`: keep the kind, drop
    // the quoted value; what follows it (`, expected …` and the position) stays.
    let Some(opening) = rest.find(['"', '`', '\'']) else {
        return message;
    };
    let quote = rest[opening..].chars().next().unwrap_or('"');
    let after_value = rest[opening + 1..]
        .rfind(&format!("{quote}, expected"))
        .map(|closing| opening + 1 + closing + 1);
    let Some(after_value) = after_value else {
        return format!(
            "{}(value not shown) at line {} column {}",
            prefix,
            error.line(),
            error.column()
        );
    };
    let kind = rest[..opening].trim_end();
    let shown = if kind.is_empty() {
        "(value not shown)".to_string()
    } else {
        format!("{kind} (value not shown)")
    };
    format!("{prefix}{shown}{}", &rest[after_value..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Serialize, serde::Deserialize)]
    #[allow(dead_code)]
    struct Card {
        number: u64,
        kind: Kind,
    }

    #[derive(Debug, serde::Serialize, serde::Deserialize)]
    enum Kind {
        Debit,
    }

    fn decode_error(payload: &str) -> String {
        Codec::<Card>::decode(&Json, payload.as_bytes()).unwrap_err()
    }

    #[test]
    fn decode_errors_say_what_was_expected_without_quoting_the_payload() {
        let wrong_type = decode_error(r#"{"number": "4111-1111", "kind": "Debit"}"#);
        assert_eq!(
            wrong_type,
            "invalid type: string (value not shown), expected u64 at line 1 column 22"
        );
        let negative = decode_error(r#"{"number": -4111, "kind": "Debit"}"#);
        assert!(
            negative.starts_with("invalid value: integer (value not shown), expected u64"),
            "{negative}"
        );
        let variant = decode_error(r#"{"number": 1, "kind": "Secret4111"}"#);
        assert!(
            variant.starts_with("unknown variant (value not shown), expected `Debit`"),
            "{variant}"
        );
        let missing = decode_error(r#"{"number": 1}"#);
        assert!(missing.starts_with("missing field `kind`"), "{missing}");
        for error in [wrong_type, negative, variant] {
            assert!(!error.contains("4111"), "{error}");
        }
    }
}
