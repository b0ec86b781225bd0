//! Connectors: where a query reads from and writes to. One module per connector owns
//! everything about it — its option names (the same for the pipeline file, the `--sink`
//! shorthand and SQL `WITH (...)`), parsing and validation with problems that name the
//! option, the description `explain`, progress records and the dashboard show (secrets
//! redacted), and building it. The plan holds sources and sinks as generic
//! [`ConnectorSpec`]s; the registry below is what the front ends (pipeline file, `rivulet
//! run` flags, SQL) and the driver consult.
//!
//! Adding a connector: its module here (options, check, describe, open — the sink or source
//! itself may live in [`crate::sinks`] / [`crate::source`]) and one line in [`SINKS`] or
//! [`SOURCES`].

use std::collections::HashSet;
use std::path::Path;

use arrow::datatypes::Schema;
use rivulet_engine::plan::{ConnectorSpec, Plan};
use rivulet_engine::{Chain, EngineError, Job};

use crate::error::RuntimeError;
use crate::sinks::{Sink, SinkContext};
use crate::source::Source;
use crate::Result;

pub mod console;
pub mod file;
pub mod kafka;
mod options;
pub mod parquet;
pub mod postgres;

pub use kafka::SourceDescription;

/// A sink connector (see the module docs).
pub trait SinkConnector: Sync {
    /// Its name: `type = "..."` in the pipeline file, `connector = '...'` in SQL.
    fn name(&self) -> &'static str;

    /// The spec a `--sink` value gives when it is this connector's shorthand (`kafka:TOPIC`).
    fn shorthand(&self, value: &str) -> Option<ConnectorSpec>;

    /// The problems of the options themselves (names, values); each starts with the
    /// option's name.
    fn check_options(&self, spec: &ConnectorSpec) -> Vec<String>;

    /// The problems of valid options as a sink of `plan`, whose result rows have `schema`
    /// (a partition column that is not a result column, say).
    fn check_in_plan(&self, spec: &ConnectorSpec, plan: &Plan, schema: &Schema) -> Vec<String> {
        let _ = (spec, plan, schema);
        Vec::new()
    }

    /// One line for `explain`, progress records and the dashboard; never a secret.
    fn describe(&self, spec: &ConnectorSpec, plan: &Plan) -> Result<String>;

    /// The place it writes, for the check that no two branches of a job write one place;
    /// `None` when nothing is shared (the console).
    fn target(&self, spec: &ConnectorSpec, plan: &Plan) -> Result<Option<String>>;

    /// `spec` with secret values replaced, for printing the plan.
    fn redact(&self, spec: &ConnectorSpec) -> ConnectorSpec {
        spec.clone()
    }

    /// A SQL `CREATE SINK <name> WITH (...)`: the options as given; a connector may take a
    /// default from the declared name.
    fn declare(&self, name: &str, spec: ConnectorSpec) -> ConnectorSpec {
        let _ = name;
        spec
    }

    /// Builds the sink.
    fn open(&self, spec: &ConnectorSpec, ctx: &SinkContext<'_>) -> Result<Box<dyn Sink>>;
}

/// A source connector (see the module docs).
pub trait SourceConnector: Sync {
    fn name(&self) -> &'static str;

    /// The problems of `spec`, each starting with the option's name.
    fn check(&self, spec: &ConnectorSpec) -> Vec<String>;

    /// What `explain` shows; never a secret.
    fn describe(&self, spec: &ConnectorSpec) -> Result<SourceDescription>;

    /// `spec` with secret values replaced, for printing the plan.
    fn redact(&self, spec: &ConnectorSpec) -> ConnectorSpec {
        spec.clone()
    }

    /// `spec` in canonical form: aliases replaced by the option names, the settings that
    /// identify the source written out, so a pipeline file, flags and SQL that mean the same
    /// source give the same plan. Called on checked specs; a spec with problems is returned
    /// as is.
    fn normalize(&self, spec: &ConnectorSpec) -> ConnectorSpec {
        spec.clone()
    }

    /// Connects the source of query `query_name`.
    fn open(&self, spec: &ConnectorSpec, query_name: &str) -> Result<Box<dyn Source>>;
}

/// Every sink connector.
pub static SINKS: &[&dyn SinkConnector] = &[
    &console::Console,
    &file::File,
    &kafka::KafkaSinkConnector,
    &parquet::Parquet,
    &postgres::Postgres,
];

/// Every source connector.
pub static SOURCES: &[&dyn SourceConnector] = &[&kafka::KafkaSource];

fn names(list: impl Iterator<Item = &'static str>) -> String {
    list.map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The sink connector called `name`.
pub fn sink(name: &str) -> std::result::Result<&'static dyn SinkConnector, String> {
    SINKS
        .iter()
        .copied()
        .find(|c| c.name() == name)
        .ok_or_else(|| {
            format!(
                "unknown sink type `{name}`, expected one of {}",
                names(SINKS.iter().map(|c| c.name()))
            )
        })
}

/// The source connector called `name`.
pub fn source(name: &str) -> std::result::Result<&'static dyn SourceConnector, String> {
    SOURCES
        .iter()
        .copied()
        .find(|c| c.name() == name)
        .ok_or_else(|| {
            format!(
                "unknown source type `{name}`, expected one of {}",
                names(SOURCES.iter().map(|c| c.name()))
            )
        })
}

fn plan_err(e: String) -> RuntimeError {
    RuntimeError::Plan(e)
}

