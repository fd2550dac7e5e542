//! Why a volume operation failed, with Moby's texts (`daemon/volume/service/errors.go`
//! `OpErr`) and statuses.

use std::path::PathBuf;

use dockplug_protocol::filters::FilterError;

use super::DriverError;
use crate::error::GetError;

/// Why a volume operation failed. The texts are Moby's (`OpErr`: `<op> <name>: <cause>`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VolumeError {
    /// No such volume (404).
    #[error("{op} {name}: no such volume")]
    NoSuchVolume {
        /// The operation (`get`, `remove`).
        op: &'static str,
        /// The volume.
        name: String,
    },
    /// The driver cannot be looked up (its status: 404 not found, 409 disabled, ...).
    #[error("{op} {name}: error looking up volume plugin {driver}: {source}")]
    Lookup {
        /// The operation.
        op: &'static str,
        /// The volume.
        name: String,
        /// The driver asked for.
        driver: String,
        /// Why.
        #[source]
        source: Box<GetError>,
    },
    /// The driver of a known volume cannot be asked whether it still has it (500).
    #[error("{op} {name}: error while checking if volume \"{name}\" exists in driver \"{driver}\": {message}")]
    Check {
        /// The operation.
        op: &'static str,
        /// The volume.
        name: String,
        /// The driver.
        driver: String,
        /// The cause, as one line.
        message: String,
    },
    /// Create of a known volume whose driver cannot be asked whether it still has it (409:
    /// the name stays taken).
    #[error(
        "create {name}: found reference to volume '{name}' in driver '{driver}', but got an error while checking the driver: error while checking if volume \"{name}\" exists in driver \"{driver}\": {message}: volume name must be unique"
    )]
    CheckConflict {
        /// The volume.
        name: String,
        /// Its recorded driver.
        driver: String,
        /// The cause, as one line.
        message: String,
    },
    /// The name is taken by a volume of another driver (409).
    #[error(
        "create {name}: driver '{driver}' already has volume '{name}': volume name must be unique"
    )]
    NameConflict {
        /// The volume.
        name: String,
        /// The driver that has it.
        driver: String,
    },
    /// The driver refused or failed the call (500).
    #[error("{op} {name}: {source}")]
    Driver {
        /// The operation.
        op: &'static str,
        /// The volume.
        name: String,
        /// The driver's error.
        #[source]
        source: DriverError,
    },
    /// A list filter Moby does not accept, or a bad value (400).
    #[error(transparent)]
    Filter(#[from] FilterError),
    /// The store cannot be written (500).
    #[error("volume store {path}: {source}", path = path.display())]
    Store {
        /// The store file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl VolumeError {
    /// The HTTP status Moby gives this error.
    pub fn http_status(&self) -> u16 {
        match self {
            VolumeError::NoSuchVolume { .. } => 404,
            VolumeError::Lookup { source, .. } => source.http_status(),
            VolumeError::NameConflict { .. } | VolumeError::CheckConflict { .. } => 409,
            VolumeError::Filter(_) => 400,
            VolumeError::Check { .. } | VolumeError::Driver { .. } | VolumeError::Store { .. } => {
                500
            }
        }
    }
}
