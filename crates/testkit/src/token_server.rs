//! A small token server for a registry's token auth, on a thread: it answers Docker's token
//! requests (`GET <realm>?service=..&scope=..` with optional Basic credentials, and the
//! OAuth2 form `POST <realm>` with `grant_type=password` or `refresh_token`) with a JWT from
//! the registry's [`TokenSigner`] granting every scope asked, and records each request so a
//! test can assert what a client sent.
//!
//! ```no_run
//! use dockplug_testkit::{Registry, TokenPolicy, TokenServer};
//!
//! let server = TokenServer::bind()?;
//! let registry = Registry::builder().token(&server.realm()).start()?;
//! let signer = registry.token_signer().expect("a token registry has a signer").clone();
//! let tokens = server.serve(signer, TokenPolicy::basic("alice", "secret"))?;
//! // ... a client pulls from registry.host() ...
//! println!("token requests: {:?}", tokens.requests());
//! # Ok::<(), dockplug_testkit::Error>(())
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::json;

use crate::{Access, Error, TokenSigner};

/// How long a token stays valid.
const TOKEN_TTL: Duration = Duration::from_secs(300);

/// How long one connection may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The most bytes of a request head or form body the server reads.
const MAX_REQUEST: usize = 64 * 1024;

/// Who gets a token.
#[derive(Debug, Clone, Default)]
pub struct TokenPolicy {
    /// Credentials required (Basic on `GET`, `grant_type=password` on `POST`); `None` lets
    /// anyone have a token.
    pub basic: Option<(String, String)>,
    /// The refresh (identity) token handed out on `offline_token=true` or a password grant,
    /// and accepted on `grant_type=refresh_token`.
    pub refresh_token: Option<String>,
}

impl TokenPolicy {
    /// Tokens for anyone.
    pub fn anonymous() -> TokenPolicy {
        TokenPolicy::default()
    }

    /// Tokens only for `user` with `password`.
    pub fn basic(user: &str, password: &str) -> TokenPolicy {
        TokenPolicy { basic: Some((user.to_owned(), password.to_owned())), refresh_token: None }
    }

    /// Also hand out and accept the refresh token `token`.
    pub fn with_refresh_token(mut self, token: &str) -> TokenPolicy {
        self.refresh_token = Some(token.to_owned());
        self
    }
}

/// A bound token server that does not serve yet: its [`realm`](Self::realm) goes into the
/// registry's config before the registry (and so the signer) exists.
#[derive(Debug)]
pub struct TokenServer {
    listener: TcpListener,
    addr: SocketAddr,
}

/// One request the server received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// `GET` or `POST`.
    pub method: String,
    /// The request target (path and query).
    pub target: String,
    /// The form body of a `POST`.
    pub form: String,
    /// The status the server answered.
    pub status: u16,
}

/// A serving token server, stopped (and its thread joined) on drop.
#[derive(Debug)]
pub struct RunningTokenServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    requests: Arc<Mutex<Vec<TokenRequest>>>,
    thread: Option<JoinHandle<()>>,
}

impl TokenServer {
    /// Binds a listener on an ephemeral loopback port.
    pub fn bind() -> Result<TokenServer, Error> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| Error::io("bind the token server on 127.0.0.1:0", e))?;
        let addr = listener.local_addr().map_err(|e| Error::io("read the bound address", e))?;
        Ok(TokenServer { listener, addr })
    }

    /// `http://127.0.0.1:<port>/token`, the registry's `auth.token.realm`.
    pub fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// Serves token requests on a thread until the returned guard drops.
    pub fn serve(
        self,
        signer: TokenSigner,
        policy: TokenPolicy,
    ) -> Result<RunningTokenServer, Error> {
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (stop2, requests2) = (stop.clone(), requests.clone());
        let listener = self.listener;
        let thread = std::thread::Builder::new()
            .name("testkit-token-server".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    if stop2.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    if let Some(request) = answer(stream, &signer, &policy) {
                        requests2.lock().unwrap_or_else(PoisonError::into_inner).push(request);
                    }
                }
            })
            .map_err(|e| Error::io("start the token server thread", e))?;
        Ok(RunningTokenServer { addr: self.addr, stop, requests, thread: Some(thread) })
    }
}

