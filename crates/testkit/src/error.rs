//! The one error type of the testkit.

use std::time::Duration;

/// Why a daemon could not be started or driven.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file-system or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A program the launcher needs is not installed.
    #[error("{program} is not installed: run `cargo xtask setup` (CI installs it)")]
    Missing {
        /// The program's name.
        program: String,
    },
    /// The daemon exited before it answered.
    #[error("{name} exited before it answered ({status}):\n{log}")]
    Exited {
        /// The daemon's name.
        name: String,
        /// Its exit status.
        status: String,
        /// The tail of its log.
        log: String,
    },
    /// The daemon kept running but did not answer in time.
    #[error("{name} did not answer {probe} in {deadline:?}:\n{log}")]
    NotReady {
        /// The daemon's name.
        name: String,
        /// What was asked of it.
        probe: String,
        /// How long it was given.
        deadline: Duration,
        /// The tail of its log.
        log: String,
    },
    /// A reply that is not what the protocol says.
    #[error("{what}: {detail}")]
    Protocol {
        /// What was being read.
        what: String,
        /// What was wrong with it.
        detail: String,
    },
    /// Generating a key or certificate failed.
    #[error("generate {what}: {detail}")]
    Crypto {
        /// What was being generated.
        what: String,
        /// The underlying error, as text.
        detail: String,
    },
}

impl Error {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io { what: what.into(), source }
    }

    pub(crate) fn protocol(what: impl Into<String>, detail: impl Into<String>) -> Error {
        Error::Protocol { what: what.into(), detail: detail.into() }
    }

    pub(crate) fn crypto(what: impl Into<String>, detail: impl ToString) -> Error {
        Error::Crypto { what: what.into(), detail: detail.to_string() }
    }
}
