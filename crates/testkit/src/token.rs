//! The signing side of a registry's token auth: the key and certificate a test's token
//! server signs with, and the JWTs it hands out.
//!
//! Distribution 2.8 verifies a token in `registry/auth/token/token.go` (`Token.Verify`): the
//! issuer must be the configured `issuer`, the audience (one string) the configured
//! `service`, `exp`/`nbf` hold within 60 s of leeway, and the signing key comes from the
//! header's `x5c` chain (verified against `rootcertbundle`), else a `jwk`, else a `kid`
//! looked up among the bundle's keys by libtrust fingerprint. The signer here is an ECDSA
//! P-256 key (ES256, made with rcgen on ring) whose self-signed certificate is the bundle;
//! each token carries both the `x5c` (the certificate) and the `kid`.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::json;

use crate::Error;

/// One grant in a token's `access` claim: `actions` on the resource `kind`/`name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// The resource type, `repository` for images and plugins.
    pub kind: String,
    /// The resource class, `plugin` in Moby's plugin scopes (`repository(plugin):...`).
    pub class: Option<String>,
    /// The repository path.
    pub name: String,
    /// What may be done: `pull`, `push`, `*`.
    pub actions: Vec<String>,
}

impl Access {
    /// `actions` on repository `name`.
    pub fn repository(name: &str, actions: &[&str]) -> Access {
        Access {
            kind: "repository".to_owned(),
            class: None,
            name: name.to_owned(),
            actions: actions.iter().map(|a| (*a).to_owned()).collect(),
        }
    }

    /// Parses one `scope` parameter of a token request, `type[(class)]:name:actions`, e.g.
    /// Moby's `repository(plugin):library/p:pull,push`: the access a server grants when it
    /// grants everything asked. `None` if the scope is malformed.
    pub fn from_scope(scope: &str) -> Option<Access> {
        let (kind, rest) = scope.split_once(':')?;
        let (name, actions) = rest.rsplit_once(':')?;
        let (kind, class) = match kind.split_once('(') {
            Some((k, c)) => (k, Some(c.strip_suffix(')')?.to_owned())),
            None => (kind, None),
        };
        if kind.is_empty() || name.is_empty() {
            return None;
        }
        Some(Access {
            kind: kind.to_owned(),
            class,
            name: name.to_owned(),
            actions: actions.split(',').filter(|a| !a.is_empty()).map(str::to_owned).collect(),
        })
    }

    fn claim(&self) -> serde_json::Value {
        let mut v = json!({"type": self.kind, "name": self.name, "actions": self.actions});
        if let Some(class) = &self.class {
            v["class"] = json!(class);
        }
        v
    }
}

/// The token issuer's key and certificate, on disk for the registry and in memory for the
/// test's token server.
#[derive(Debug, Clone)]
pub struct TokenSigner {
    /// The `issuer` the registry trusts (`auth.token.issuer`).
    pub issuer: String,
    /// The `service` the registry expects as the audience (`auth.token.service`).
    pub service: String,
    /// The certificate, PEM: the registry's `auth.token.rootcertbundle`.
    pub cert_pem: PathBuf,
    /// The private key, PKCS#8 PEM, for a token server that signs on its own.
    pub key_pem: PathBuf,
    cert_der: Vec<u8>,
    key_pkcs8: Vec<u8>,
    kid: String,
}

impl TokenSigner {
    /// Generates a P-256 key and its self-signed certificate, written to `dir/token.crt`
    /// and `dir/token.key`.
    pub fn generate(dir: &Path, issuer: &str, service: &str) -> Result<TokenSigner, Error> {
        let key = rcgen::KeyPair::generate().map_err(|e| Error::crypto("a token key", e))?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
            .map_err(|e| Error::crypto("token certificate parameters", e))?;
        params.distinguished_name.push(rcgen::DnType::CommonName, issuer);
        let cert = params.self_signed(&key).map_err(|e| Error::crypto("a token certificate", e))?;
        let cert_pem = dir.join("token.crt");
        let key_pem = dir.join("token.key");
        std::fs::write(&cert_pem, cert.pem())
            .map_err(|e| Error::io(format!("write {}", cert_pem.display()), e))?;
        std::fs::write(&key_pem, key.serialize_pem())
            .map_err(|e| Error::io(format!("write {}", key_pem.display()), e))?;
        Ok(TokenSigner {
            issuer: issuer.to_owned(),
            service: service.to_owned(),
            cert_pem,
            key_pem,
            cert_der: cert.der().to_vec(),
            key_pkcs8: key.serialize_der(),
            kid: libtrust_key_id(&key.public_key_der()),
        })
    }

