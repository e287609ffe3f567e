//! One error type for the whole crate boundary.
//!
//! Every variant carries a stable machine-readable [`CrmError::code`] and, where
//! it applies, the path of the offending field ([`CrmError::field`]) so that the
//! Python and Node bindings can map it to native exceptions without parsing text.

use thiserror::Error;

/// Result alias used throughout `crm-core`.
pub type Result<T, E = CrmError> = std::result::Result<T, E>;

/// Everything that can go wrong when talking to the engine.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CrmError {
    /// Input to a command failed validation.
    #[error("invalid {field}: {reason}")]
    Validation { field: String, reason: String },
    /// The programme configuration is invalid (parse or semantic error).
    #[error("invalid programme at {path}: {reason}")]
    Config { path: String, reason: String },
    /// A referenced entity does not exist.
    #[error("{entity} not found: {id}")]
    NotFound { entity: &'static str, id: String },
    /// A redemption or debit asked for more points than are available.
    #[error("insufficient points: requested {requested}, available {available}")]
    InsufficientPoints { requested: i64, available: i64 },
    /// A concurrent writer won, an identity is taken, or an idempotency key was
    /// reused with a different command.
    #[error("conflict: {reason}")]
    Conflict { reason: String },
    /// The storage layer failed.
    #[error("store error: {0}")]
    Store(String),
    /// A segment rule (or rule condition) could not be read. For the text form
    /// `line`/`column` are 1-based and `excerpt` is the source line with a `^`
    /// under the column; for the JSON form they are 0 and `excerpt` is the JSON
    /// path (`and[1].value`). `field` names the field of a type error.
    #[error("invalid rule: {}", crate::segment::render_error(*line, *column, message, excerpt))]
    Rule { line: usize, column: usize, field: Option<String>, message: String, excerpt: String },
}

impl CrmError {
    /// Stable machine-readable code, identical in every language binding.
    pub fn code(&self) -> &'static str {
        match self {
            CrmError::Validation { .. } => "validation_error",
            CrmError::Config { .. } => "config_error",
            CrmError::NotFound { .. } => "not_found",
            CrmError::InsufficientPoints { .. } => "insufficient_points",
            CrmError::Conflict { .. } => "conflict",
            CrmError::Store(_) => "store_error",
            CrmError::Rule { .. } => "rule_error",
        }
    }

    /// Path of the offending field, when the error is about one.
    pub fn field(&self) -> Option<&str> {
        match self {
            CrmError::Validation { field, .. } => Some(field),
            CrmError::Config { path, .. } => Some(path),
            CrmError::Rule { field, .. } => field.as_deref(),
            _ => None,
        }
    }

    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        CrmError::Validation { field: field.into(), reason: reason.into() }
    }

    pub(crate) fn config(path: impl Into<String>, reason: impl Into<String>) -> Self {
        CrmError::Config { path: path.into(), reason: reason.into() }
    }

    pub(crate) fn conflict(reason: impl Into<String>) -> Self {
        CrmError::Conflict { reason: reason.into() }
    }
}
