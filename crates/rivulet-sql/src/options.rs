//! A declaration's `WITH (...)` options → the plan's connector specs: the options SQL itself
//! takes (`timestamp.format`, `idle.timeout`, the watermark) and the ones it hands to the
//! connector registry (`rivulet_runtime::connectors`), which owns their names and checks;
//! problems are placed at the option they name.

use rivulet_engine::plan::{ConnectorSpec, DurationMs, EventTimeSpec, FieldType, TimeFormat};
use rivulet_runtime::connectors;
use sqlparser::ast::{BinaryOperator, Expr, Spanned};

use crate::compile::{interval_ms, plain_ident, From};
use crate::error::{Pos, Result, SqlError};
use crate::script::{Opt, SinkDecl, SourceDecl};
use rivulet_engine::expr::FunctionProvider as Provider;

fn bad_value(o: &Opt, expected: &str) -> SqlError {
    SqlError::at(
        o.pos,
        format!(
            "option `{}`: `{}` is not valid; expected {expected}",
            o.key, o.value
        ),
    )
}

fn duration_opt(o: &Opt) -> Result<DurationMs> {
    DurationMs::try_from(o.value.clone())
        .map_err(|e| SqlError::at(o.pos, format!("option `{}`: {e}", o.key)))
}

/// The WITH options a connector reads: every one but `connector` and the ones SQL itself
/// takes (`own`), as text.
fn connector_options(options: &[Opt], own: &[&str]) -> ConnectorSpec {
    let mut spec = ConnectorSpec::default();
    for o in options {
        if o.key != "connector" && !own.contains(&o.key.as_str()) {
            spec.set(o.key.clone(), o.value.clone());
        }
    }
    spec
}

/// A connector's first problem (`option: message`), at that option's position (else `at`).
fn connector_problem(problems: &[String], options: &[Opt], what: &str, at: Pos) -> SqlError {
    let first = problems.first().map_or("", String::as_str);
    let option = first.split([':', '[']).next().unwrap_or("");
    match options.iter().find(|o| o.key == option) {
        Some(o) => {
            let message = &first[option.len()..];
            match message.strip_prefix(": ") {
                // It names the option already.
                Some(m) if m.starts_with("unknown option") => SqlError::at(o.pos, m),
                _ => SqlError::at(o.pos, format!("option `{}`{message}", o.key)),
            }
        }
        None => SqlError::at(at, format!("{what}: {first}")),
    }
}

/// The `connector = '...'` option of a declaration, or an error naming the choices.
fn connector_of<'a>(options: &'a [Opt], what: &str, choices: &str, at: Pos) -> Result<&'a Opt> {
    options
        .iter()
        .find(|o| o.key == "connector")
        .ok_or_else(|| SqlError::at(at, format!("{what}: WITH needs connector = {choices}")))
}

/// The source's WITH options and watermark → the plan's source and event-time settings.
pub(crate) fn source_spec(src: &SourceDecl, from: &From) -> Result<(ConnectorSpec, EventTimeSpec)> {
    let what = format!("source `{}`", src.name);
    let choices = connectors::SOURCES
        .iter()
        .map(|c| format!("'{}'", c.name()))
        .collect::<Vec<_>>()
        .join(" | ");
    let connector = connector_of(&src.options, &what, &choices, src.pos)?;
    let c = connectors::source(&connector.value).map_err(|e| SqlError::at(connector.pos, e))?;
    let mut format = TimeFormat::Rfc3339;
    let mut idle = DurationMs(30_000);
    for o in &src.options {
        match o.key.as_str() {
            "timestamp.format" => {
                format = match o.value.as_str() {
                    "rfc3339" => TimeFormat::Rfc3339,
                    "epoch_millis" => TimeFormat::EpochMillis,
                    "epoch_seconds" => TimeFormat::EpochSeconds,
                    _ => return Err(bad_value(o, "'rfc3339', 'epoch_millis' or 'epoch_seconds'")),
                }
            }
            "idle.timeout" => idle = duration_opt(o)?,
            _ => {}
        }
    }
    let mut spec = connector_options(&src.options, &["timestamp.format", "idle.timeout"]);
    spec.connector = connector.value.clone();
    let problems = c.check(&spec);
    if !problems.is_empty() {
        return Err(connector_problem(&problems, &src.options, &what, src.pos));
    }
    let spec = c.normalize(&spec);

    // --- event time: the watermark column; windows must be over it.
    let (field, lateness) = match &src.watermark {
        Some(wm) => {
            if !src.columns.iter().any(|c| c.name == wm.column) {
                return Err(SqlError::at(
                    wm.pos,
                    format!("WATERMARK FOR `{}`: no such column", wm.column),
                ));
            }
            let lateness = match &wm.expr {
                e if plain_ident(e).as_deref() == Some(wm.column.as_str()) => 0,
                Expr::BinaryOp {
                    left,
                    op: BinaryOperator::Minus,
                    right,
                } if plain_ident(left).as_deref() == Some(wm.column.as_str()) => {
                    interval_ms(&Provider::new(), right)?
                }
                e => {
                    return Err(SqlError::at(
                        e.span().start,
                        format!(
                            "the watermark must be `{0}` or `{0} - INTERVAL '<n>' <unit>`",
                            wm.column
                        ),
                    ))
                }
            };
            (wm.column.clone(), lateness)
        }
        None => {
            if let Some((_, wpos)) = &from.window {
                return Err(SqlError::at(
                    *wpos,
                    format!(
                        "a window over source `{0}` needs a watermark: declare WATERMARK FOR \
                         <column> AS <column> - INTERVAL '<n>' SECOND in CREATE SOURCE {0}",
                        src.name
                    ),
                ));
            }
            // Without windows, event time only orders progress reporting: the first
            // timestamp column, with no lateness.
            let ts = src
                .columns
                .iter()
                .find(|c| c.data_type == FieldType::Timestamp)
                .ok_or_else(|| {
                    SqlError::at(
                        src.pos,
                        format!(
                            "source `{}` needs a TIMESTAMP column (event time)",
                            src.name
                        ),
                    )
                })?;
            (ts.name.clone(), 0)
        }
    };
    if let Some((col, at)) = &from.time_column {
        if *col != field {
            return Err(SqlError::at(
                *at,
                format!(
                    "the window's time column must be the watermark column `{field}`, not `{col}`"
                ),
            ));
        }
    }
    Ok((
        spec,
        EventTimeSpec {
            field,
            format,
            allowed_lateness: DurationMs(lateness),
            idle_timeout: idle,
        },
    ))
}

/// The sink's WITH options → the plan's sink (its options checked here, where each has a
/// position; what depends on the query is checked with the plan).
pub(crate) fn sink_spec(sink: &SinkDecl) -> Result<ConnectorSpec> {
    let what = format!("sink `{}`", sink.name);
    let choices = connectors::SINKS
        .iter()
        .map(|c| format!("'{}'", c.name()))
        .collect::<Vec<_>>()
        .join(" | ");
    let connector = connector_of(&sink.options, &what, &choices, sink.pos)?;
    let c = connectors::sink(&connector.value).map_err(|e| SqlError::at(connector.pos, e))?;
    let mut spec = connector_options(&sink.options, &[]);
    spec.connector = connector.value.clone();
    // The declared name is the default for what the connector names after its sink (a
    // PostgreSQL table).
    let spec = c.declare(&sink.name, spec);
    let problems = c.check_options(&spec);
    if !problems.is_empty() {
        return Err(connector_problem(&problems, &sink.options, &what, sink.pos));
    }
    Ok(spec)
}
