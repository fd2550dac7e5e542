//! [`RegistryClient`]: endpoints (Docker's insecure-registry rule: HTTPS first, then plain
//! HTTP), authentication on a 401 challenge with a token cache, and the requests of one
//! repository.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use dockplug_protocol::auth::AuthConfig;
use dockplug_protocol::reference::{Reference, DEFAULT_DOMAIN};
use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use hyper::body::Incoming;

use crate::auth::{self, Challenge, Credentials, Token};
use crate::transport::{self, ReqBody, Scheme, Transport};
use crate::{DistributionError, RegistryConfig};

/// The host dockerd talks to for `docker.io`.
const DEFAULT_REGISTRY_HOST: &str = "registry-1.docker.io";

/// The registry client. Cheap to clone; clones share connections' TLS settings, the
/// endpoint each host answered on, and the token cache.
#[derive(Debug, Clone)]
pub struct RegistryClient {
    pub(crate) transport: Arc<Transport>,
    state: Arc<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The scheme each host answered on.
    schemes: Mutex<HashMap<String, Scheme>>,
    /// Bearer tokens by (host, scope).
    tokens: Mutex<HashMap<(String, String), Token>>,
    /// Hosts that asked for Basic credentials.
    basic: Mutex<HashMap<String, ()>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Caches only: a panic elsewhere leaves them usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Default for RegistryClient {
    fn default() -> Self {
        Self::new(RegistryConfig::default())
    }
}

impl RegistryClient {
    /// A client with `config`.
    pub fn new(config: RegistryConfig) -> Self {
        Self { transport: Arc::new(Transport::new(Arc::new(config))), state: Arc::default() }
    }

    /// The configuration.
    pub fn config(&self) -> &RegistryConfig {
        &self.transport.config
    }

    /// A handle on one repository with the given credentials and scope.
    pub(crate) fn repo(&self, reference: &Reference, auth: &AuthConfig, push: bool) -> Repo {
        let host = if reference.domain() == DEFAULT_DOMAIN {
            DEFAULT_REGISTRY_HOST.to_owned()
        } else {
            reference.domain().to_owned()
        };
        Repo {
            client: self.clone(),
            host,
            path: reference.path().to_owned(),
            creds: Credentials::from_auth_config(auth),
            scopes: vec![auth::plugin_scope(reference.path(), push)],
        }
    }
}

/// Requests to one repository.
#[derive(Debug, Clone)]
pub(crate) struct Repo {
    client: RegistryClient,
    /// `host[:port]` of the registry.
    pub host: String,
    /// The repository path.
    pub path: String,
    creds: Credentials,
    scopes: Vec<String>,
}

/// A reply and the URL it answered.
pub(crate) struct Reply {
    pub resp: Response<Incoming>,
    pub url: String,
}

impl Repo {
    /// Also asks for `scope` in token requests (a mount's source repository).
    pub fn add_scope(&mut self, scope: String) {
        if !self.scopes.contains(&scope) {
            self.scopes.push(scope);
        }
    }

    pub fn config(&self) -> &RegistryConfig {
        &self.client.transport.config
    }

    fn candidates(&self) -> Vec<Scheme> {
        if let Some(s) = lock(&self.client.state.schemes).get(&self.host) {
            return vec![*s];
        }
        if self.config().is_insecure(&self.host) {
            vec![Scheme::Https, Scheme::Http]
        } else {
            vec![Scheme::Https]
        }
    }

    fn token_key(&self) -> (String, String) {
        (self.host.clone(), self.scopes.join(" "))
    }

    fn cached_authorization(&self) -> Option<String> {
        if let Some(t) = lock(&self.client.state.tokens).get(&self.token_key()) {
            if t.expires > Instant::now() {
                return Some(format!("Bearer {}", t.value));
            }
        }
        if lock(&self.client.state.basic).contains_key(&self.host) {
            return self.creds.basic_header();
        }
        None
    }

    /// The URL of `rest` (after `/v2/<path>/`) on `scheme`.
    pub fn url(&self, scheme: Scheme, rest: &str) -> String {
        format!("{}://{}/v2/{}/{rest}", scheme.as_str(), self.host, self.path)
    }

    /// The scheme this host answers on (after the first request).
    pub fn scheme(&self) -> Scheme {
        lock(&self.client.state.schemes).get(&self.host).copied().unwrap_or(Scheme::Https)
    }

