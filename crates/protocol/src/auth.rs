//! The `X-Registry-Auth` header ([`AuthConfig`]): registry credentials as base64url
//! (RFC 4648 §5, padded) of a JSON object; `e30=` (`{}`) when there are none.
//!
//! Encoding is exactly Docker's. Decoding accepts what Docker accepts (an empty value means no
//! credentials) and, more leniently, the standard alphabet and missing padding, which some
//! clients send. Moby's plugin routes treat an invalid value as "no credentials"; that is
//! [`AuthConfig::decode_lenient`], while [`AuthConfig::decode`] says what was wrong.
//!
//! `Debug` never prints secrets.
//!
//! ```
//! use dockplug_protocol::auth::AuthConfig;
//! assert_eq!(AuthConfig::default().encode(), "e30=");
//! let a = AuthConfig { username: "u".into(), password: "p?>".into(), ..AuthConfig::default() };
//! assert_eq!(AuthConfig::decode(&a.encode())?, a);
//! assert!(!format!("{a:?}").contains("p?>"));
//! # Ok::<(), dockplug_protocol::auth::AuthError>(())
//! ```

use std::fmt;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine as _};
use serde::{Deserialize, Serialize};

/// The header name.
pub const REGISTRY_AUTH_HEADER: &str = "X-Registry-Auth";

/// The header value for no credentials (`{}`).
pub const EMPTY_AUTH: &str = "e30=";

/// Registry credentials (Docker's `registry.AuthConfig`); every key is left out when empty.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct AuthConfig {
    /// `username`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub username: String,
    /// `password`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub password: String,
    /// `auth`: base64 of `username:password`, as in `~/.docker/config.json`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub auth: String,
    /// `email` (deprecated by Docker).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub email: String,
    /// `serveraddress`: the registry.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub serveraddress: String,
    /// `identitytoken`: used instead of username/password when set.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub identitytoken: String,
    /// `registrytoken`: a bearer token sent as is.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub registrytoken: String,
}

crate::gojson::go_json!(AuthConfig);

/// An `X-Registry-Auth` value that cannot be decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Not base64.
    #[error("invalid X-Registry-Auth header: not base64")]
    Base64(#[source] base64::DecodeError),
    /// Not a JSON credentials object.
    #[error("invalid X-Registry-Auth header: not a JSON credentials object")]
    Json(#[source] serde_json::Error),
}

/// base64 with any padding, for one alphabet.
fn lenient(alphabet: &alphabet::Alphabet) -> GeneralPurpose {
    GeneralPurpose::new(
        alphabet,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    )
}

impl AuthConfig {
    /// Whether no credential is set (anonymous access).
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The header value: base64url, padded, of the JSON object.
    pub fn encode(&self) -> String {
        // A struct of strings always serializes.
        let json = crate::gojson::to_vec(self).unwrap_or_else(|_| b"{}".to_vec());
        URL_SAFE.encode(json)
    }

    /// Decodes a header value; `""` is no credentials.
    ///
    /// # Errors
    /// [`AuthError::Base64`] or [`AuthError::Json`].
    pub fn decode(value: &str) -> Result<Self, AuthError> {
        let value = value.trim();
        if value.is_empty() {
            return Ok(Self::default());
        }
        let bytes = lenient(&alphabet::URL_SAFE)
            .decode(value)
            .or_else(|_| lenient(&alphabet::STANDARD).decode(value))
            .map_err(AuthError::Base64)?;
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        // Like Go's json.Decoder, read the first value and ignore what follows.
        Self::deserialize(&mut de).map_err(AuthError::Json)
    }

    /// Decodes a header value, treating anything invalid as no credentials (Moby's plugin
    /// routes).
    pub fn decode_lenient(value: &str) -> Self {
        Self::decode(value).unwrap_or_default()
    }
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = |s: &str| if s.is_empty() { "" } else { "<redacted>" };
        f.debug_struct("AuthConfig")
            .field("username", &self.username)
            .field("password", &secret(&self.password))
            .field("auth", &secret(&self.auth))
            .field("email", &self.email)
            .field("serveraddress", &self.serveraddress)
            .field("identitytoken", &secret(&self.identitytoken))
            .field("registrytoken", &secret(&self.registrytoken))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_e30() {
        assert_eq!(AuthConfig::default().encode(), EMPTY_AUTH);
        assert!(AuthConfig::decode(EMPTY_AUTH).unwrap().is_empty());
        assert!(AuthConfig::decode("").unwrap().is_empty());
    }

    #[test]
    fn url_alphabet_and_field_order() {
        let a = AuthConfig {
            username: "me".into(),
            password: "??>>".into(),
            serveraddress: "127.0.0.1:5000".into(),
            ..AuthConfig::default()
        };
        let enc = a.encode();
        assert!(!enc.contains('+') && !enc.contains('/'), "{enc}");
        let json = URL_SAFE.decode(&enc).unwrap();
        assert_eq!(
            String::from_utf8(json).unwrap(),
            r#"{"username":"me","password":"??\u003e\u003e","serveraddress":"127.0.0.1:5000"}"#
        );
        assert_eq!(AuthConfig::decode(&enc).unwrap(), a);
        // Standard alphabet and missing padding are accepted too.
        let std = base64::engine::general_purpose::STANDARD_NO_PAD
            .encode(br#"{"username":"me","password":"??>>"}"#);
        assert_eq!(AuthConfig::decode(&std).unwrap().password, "??>>");
    }

    #[test]
    fn invalid_values() {
        assert!(matches!(AuthConfig::decode("!!!"), Err(AuthError::Base64(_))));
        assert!(matches!(AuthConfig::decode(&URL_SAFE.encode("[1]")), Err(AuthError::Json(_))));
        assert!(matches!(
            AuthConfig::decode(&URL_SAFE.encode(r#"{"username":1}"#)),
            Err(AuthError::Json(_))
        ));
        assert!(AuthConfig::decode_lenient("!!!").is_empty());
        // Trailing data after the object is ignored, as Go's decoder does.
        assert_eq!(
            AuthConfig::decode(&URL_SAFE.encode(r#"{"username":"a"} x"#)).unwrap().username,
            "a"
        );
    }
}
