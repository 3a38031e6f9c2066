//! Why a scoped Docker operation failed: the capability's error. Its cases are the WIT
//! `docker-error`'s: the scope's own refusals here, the engine's failures as [`EngineError`]
//! (one list of engine cases, not two).

use super::engine::EngineError;

/// Why a scoped operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DockerError {
    /// The grants do not allow it; `hint` names the narrowest grant that would.
    #[error("{reason}")]
    Denied { reason: String, hint: String },
    /// The request is malformed.
    #[error("{0}")]
    Invalid(String),
    /// A per-call limit of the capability was reached.
    #[error("{0}")]
    LimitExceeded(String),
    /// The engine failed, or the scope reports what the engine would (a name not in the
    /// project is `not-found`; one taken outside it, a `conflict`).
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl DockerError {
    /// `not-found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        EngineError::NotFound(message.into()).into()
    }

    /// `conflict`.
    pub fn conflict(message: impl Into<String>) -> Self {
        EngineError::Conflict(message.into()).into()
    }

    /// `image-unavailable`.
    pub fn image_unavailable(message: impl Into<String>) -> Self {
        EngineError::ImageUnavailable(message.into()).into()
    }

    /// `unavailable`.
    pub fn unavailable(message: impl Into<String>) -> Self {
        EngineError::Unavailable(message.into()).into()
    }
}