    /// Sends `method` to `rest` of this repository (or to `absolute`, an upload location),
    /// trying HTTPS then HTTP for an insecure host on a transport failure, and answering one
    /// 401 challenge. `body` makes the request body (called again for a retry).
    pub async fn send(
        &self,
        method: Method,
        target: Target<'_>,
        headers: &HeaderMap,
        body: &(dyn Fn() -> Result<ReqBody, DistributionError> + Send + Sync),
    ) -> Result<Reply, DistributionError> {
        let mut authorization = self.cached_authorization();
        let mut answered = false;
        loop {
            let mut last_err = None;
            let mut reply = None;
            for scheme in self.candidates() {
                let url = match target {
                    Target::Repo(rest) => self.url(scheme, rest),
                    Target::Absolute(u) => u.to_owned(),
                };
                let mut h = headers.clone();
                // Credentials go to this registry only, never to another host's location.
                let same_host = match target {
                    Target::Repo(_) => true,
                    Target::Absolute(u) => u
                        .parse::<http::Uri>()
                        .ok()
                        .and_then(|u| u.authority().map(|a| a.as_str() == self.host))
                        .unwrap_or(false),
                };
                if let (Some(a), true) = (&authorization, same_host) {
                    if let Ok(v) = HeaderValue::from_str(a) {
                        h.insert(header::AUTHORIZATION, v);
                    }
                }
                match self.client.transport.send(method.clone(), &url, h, body()?).await {
                    Ok(resp) => {
                        lock(&self.client.state.schemes).insert(self.host.clone(), scheme);
                        reply = Some(Reply { resp, url });
                        break;
                    }
                    Err(e) if e.is_transport() && matches!(target, Target::Repo(_)) => {
                        tracing::debug!(host = %self.host, scheme = scheme.as_str(), error = %e, "endpoint failed");
                        last_err = Some(e);
                    }
                    Err(e) => return Err(e),
                }
            }
            let Some(reply) = reply else {
                return Err(last_err.unwrap_or(DistributionError::Connect {
                    host: self.host.clone(),
                    source: std::io::Error::other("no endpoint"),
                }));
            };
            if reply.resp.status() != StatusCode::UNAUTHORIZED {
                return Ok(reply);
            }
            let challenges = auth::parse_challenges(
                reply
                    .resp
                    .headers()
                    .get_all(header::WWW_AUTHENTICATE)
                    .iter()
                    .filter_map(|v| v.to_str().ok()),
            );
            let timeout = self.config().request_timeout;
            if challenges.is_empty() {
                return Err(DistributionError::NoChallenge { url: reply.url });
            }
            if answered {
                let message = transport::error_text(reply.resp, &reply.url, timeout).await;
                return Err(DistributionError::Unauthorized { url: reply.url, message });
            }
            answered = true;
            authorization = Some(self.answer(&challenges, &reply.url).await?);
        }
    }

    /// Answers a challenge: a Bearer token (preferred) or Basic credentials.
    async fn answer(
        &self,
        challenges: &[Challenge],
        url: &str,
    ) -> Result<String, DistributionError> {
        let bearer = challenges.iter().find_map(|c| match c {
            Challenge::Bearer { realm, service } => Some((realm, service)),
            Challenge::Basic => None,
        });
        if let Some((realm, service)) = bearer {
            if let Credentials::RegistryToken(t) = &self.creds {
                return Ok(format!("Bearer {t}"));
            }
            let token = self.fetch_token(realm, service.as_deref()).await?;
            let value = format!("Bearer {}", token.value);
            lock(&self.client.state.tokens).insert(self.token_key(), token);
            return Ok(value);
        }
        match self.creds.basic_header() {
            Some(h) => {
                lock(&self.client.state.basic).insert(self.host.clone(), ());
                Ok(h)
            }
            None => Err(DistributionError::Unauthorized {
                url: url.to_owned(),
                message: "the registry asks for basic credentials and none were given".into(),
            }),
        }
    }

    /// Gets a token from `realm`: the OAuth2 refresh-token POST for an identity token, a GET
    /// (with basic credentials when there are any) otherwise.
    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
    ) -> Result<Token, DistributionError> {
        let params = auth::token_params(&self.creds, service, &self.scopes);
        let token_err =
            |reason: String| DistributionError::Token { realm: realm.to_owned(), reason };
        if !(realm.starts_with("https://") || realm.starts_with("http://")) {
            return Err(token_err("the realm is not an http(s) URL".into()));
        }
        let mut headers = HeaderMap::new();
        let (method, url, body) = if let Credentials::IdentityToken(_) = self.creds {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            );
            (Method::POST, realm.to_owned(), transport::full(params))
        } else {
            if let Some(h) = self.creds.basic_header() {
                if let Ok(v) = HeaderValue::from_str(&h) {
                    headers.insert(header::AUTHORIZATION, v);
                }
            }
            let sep = if realm.contains('?') { '&' } else { '?' };
            (Method::GET, format!("{realm}{sep}{params}"), transport::empty())
        };
        let timeout = self.config().request_timeout;
        let resp = self.client.transport.send(method, &url, headers, body).await?;
        if resp.status() == StatusCode::UNAUTHORIZED || resp.status() == StatusCode::FORBIDDEN {
            let message = transport::error_text(resp, realm, timeout).await;
            return Err(DistributionError::Unauthorized { url: realm.to_owned(), message });
        }
        if !resp.status().is_success() {
            let status = resp.status();
            let message = transport::error_text(resp, realm, timeout).await;
            return Err(token_err(format!("{status}: {message}")));
        }
        let body = transport::read_bounded(resp, 1 << 20, realm, timeout).await?;
        let reply: auth::TokenReply = serde_json::from_slice(&body)
            .map_err(|e| token_err(format!("not a token reply: {e}")))?;
        reply.into_token().ok_or_else(|| token_err("the reply holds no token".into()))
    }
}

/// Where a request goes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target<'a> {
    /// A path under `/v2/<repository>/`.
    Repo(&'a str),
    /// An absolute URL (an upload location).
    Absolute(&'a str),
}