impl RunningTokenServer {
    /// `http://127.0.0.1:<port>/token`.
    pub fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.requests.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl Drop for RunningTokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads one request and answers it; `None` when nothing readable came.
fn answer(stream: TcpStream, signer: &TokenSigner, policy: &TokenPolicy) -> Option<TokenRequest> {
    stream.set_read_timeout(Some(READ_TIMEOUT)).ok()?;
    stream.set_write_timeout(Some(READ_TIMEOUT)).ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?).take(MAX_REQUEST as u64);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let (mut authorization, mut length) = (None, 0usize);
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "authorization" => authorization = Some(value.trim().to_owned()),
                "content-length" => length = value.trim().parse().ok()?,
                _ => {}
            }
        }
    }
    let mut body = vec![0u8; length.min(MAX_REQUEST)];
    reader.read_exact(&mut body).ok()?;
    let form = String::from_utf8_lossy(&body).into_owned();
    let (status, reply) = decide(&method, &target, &form, authorization.as_deref(), signer, policy);
    let text = reply.to_string();
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        if status == 200 { "OK" } else { "Unauthorized" },
        text.len()
    );
    let mut stream = stream;
    let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(text.as_bytes()));
    Some(TokenRequest { method, target, form, status })
}

/// The status and JSON reply for one request.
fn decide(
    method: &str,
    target: &str,
    form: &str,
    authorization: Option<&str>,
    signer: &TokenSigner,
    policy: &TokenPolicy,
) -> (u16, serde_json::Value) {
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    let params: Vec<(String, String)> = if method == "POST" { pairs(form) } else { pairs(query) };
    let get = |key: &str| params.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    let denied =
        (401, json!({"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}));
    let (subject, refresh) = if method == "POST" {
        match get("grant_type") {
            Some("refresh_token") => {
                if policy.refresh_token.is_none()
                    || get("refresh_token") != policy.refresh_token.as_deref()
                {
                    return denied;
                }
                ("refresh".to_owned(), false)
            }
            Some("password") => {
                let (user, password) =
                    (get("username").unwrap_or(""), get("password").unwrap_or(""));
                if policy.basic.as_ref().is_some_and(|(u, p)| u != user || p != password) {
                    return denied;
                }
                (user.to_owned(), true)
            }
            _ => return denied,
        }
    } else {
        let user = authorization
            .and_then(|a| a.strip_prefix("Basic "))
            .and_then(|b| STANDARD.decode(b.trim()).ok())
            .and_then(|raw| String::from_utf8(raw).ok());
        let granted = match (&policy.basic, &user) {
            (None, _) => true,
            (Some((u, p)), Some(given)) => *given == format!("{u}:{p}"),
            (Some(_), None) => false,
        };
        if !granted {
            return denied;
        }
        let subject =
            user.and_then(|u| u.split_once(':').map(|(n, _)| n.to_owned())).unwrap_or_default();
        (subject, get("offline_token") == Some("true"))
    };
    let access: Vec<Access> = params
        .iter()
        .filter(|(k, _)| k == "scope")
        .filter_map(|(_, v)| Access::from_scope(v))
        .collect();
    let Ok(token) = signer.sign(&subject, &access, TOKEN_TTL) else {
        return (500, json!({"errors": [{"code": "UNKNOWN", "message": "signing failed"}]}));
    };
    let mut reply =
        json!({"token": token, "access_token": token, "expires_in": TOKEN_TTL.as_secs()});
    if let (true, Some(refresh_token)) = (refresh, &policy.refresh_token) {
        reply["refresh_token"] = json!(refresh_token);
    }
    (200, reply)
}

/// `a=1&b=%3A` as decoded pairs (`+` is a space, as in forms).
fn pairs(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], escaped) {
            (_, Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (b, None) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_decoded() {
        let p = pairs(
            "scope=repository%28plugin%29%3Aa%2Fb%3Apull%2Cpush&service=reg+x&bad=%zz&end=%4",
        );
        assert_eq!(p[0].1, "repository(plugin):a/b:pull,push");
        assert_eq!(p[1].1, "reg x");
        assert_eq!(p[2].1, "%zz");
        assert_eq!(p[3].1, "%4");
    }
}
