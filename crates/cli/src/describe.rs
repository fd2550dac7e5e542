//! What `ls` and `inspect` show of a plugin: where it was found, its address and TLS options,
//! and what activating it once (no retry, bounded) tells.

use std::time::Duration;

use dockplug_v1::{CallError, LocalRegistry, Plugin, PluginOptions, PluginSpec, RetryPolicy};
use serde_json::{json, Value};

use crate::{call_failure, chain, Failure, EXIT_FAILURE, EXIT_PLUGIN_ERROR};

/// A plugin as `ls` and `inspect` show it: the JSON object (`Name`, `Addr`, `Source`,
/// `TLSConfig`, `Implements`, `Status`, `Error`) and the failure to report, if any.
pub(crate) struct Described {
    pub(crate) value: Value,
    pub(crate) failure: Option<Failure>,
}

impl Described {
    pub(crate) fn name(&self) -> &str {
        self.value["Name"].as_str().unwrap_or_default()
    }

    pub(crate) fn status(&self) -> &str {
        self.value["Status"].as_str().unwrap_or_default()
    }
}

/// Every plugin `dirs` lists whose name contains one of `names` (all when empty), activated
/// in parallel.
pub(crate) async fn list(
    dirs: &LocalRegistry,
    names: &[String],
    timeout: Duration,
) -> Result<Vec<Described>, Failure> {
    let found = dirs.scan().map_err(|e| crate::discovery_failure(&e))?;
    let wanted = found
        .into_iter()
        .filter(|n| names.is_empty() || names.iter().any(|w| n.contains(w.as_str())));
    let jobs = wanted.map(|name| async move {
        match dirs.plugin(&name) {
            Ok(spec) => describe(spec, timeout).await,
            Err(e) => Described {
                value: json!({ "Name": name, "Status": "error", "Error": chain(&e) }),
                failure: Some(crate::discovery_failure(&e)),
            },
        }
    });
    Ok(futures_util::future::join_all(jobs).await)
}

/// The description of one plugin, activating it once without retry.
pub(crate) async fn describe(spec: PluginSpec, timeout: Duration) -> Described {
    let name = spec.name.clone();
    let mut v = json!({
        "Name": spec.name,
        "Addr": spec.addr.as_str(),
        "Source": spec.source,
        "TLSConfig": spec.tls,
    });
    let opts = PluginOptions::default()
        .retry(RetryPolicy::never())
        .activate_timeout(Some(timeout))
        .connect_timeout(timeout);
    let plugin = match Plugin::from_spec(spec, opts) {
        Ok(p) => p,
        Err(e) => {
            v["Implements"] = Value::Null;
            v["Status"] = "error".into();
            v["Error"] = chain(&e).into();
            let f = Failure::new(EXIT_FAILURE, format!("plugin {name}: {}", chain(&e)));
            return Described { value: v, failure: Some(f) };
        }
    };
    match plugin.activate().await {
        Ok(m) => {
            v["Implements"] = json!(m.implements);
            v["Status"] = "ok".into();
            v["Error"] = Value::Null;
            Described { value: v, failure: None }
        }
        Err(e) => {
            let mut f = call_failure(&e);
            v["Implements"] = Value::Null;
            v["Status"] = if f.code == EXIT_PLUGIN_ERROR { "error" } else { "unreachable" }.into();
            v["Error"] = reason(&e).into();
            f.message = format!("plugin {}: {}", plugin.name(), f.message);
            Described { value: v, failure: Some(f) }
        }
    }
}

/// Why activation failed, in a few words for the table.
pub(crate) fn reason(e: &CallError) -> String {
    use std::io::ErrorKind;
    match e {
        CallError::Connect { source, .. } => match source.kind() {
            ErrorKind::ConnectionRefused => "connection refused".into(),
            ErrorKind::NotFound => "socket not found".into(),
            ErrorKind::PermissionDenied => "permission denied".into(),
            ErrorKind::TimedOut => "connect timed out".into(),
            _ => chain(source),
        },
        CallError::Timeout { after, .. } => format!("no reply within {after:?}"),
        CallError::Transport { source, .. } => format!("connection failed: {}", chain(source)),
        CallError::Plugin { status, message, .. } => format!("{status}: {}", message.trim()),
        CallError::Decode { source, .. } => format!("bad manifest: {source}"),
        other => chain(other),
    }
}