/// The sink a `--sink` value names: a connector's shorthand (`console`, `file:DIR`,
/// `kafka:TOPIC`, `parquet:DIR`, `postgres://...`).
pub fn sink_from_shorthand(value: &str) -> std::result::Result<ConnectorSpec, String> {
    SINKS
        .iter()
        .find_map(|c| c.shorthand(value))
        .ok_or_else(|| {
            format!(
                "expected console, file:DIR, kafka:TOPIC, parquet:DIR or postgres://..., got \
                 `{value}`"
            )
        })
}

/// Every problem of the plan's connectors, each starting with its field path (`source.topics:
/// ...`, `sinks[1].roll_size: ...`). Expects a plan that passed [`Plan::validate`] (the
/// sinks are checked against its result schema).
pub fn check(plan: &Plan) -> Vec<String> {
    let mut problems = Vec::new();
    match source(&plan.source.connector) {
        Ok(c) => problems.extend(
            c.check(&plan.source)
                .into_iter()
                .map(|p| format!("source.{p}")),
        ),
        Err(e) => problems.push(format!("source.type: {e}")),
    }
    let schema = match Chain::build(plan, plan.input_schema()) {
        Ok(chain) => chain.output_schema(),
        Err(e) => {
            problems.push(e.to_string());
            return problems;
        }
    };
    for (i, s) in plan.sinks.iter().enumerate() {
        match sink(&s.connector) {
            Ok(c) => {
                let mut p = c.check_options(s);
                if p.is_empty() {
                    p = c.check_in_plan(s, plan, &schema);
                }
                problems.extend(p.into_iter().map(|p| format!("sinks[{i}].{p}")));
            }
            Err(e) => problems.push(format!("sinks[{i}].type: {e}")),
        }
    }
    problems
}

/// The plan, checked: [`Plan::validate`] and its connectors.
pub fn check_plan(plan: &Plan) -> std::result::Result<(), EngineError> {
    plan.validate_with(&check)
}

/// The plan with its source in canonical form ([`SourceConnector::normalize`]).
pub fn normalized(mut plan: Plan) -> Plan {
    if let Ok(c) = source(&plan.source.connector) {
        plan.source = c.normalize(&plan.source);
    }
    plan
}

/// A pipeline file's text → a plan whose query and connectors are valid, normalized.
pub fn load_toml(text: &str) -> std::result::Result<Plan, EngineError> {
    Plan::from_toml_checked(text, &check).map(normalized)
}

/// [`load_toml`] on a file (messages prefixed with the path).
pub fn load_toml_file(path: &Path) -> std::result::Result<Plan, EngineError> {
    Plan::from_toml_file_checked(path, &check).map(normalized)
}

/// [`Job::validate`], every branch's connectors, and no two branches writing to one place
/// (each sink's exactly-once bookkeeping is per query and epoch, not per branch).
pub fn check_job(job: &Job) -> std::result::Result<(), EngineError> {
    job.validate()?;
    let mut targets: HashSet<String> = HashSet::new();
    for b in &job.branches {
        check_plan(b).map_err(|e| EngineError::Plan(format!("branch `{}`: {e}", b.name)))?;
        for s in &b.sinks {
            let target = sink(&s.connector)
                .map_err(EngineError::Plan)?
                .target(s, b)
                .map_err(|e| EngineError::Plan(e.to_string()))?;
            let Some(target) = target else {
                continue;
            };
            if job.branches.len() > 1 && !targets.insert(target.clone()) {
                return Err(EngineError::Plan(format!(
                    "branch `{}`: {target} is already written by another sink of the job",
                    b.name
                )));
            }
        }
    }
    Ok(())
}

/// What `explain` shows of the plan's source.
pub fn describe_source(plan: &Plan) -> Result<SourceDescription> {
    source(&plan.source.connector)
        .map_err(plan_err)?
        .describe(&plan.source)
}

/// One line per sink of `plan`, for `explain`, progress records and the dashboard.
pub fn describe_sinks(plan: &Plan) -> Result<Vec<String>> {
    plan.sinks
        .iter()
        .map(|s| sink(&s.connector).map_err(plan_err)?.describe(s, plan))
        .collect()
}

/// The plan with every secret option value replaced, for printing (`--print-plan`).
pub fn redacted(plan: &Plan) -> Plan {
    let mut p = plan.clone();
    if let Ok(c) = source(&p.source.connector) {
        p.source = c.redact(&p.source);
    }
    for s in &mut p.sinks {
        if let Ok(c) = sink(&s.connector) {
            *s = c.redact(s);
        }
    }
    p
}

/// The sink a SQL `CREATE SINK name WITH (connector = '...', ...)` declares.
pub fn declare_sink(name: &str, spec: ConnectorSpec) -> std::result::Result<ConnectorSpec, String> {
    Ok(sink(&spec.connector)?.declare(name, spec))
}

/// Opens a branch's sinks.
pub fn open_sinks(ctx: &SinkContext<'_>) -> Result<Vec<Box<dyn Sink>>> {
    ctx.plan
        .sinks
        .iter()
        .map(|s| sink(&s.connector).map_err(plan_err)?.open(s, ctx))
        .collect()
}

/// Connects the plan's source.
pub fn open_source(plan: &Plan) -> Result<Box<dyn Source>> {
    source(&plan.source.connector)
        .map_err(plan_err)?
        .open(&plan.source, &plan.name)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
