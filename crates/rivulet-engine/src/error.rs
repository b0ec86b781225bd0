//! The engine's error type.

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A pipeline definition is wrong; the message names the field (and line when known).
    #[error("invalid pipeline definition: {0}")]
    Plan(String),
    /// An expression could not be parsed or type-checked.
    #[error("invalid expression `{expr}`: {reason}")]
    Expr { expr: String, reason: String },
    #[error("arrow error: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// Operator state could not be snapshotted or restored.
    #[error("state error: {0}")]
    State(String),
    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;
