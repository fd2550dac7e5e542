//! A v1 plugin: its name, address, TLS options, client and (once activated) manifest.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use dockplug_protocol::common::{ACTIVATE_METHOD, PROTOCOL_SCHEME_HTTP_V1};
use dockplug_protocol::Manifest;
use tokio::sync::OnceCell;

use crate::address::Address;
use crate::client::{CallError, CallOptions, Client, ClientError, RetryPolicy};
use crate::discovery::{PluginSpec, SocketId};
use crate::tls::TlsOptions;

/// How a plugin's client is set up and how long activation may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PluginOptions {
    /// Retries when the plugin cannot be reached (default: Moby's schedule).
    pub retry: RetryPolicy,
    /// Bound on `Plugin.Activate`, retries included (default 30 s; Moby has none, so a plugin
    /// that accepts and never answers hangs it forever).
    pub activate_timeout: Option<Duration>,
    /// Bound on opening one connection (default 10 s, as Moby).
    pub connect_timeout: Duration,
}

impl Default for PluginOptions {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            activate_timeout: Some(Duration::from_secs(30)),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

impl PluginOptions {
    /// Set the retry policy.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Set the activation timeout (`None`: unbounded).
    pub fn activate_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.activate_timeout = timeout;
        self
    }

    /// Set the connect timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }
}

/// A v1 plugin. Activation (`POST /Plugin.Activate`) happens once, however many callers ask
/// for it at the same time; its outcome, error included, is kept in the value.
#[derive(Debug)]
pub struct Plugin {
    name: String,
    addr: Address,
    tls: Option<TlsOptions>,
    source: Option<PathBuf>,
    pub(crate) socket_id: Option<SocketId>,
    client: Client,
    activate_timeout: Option<Duration>,
    activation: OnceCell<Result<Manifest, Arc<CallError>>>,
    /// Set (under the registry's lock) once handlers have been given this plugin.
    pub(crate) handlers_seen: AtomicBool,
}

impl Plugin {
    /// A plugin at `addr`, as Moby's `NewLocalPlugin` (TLS options: insecure).
    pub fn new(name: &str, addr: Address, opts: PluginOptions) -> Result<Plugin, ClientError> {
        Self::build(name.to_owned(), addr, Some(TlsOptions::insecure()), None, None, opts)
    }

    /// The plugin a discovery result describes.
    pub fn from_spec(spec: PluginSpec, opts: PluginOptions) -> Result<Plugin, ClientError> {
        Self::build(spec.name, spec.addr, spec.tls, Some(spec.source), spec.socket_id, opts)
    }

    fn build(
        name: String,
        addr: Address,
        tls: Option<TlsOptions>,
        source: Option<PathBuf>,
        socket_id: Option<SocketId>,
        opts: PluginOptions,
    ) -> Result<Plugin, ClientError> {
        let client = Client::builder(addr.clone())
            .tls(tls.clone())
            .retry(opts.retry)
            .connect_timeout(opts.connect_timeout)
            .build()?;
        Ok(Plugin {
            name,
            addr,
            tls,
            source,
            socket_id,
            client,
            activate_timeout: opts.activate_timeout,
            activation: OnceCell::new(),
            handlers_seen: AtomicBool::new(false),
        })
    }

    /// The discovery name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where the plugin listens.
    pub fn addr(&self) -> &Address {
        &self.addr
    }

    /// Its TLS options.
    pub fn tls(&self) -> Option<&TlsOptions> {
        self.tls.as_ref()
    }

    /// The socket or spec file it was discovered through.
    pub fn source(&self) -> Option<&Path> {
        self.source.as_deref()
    }

    /// The client that calls it (usable before activation, too).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The protocol scheme of v1 plugins, `moby.plugins.http/v1`.
    pub fn protocol(&self) -> &'static str {
        PROTOCOL_SCHEME_HTTP_V1
    }

    /// The manifest, once activation succeeded.
    pub fn manifest(&self) -> Option<&Manifest> {
        self.activation.get().and_then(|r| r.as_ref().ok())
    }

    /// The kept activation error, if activation failed.
    pub fn activation_error(&self) -> Option<&Arc<CallError>> {
        self.activation.get().and_then(|r| r.as_ref().err())
    }

    /// Activate the plugin (once; concurrent callers share the one handshake) and return its
    /// manifest, or the kept error.
    pub async fn activate(&self) -> Result<&Manifest, Arc<CallError>> {
        let result = self
            .activation
            .get_or_init(|| async {
                let opts = CallOptions { timeout: self.activate_timeout };
                let reply = self.client.call_raw(ACTIVATE_METHOD, None, opts).await;
                let manifest = reply.and_then(|body| {
                    let m: Option<Manifest> = serde_json::from_slice(&body).map_err(|source| {
                        CallError::Decode { method: ACTIVATE_METHOD.to_owned(), source }
                    })?;
                    Ok(m.unwrap_or_default())
                });
                match manifest {
                    Ok(m) => {
                        tracing::debug!(plugin = %self.name, implements = ?m.implements, "plugin activated");
                        Ok(m)
                    }
                    Err(e) => {
                        tracing::warn!(plugin = %self.name, error = %e, "plugin activation failed");
                        Err(Arc::new(e))
                    }
                }
            })
            .await;
        result.as_ref().map_err(Arc::clone)
    }
}
