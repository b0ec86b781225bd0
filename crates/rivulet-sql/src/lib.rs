//! # rivulet-sql — streaming SQL front end
//!
//! Turns a `.sql` file into the engine's [`Plan`]: the same plain data structure a TOML
//! pipeline file builds, so `rivulet run --sql` runs exactly what `rivulet run --pipeline`
//! runs (one decode, Rivulet's window operator, watermarks and checkpoints). A file with
//! several INSERTs over one source compiles to a [`Job`] of one branch plan per INSERT
//! ([`Script`]); the runtime reads and decodes the source once and fans the rows out.
//!
//! ```sql
//! CREATE SOURCE events (id BIGINT, value DOUBLE, timestamp TIMESTAMP,
//!   WATERMARK FOR timestamp AS timestamp - INTERVAL '5' SECOND)
//! WITH (connector = 'kafka', topic = 'events', format = 'json');
//! CREATE SINK stats WITH (connector = 'console');
//! INSERT INTO stats
//! SELECT id, window_start, window_end, count(*) AS n, avg(value)
//! FROM TUMBLE(events, timestamp, INTERVAL '10' SECOND)
//! GROUP BY id, window_start, window_end
//! EMIT ON WINDOW CLOSE;
//! ```
//!
//! Layers:
//! - `script` reads the streaming extensions (`CREATE SOURCE/SINK ... WITH`,
//!   `WATERMARK FOR`, `EMIT ...`, `SET`) with sqlparser's tokenizer and parser primitives; the
//!   standard parts (types, expressions, the SELECT) are parsed by sqlparser itself.
//! - DataFusion's SQL planner (`datafusion-sql`, with every default scalar and aggregate
//!   function registered) resolves and type-checks the SELECT; its errors keep their position.
//! - [`compile()`] maps the accepted query onto the plan: the `TUMBLE/HOP/SESSION` call in FROM
//!   is the window, GROUP BY keys (expressions become derived columns) and aggregate calls go
//!   to the window operator, WHERE and HAVING become filters and the SELECT list the result
//!   columns (expressions the engine evaluates with DataFusion, `rivulet_engine::expr`), EMIT
//!   picks the output mode.
//!
//! Not yet: INSERTs over different sources in one file (the INSERTs of a file share one
//! source, read once).
//!
//! Every error reads `line:column: what is wrong`, and is reported before anything starts.

mod compile;
pub mod error;
mod explain;
mod options;
mod script;
mod split;

pub use compile::{
    compile, compile_select, declarations, listed_columns, Compiled, Declaration, Script,
    SELECT_SINK,
};
pub use error::{Pos, SqlError};
pub use explain::explain;
pub use rivulet_engine::{Job, Plan};
pub use split::{split_statements, Statements};

/// Compiles a `.sql` file; errors read `path:line:column: ...`.
pub fn compile_file(path: &std::path::Path) -> Result<Script, SqlError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| SqlError::Io {
        path: shown.clone(),
        source,
    })?;
    compile(&text).map_err(|e| e.in_file(&shown))
}
