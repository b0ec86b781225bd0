//! One module per subcommand: its clap flags and the function that runs it.

pub mod admin;
pub mod bench;
pub mod broker;
pub mod connection;
mod dashboard;
pub mod gen;
pub mod run;
pub mod sql;
pub mod up;
pub mod users;

use anyhow::Result;

/// A `.sql` pipeline compiled to the engine's job (one branch per INSERT); errors read
/// `file:line:column: ...`.
fn sql_job(path: &std::path::Path) -> Result<rivulet_engine::Job> {
    Ok(rivulet_sql::compile_file(path)?.job())
}

/// The one plan of a job whose flags (query flags, `--sink`) only make sense for one query.
fn single_plan(job: rivulet_engine::Job, what: &str) -> Result<rivulet_engine::Plan> {
    let n = job.branches.len();
    match <[rivulet_engine::Plan; 1]>::try_from(job.branches) {
        Ok([plan]) => Ok(plan),
        Err(_) => anyhow::bail!(
            "{what} applies to a single query; this SQL file has {n} INSERTs (edit the file instead)"
        ),
    }
}

/// The log line of a query that stopped.
fn log_query_summary(s: &rivulet_runtime::QuerySummary) {
    tracing::info!(
        "query stopped after {} micro-batches ({} input rows, {} output rows)",
        s.epochs,
        s.input_rows,
        s.output_rows
    );
}
