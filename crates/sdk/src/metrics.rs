//! `MetricsCollector`: be told when the daemon's metrics may be scraped (Moby `daemon/metrics.go`).

use std::future::Future;
use std::sync::Arc;

use dockplug_protocol::metrics::{MetricsMethod, MetricsResponse, IMPLEMENTS};

use crate::error::PluginResult;
use crate::router::ErrorKey;
use crate::server::PluginBuilder;

/// A metrics collector. Both calls have defaults that do nothing; the daemon serves
/// Prometheus text at `GET /metrics` on the socket it mounts at
/// [`PLUGIN_METRICS_SOCKET`](dockplug_protocol::metrics::PLUGIN_METRICS_SOCKET).
pub trait MetricsCollector: Send + Sync + 'static {
    /// `MetricsCollector.StartMetrics`: scraping may begin.
    fn start_metrics(&self) -> impl Future<Output = PluginResult<()>> + Send {
        async { Ok(()) }
    }

    /// `MetricsCollector.StopMetrics`: the daemon is shutting down.
    fn stop_metrics(&self) -> impl Future<Output = PluginResult<()>> + Send {
        async { Ok(()) }
    }
}

impl PluginBuilder {
    /// Serve `collector` as `MetricsCollector`.
    pub fn metrics<D: MetricsCollector>(mut self, collector: D) -> Self {
        let d = Arc::new(collector);
        let r = &mut self.router;
        r.implement(IMPLEMENTS);
        let dd = d.clone();
        r.unit(MetricsMethod::StartMetrics.as_str(), ErrorKey::Err, move || {
            let d = dd.clone();
            async move { d.start_metrics().await.map(|()| MetricsResponse::default()) }
        });
        r.unit(MetricsMethod::StopMetrics.as_str(), ErrorKey::Err, move || {
            let d = d.clone();
            async move { d.stop_metrics().await.map(|()| MetricsResponse::default()) }
        });
        self
    }
}
