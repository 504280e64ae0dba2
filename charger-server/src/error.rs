//! The domain error: one enum every service returns, mapped once on each edge (an HTTP
//! status in `api/`, a `code` in the RES envelope in `mqtt/`).

use crate::store::StoreError;

/// Result of a service call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a service call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input is well formed but not acceptable (422); `field` names the culprit.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// The thing does not exist, or is not visible to the caller (404).
    #[error("{what} not found")]
    NotFound { what: &'static str },
    /// The change conflicts with the current state (409).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// The caller is known but not allowed to do this (403).
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// The caller could not be authenticated (401).
    #[error("authentication required")]
    Unauthorized,
    /// A charger did not answer a command in time (504).
    #[error("the charger did not answer in time")]
    Timeout,
    /// A dependency is temporarily unavailable (503).
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an infrastructure failure (500); details are logged, never returned.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn not_found(what: &'static str) -> Self {
        Error::NotFound { what }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Error::Conflict {
            code,
            message: message.into(),
        }
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Error::Forbidden {
            code,
            message: message.into(),
        }
    }

    /// The machine code of the error body: `{"error": "<code>", ...}`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Invalid { .. } => "invalid_input",
            Error::NotFound { .. } => "not_found",
            Error::Conflict { code, .. } | Error::Forbidden { code, .. } => code,
            Error::Unauthorized => "unauthorized",
            Error::Timeout => "device_timeout",
            Error::Unavailable(_) => "unavailable",
            Error::Internal(_) => "internal",
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(message) => Error::conflict("conflict", message),
            StoreError::Database(e) => {
                crate::metrics::db_error();
                Error::Internal(format!("database: {e}"))
            }
            StoreError::Corrupt(message) => Error::Internal(format!("stored data: {message}")),
            StoreError::ReadOnly => Error::Internal(e.to_string()),
        }
    }
}