    /// The key ID the registry knows the key by (libtrust's fingerprint of the public key).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The private key, PKCS#8 DER.
    pub fn key_pkcs8_der(&self) -> &[u8] {
        &self.key_pkcs8
    }

    /// A signed ES256 JWT for `subject` granting `access`, valid for `ttl` from now.
    pub fn sign(&self, subject: &str, access: &[Access], ttl: Duration) -> Result<String, Error> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let header = json!({
            "typ": "JWT",
            "alg": "ES256",
            "kid": self.kid,
            "x5c": [STANDARD.encode(&self.cert_der)],
        });
        let claims = json!({
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "exp": now + ttl.as_secs(),
            "nbf": now,
            "iat": now,
            "jti": format!("{now:x}-{}", std::process::id()),
            "access": access.iter().map(Access::claim).collect::<Vec<_>>(),
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &self.key_pkcs8, &rng)
            .map_err(|e| Error::crypto("load the token key", e))?;
        let signature = key
            .sign(&rng, signing_input.as_bytes())
            .map_err(|e| Error::crypto("a token signature", e))?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref())))
    }
}

/// libtrust's key ID (`keyIDFromCryptoKey` in github.com/docker/libtrust `util.go`): the
/// first 240 bits of the SHA-256 of the DER public key (SubjectPublicKeyInfo), base32
/// without padding, in groups of four joined by `:`.
fn libtrust_key_id(spki_der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, spki_der);
    let encoded = base32(&digest.as_ref()[..30]);
    let groups: Vec<&str> =
        encoded.as_bytes().chunks(4).filter_map(|c| std::str::from_utf8(c).ok()).collect();
    groups.join(":")
}

/// RFC 4648 base32 (standard alphabet), without padding.
fn base32(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for byte in data {
        buffer = (buffer << 8) | u32::from(*byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_matches_rfc_4648_vectors() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(b"f"), "MY");
    }

    #[test]
    fn a_key_id_is_twelve_groups_of_four() {
        let id = libtrust_key_id(b"any key");
        assert_eq!(id.split(':').count(), 12, "{id}");
        assert!(id.split(':').all(|g| g.len() == 4), "{id}");
    }

    #[test]
    fn moby_plugin_scopes_parse() {
        let a = Access::from_scope("repository(plugin):library/p:pull,push").unwrap();
        assert_eq!(a.class.as_deref(), Some("plugin"));
        assert_eq!((a.kind.as_str(), a.name.as_str()), ("repository", "library/p"));
        assert_eq!(a.actions, ["pull", "push"]);
        let b = Access::from_scope("repository:127.0.0.1:5000/x:pull").unwrap();
        assert_eq!(b.name, "127.0.0.1:5000/x");
        assert!(Access::from_scope("nonsense").is_none());
    }

    #[test]
    fn a_token_verifies_with_its_certificate_key() {
        let dir = tempfile::tempdir().unwrap();
        let signer = TokenSigner::generate(dir.path(), "iss", "svc").unwrap();
        let jwt = signer
            .sign("alice", &[Access::repository("a/b", &["pull"])], Duration::from_secs(60))
            .unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!((claims["iss"].as_str(), claims["aud"].as_str()), (Some("iss"), Some("svc")));
        let key = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            signer.key_pkcs8_der(),
            &SystemRandom::new(),
        )
        .unwrap();
        let public = ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_FIXED,
            ring::signature::KeyPair::public_key(&key).as_ref().to_vec(),
        );
        let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        public.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig).unwrap();
    }
}
