//! The file connector: JSON lines, one file per micro-batch ([`crate::sinks::FileSink`]).
//! Options: `path` (the directory), `format = 'json'`; shorthand `--sink file:DIR`.

use std::path::PathBuf;

use rivulet_engine::plan::{ConnectorSpec, Plan};

use super::options::OptionReader;
use super::SinkConnector;
use crate::error::RuntimeError;
use crate::sinks::{FileSink, Sink, SinkContext};
use crate::Result;

/// The connector's name.
pub const NAME: &str = "file";
const PATH: &[&str] = &["path"];
const FORMAT: &[&str] = &["format"];

/// A file sink writing into `dir`.
pub fn spec(dir: impl Into<PathBuf>) -> ConnectorSpec {
    ConnectorSpec::new(NAME).with(PATH[0], dir.into().display().to_string())
}

fn path(spec: &ConnectorSpec) -> std::result::Result<PathBuf, Vec<String>> {
    let mut r = OptionReader::new(spec);
    let path = r.required_text(PATH);
    r.choice(FORMAT, &[("json", ())]);
    let problems = r.finish();
    match path {
        Some(p) if problems.is_empty() => Ok(PathBuf::from(p)),
        _ => Err(problems),
    }
}

fn path_of(spec: &ConnectorSpec) -> Result<PathBuf> {
    path(spec).map_err(|p| RuntimeError::Plan(format!("file sink: {}", p.join("; "))))
}

/// The file sink connector.
#[derive(Debug)]
pub struct File;

impl SinkConnector for File {
    fn name(&self) -> &'static str {
        NAME
    }

    fn shorthand(&self, value: &str) -> Option<ConnectorSpec> {
        let dir = value.strip_prefix("file:").filter(|d| !d.is_empty())?;
        Some(ConnectorSpec::new(NAME).with(PATH[0], dir))
    }

    fn check_options(&self, spec: &ConnectorSpec) -> Vec<String> {
        path(spec).err().unwrap_or_default()
    }

    fn describe(&self, spec: &ConnectorSpec, _: &Plan) -> Result<String> {
        Ok(format!("file {}", path_of(spec)?.display()))
    }

    fn target(&self, spec: &ConnectorSpec, _: &Plan) -> Result<Option<String>> {
        Ok(Some(format!("file sink path {}", path_of(spec)?.display())))
    }

    fn open(&self, spec: &ConnectorSpec, ctx: &SinkContext<'_>) -> Result<Box<dyn Sink>> {
        Ok(Box::new(FileSink::new(path_of(spec)?, ctx.query_id)?))
    }
}
