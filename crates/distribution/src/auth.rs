//! Registry authentication as dockerd does it (docker/distribution's `registry/client/auth`):
//! credentials from the `X-Registry-Auth` value, `WWW-Authenticate` challenges, Bearer tokens
//! from the token server (GET with basic credentials, or the OAuth2 refresh-token POST for an
//! identity token), Basic credentials sent as they are, and a registry token sent as a
//! Bearer token without any exchange. Plugin repositories use Moby's scope
//! `repository(plugin):<path>:pull[,push]`.

use std::time::{Duration, Instant};

use base64::Engine as _;
use dockplug_protocol::auth::AuthConfig;

/// The OAuth2 `client_id` dockerd sends (`registry.AuthClientID`).
pub const CLIENT_ID: &str = "docker";

/// What the caller gave us to authenticate with.
#[derive(Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Credentials {
    /// No credentials.
    #[default]
    Anonymous,
    /// A user name and password (also from `auth`, base64 of `user:password`).
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: String,
    },
    /// An identity token: the OAuth2 refresh token exchanged for access tokens.
    IdentityToken(String),
    /// A registry token, sent as the Bearer token as is.
    RegistryToken(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Anonymous => f.write_str("Anonymous"),
            Self::Basic { username, .. } => write!(f, "Basic({username:?}, <redacted>)"),
            Self::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
            Self::RegistryToken(_) => f.write_str("RegistryToken(<redacted>)"),
        }
    }
}

impl Credentials {
    /// The credentials an `X-Registry-Auth` value carries, in dockerd's order of preference:
    /// registry token, identity token, user name and password (`auth` when those are empty).
    pub fn from_auth_config(a: &AuthConfig) -> Self {
        if !a.registrytoken.is_empty() {
            return Self::RegistryToken(a.registrytoken.clone());
        }
        if !a.identitytoken.is_empty() {
            return Self::IdentityToken(a.identitytoken.clone());
        }
        if !a.username.is_empty() || !a.password.is_empty() {
            return Self::Basic { username: a.username.clone(), password: a.password.clone() };
        }
        if !a.auth.is_empty() {
            if let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(a.auth.trim()) {
                if let Some((u, p)) = String::from_utf8_lossy(&raw).split_once(':') {
                    return Self::Basic { username: u.to_owned(), password: p.to_owned() };
                }
            }
        }
        Self::Anonymous
    }

    /// The user name, when there is one (the token request's `account`).
    pub(crate) fn username(&self) -> Option<&str> {
        match self {
            Self::Basic { username, .. } if !username.is_empty() => Some(username),
            _ => None,
        }
    }

    /// `Authorization: Basic …`, when there are basic credentials.
    pub(crate) fn basic_header(&self) -> Option<String> {
        match self {
            Self::Basic { username, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
            )),
            _ => None,
        }
    }
}

/// Moby's scope for a plugin repository (`daemon/pkg/plugin/registry.go`: a
/// `RepositoryScope` with class `plugin`).
pub fn plugin_scope(path: &str, push: bool) -> String {
    format!("repository(plugin):{path}:{}", if push { "pull,push" } else { "pull" })
}

/// One `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// `Bearer realm=…,service=…`.
    Bearer {
        /// The token server.
        realm: String,
        /// `service`, passed back to the token server.
        service: Option<String>,
    },
    /// `Basic realm=…`.
    Basic,
}

/// Parses every challenge of the `WWW-Authenticate` values (several per value are allowed).
/// Unknown schemes and a Bearer challenge without a realm are skipped.
pub fn parse_challenges<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<Challenge> {
    let mut out = Vec::new();
    for value in values {
        let mut rest = value.trim();
        while !rest.is_empty() {
            let end = rest.find([' ', ',']).unwrap_or(rest.len());
            let scheme = rest[..end].to_ascii_lowercase();
            rest = rest[end..].trim_start_matches([' ', ',']);
            let mut params: Vec<(String, String)> = Vec::new();
            // Parameters: key=value or key="quoted", until the next bare token.
            while let Some(eq) = rest.find('=') {
                let key = &rest[..eq];
                if key.is_empty() || key.contains([' ', ',', '"']) {
                    break;
                }
                let after = &rest[eq + 1..];
                let (val, remaining) = if let Some(q) = after.strip_prefix('"') {
                    let mut val = String::new();
                    let mut chars = q.char_indices();
                    let mut end = q.len();
                    while let Some((i, c)) = chars.next() {
                        match c {
                            '\\' => {
                                if let Some((_, n)) = chars.next() {
                                    val.push(n);
                                }
                            }
                            '"' => {
                                end = i + 1;
                                break;
                            }
                            c => val.push(c),
                        }
                    }
                    (val, &q[end.min(q.len())..])
                } else {
                    let e = after.find(',').unwrap_or(after.len());
                    (after[..e].trim().to_owned(), &after[e..])
                };
                params.push((key.to_ascii_lowercase(), val));
                rest = remaining.trim_start_matches([' ', ',']);
            }
            let get = |k: &str| params.iter().find(|(pk, _)| pk == k).map(|(_, v)| v.clone());
            match scheme.as_str() {
                "bearer" => {
                    if let Some(realm) = get("realm").filter(|r| !r.is_empty()) {
                        out.push(Challenge::Bearer { realm, service: get("service") });
                    }
                }
                "basic" => out.push(Challenge::Basic),
                _ => {}
            }
        }
    }
    out
}

