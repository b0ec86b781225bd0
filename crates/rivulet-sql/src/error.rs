//! The SQL front end's error type.

use std::fmt;

/// A position in the SQL text (1-based line and column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub line: u64,
    pub col: u64,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

impl From<sqlparser::tokenizer::Location> for Pos {
    fn from(l: sqlparser::tokenizer::Location) -> Pos {
        Pos {
            line: l.line,
            col: l.column,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// Something is wrong at a known place in the SQL text: `12:5: unknown column ...`.
    #[error("{pos}: {message}")]
    At { pos: Pos, message: String },
    /// Something is wrong with the file as a whole (no INSERT, nothing to run).
    #[error("{0}")]
    File(String),
    /// The file could not be read.
    #[error("cannot read {path}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

impl SqlError {
    pub(crate) fn at(pos: impl Into<Pos>, message: impl Into<String>) -> SqlError {
        SqlError::At {
            pos: pos.into(),
            message: message.into(),
        }
    }

    /// The same error with the file name in front (`pipeline.sql:12:5: ...`).
    pub fn in_file(self, path: &str) -> SqlError {
        match self {
            SqlError::At { pos, message } => SqlError::File(format!("{path}:{pos}: {message}")),
            SqlError::File(m) => SqlError::File(format!("{path}: {m}")),
            io @ SqlError::Io { .. } => io,
        }
    }
}

pub type Result<T, E = SqlError> = std::result::Result<T, E>;
