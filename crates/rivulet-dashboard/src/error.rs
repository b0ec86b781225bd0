//! The dashboard's error type.

#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// The HTTP server failed (accepting connections).
    #[error("dashboard server: {0}")]
    Io(#[from] std::io::Error),
    /// A background task of the dashboard panicked or was cancelled abnormally.
    #[error("dashboard task: {0}")]
    Task(String),
}