/// A token server's reply (docker/distribution's `getTokenResponse` and
/// `postTokenResponse`).
#[derive(Debug, serde::Deserialize)]
pub(crate) struct TokenReply {
    #[serde(default)]
    pub token: String,
    #[serde(default)]
    pub access_token: String,
    #[serde(default)]
    pub expires_in: u64,
}

/// A token and when it stops being used.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub value: String,
    pub expires: Instant,
}

impl TokenReply {
    /// The token (`token`, else `access_token`), valid for `expires_in` seconds (at least 60,
    /// docker/distribution's minimum), renewed 5 s early.
    pub(crate) fn into_token(self) -> Option<Token> {
        let value = if self.token.is_empty() { self.access_token } else { self.token };
        if value.is_empty() {
            return None;
        }
        let secs = self.expires_in.max(60);
        Some(Token { value, expires: Instant::now() + Duration::from_secs(secs - 5) })
    }
}

/// `application/x-www-form-urlencoded` / query escaping.
pub(crate) fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The token request's query (GET) or form (POST), in docker/distribution's keys.
pub(crate) fn token_params(
    creds: &Credentials,
    service: Option<&str>,
    scopes: &[String],
) -> String {
    let mut p: Vec<(&str, String)> = Vec::new();
    if let Credentials::IdentityToken(t) = creds {
        p.push(("grant_type", "refresh_token".into()));
        p.push(("refresh_token", t.clone()));
        p.push(("client_id", CLIENT_ID.into()));
    }
    if let Some(s) = service {
        p.push(("service", s.to_owned()));
    }
    if let Credentials::IdentityToken(_) = creds {
        // The OAuth2 form has one space-separated `scope`.
        p.push(("scope", scopes.join(" ")));
    } else {
        for s in scopes {
            p.push(("scope", s.clone()));
        }
        if let Some(u) = creds.username() {
            p.push(("account", u.to_owned()));
        }
    }
    p.iter().map(|(k, v)| format!("{k}={}", urlencode(v))).collect::<Vec<_>>().join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_from_the_header() {
        let a = |f: fn(&mut AuthConfig)| {
            let mut c = AuthConfig::default();
            f(&mut c);
            Credentials::from_auth_config(&c)
        };
        assert_eq!(a(|_| {}), Credentials::Anonymous);
        assert_eq!(
            a(|c| {
                c.username = "u".into();
                c.password = "p".into();
            }),
            Credentials::Basic { username: "u".into(), password: "p".into() }
        );
        assert_eq!(
            a(|c| c.auth = base64::engine::general_purpose::STANDARD.encode("me:s:e:cret")),
            Credentials::Basic { username: "me".into(), password: "s:e:cret".into() }
        );
        assert_eq!(
            a(|c| {
                c.username = "u".into();
                c.identitytoken = "id".into();
            }),
            Credentials::IdentityToken("id".into())
        );
        assert_eq!(
            a(|c| {
                c.identitytoken = "id".into();
                c.registrytoken = "rt".into();
            }),
            Credentials::RegistryToken("rt".into())
        );
        let dbg =
            format!("{:?}", Credentials::Basic { username: "u".into(), password: "pw!".into() });
        assert!(!dbg.contains("pw!"));
        // From the encoded header, as the Engine API hands it over.
        let header = AuthConfig { identitytoken: "tok".into(), ..AuthConfig::default() }.encode();
        let decoded = AuthConfig::decode(&header).unwrap();
        assert_eq!(
            Credentials::from_auth_config(&decoded),
            Credentials::IdentityToken("tok".into())
        );
    }

    #[test]
    fn challenges() {
        let c = parse_challenges([
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a:pull""#,
        ]);
        assert_eq!(
            c,
            vec![Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into())
            }]
        );
        assert_eq!(parse_challenges([r#"Basic realm="Registry Realm""#]), vec![Challenge::Basic]);
        let both =
            parse_challenges([r#"Basic realm="x", Bearer realm="http://t/\"q\"""#, "Negotiate"]);
        assert_eq!(
            both,
            vec![
                Challenge::Basic,
                Challenge::Bearer { realm: "http://t/\"q\"".into(), service: None }
            ]
        );
        // A Bearer challenge without a realm cannot be answered.
        assert!(parse_challenges(["Bearer service=x"]).is_empty());
        assert!(parse_challenges([""]).is_empty());
    }

    #[test]
    fn token_requests() {
        let scopes = vec![plugin_scope("vieux/sshfs", true)];
        assert_eq!(scopes[0], "repository(plugin):vieux/sshfs:pull,push");
        assert_eq!(plugin_scope("a/b", false), "repository(plugin):a/b:pull");
        let basic = Credentials::Basic { username: "me".into(), password: "p".into() };
        assert_eq!(
            token_params(&basic, Some("reg"), &scopes),
            "service=reg&scope=repository%28plugin%29%3Avieux%2Fsshfs%3Apull%2Cpush&account=me"
        );
        assert_eq!(
            token_params(&Credentials::IdentityToken("r t".into()), Some("reg"), &scopes),
            "grant_type=refresh_token&refresh_token=r%20t&client_id=docker&service=reg&scope=repository%28plugin%29%3Avieux%2Fsshfs%3Apull%2Cpush"
        );
        let t: TokenReply = serde_json::from_str(r#"{"access_token":"a","expires_in":1}"#).unwrap();
        let t = t.into_token().unwrap();
        assert_eq!(t.value, "a");
        assert!(t.expires > Instant::now() + Duration::from_secs(50));
        let none: TokenReply = serde_json::from_str("{}").unwrap();
        assert!(none.into_token().is_none());
    }
}
