//! SASL/OAUTHBEARER tokens from the app: a [`TokenProvider`] given to the transport
//! ([`KafkaTransport::with_token_provider`](super::KafkaTransport::with_token_provider)) is
//! asked for a token by every client of a cluster whose `sasl.mechanism` is `OAUTHBEARER`,
//! when the client starts and again before each token expires (librdkafka asks at 80% of its
//! lifetime). Python's `sasl_oauth_token_provider` (aiokafka's `AbstractTokenProvider`) is one.
//!
//! A token says when it expires only if it is a JWT (`exp`, and `sub` for the principal);
//! an opaque one is taken to last [`OPAQUE_TOKEN_LIFETIME`], so it is asked again well
//! before any usual expiry.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::client::OAuthToken;

/// How long a token that is not a JWT is taken to last.
pub const OPAQUE_TOKEN_LIFETIME: Duration = Duration::from_secs(600);

/// A bearer token and what the client needs to know about it.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken {
    /// The token itself.
    pub value: String,
    /// The Kafka principal it stands for.
    pub principal: String,
    /// When it expires.
    pub expires_at: SystemTime,
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the token: it is a credential.
        f.debug_struct("BearerToken")
            .field("principal", &self.principal)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl BearerToken {
    /// A token as a provider returned it: a JWT's `exp` and `sub` claims give its expiry and
    /// principal; anything else lasts [`OPAQUE_TOKEN_LIFETIME`] for principal "fastkafka".
    pub fn from_value(value: String) -> Self {
        let claims = jwt_claims(&value);
        let claim = |name: &str| claims.as_ref().and_then(|claims| claims.get(name).cloned());
        let expires_at = claim("exp")
            .and_then(|exp| exp.as_f64())
            .map(|seconds| UNIX_EPOCH + Duration::from_secs_f64(seconds.max(0.0)))
            .unwrap_or_else(|| SystemTime::now() + OPAQUE_TOKEN_LIFETIME);
        let principal = claim("sub")
            .and_then(|sub| sub.as_str().map(str::to_owned))
            .unwrap_or_else(|| "fastkafka".to_owned());
        Self {
            value,
            principal,
            expires_at,
        }
    }
}

/// Where clients get OAUTHBEARER tokens. Called on librdkafka's threads; may block for as
/// long as getting a token takes.
pub trait TokenProvider: Send + Sync + fmt::Debug {
    /// A fresh token, or why there is none (logged by the client, which asks again later).
    fn token(&self) -> Result<BearerToken, String>;
}

/// What a client context does on librdkafka's refresh event: ask `provider`.
pub(super) fn token_for_client(
    provider: Option<&Arc<dyn TokenProvider>>,
) -> Result<OAuthToken, Box<dyn StdError>> {
    let Some(provider) = provider else {
        return Err(
            "sasl.mechanism is OAUTHBEARER but the app gave no token provider \
                    (sasl_oauth_token_provider)"
                .into(),
        );
    };
    let token = provider.token().map_err(|error| {
        tracing::error!(target: "fastkafka::oauth", "the token provider failed: {error}");
        error
    })?;
    let lifetime_ms = token
        .expires_at
        .duration_since(UNIX_EPOCH)
        .map(|since| i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    Ok(OAuthToken {
        token: token.value,
        principal_name: token.principal,
        lifetime_ms,
    })
}

/// The claims of a JWT (`header.claims.signature`, base64url), if `value` is one.
fn jwt_claims(value: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let mut parts = value.split('.');
    let (_header, claims, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    match serde_json::from_slice(&base64url_decode(claims)?).ok()? {
        serde_json::Value::Object(claims) => Some(claims),
        _ => None,
    }
}

/// Base64url without padding (RFC 4648 §5), as JWTs use it.
fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let value_of = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        } as u32)
    };
    let text = text.trim_end_matches('=').as_bytes();
    let mut bytes = Vec::with_capacity(text.len() * 3 / 4);
    for chunk in text.chunks(4) {
        let mut bits = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            bits |= value_of(*c)? << (18 - 6 * i);
        }
        let decoded = [(bits >> 16) as u8, (bits >> 8) as u8, bits as u8];
        match chunk.len() {
            4 => bytes.extend_from_slice(&decoded),
            3 => bytes.extend_from_slice(&decoded[..2]),
            2 => bytes.push(decoded[0]),
            _ => return None,
        }
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jwt_gives_its_expiry_and_principal() {
        // {"alg":"none"} . {"sub":"svc-orders","exp":2000000000} . (no signature)
        let jwt = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJzdmMtb3JkZXJzIiwiZXhwIjoyMDAwMDAwMDAwfQ.";
        let token = BearerToken::from_value(jwt.to_owned());
        assert_eq!(token.principal, "svc-orders");
        assert_eq!(
            token.expires_at,
            UNIX_EPOCH + Duration::from_secs(2_000_000_000)
        );
        assert!(
            !format!("{token:?}").contains("eyJ"),
            "Debug never shows the token"
        );
    }

    #[test]
    fn an_opaque_token_is_asked_again_soon() {
        let token = BearerToken::from_value("opaque-secret".to_owned());
        assert_eq!(token.principal, "fastkafka");
        let lasts = token.expires_at.duration_since(SystemTime::now()).unwrap();
        assert!(lasts <= OPAQUE_TOKEN_LIFETIME && lasts > OPAQUE_TOKEN_LIFETIME / 2);
    }

    #[test]
    fn base64url_decodes_every_length() {
        assert_eq!(base64url_decode("YQ").unwrap(), b"a");
        assert_eq!(base64url_decode("YWI").unwrap(), b"ab");
        assert_eq!(base64url_decode("YWJj").unwrap(), b"abc");
        assert_eq!(base64url_decode("-_8").unwrap(), [0xfb, 0xff]);
        assert_eq!(base64url_decode("a+b"), None, "'+' is not base64url");
    }
}
