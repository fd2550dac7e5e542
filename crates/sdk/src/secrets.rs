//! `secretprovider`: serve swarm secrets (swarmkit `manager/drivers/secrets.go`).

use std::future::Future;
use std::sync::Arc;

use dockplug_protocol::secrets::{GetSecretRequest, GetSecretResponse, SecretsMethod, IMPLEMENTS};

use crate::error::{PluginError, PluginResult};
use crate::router::ErrorKey;
use crate::server::PluginBuilder;

/// A secret provider. A value outside what swarm accepts (1 byte to under 500 KiB) is
/// refused here with a clear message, instead of later by the swarm manager.
pub trait SecretProvider: Send + Sync + 'static {
    /// `SecretProvider.GetSecret`: the value (and whether it may be reused for other tasks).
    fn get_secret(
        &self,
        req: GetSecretRequest,
    ) -> impl Future<Output = PluginResult<GetSecretResponse>> + Send;
}

impl PluginBuilder {
    /// Serve `provider` as `secretprovider`.
    pub fn secrets<D: SecretProvider>(mut self, provider: D) -> Self {
        let d = Arc::new(provider);
        let r = &mut self.router;
        r.implement(IMPLEMENTS);
        r.json(SecretsMethod::GetSecret.as_str(), ErrorKey::Err, move |req: GetSecretRequest| {
            let d = d.clone();
            async move {
                let resp = d.get_secret(req).await?;
                if resp.err.is_empty() {
                    resp.check_value().map_err(PluginError::from)?;
                }
                Ok(resp)
            }
        });
        self
    }
}
