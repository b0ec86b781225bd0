//! The one planner and the chain it builds: a branch [`Plan`] → its operators over the
//! decoded rows, in the one order they run — filter (WHERE), derived columns, the window
//! aggregate (or, without aggregation, the pass-through columns), HAVING, the SELECT list.
//! [`Plan::validate`] checks a plan by planning it (`plan_chain`: every stage's problems
//! under its field path), and the runtime runs the chain [`Chain::build`] makes from it; the
//! order is written here only.
//!
//! A chain is driven by in-band [`Message`]s: a batch of rows, the watermark, the end of a
//! trigger interval, a checkpoint barrier. Each goes through the operators in order, and what
//! an operator emits on a signal flows on to the operators after it before the next message,
//! so a barrier's snapshots hold exactly the effect of the messages before it.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use crate::error::{EngineError, Result};
use crate::expr::{self, CompiledExpr};
use crate::operator::{Message, Operator};
use crate::operators::{Filter, Project};
use crate::plan::{columns, is_reserved_name, AggregateFunction, Plan, WindowSpec};
use crate::window::WindowAggregate;

/// A branch's operators (see the module docs).
pub struct Chain {
    ops: Vec<Box<dyn Operator>>,
    output_schema: SchemaRef,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain")
            .field(
                "operators",
                &self.ops.iter().map(|o| o.name()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// What a chain emits for a message: result rows, and at a barrier every operator's snapshot
/// (name, bytes) in chain order.
#[derive(Debug, Default)]
pub struct Emitted {
    pub batches: Vec<RecordBatch>,
    pub snapshots: Vec<(&'static str, Vec<u8>)>,
}

/// What a control message does to one operator: its output goes down the chain.
type ControlHook<'a> = dyn Fn(&mut dyn Operator, &mut Vec<RecordBatch>) -> Result<()> + 'a;

impl Chain {
    /// The chain of `plan` over decoded rows of `input` (see [`Plan::input_schema`]); every
    /// problem at once, `; `-separated, as [`Plan::validate`] reports them.
    pub fn build(plan: &Plan, input: SchemaRef) -> Result<Chain> {
        let mut problems = Vec::new();
        match plan_chain(plan, input, &mut problems) {
            Some(chain) if problems.is_empty() => Ok(chain),
            _ if problems.is_empty() => Err(EngineError::Plan("the plan has no chain".into())),
            _ => Err(EngineError::Plan(problems.join("; "))),
        }
    }

    /// The schema of the result rows.
    pub fn output_schema(&self) -> SchemaRef {
        self.output_schema.clone()
    }

    /// The operators in order.
    pub fn operators(&self) -> impl Iterator<Item = &dyn Operator> {
        self.ops.iter().map(|o| o.as_ref())
    }

    /// The operators in order, to restore their state.
    pub fn operators_mut(&mut self) -> impl Iterator<Item = &mut (dyn Operator + 'static)> {
        self.ops.iter_mut().map(|o| o.as_mut())
    }

    /// Runs one message through the chain (see the module docs).
    pub fn process(&mut self, msg: Message, out: &mut Emitted) -> Result<()> {
        match msg {
            Message::Batch(b) => self.push(0, b, &mut out.batches),
            Message::Watermark(wm) => {
                self.signal(&mut out.batches, &|op, o| op.on_watermark(wm, o))
            }
            Message::Trigger => self.signal(&mut out.batches, &|op, o| op.on_trigger(o)),
            Message::Barrier(_) => {
                for op in &self.ops {
                    out.snapshots.push((op.name(), op.snapshot()?));
                }
                Ok(())
            }
        }
    }

    /// Pushes `batch` into operator `from` and cascades the outputs down the chain.
    fn push(&mut self, from: usize, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> Result<()> {
        let Some(op) = self.ops.get_mut(from) else {
            out.push(batch);
            return Ok(());
        };
        let mut produced = Vec::new();
        op.process_batch(batch, &mut produced)?;
        for b in produced {
            self.push(from + 1, b, out)?;
        }
        Ok(())
    }

    /// Calls a control hook on every operator in order, cascading each one's output.
    fn signal(&mut self, out: &mut Vec<RecordBatch>, hook: &ControlHook<'_>) -> Result<()> {
        for i in 0..self.ops.len() {
            let mut produced = Vec::new();
            hook(self.ops[i].as_mut(), &mut produced)?;
            for b in produced {
                self.push(i + 1, b, out)?;
            }
        }
        Ok(())
    }
}

/// The reason of an expression error, without the `invalid expression` wrapper (the plan
/// message names the field instead).
pub(crate) fn expr_reason(e: EngineError) -> String {
    match e {
        EngineError::Expr { expr, reason } => format!("`{expr}`: {reason}"),
        other => other.to_string(),
    }
}

/// A WHERE or HAVING clause compiled over `schema`; a problem under `field` unless it is a
/// boolean expression.
fn predicate(field: &str, sql: &str, schema: &Schema) -> std::result::Result<CompiledExpr, String> {
    match expr::compile(sql, schema) {
        Err(e) => Err(format!("{field}: {}", expr_reason(e))),
        Ok(c) if !matches!(c.data_type(), DataType::Boolean | DataType::Null) => Err(format!(
            "{field}: must be a boolean expression, got {}",
            expr::sql_type_name(c.data_type())
        )),
        Ok(c) => Ok(c),
    }
}

/// Plans `plan` stage by stage over `input`, pushing every problem (prefixed with its field
/// path) to `problems` and going on as far as later stages can still be checked; the chain
/// when every stage could be built.
pub(crate) fn plan_chain(
    plan: &Plan,
    input: SchemaRef,
    problems: &mut Vec<String>,
) -> Option<Chain> {
    let mut ops: Vec<Box<dyn Operator>> = Vec::new();
    let mut ok = true;

    // --- WHERE: over the decoded rows.
    if let Some(sql) = &plan.filter {
        match predicate("filter", sql, &input) {
            Err(p) => {
                problems.push(p);
                ok = false;
            }
            Ok(c) => ops.push(Box::new(Filter::from_compiled(c, input.clone()))),
        }
    }

    // --- derived columns: each sees the decoded rows and the derived columns before it.
    let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
    for (i, c) in plan.columns.iter().enumerate() {
        let name_ok = if c.name.is_empty() {
            problems.push(format!("columns[{i}].name: empty column name"));
            false
        } else if c.name.starts_with('_') || is_reserved_name(&c.name) {
            problems.push(format!(
                "columns[{i}].name: \"{}\" is reserved (names starting with `_`, \
                 `window_start` and `window_end` are engine columns)",
                c.name
            ));
            false
        } else if fields.iter().any(|f| f.name() == &c.name) {
            problems.push(format!(
                "columns[{i}].name: \"{}\" clashes with an existing column",
                c.name
            ));
            false
        } else {
            true
        };
        let schema = Schema::new(fields.clone());
        match expr::compile_column(&c.expr, &schema) {
            Err(e) => {
                problems.push(format!("columns[{i}].expr: {}", expr_reason(e)));
                ok = false;
            }
            Ok(compiled) if name_ok => {
                fields.push(Field::new(&c.name, compiled.data_type().clone(), true));
            }
            Ok(_) => ok = false,
        }
    }
    let mut schema = input.clone();
    if !plan.columns.is_empty() && ok {
        match Project::new(&plan.columns, &input) {
            Ok(p) => {
                schema = p.output_schema();
                ops.push(Box::new(p));
            }
            Err(e) => {
                problems.push(format!("columns: {}", expr_reason(e)));
                ok = false;
            }
        }
    }
    let all = Schema::new(fields);
    let all_names = || all.fields().iter().map(|f| f.name().as_str());
    let before_aggregation = problems.len();

    // --- grouping
    let mut seen = HashSet::new();
    for (i, g) in plan.group_by.iter().enumerate() {
        if all.index_of(g).is_err() {
            problems.push(format!(
                "group_by[{i}]: {}",
                expr::unknown_column_message(g, all_names())
            ));
        } else if !seen.insert(g.as_str()) {
            problems.push(format!("group_by[{i}]: duplicate column \"{g}\""));
        }
    }

    // --- window
    match &plan.window {
        Some(WindowSpec::Tumbling { size }) if size.0 <= 0 => {
            problems.push("window.size: must be > 0".into());
        }
        Some(WindowSpec::Hopping { size, slide }) => {
            if size.0 <= 0 {
                problems.push("window.size: must be > 0".into());
            }
            if slide.0 <= 0 {
                problems.push("window.slide: must be > 0".into());
            } else if slide.0 > size.0 {
                problems.push(format!(
                    "window.slide: {}ms must not exceed window.size {}ms",
                    slide.0, size.0
                ));
            }
        }
        Some(WindowSpec::Session { gap }) if gap.0 <= 0 => {
            problems.push("window.gap: must be > 0".into());
        }
        _ => {}
    }

    // --- aggregates
    if plan.aggregates.is_empty() && (!plan.group_by.is_empty() || plan.window.is_some()) {
        problems.push(
            "aggregates: at least one aggregate is required when group_by or window is set".into(),
        );
    }
    let mut outputs: HashSet<String> = plan.group_by.iter().cloned().collect();
    if plan.window.is_some() {
        outputs.insert(columns::WINDOW_START.into());
        outputs.insert(columns::WINDOW_END.into());
    }
    for (i, a) in plan.aggregates.iter().enumerate() {
        let f = a.function;
        match (&a.column, f) {
            (None, AggregateFunction::Count) => {}
            (None, _) => {
                problems.push(format!("aggregates[{i}].column: required for {}", f.name()))
            }
            (Some(col), _) => match all.field_with_name(col) {
                Err(_) => problems.push(format!(
                    "aggregates[{i}].column: {}",
                    expr::unknown_column_message(col, all_names())
                )),
                Ok(field) => {
                    let t = field.data_type();
                    let numeric =
                        matches!(t, DataType::Int32 | DataType::Int64 | DataType::Float64);
                    let ok = match f {
                        AggregateFunction::Count => true,
                        AggregateFunction::Min | AggregateFunction::Max => {
                            numeric || matches!(t, DataType::Timestamp(_, _))
                        }
                        _ => numeric,
                    };
                    if !ok {
                        problems.push(format!(
                            "aggregates[{i}].column: {} needs a numeric column{}, \"{col}\" \
                             is {}",
                            f.name(),
                            if matches!(f, AggregateFunction::Min | AggregateFunction::Max) {
                                " or a timestamp"
                            } else {
                                ""
                            },
                            expr::sql_type_name(t)
                        ));
                    }
                }
            },
        }
        match (f, a.percentile) {
            (AggregateFunction::ApproxPercentile, None) => problems.push(format!(
                "aggregates[{i}].percentile: required for approx_percentile"
            )),
            (AggregateFunction::ApproxPercentile, Some(p)) if !(0.0..=1.0).contains(&p) => problems
                .push(format!(
                    "aggregates[{i}].percentile: must be within [0, 1], got {p}"
                )),
            (AggregateFunction::ApproxPercentile, Some(_)) | (_, None) => {}
            (_, Some(_)) => problems.push(format!(
                "aggregates[{i}].percentile: only valid for approx_percentile"
            )),
        }
        if a.alias.as_deref().is_some_and(str::is_empty) {
            problems.push(format!("aggregates[{i}].alias: must not be empty when set"));
        }
        let out = a.output_name();
        if !outputs.insert(out.clone()) {
            problems.push(format!(
                "aggregates[{i}]: output column \"{out}\" is already taken (set a distinct \
                 `alias`)"
            ));
        }
    }

    // --- the aggregation, or the rows themselves.
    let out = if plan.is_passthrough() {
        if plan.having.is_some() {
            problems.push("having: needs an aggregation (aggregates, group_by or a window)".into());
        }
        Arc::new(all.clone())
    } else {
        match WindowAggregate::new(
            Arc::new(all.clone()),
            &plan.group_by,
            plan.window.as_ref(),
            &plan.aggregates,
            plan.output.mode,
        ) {
            Ok(agg) => {
                let out = agg.output_schema();
                if ok {
                    schema = out.clone();
                    ops.push(Box::new(agg));
                }
                out
            }
            Err(e) => {
                // The field checks above say why, unless the aggregate fails for a reason
                // of its own.
                if problems.len() == before_aggregation {
                    problems.push(format!("aggregates: {e}"));
                }
                return None;
            }
        }
    };
    if plan.is_passthrough() && plan.select.is_empty() && ok {
        match Project::select(&Plan::passthrough_columns(&schema), &schema) {
            Ok(p) => {
                schema = p.output_schema();
                ops.push(Box::new(p));
            }
            Err(e) => {
                problems.push(format!("columns: {}", expr_reason(e)));
                ok = false;
            }
        }
    }

    // --- HAVING and the SELECT list, over the aggregate's output.
    if let Some(h) = &plan.having {
        match predicate("having", h, &out) {
            Err(p) => {
                problems.push(p);
                ok = false;
            }
            Ok(c) if ok => ops.push(Box::new(Filter::from_compiled(c, schema.clone()))),
            Ok(_) => {}
        }
    }
    if !plan.select.is_empty() {
        for (i, c) in plan.select.iter().enumerate() {
            if c.name.is_empty() || c.name.starts_with('_') {
                problems.push(format!(
                    "select[{i}].name: \"{}\" is not a valid result column name (empty, or \
                     starting with `_`, reserved for engine columns)",
                    c.name
                ));
                ok = false;
            }
        }
        match Project::select(&plan.select, &out) {
            Err(e) => {
                problems.push(format!("select: {}", expr_reason(e)));
                ok = false;
            }
            Ok(p) if ok => {
                schema = p.output_schema();
                ops.push(Box::new(p));
            }
            Ok(_) => {}
        }
        let mut keep: Vec<&str> = plan.group_by.iter().map(String::as_str).collect();
        if plan.window.is_some() {
            keep.push(columns::WINDOW_START);
        }
        for k in keep {
            let kept = plan
                .select
                .iter()
                .any(|c| c.name == k && c.expr.trim().trim_matches('"').eq_ignore_ascii_case(k));
            if !kept {
                problems.push(format!(
                    "select: the result must keep \"{k}\" under its own name (sinks and the \
                     dashboard key rows by the group keys and window_start)"
                ));
                ok = false;
            }
        }
    }
    (ok && problems.is_empty()).then(|| Chain {
        ops,
        output_schema: schema,
    })
}
