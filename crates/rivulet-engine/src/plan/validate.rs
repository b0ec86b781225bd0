//! [`Plan::validate`]: everything about a query that can be checked before it runs. The
//! operator stages are checked by planning them (`chain::plan_chain`); connector
//! options by the check the caller passes ([`Plan::validate_with`]).

use std::collections::HashSet;

use super::load::ExtraCheck;
use super::{is_reserved_name, FieldType, OutputMode, Plan, TimeFormat, TriggerSpec};
use crate::chain::plan_chain;
use crate::error::EngineError;
use crate::expr;

impl Plan {
    /// Checks everything that can be checked before running: names, types, expressions,
    /// window and output settings. All problems are reported at once, `; `-separated, each
    /// starting with the field path (`aggregates[2].column: unknown column "vale" (did you
    /// mean "value"?)`).
    pub fn validate(&self) -> Result<(), EngineError> {
        self.validate_with(&|_| Vec::new())
    }

    /// [`Plan::validate`], then `extra` (the connectors' check) when the query itself is
    /// valid; all problems in one error.
    pub fn validate_with(&self, extra: ExtraCheck<'_>) -> Result<(), EngineError> {
        let mut errs: Vec<String> = Vec::new();
        let mut err = |s: String| errs.push(s);

        if self.name.trim().is_empty() {
            err("name: must not be empty".into());
        }

        if self.source.connector.trim().is_empty() {
            err("source.type: must not be empty".into());
        }
        for (i, s) in self.sinks.iter().enumerate() {
            if s.connector.trim().is_empty() {
                err(format!("sinks[{i}]: missing field `type`"));
            }
        }

        // --- schema
        if self.schema.is_empty() {
            err("schema: at least one field is required".into());
        }
        let mut seen = HashSet::new();
        for (i, f) in self.schema.iter().enumerate() {
            if f.name.is_empty() {
                err(format!("schema[{i}].name: empty field name"));
            } else if is_reserved_name(&f.name) {
                err(format!(
                    "schema[{i}].name: \"{}\" is reserved for an engine column",
                    f.name
                ));
            } else if !seen.insert(f.name.as_str()) {
                err(format!("schema[{i}].name: duplicate field \"{}\"", f.name));
            }
        }

        // --- event time
        let et = &self.event_time;
        match self.schema.iter().find(|f| f.name == et.field) {
            None => err(format!(
                "event_time.field: {}",
                expr::unknown_column_message(
                    &et.field,
                    self.schema.iter().map(|f| f.name.as_str())
                )
            )),
            Some(f) => match (f.data_type, et.format) {
                (FieldType::Timestamp, _) => {}
                (FieldType::Bigint, TimeFormat::EpochMillis | TimeFormat::EpochSeconds) => {}
                (FieldType::Bigint, TimeFormat::Rfc3339) => err(format!(
                    "event_time.format: the event-time field \"{}\" is a bigint, so the format \
                     must be \"epoch_millis\" or \"epoch_seconds\"",
                    f.name
                )),
                (t, _) => err(format!(
                    "event_time.field: \"{}\" has type {}; the event-time field must be a \
                     timestamp (or a bigint with an epoch format)",
                    f.name,
                    t.name()
                )),
            },
        }
        if et.allowed_lateness.0 < 0 {
            err("event_time.allowed_lateness: must not be negative".into());
        }
        if et.idle_timeout.0 <= 0 {
            err("event_time.idle_timeout: must be > 0".into());
        }

        // --- output
        if self.output.mode == OutputMode::Append
            && self.window.is_none()
            && !self.aggregates.is_empty()
        {
            err(
                "output.mode: \"append\" needs a window (a running aggregate never finalises); \
                 use \"update\" or add a [window]"
                    .into(),
            );
        }
        if let TriggerSpec::ProcessingTime(d) = self.output.trigger {
            if d.0 <= 0 {
                err("output.trigger: must be > 0 (or \"on-arrival\")".into());
            }
        }

        // --- the operator chain, stage by stage (filter, derived columns, aggregation,
        // HAVING, SELECT).
        plan_chain(self, self.input_schema(), &mut errs);
        if errs.is_empty() {
            errs = extra(self);
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(EngineError::Plan(errs.join("; ")))
        }
    }
}
