//! Why a lookup failed, with Moby's texts and the status class of each.

use dockplug_manager::ManagerError;

/// Why [`Getter::get`](crate::Getter::get) or [`Getter::get_all_by_capability`](crate::Getter::get_all_by_capability) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GetError {
    /// The v2 lookup failed for a reason other than "not found" (disabled, without the
    /// capability, ambiguous ID prefix): no v1 fallback, as in Moby.
    #[error(transparent)]
    Managed(#[from] ManagerError),
    /// Neither a v2 nor a v1 plugin has that name.
    #[error("plugin \"{name}\" not found")]
    NotFound {
        /// The name asked for.
        name: String,
    },
    /// The v1 lookup failed (Moby's `legacy plugin: <err>`).
    #[error("legacy plugin: {message}")]
    Legacy {
        /// The plugin asked for (empty for a scan).
        name: String,
        /// The v1 error with its causes, as one line.
        message: String,
        /// The v1 error.
        #[source]
        source: Box<dockplug_v1::Error>,
    },
    /// The client of a v2 plugin's socket cannot be built.
    #[error("plugin {name}: cannot set up its client: {source}")]
    Client {
        /// The plugin.
        name: String,
        /// Why.
        #[source]
        source: dockplug_v1::ClientError,
    },
}

impl GetError {
    /// Whether no plugin of that name exists (either kind).
    pub fn is_not_found(&self) -> bool {
        matches!(self, GetError::NotFound { .. } | GetError::Managed(ManagerError::NotFound { .. }))
    }

    /// The HTTP status Moby gives this error (`errdefs` class): 404 not found, 409 disabled,
    /// 500 for v1 failures, the manager's own for the rest.
    pub fn http_status(&self) -> u16 {
        match self {
            GetError::Managed(e) => e.http_status(),
            GetError::NotFound { .. } => 404,
            GetError::Legacy { .. } | GetError::Client { .. } => 500,
        }
    }

    pub(crate) fn legacy(name: &str, source: dockplug_v1::Error) -> Self {
        GetError::Legacy {
            name: name.to_owned(),
            message: chain(&source),
            source: Box::new(source),
        }
    }
}

/// An error and its causes as one line, `a: b: c` (skipping a cause already in the text).
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}
