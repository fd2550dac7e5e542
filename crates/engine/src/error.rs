//! The one error type of the API ([`ApiError`]) and the one mapping from an error's kind to
//! its HTTP status ([`ErrorKind::status`]), as Moby's `api/server/httpstatus` `FromError`
//! maps `errdefs` kinds.

use std::fmt;

use dockplug_manager::ManagerError;
use dockplug_protocol::engine::{BodyError, QueryError};
use dockplug_protocol::filters::FilterError;
use http::StatusCode;

/// What kind of failure an error is (Moby's `errdefs` classes). The kind alone decides the
/// status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A bad request: query, header or body (400).
    InvalidParameter,
    /// Authentication needed or refused (401).
    Unauthorized,
    /// Not allowed (403).
    Forbidden,
    /// No such object or route (404).
    NotFound,
    /// The object's state does not allow it (409).
    Conflict,
    /// Not implemented by this daemon (501).
    NotImplemented,
    /// Temporarily unavailable, e.g. shutting down (503).
    Unavailable,
    /// Anything else (500).
    System,
}

impl ErrorKind {
    /// The HTTP status of this kind: the only place a kind becomes a status.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::InvalidParameter => StatusCode::BAD_REQUEST,
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::NotImplemented => StatusCode::NOT_IMPLEMENTED,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::System => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The kind Moby gives a status a backend reports (the inverse of [`ErrorKind::status`];
    /// unknown codes are [`ErrorKind::System`]).
    pub fn from_status(status: u16) -> Self {
        match status {
            400 => ErrorKind::InvalidParameter,
            401 => ErrorKind::Unauthorized,
            403 => ErrorKind::Forbidden,
            404 => ErrorKind::NotFound,
            409 => ErrorKind::Conflict,
            501 => ErrorKind::NotImplemented,
            503 => ErrorKind::Unavailable,
            _ => ErrorKind::System,
        }
    }
}

/// An error an API call answers with: a kind (the status) and the message of the
/// `{"message": ...}` body.
#[derive(Debug)]
pub struct ApiError {
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl ApiError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), source: None }
    }

    /// An error of `kind` whose message is `source`'s display text, kept as the source.
    pub fn from_error<E>(kind: ErrorKind, source: E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        Self { kind, message: source.to_string(), source: Some(Box::new(source)) }
    }

    /// A 400 with `message`.
    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidParameter, message)
    }

    /// A 404 with `message`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    /// A 500 with `message`.
    pub fn system(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::System, message)
    }

    /// A 501: the daemon does not implement `what` (e.g. `plugin pull`).
    pub fn not_implemented(what: &str) -> Self {
        Self::new(ErrorKind::NotImplemented, format!("{what} is not implemented by this daemon"))
    }

    /// Moby's answer to a path no route matches: 404 `page not found`.
    pub fn page_not_found() -> Self {
        Self::not_found("page not found")
    }

    /// The kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// The manager's errors keep the status the manager gives them (`ManagerError::http_status`,
/// Moby's `errdefs` class of each) and their text.
impl From<ManagerError> for ApiError {
    fn from(e: ManagerError) -> Self {
        let kind = ErrorKind::from_status(e.http_status());
        ApiError::from_error(kind, e)
    }
}

/// A `filters` value that cannot be used is a 400 (Moby's `invalidFilter`).
impl From<FilterError> for ApiError {
    fn from(e: FilterError) -> Self {
        ApiError::from_error(ErrorKind::InvalidParameter, e)
    }
}

/// A query value that does not parse is a 400 (`strconv.Atoi` texts).
impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        ApiError::from_error(ErrorKind::InvalidParameter, e)
    }
}

/// A JSON body dockerd's reader refuses is a 400.
impl From<BodyError> for ApiError {
    fn from(e: BodyError) -> Self {
        ApiError::from_error(ErrorKind::InvalidParameter, e)
    }
}

/// Errors of [`Engine::serve`](crate::Engine::serve).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// Accepting a connection failed in a way that does not go away.
    #[error("failed to accept a connection")]
    Accept(#[source] std::io::Error),
}
