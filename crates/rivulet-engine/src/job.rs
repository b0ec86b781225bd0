//! A job: one or more branch [`Plan`]s that read one source once (a SQL file with several
//! `INSERT INTO ... SELECT` statements).
//!
//! Every branch is a complete [`Plan`], so everything that takes a plan (the operator chain,
//! the sinks, the dashboard) works on a branch unchanged. The branches must agree on what is
//! read and when: source, schema, event time and watermark, trigger and checkpoint directory
//! ([`Job::validate`] checks it); they may differ in everything after the decode (filter,
//! derived columns, group keys, window, aggregates, output mode, sinks).
//!
//! A job of one branch is exactly the single query of a pipeline file: the job's name is the
//! plan's name and nothing about the checkpoint, consumer group or progress records changes.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::error::EngineError;
use crate::plan::Plan;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    /// The checkpoint directory, consumer group and progress records derive from it.
    pub name: String,
    /// The branch plans, each named distinctly (progress, dashboard, sink naming).
    pub branches: Vec<Plan>,
}

impl Job {
    /// The job running one plan, named after it.
    pub fn single(plan: Plan) -> Job {
        Job {
            name: plan.name.clone(),
            branches: vec![plan],
        }
    }

    /// The one plan of a single-branch job.
    pub fn as_single(&self) -> Option<&Plan> {
        match self.branches.as_slice() {
            [p] => Some(p),
            _ => None,
        }
    }

    /// The shared declarations (source, schema, event time, trigger, checkpoint) live in every
    /// branch; the first one speaks for all after [`Job::validate`]. `None` for an empty job.
    pub fn primary(&self) -> Option<&Plan> {
        self.branches.first()
    }

    /// Every branch plan is valid and they share what is read. (That no two branches write to
    /// the same place is the connectors' check: `rivulet_runtime::connectors::check_job`.)
    pub fn validate(&self) -> Result<(), EngineError> {
        if self.name.trim().is_empty() {
            return Err(EngineError::Plan("job name: must not be empty".into()));
        }
        let Some(first) = self.branches.first() else {
            return Err(EngineError::Plan("a job needs at least one branch".into()));
        };
        let mut names = HashSet::new();
        for (i, b) in self.branches.iter().enumerate() {
            b.validate()
                .map_err(|e| EngineError::Plan(format!("branch `{}`: {e}", b.name)))?;
            if !names.insert(b.name.as_str()) {
                return Err(EngineError::Plan(format!(
                    "branches[{i}]: two branches are named `{}`",
                    b.name
                )));
            }
            let differs = [
                ("source", b.source != first.source),
                ("schema", b.schema != first.schema),
                ("event time", b.event_time != first.event_time),
                ("trigger", b.output.trigger != first.output.trigger),
                ("checkpoint", b.checkpoint != first.checkpoint),
            ];
            if let Some((what, _)) = differs.iter().find(|(_, d)| *d) {
                return Err(EngineError::Plan(format!(
                    "branch `{}`: its {what} differs from branch `{}`'s; the branches of a job \
                     read one source once",
                    b.name, first.name
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::plan::{DurationMs, WindowSpec};

    /// The small test plan named `a`, writing to the file sink `out-a`.
    fn plan_a() -> Plan {
        let text = rivulet_testkit::small_plan_with(&[
            ("name = \"stats\"", "name = \"a\""),
            ("type = \"console\"", "type = \"file\"\npath = \"out-a\""),
        ]);
        Plan::from_toml(&text).unwrap()
    }

    fn two() -> Job {
        let a = plan_a();
        let mut b = a.clone();
        b.name = "b".into();
        b.window = Some(WindowSpec::Hopping {
            size: DurationMs(10_000),
            slide: DurationMs(5_000),
        });
        b.sinks = vec![crate::plan::ConnectorSpec::new("file").with("path", "out-b")];
        Job {
            name: "job".into(),
            branches: vec![a, b],
        }
    }

    #[test]
    fn branches_may_differ_after_the_decode() {
        two().validate().unwrap();
    }

    #[test]
    fn branches_must_share_the_source_and_have_distinct_names() {
        let mut j = two();
        j.branches[1].source.set("topics", "other");
        assert!(j.validate().unwrap_err().to_string().contains("its source"));
        let mut j = two();
        j.branches[1].name = "a".into();
        assert!(j.validate().unwrap_err().to_string().contains("named `a`"));
        let j = Job {
            name: "x".into(),
            branches: Vec::new(),
        };
        assert!(j.validate().is_err());
    }

    #[test]
    fn a_single_job_is_the_plan() {
        let p = plan_a();
        let j = Job::single(p.clone());
        assert_eq!(j.name, p.name);
        assert_eq!(j.as_single(), Some(&p));
        j.validate().unwrap();
    }
}
