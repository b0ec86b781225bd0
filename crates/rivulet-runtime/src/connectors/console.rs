//! The console connector: a Spark-like table per micro-batch on stdout
//! ([`crate::sinks::ConsoleSink`]). No options but `format = 'json'` (the rows are JSON-typed
//! values printed as a table), accepted for symmetry with SQL's other sinks.

use rivulet_engine::plan::{ConnectorSpec, Plan};

use super::options::OptionReader;
use super::SinkConnector;
use crate::sinks::{ConsoleSink, Sink, SinkContext};
use crate::Result;

/// The connector's name (and its `--sink` shorthand).
pub const NAME: &str = "console";
const FORMAT: &[&str] = &["format"];

/// The console sink connector.
#[derive(Debug)]
pub struct Console;

impl SinkConnector for Console {
    fn name(&self) -> &'static str {
        NAME
    }

    fn shorthand(&self, value: &str) -> Option<ConnectorSpec> {
        (value == NAME).then(|| ConnectorSpec::new(NAME))
    }

    fn check_options(&self, spec: &ConnectorSpec) -> Vec<String> {
        let mut r = OptionReader::new(spec);
        r.choice(FORMAT, &[("json", ())]);
        r.finish()
    }

    fn describe(&self, _: &ConnectorSpec, _: &Plan) -> Result<String> {
        Ok(NAME.to_string())
    }

    fn target(&self, _: &ConnectorSpec, _: &Plan) -> Result<Option<String>> {
        Ok(None)
    }

    fn open(&self, _: &ConnectorSpec, ctx: &SinkContext<'_>) -> Result<Box<dyn Sink>> {
        Ok(Box::new(
            ConsoleSink::stdout().with_schema(ctx.schema.clone()),
        ))
    }
}
