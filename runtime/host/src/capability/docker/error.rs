//! Why a scoped Docker operation failed: the capability's error, one variant per WIT case.

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
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    ImageUnavailable(String),
    #[error("{0}")]
    Unavailable(String),
    /// A per-call limit of the capability was reached.
    #[error("{0}")]
    LimitExceeded(String),
    #[error("{0}")]
    Failed(String),
}

impl From<EngineError> for DockerError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Unavailable(m) => DockerError::Unavailable(m),
            EngineError::NotFound(m) => DockerError::NotFound(m),
            EngineError::Conflict(m) => DockerError::Conflict(m),
            EngineError::ImageUnavailable(m) => DockerError::ImageUnavailable(m),
            EngineError::Failed(m) => DockerError::Failed(m),
        }
    }
}
