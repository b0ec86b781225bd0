//! The Parquet connector: a Hive-partitioned Parquet dataset ([`crate::sinks::ParquetSink`]
//! has the layout and the commit protocol). Shorthand `--sink parquet:DIR` (defaults).
//!
//! | option | meaning |
//! |---|---|
//! | `path` | root directory of the dataset (created when missing) |
//! | `partition_by` | Hive partition columns (`col=value/` directories; the columns leave the files). Unset: the UTC date and hour of `window_start` (`date=2026-11-24/hour=10/`; the files keep `window_start`); `[]` (SQL `''`): none |
//! | `compression` | `zstd` (default), `snappy`, `uncompressed` (`none`) |
//! | `roll_size` | a file is finished once it reaches this size [default: 128MiB] |
//! | `roll_interval` | ... or once it has been open this long [default: 1m]; rows become visible when their file is finished |
//! | `compact_min_files` | merge a partition's small files (under half of `roll_size`) once it has at least this many (at least 2); unset: never |
//! | `format` | `parquet` |

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use arrow::datatypes::Schema;
use rivulet_engine::plan::{ConnectorSpec, Plan};

use super::options::OptionReader;
use super::SinkConnector;
use crate::error::RuntimeError;
use crate::sinks::{ParquetSink, Sink, SinkContext};
use crate::Result;

/// The connector's name.
pub const NAME: &str = "parquet";
/// Default `roll_size`.
pub const DEFAULT_ROLL_SIZE: u64 = 128 << 20;
/// Default `roll_interval`.
pub const DEFAULT_ROLL_INTERVAL: Duration = Duration::from_secs(60);

const PATH: &[&str] = &["path"];
const PARTITION_BY: &[&str] = &["partition_by"];
const COMPRESSION: &[&str] = &["compression"];
const ROLL_SIZE: &[&str] = &["roll_size"];
const ROLL_INTERVAL: &[&str] = &["roll_interval"];
const COMPACT_MIN_FILES: &[&str] = &["compact_min_files"];
const FORMAT: &[&str] = &["format"];

/// Parquet page compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ParquetCompression {
    #[default]
    Zstd,
    Snappy,
    Uncompressed,
}

/// A Parquet sink's options (see the module docs), defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct ParquetOptions {
    pub path: PathBuf,
    /// `None`: date and hour of `window_start`; empty: no partitioning.
    pub partition_by: Option<Vec<String>>,
    pub compression: ParquetCompression,
    pub roll_size: u64,
    pub roll_interval: Duration,
    pub compact_min_files: Option<usize>,
}

impl ParquetOptions {
    /// The defaults for a dataset at `path`.
    pub fn at(path: impl Into<PathBuf>) -> ParquetOptions {
        ParquetOptions {
            path: path.into(),
            partition_by: None,
            compression: ParquetCompression::default(),
            roll_size: DEFAULT_ROLL_SIZE,
            roll_interval: DEFAULT_ROLL_INTERVAL,
            compact_min_files: None,
        }
    }

    /// Reads the options of `spec`; every problem at once.
    pub fn parse(spec: &ConnectorSpec) -> std::result::Result<ParquetOptions, Vec<String>> {
        let mut r = OptionReader::new(spec);
        let path = r.required_text(PATH);
        let partition_by = r.list(PARTITION_BY);
        let compression = r.choice(
            COMPRESSION,
            &[
                ("zstd", ParquetCompression::Zstd),
                ("snappy", ParquetCompression::Snappy),
                ("uncompressed", ParquetCompression::Uncompressed),
                ("none", ParquetCompression::Uncompressed),
            ],
        );
        let roll_size = r.bytes(ROLL_SIZE);
        let roll_interval = r.duration(ROLL_INTERVAL);
        let compact_min_files = r.number::<usize>(COMPACT_MIN_FILES, 2);
        r.choice(FORMAT, &[("parquet", ())]);
        let problems = r.finish();
        match path {
            Some(path) if problems.is_empty() => Ok(ParquetOptions {
                path: PathBuf::from(path),
                partition_by,
                compression: compression.unwrap_or_default(),
                roll_size: roll_size.map_or(DEFAULT_ROLL_SIZE, |b| b.0),
                roll_interval: roll_interval.map_or(DEFAULT_ROLL_INTERVAL, |d| {
                    Duration::from_millis(u64::try_from(d.0).unwrap_or(1))
                }),
                compact_min_files,
            }),
            _ => Err(problems),
        }
    }

    fn of(spec: &ConnectorSpec) -> Result<ParquetOptions> {
        ParquetOptions::parse(spec)
            .map_err(|p| RuntimeError::Plan(format!("parquet sink: {}", p.join("; "))))
    }
}

/// A Parquet sink at `path` with the default options.
pub fn spec(path: impl Into<PathBuf>) -> ConnectorSpec {
    ConnectorSpec::new(NAME).with(PATH[0], path.into().display().to_string())
}

/// The Parquet sink connector.
#[derive(Debug)]
pub struct Parquet;

impl SinkConnector for Parquet {
    fn name(&self) -> &'static str {
        NAME
    }

    fn shorthand(&self, value: &str) -> Option<ConnectorSpec> {
        let dir = value.strip_prefix("parquet:").filter(|d| !d.is_empty())?;
        Some(ConnectorSpec::new(NAME).with(PATH[0], dir))
    }

    fn check_options(&self, spec: &ConnectorSpec) -> Vec<String> {
        ParquetOptions::parse(spec).err().unwrap_or_default()
    }

    fn check_in_plan(&self, spec: &ConnectorSpec, plan: &Plan, schema: &Schema) -> Vec<String> {
        let Ok(o) = ParquetOptions::parse(spec) else {
            return Vec::new();
        };
        let mut problems = Vec::new();
        let mut seen = HashSet::new();
        for (j, c) in o.partition_by.iter().flatten().enumerate() {
            if schema.index_of(c).is_err() {
                let mut names: Vec<&str> =
                    schema.fields().iter().map(|f| f.name().as_str()).collect();
                names.sort_unstable();
                problems.push(format!(
                    "{}[{j}]: \"{c}\" is not an output column (output columns: {})",
                    PARTITION_BY[0],
                    names.join(", ")
                ));
            } else if !seen.insert(c) {
                problems.push(format!(
                    "{}[{j}]: duplicate column \"{c}\"",
                    PARTITION_BY[0]
                ));
            }
        }
        if o.partition_by.is_none() && plan.window.is_none() {
            problems.push(format!(
                "{}: the default (date and hour of window_start) needs a [window]; set \
                 partition_by = [] or name columns",
                PARTITION_BY[0]
            ));
        }
        problems
    }

    fn describe(&self, spec: &ConnectorSpec, _: &Plan) -> Result<String> {
        Ok(format!(
            "parquet files under {}",
            ParquetOptions::of(spec)?.path.display()
        ))
    }

    fn target(&self, spec: &ConnectorSpec, _: &Plan) -> Result<Option<String>> {
        Ok(Some(format!(
            "parquet path {}",
            ParquetOptions::of(spec)?.path.display()
        )))
    }

    fn open(&self, spec: &ConnectorSpec, ctx: &SinkContext<'_>) -> Result<Box<dyn Sink>> {
        Ok(Box::new(ParquetSink::open(
            &ParquetOptions::of(spec)?,
            ctx,
        )?))
    }
}
