//! `MetricsCollector`: metrics plugins (Moby `daemon/metrics.go`).
//!
//! Both calls have an empty request body and the daemon never reads the reply body: only
//! the status counts (a non-200 status is logged). The daemon serves Prometheus text at
//! `GET /metrics` on a unix socket it bind-mounts into the plugin at
//! [`PLUGIN_METRICS_SOCKET`].
//!
//! ```
//! use dockplug_protocol::metrics::MetricsMethod;
//! assert_eq!(MetricsMethod::StartMetrics.path(), "/MetricsCollector.StartMetrics");
//! ```

/// The `Implements` entry of a metrics plugin (in practice only v2 plugins are used).
pub const IMPLEMENTS: &str = "MetricsCollector";

/// Where the daemon's metrics socket appears inside a v2 metrics plugin.
pub const PLUGIN_METRICS_SOCKET: &str = "/run/docker/metrics.sock";

/// The HTTP path to scrape on that socket (plain HTTP, `GET`).
pub const METRICS_PATH: &str = "/metrics";

crate::subsystem::methods! {
    /// The `MetricsCollector` endpoints.
    MetricsMethod, "MetricsCollector", {
        /// `MetricsCollector.StartMetrics`: the plugin may scrape now.
        StartMetrics => "StartMetrics",
        /// `MetricsCollector.StopMetrics`: the daemon shuts down.
        StopMetrics => "StopMetrics",
    }
}

/// The request of both calls: an empty body (`{}` and `null` are read the same).
pub type MetricsRequest = crate::volume::EmptyRequest;

/// A conventional reply; the daemon ignores the body, so `{}` is enough.
pub type MetricsResponse = crate::volume::EmptyRequest;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(crate::subsystem::Subsystem::Metrics.implements(), IMPLEMENTS);
        assert_eq!(crate::subsystem::Subsystem::Metrics.endpoint_prefix(), MetricsMethod::PREFIX);
        let r: MetricsRequest = crate::body::decode_request(b"").unwrap();
        assert_eq!(serde_json::to_string(&r).unwrap(), "{}");
    }
}
