//! `INSERT INTO sink SELECT ...` → [`Plan`].
//!
//! DataFusion's planner resolves and type-checks the whole SELECT first (unknown columns, type
//! mismatches, non-grouped columns and unknown functions are its errors, at its positions);
//! only a query it accepts is then mapped onto Rivulet's streaming operators: the window
//! function in FROM becomes the plan's window, GROUP BY keys become group columns (expressions
//! become derived columns), aggregate calls become the window operator's aggregates.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion_common::{DFSchema, DataFusionError, ScalarValue};
use datafusion_sql::planner::{ParserOptions, PlannerContext, SqlToRel};
use rivulet_engine::job::Job;
use rivulet_engine::plan::{
    columns, timestamp_type, AggregateFunction, AggregateSpec, CheckpointSpec, DerivedColumn,
    DurationMs, FieldSpec, OutputMode, OutputSpec, Plan, TriggerSpec, WindowSpec,
};
use rivulet_runtime::connectors;
use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, Ident, Query, SelectItem,
    SetExpr, Spanned, Statement, TableFactor, TableObject, VisitMut, VisitorMut,
};

use crate::error::{Pos, Result, SqlError};
use crate::options::{sink_spec, source_spec};
use crate::script::{self, Emit, Item, Opt, SinkDecl, SourceDecl};
use rivulet_engine::expr::FunctionProvider as Provider;

/// One compiled `INSERT INTO sink SELECT ...`: the plan the engine runs for it, and the names
/// it was declared with.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub plan: Plan,
    pub source_name: String,
    pub sink_name: String,
}

/// A compiled SQL file: one branch per INSERT, all reading the one source once.
///
/// A file with one INSERT is exactly the plan a pipeline file gives ([`Script::single_plan`]).
/// With several, each branch plan is named after its sink (progress, dashboard, a PostgreSQL
/// sink's default table) and the job — checkpoint directory, consumer group, progress
/// records — is named by `SET name`, or after the first INSERT's sink.
#[derive(Debug, Clone)]
pub struct Script {
    pub name: String,
    pub source_name: String,
    /// In file order.
    pub branches: Vec<Compiled>,
}

impl Script {
    /// The plan of a file with one INSERT.
    pub fn single_plan(&self) -> Option<&Plan> {
        match self.branches.as_slice() {
            [c] => Some(&c.plan),
            _ => None,
        }
    }

    /// The job the runtime runs.
    pub fn job(&self) -> Job {
        Job {
            name: self.name.clone(),
            branches: self.branches.iter().map(|c| c.plan.clone()).collect(),
        }
    }
}

/// Compiles a streaming SQL file's text.
pub fn compile(text: &str) -> Result<Script> {
    compile_items(script::parse(text)?)
}

/// The sink [`compile_select`] sends a bare SELECT's rows to: a console sink, which the caller
/// usually replaces (the shell prints the rows itself).
pub const SELECT_SINK: &str = "select";

/// Compiles a bare `SELECT ... [EMIT ...]` (no `INSERT INTO`) over the sources and settings
/// declared in `decls` (CREATE SOURCE and SET statements), as `INSERT INTO` a console sink
/// named [`SELECT_SINK`]. Errors in the SELECT point at its own `line:column` in `select`,
/// errors in a declaration at its place in `decls`.
pub fn compile_select(decls: &str, select: &str) -> Result<Compiled> {
    let mut items = script::parse(decls)?;
    for item in &items {
        let (what, pos) = match item {
            Item::Sink(s) => ("CREATE SINK", s.pos),
            Item::Insert(i) => ("INSERT", i.pos),
            Item::Source(_) | Item::Set(_) => continue,
        };
        return Err(SqlError::at(
            pos,
            format!(
                "{what} is not allowed here: only CREATE SOURCE and SET declare a SELECT's context"
            ),
        ));
    }
    let at = Pos { line: 1, col: 1 };
    items.push(Item::Sink(SinkDecl {
        name: SELECT_SINK.to_string(),
        pos: at,
        options: vec![Opt {
            key: "connector".into(),
            value: "console".into(),
            pos: at,
        }],
    }));
    items.push(script::parse_select(select, SELECT_SINK)?);
    let script = compile_items(items)?;
    script
        .branches
        .into_iter()
        .next()
        .ok_or_else(|| SqlError::File("no SELECT to run".into()))
}

/// The plain columns a bare SELECT without GROUP BY lists (`SELECT value, id FROM ...`), in
/// its order; `None` for `*`, aggregations and anything else.
pub fn listed_columns(select: &str) -> Option<Vec<String>> {
    let Ok(Item::Insert(insert)) = script::parse_select(select, SELECT_SINK) else {
        return None;
    };
    let Statement::Insert(ins) = *insert.statement else {
        return None;
    };
    let query = ins.source?;
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    match &select.group_by {
        GroupByExpr::Expressions(keys, _) if keys.is_empty() => {}
        _ => return None,
    }
    select
        .projection
        .iter()
        .map(|item| match item {
            SelectItem::UnnamedExpr(e) => plain_ident(e),
            _ => None,
        })
        .collect()
}

/// What a statement of a streaming SQL text declares (see [`declarations`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Declaration {
    /// `CREATE SOURCE name ...`
    Source { name: String },
    /// `CREATE SINK name ...`
    Sink { name: String },
    /// `SET key = 'value'` (key lower-cased).
    Set { key: String, value: String },
    /// `INSERT INTO ... SELECT ...`
    Insert,
}

/// The statements of `text`, parsed (syntax and option lists checked) but not compiled: what
/// each one declares. The shell uses it to keep sources and settings for later queries.
pub fn declarations(text: &str) -> Result<Vec<Declaration>> {
    Ok(script::parse(text)?
        .into_iter()
        .map(|item| match item {
            Item::Source(s) => Declaration::Source { name: s.name },
            Item::Sink(s) => Declaration::Sink { name: s.name },
            Item::Set(o) => Declaration::Set {
                key: o.key,
                value: o.value,
            },
            Item::Insert(_) => Declaration::Insert,
        })
        .collect())
}

fn compile_items(items: Vec<Item>) -> Result<Script> {
    let mut sources: Vec<SourceDecl> = Vec::new();
    let mut sinks: Vec<SinkDecl> = Vec::new();
    let mut sets: Vec<Opt> = Vec::new();
    let mut inserts = Vec::new();
    for item in items {
        match item {
            Item::Source(s) => {
                let s = *s;
                if sources.iter().any(|o| o.name == s.name) {
                    return Err(SqlError::at(
                        s.pos,
                        format!("source `{}` is declared twice", s.name),
                    ));
                }
                sources.push(s);
            }
            Item::Sink(s) => {
                if sinks.iter().any(|o| o.name == s.name) {
                    return Err(SqlError::at(
                        s.pos,
                        format!("sink `{}` is declared twice", s.name),
                    ));
                }
                sinks.push(s);
            }
            Item::Set(o) => sets.push(o),
            Item::Insert(i) => inserts.push(i),
        }
    }
    if inserts.is_empty() {
        return Err(SqlError::File(
            "no INSERT INTO <sink> SELECT ... statement: nothing to run".into(),
        ));
    }
    let several = inserts.len() > 1;
    let mut branches: Vec<Compiled> = Vec::new();
    let mut targets: Vec<(String, Pos)> = Vec::new();
    for insert in inserts {
        let at = insert.pos;
        let (c, target_pos) = compile_insert(insert, &sources, &sinks, &sets)?;
        if let Some((_, first)) = targets.iter().find(|(n, _)| *n == c.sink_name) {
            return Err(SqlError::at(
                target_pos,
                format!(
                    "sink `{}` already receives the INSERT at {first}: one INSERT per sink",
                    c.sink_name
                ),
            ));
        }
        if let Some(first) = branches.first() {
            if first.source_name != c.source_name {
                return Err(SqlError::at(
                    at,
                    format!(
                        "this INSERT reads source `{}`, the first one reads `{}`: the INSERTs \
                         of a file share one source (read once)",
                        c.source_name, first.source_name
                    ),
                ));
            }
        }
        targets.push((c.sink_name.clone(), at));
        branches.push(c);
        if several {
            let last = branches.len() - 1;
            // Branches are named after their sinks; `SET name` names the job.
            branches[last].plan.name = branches[last].sink_name.clone();
            let partial = Job {
                name: "job".into(),
                branches: branches.iter().map(|c| c.plan.clone()).collect(),
            };
            connectors::check_job(&partial).map_err(|e| match e {
                rivulet_engine::EngineError::Plan(m) => SqlError::at(at, m),
                other => SqlError::at(at, other.to_string()),
            })?;
        }
    }
    let name = match (several, branches.first()) {
        (false, Some(c)) => c.plan.name.clone(),
        _ => sets
            .iter()
            .rev()
            .find(|o| matches!(o.key.as_str(), "name" | "pipeline.name"))
            .map(|o| o.value.clone())
            .or_else(|| branches.first().map(|c| c.sink_name.clone()))
            .unwrap_or_default(),
    };
    let source_name = branches
        .first()
        .map(|c| c.source_name.clone())
        .unwrap_or_default();
    Ok(Script {
        name,
        source_name,
        branches,
    })
}

/// One `INSERT INTO sink SELECT ...` → its branch (and where its target sink is named).
fn compile_insert(
    insert: script::InsertStmt,
    sources: &[SourceDecl],
    sinks: &[SinkDecl],
    sets: &[Opt],
) -> Result<(Compiled, Pos)> {
    let Statement::Insert(ins) = *insert.statement else {
        return Err(SqlError::at(
            insert.pos,
            "expected INSERT INTO <sink> SELECT ...",
        ));
    };
    let TableObject::TableName(target) = &ins.table else {
        return Err(SqlError::at(insert.pos, "INSERT INTO needs a sink name"));
    };
    let target_pos: Pos = target.span().start.into();
    let sink_name = match target.0.as_slice() {
        [part] => part
            .as_ident()
            .map(script::ident_name)
            .unwrap_or_else(|| part.to_string()),
        _ => target.to_string(),
    };
    let sink = sinks.iter().find(|s| s.name == sink_name).ok_or_else(|| {
        SqlError::at(
            target_pos,
            format!(
                "unknown sink `{sink_name}`: declare it with CREATE SINK {sink_name} WITH (...)"
            ),
        )
    })?;
    let Some(query) = ins.source else {
        return Err(SqlError::at(insert.pos, "INSERT needs a SELECT"));
    };
    let c = compile_query(*query, insert.pos, insert.emit, sources, sink, sets)?;
    Ok((c, target_pos))
}

/// How the FROM clause reads the source.
pub(crate) struct From {
    pub(crate) source: usize,
    pub(crate) window: Option<(WindowSpec, Pos)>,
    pub(crate) time_column: Option<(String, Pos)>,
}

fn df_error(e: DataFusionError, fallback: Pos) -> SqlError {
    let pos = e
        .diagnostic()
        .and_then(|d| d.span)
        .filter(|s| s.start.line > 0)
        .map(|s| Pos {
            line: s.start.line,
            col: s.start.column,
        })
        .unwrap_or(fallback);
    // One line per error: DataFusion puts its suggestions on further lines.
    let msg = e.strip_backtrace().replace('\n', " ");
    SqlError::at(pos, msg.trim())
}

fn planner(p: &Provider) -> SqlToRel<'_, Provider> {
    let mut options = ParserOptions::new();
    options.collect_spans = true;
    SqlToRel::new_with_options(p, options)
}

/// An `INTERVAL` (or any constant duration expression) in milliseconds, evaluated by DataFusion.
pub(crate) fn interval_ms(p: &Provider, e: &Expr) -> Result<i64> {
    let pos: Pos = e.span().start.into();
    let planned = planner(p)
        .sql_to_expr(e.clone(), &DFSchema::empty(), &mut PlannerContext::new())
        .map_err(|err| df_error(err, pos))?;
    let ms = match &planned {
        datafusion_expr::Expr::Literal(v, _) => match v {
            ScalarValue::IntervalMonthDayNano(Some(v)) if v.months == 0 => {
                Some(i64::from(v.days) * 86_400_000 + v.nanoseconds / 1_000_000)
            }
            ScalarValue::IntervalDayTime(Some(v)) => {
                Some(i64::from(v.days) * 86_400_000 + i64::from(v.milliseconds))
            }
            _ => None,
        },
        _ => None,
    };
    match ms {
        Some(ms) if ms > 0 => Ok(ms),
        Some(_) => Err(SqlError::at(pos, "the interval must be positive")),
        None => Err(SqlError::at(
            pos,
            format!(
                "expected a fixed-length interval such as INTERVAL '10' SECOND, got `{e}` \
                 (months and years have no fixed length)"
            ),
        )),
    }
}

pub(crate) fn plain_ident(e: &Expr) -> Option<String> {
    match e {
        Expr::Identifier(id) => Some(script::ident_name(id)),
        _ => None,
    }
}

fn unnamed_args(args: &[FunctionArg]) -> Option<Vec<Expr>> {
    args.iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

/// Reads FROM: a source, or `TUMBLE|HOP|SESSION(source, time_column, interval...)`, and
/// rewrites the window call to a plain table reference for DataFusion.
fn read_from(
    select: &mut sqlparser::ast::Select,
    sources: &[SourceDecl],
    provider: &Provider,
    query_pos: Pos,
) -> Result<From> {
    if select.from.len() != 1 || !select.from[0].joins.is_empty() {
        return Err(SqlError::at(
            query_pos,
            "FROM must name exactly one source (joins are not supported yet)",
        ));
    }
    let relation = &mut select.from[0].relation;
    let rel_pos: Pos = relation.span().start.into();
    let TableFactor::Table { name, args, .. } = relation else {
        return Err(SqlError::at(
            rel_pos,
            "FROM must be a source or TUMBLE/HOP/SESSION(source, ...)",
        ));
    };
    let find = |n: &str, at: Pos| {
        sources.iter().position(|s| s.name == n).ok_or_else(|| {
            SqlError::at(
                at,
                format!("unknown source `{n}`: declare it with CREATE SOURCE {n} (...) WITH (...)"),
            )
        })
    };
    let fname = name.to_string().to_lowercase();
    let Some(targs) = args.take() else {
        let source = find(&fname, rel_pos)?;
        return Ok(From {
            source,
            window: None,
            time_column: None,
        });
    };
    let call = unnamed_args(&targs.args)
        .ok_or_else(|| SqlError::at(rel_pos, format!("{fname}: arguments must be positional")))?;
    let (want, usage) = match fname.as_str() {
        "tumble" => (3, "TUMBLE(source, time_column, size)"),
        "hop" => (4, "HOP(source, time_column, slide, size)"),
        "session" => (3, "SESSION(source, time_column, gap)"),
        other => {
            return Err(SqlError::at(
                rel_pos,
                format!("unknown table function `{other}` (TUMBLE, HOP or SESSION)"),
            ))
        }
    };
    if call.len() != want {
        return Err(SqlError::at(rel_pos, format!("expected {usage}")));
    }
    let table = plain_ident(&call[0]).ok_or_else(|| {
        SqlError::at(
            call[0].span().start,
            format!("expected {usage}: the first argument names a source"),
        )
    })?;
    let source = find(&table, call[0].span().start.into())?;
    let col = plain_ident(&call[1]).ok_or_else(|| {
        SqlError::at(
            call[1].span().start,
            format!("expected {usage}: the second argument is a column"),
        )
    })?;
    let window = match fname.as_str() {
        "tumble" => WindowSpec::Tumbling {
            size: DurationMs(interval_ms(provider, &call[2])?),
        },
        "hop" => WindowSpec::Hopping {
            slide: DurationMs(interval_ms(provider, &call[2])?),
            size: DurationMs(interval_ms(provider, &call[3])?),
        },
        _ => WindowSpec::Session {
            gap: DurationMs(interval_ms(provider, &call[2])?),
        },
    };
    // DataFusion sees the windowed relation as the source with window_start/window_end.
    *name = sqlparser::ast::ObjectName::from(vec![sqlparser::ast::Ident::new(table)]);
    Ok(From {
        source,
        window: Some((window, rel_pos)),
        time_column: Some((col, call[1].span().start.into())),
    })
}

/// Arrow schema DataFusion plans against.
fn table_schema(src: &SourceDecl, windowed: bool) -> SchemaRef {
    let mut fields: Vec<Field> = src
        .columns
        .iter()
        .map(|c| Field::new(&c.name, c.data_type.arrow_type(), c.nullable))
        .collect();
    if windowed {
        fields.push(Field::new(columns::WINDOW_START, timestamp_type(), false));
        fields.push(Field::new(columns::WINDOW_END, timestamp_type(), false));
    }
    Arc::new(Schema::new(fields))
}

fn aggregate_function(name: &str) -> Option<AggregateFunction> {
    Some(match name {
        "count" => AggregateFunction::Count,
        "sum" => AggregateFunction::Sum,
        "avg" | "mean" => AggregateFunction::Avg,
        "min" => AggregateFunction::Min,
        "max" => AggregateFunction::Max,
        "stddev" | "stddev_samp" => AggregateFunction::Stddev,
        "approx_percentile_cont" => AggregateFunction::ApproxPercentile,
        _ => return None,
    })
}

fn compile_query(
    query: Query,
    insert_pos: Pos,
    emit: Option<(Emit, Pos)>,
    sources: &[SourceDecl],
    sink: &SinkDecl,
    sets: &[Opt],
) -> Result<Compiled> {
    let mut query = query;
    let query_pos: Pos = query.span().start.into();
    if let Some(ob) = &query.order_by {
        return Err(SqlError::at(
            ob.span().start,
            "ORDER BY is not supported on a stream",
        ));
    }
    if query.limit_clause.is_some() || query.with.is_some() {
        return Err(SqlError::at(
            query_pos,
            "LIMIT and WITH are not supported on a stream",
        ));
    }
    let mut provider = Provider::new();
    let SetExpr::Select(select) = query.body.as_mut() else {
        return Err(SqlError::at(
            query_pos,
            "expected a plain SELECT (no UNION or VALUES)",
        ));
    };
    let from = read_from(select, sources, &provider, query_pos)?;
    let src = &sources[from.source];
    provider.add_table(&src.name, table_schema(src, from.window.is_some()));

    // DataFusion resolves and type-checks the query before we look at its shape.
    let where_pos: Option<Pos> = match query.body.as_ref() {
        SetExpr::Select(s) => s.selection.as_ref().map(|e| e.span().start.into()),
        _ => None,
    };
    planner(&provider)
        .sql_statement_to_plan(Statement::Query(Box::new(query.clone())))
        .map_err(|e| {
            // DataFusion gives a filter's type errors no span: point at the WHERE clause.
            let fallback = match where_pos {
                Some(p) if e.to_string().contains("filter") => p,
                _ => query_pos,
            };
            df_error(e, fallback)
        })?;

    let SetExpr::Select(select) = query.body.as_ref() else {
        return Err(SqlError::at(query_pos, "expected a plain SELECT"));
    };
    if select.distinct.is_some() {
        return Err(SqlError::at(
            query_pos,
            "SELECT DISTINCT is not supported on a stream yet",
        ));
    }

    let (source, event_time) = source_spec(src, &from)?;
    let column_names: Vec<&str> = src.columns.iter().map(|c| c.name.as_str()).collect();

    // --- group keys
    let group_exprs: Vec<Expr> = match &select.group_by {
        GroupByExpr::Expressions(exprs, mods) if mods.is_empty() => exprs.clone(),
        _ => {
            return Err(SqlError::at(
                query_pos,
                "GROUP BY ALL and GROUP BY modifiers are not supported",
            ))
        }
    };
    let aliased: HashMap<String, &Expr> = select
        .projection
        .iter()
        .filter_map(|i| match i {
            SelectItem::ExprWithAlias { expr, alias } => Some((script::ident_name(alias), expr)),
            _ => None,
        })
        .collect();
    let mut derived: Vec<DerivedColumn> = Vec::new();
    let mut group_by: Vec<String> = Vec::new();
    // Group expression text → output column, to recognise the same expression in SELECT.
    let mut key_of: HashMap<String, String> = HashMap::new();
    let mut window_bounds = 0;
    for (i, g) in group_exprs.iter().enumerate() {
        if let Some(n) = plain_ident(g) {
            if n == columns::WINDOW_START || n == columns::WINDOW_END {
                window_bounds += 1;
                continue;
            }
            if column_names.contains(&n.as_str()) {
                key_of.insert(g.to_string(), n.clone());
                group_by.push(n);
                continue;
            }
            if let Some(e) = aliased.get(&n) {
                key_of.insert(e.to_string(), n.clone());
                derived.push(DerivedColumn {
                    name: n.clone(),
                    expr: e.to_string(),
                });
                group_by.push(n);
                continue;
            }
        }
        let text = g.to_string();
        let name = select
            .projection
            .iter()
            .find_map(|it| match it {
                SelectItem::ExprWithAlias { expr, alias } if expr.to_string() == text => {
                    Some(script::ident_name(alias))
                }
                _ => None,
            })
            .unwrap_or_else(|| format!("key_{i}"));
        key_of.insert(text.clone(), name.clone());
        derived.push(DerivedColumn {
            name: name.clone(),
            expr: text,
        });
        group_by.push(name);
    }
    if let Some((_, wpos)) = &from.window {
        if window_bounds != 2 {
            return Err(SqlError::at(
                *wpos,
                "a windowed query must GROUP BY window_start and window_end (besides its keys)",
            ));
        }
    }

    // --- SELECT list: keys, window bounds, aggregates and expressions over them, in order
    let mut aggregates: Vec<AggregateSpec> = Vec::new();
    // Result columns over the aggregate's output (or over the rows, without aggregation).
    let mut items: Vec<DerivedColumn> = Vec::new();
    let mut star = false;
    let mut needs_select = false;
    let aggregating_shape = !group_by.is_empty() || from.window.is_some();
    for (i, item) in select.projection.iter().enumerate() {
        let (expr, alias) = match item {
            SelectItem::UnnamedExpr(e) => (e, None),
            SelectItem::ExprWithAlias { expr, alias } => (expr, Some(script::ident_name(alias))),
            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(_, _) => {
                star = true;
                for c in &src.columns {
                    items.push(DerivedColumn {
                        name: c.name.clone(),
                        expr: quoted(&c.name),
                    });
                }
                continue;
            }
            SelectItem::ExprWithAliases { .. } => {
                return Err(SqlError::at(
                    query_pos,
                    "multiple aliases per SELECT item are not supported",
                ))
            }
        };
        let at: Pos = expr.span().start.into();
        if let Some(n) = plain_ident(expr) {
            if from.window.is_some() && (n == columns::WINDOW_START || n == columns::WINDOW_END) {
                if alias.as_deref().is_some_and(|a| a != n) {
                    return Err(SqlError::at(
                        at,
                        format!(
                            "{n} cannot be renamed: sinks and the dashboard key results by \
                             window_start and window_end"
                        ),
                    ));
                }
                items.push(DerivedColumn {
                    name: n.clone(),
                    expr: quoted(&n),
                });
                continue;
            }
        }
        if let Some(key) = key_of.get(&expr.to_string()) {
            let mut key = key.clone();
            if let Some(a) = alias.as_ref().filter(|a| **a != key) {
                // A renamed plain key: output it under the new name.
                if let Some(slot) = group_by.iter_mut().find(|g| **g == key) {
                    derived.push(DerivedColumn {
                        name: a.clone(),
                        expr: expr.to_string(),
                    });
                    *slot = a.clone();
                    key = a.clone();
                }
            }
            items.push(DerivedColumn {
                name: key.clone(),
                expr: quoted(&key),
            });
            continue;
        }
        if let Some(a) = alias.as_ref().filter(|a| group_by.contains(a)) {
            items.push(DerivedColumn {
                name: a.clone(),
                expr: quoted(a),
            });
            continue;
        }
        if let Expr::Function(f) = expr {
            let fname = f.name.to_string().to_lowercase();
            if let Some(function) = aggregate_function(&fname) {
                let spec = aggregate(
                    f,
                    function,
                    alias,
                    aggregates.len(),
                    &mut derived,
                    &column_names,
                    at,
                )?;
                let name = spec.output_name();
                aggregates.push(spec);
                items.push(DerivedColumn {
                    name: name.clone(),
                    expr: quoted(&name),
                });
                continue;
            }
        }
        // Any other expression: over the aggregate's output (aggregate calls and key
        // expressions inside it become references to its columns), or over the row.
        needs_select = true;
        let text = if aggregating_shape || contains_aggregate(expr, &provider) {
            let mut e = expr.clone();
            over_aggregates(
                &mut e,
                &key_of,
                &mut aggregates,
                &mut derived,
                &column_names,
                &provider,
            )?;
            e.to_string()
        } else {
            expr.to_string()
        };
        let name = alias.unwrap_or_else(|| default_name(expr, i));
        items.push(DerivedColumn { name, expr: text });
    }
    // HAVING, over the aggregate's output the same way.
    let having = match &select.having {
        None => None,
        Some(h) => {
            let mut e = h.clone();
            over_aggregates(
                &mut e,
                &key_of,
                &mut aggregates,
                &mut derived,
                &column_names,
                &provider,
            )?;
            Some(e.to_string())
        }
    };
    let aggregating = !aggregates.is_empty() || !group_by.is_empty() || from.window.is_some();
    if star && aggregating {
        return Err(SqlError::at(
            query_pos,
            "SELECT * cannot be combined with GROUP BY or aggregates",
        ));
    }
    if having.is_some() && !aggregating {
        let at = select
            .having
            .as_ref()
            .map_or(query_pos, |h| h.span().start.into());
        return Err(SqlError::at(
            at,
            "HAVING needs GROUP BY, a window or an aggregate",
        ));
    }
    // The SELECT list is needed unless it is exactly what the operators emit anyway: for an
    // aggregation the keys, window bounds and aggregates in that order (the plan then equals
    // the pipeline file's); without one, `SELECT *`.
    let natural: Vec<String> = if aggregating {
        let mut n = group_by.clone();
        if from.window.is_some() {
            n.push(columns::WINDOW_START.to_string());
            n.push(columns::WINDOW_END.to_string());
        }
        n.extend(aggregates.iter().map(AggregateSpec::output_name));
        n
    } else {
        src.columns.iter().map(|c| c.name.clone()).collect()
    };
    let listed: Vec<String> = items.iter().map(|c| c.name.clone()).collect();
    let select_list = if needs_select || listed != natural {
        items
    } else {
        Vec::new()
    };

    // --- emit mode
    let mode = match (emit, &from.window, aggregating) {
        (Some((Emit::Changes, _)), _, _) => OutputMode::Update,
        (Some((Emit::OnWindowClose, at)), None, _) => {
            return Err(SqlError::at(
                at,
                "EMIT ON WINDOW CLOSE needs a window: read the source through TUMBLE, HOP or \
                 SESSION, or use EMIT CHANGES",
            ))
        }
        (Some((Emit::OnWindowClose, _)), Some(_), _) | (None, Some(_), _) => OutputMode::Append,
        (None, None, true) => {
            return Err(SqlError::at(
                insert_pos,
                format!(
                    "a non-windowed aggregation over the unbounded source `{}` never finishes: \
                     add EMIT CHANGES to emit updated rows, or aggregate over a window \
                     (TUMBLE, HOP, SESSION)",
                    src.name
                ),
            ))
        }
        (None, None, false) => OutputMode::Update,
    };

    let mut plan = Plan {
        name: sink.name.clone(),
        source,
        schema: src
            .columns
            .iter()
            .map(|c| FieldSpec {
                name: c.name.clone(),
                data_type: c.data_type,
                nullable: c.nullable,
            })
            .collect(),
        event_time,
        filter: select.selection.as_ref().map(|e| e.to_string()),
        columns: derived,
        group_by,
        window: from.window.map(|w| w.0),
        aggregates,
        having,
        select: select_list,
        output: OutputSpec {
            mode,
            trigger: TriggerSpec::default(),
        },
        sinks: vec![sink_spec(sink)?],
        checkpoint: CheckpointSpec::default(),
    };
    for o in sets {
        match o.key.as_str() {
            "name" | "pipeline.name" => plan.name = o.value.clone(),
            "trigger" | "output.trigger" => {
                plan.output.trigger = TriggerSpec::try_from(o.value.clone())
                    .map_err(|e| SqlError::at(o.pos, format!("{}: {e}", o.key)))?;
            }
            "checkpoint.dir" => plan.checkpoint.dir = Some(PathBuf::from(&o.value)),
            "checkpoint.store" => {
                plan.checkpoint.store = o
                    .value
                    .parse()
                    .map_err(|e| SqlError::at(o.pos, format!("checkpoint.store: {e}")))?;
            }
            other => {
                return Err(SqlError::at(
                    o.pos,
                    format!(
                        "unknown setting `{other}` (name, trigger, checkpoint.dir, \
                         checkpoint.store)"
                    ),
                ))
            }
        }
    }
    // What DataFusion accepted but the engine's own checks still reject (for example a
    // function the engine's expression evaluator does not implement yet).
    connectors::check_plan(&plan).map_err(|e| {
        let msg = e.to_string();
        let at = match where_pos {
            Some(p) if msg.contains(": filter: ") => p,
            _ => insert_pos,
        };
        SqlError::at(at, msg)
    })?;
    Ok(Compiled {
        plan,
        source_name: src.name.clone(),
        sink_name: sink.name.clone(),
    })
}

fn aggregate(
    f: &sqlparser::ast::Function,
    function: AggregateFunction,
    alias: Option<String>,
    index: usize,
    derived: &mut Vec<DerivedColumn>,
    column_names: &[&str],
    at: Pos,
) -> Result<AggregateSpec> {
    let FunctionArguments::List(list) = &f.args else {
        return Err(SqlError::at(at, format!("{}: expected arguments", f.name)));
    };
    if list.duplicate_treatment.is_some()
        || !list.clauses.is_empty()
        || f.filter.is_some()
        || f.over.is_some()
    {
        return Err(SqlError::at(
            at,
            format!(
                "{}: DISTINCT, FILTER, OVER and WITHIN GROUP are not supported yet",
                f.name
            ),
        ));
    }
    let mut column = None;
    let mut percentile = None;
    match (function, list.args.as_slice()) {
        (AggregateFunction::Count, [FunctionArg::Unnamed(FunctionArgExpr::Wildcard)]) => {}
        (
            AggregateFunction::ApproxPercentile,
            [FunctionArg::Unnamed(FunctionArgExpr::Expr(e)), FunctionArg::Unnamed(FunctionArgExpr::Expr(p))],
        ) => {
            column = Some(e.clone());
            percentile = Some(p.to_string().parse::<f64>().map_err(|_| {
                SqlError::at(p.span().start, "the percentile must be a number literal")
            })?);
        }
        (AggregateFunction::ApproxPercentile, _) => {
            return Err(SqlError::at(
                at,
                "expected approx_percentile_cont(column, percentile)",
            ))
        }
        (_, [FunctionArg::Unnamed(FunctionArgExpr::Expr(e))]) => column = Some(e.clone()),
        _ => {
            return Err(SqlError::at(
                at,
                format!("{}: expected one argument", f.name),
            ))
        }
    }
    let column = column.map(|e| match plain_ident(&e) {
        Some(n) if column_names.contains(&n.as_str()) => n,
        _ => {
            // An expression argument becomes a derived column the aggregate reads.
            let name = format!("agg{index}_input");
            derived.push(DerivedColumn {
                name: name.clone(),
                expr: e.to_string(),
            });
            name
        }
    });
    let mut spec = AggregateSpec {
        function,
        column,
        percentile,
        alias: None,
    };
    // An alias equal to the default output name is no alias: the plan stays the one the
    // pipeline file would give.
    if alias.as_deref() != Some(spec.output_name().as_str()) {
        spec.alias = alias;
    }
    Ok(spec)
}

/// `"name"`: a column reference that keeps its case and cannot clash with a keyword.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A result column name for an unnamed expression: its text as an identifier
/// (`round(avg(value), 2)` → `round_avg_value_2`).
fn default_name(e: &Expr, index: usize) -> String {
    let mut name = String::new();
    for c in e.to_string().to_lowercase().chars() {
        if c.is_ascii_alphanumeric() {
            name.push(c);
        } else if !name.ends_with('_') {
            name.push('_');
        }
    }
    let name = name.trim_matches('_');
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) || name.len() > 63 {
        format!("col_{index}")
    } else {
        name.to_string()
    }
}

/// Whether `e` calls an aggregate function (any DataFusion knows).
fn contains_aggregate(e: &Expr, provider: &Provider) -> bool {
    use datafusion_expr::planner::ContextProvider;
    let mut found = false;
    let _ = sqlparser::ast::visit_expressions(e, |n| {
        if let Expr::Function(f) = n {
            let name = f.name.to_string().to_lowercase();
            if provider.get_aggregate_meta(&name).is_some() {
                found = true;
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    });
    found
}

/// Rewrites an expression over a group (a SELECT item or HAVING) into one over the
/// aggregate's output: each aggregate call becomes a reference to its column (an aggregate
/// computed for the purpose, hidden as `_aggN`, unless the SELECT list already has the same
/// call), and each GROUP BY expression a reference to its key column.
fn over_aggregates(
    e: &mut Expr,
    key_of: &HashMap<String, String>,
    aggregates: &mut Vec<AggregateSpec>,
    derived: &mut Vec<DerivedColumn>,
    column_names: &[&str],
    provider: &Provider,
) -> Result<()> {
    use datafusion_expr::planner::ContextProvider;
    struct Rewriter<'a> {
        key_of: &'a HashMap<String, String>,
        aggregates: &'a mut Vec<AggregateSpec>,
        derived: &'a mut Vec<DerivedColumn>,
        column_names: &'a [&'a str],
        provider: &'a Provider,
    }
    impl VisitorMut for Rewriter<'_> {
        type Break = SqlError;
        fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<SqlError> {
            let at: Pos = e.span().start.into();
            if let Some(key) = self.key_of.get(&e.to_string()) {
                *e = Expr::Identifier(Ident::with_quote('"', key.clone()));
                return ControlFlow::Continue(());
            }
            let Expr::Function(f) = e else {
                return ControlFlow::Continue(());
            };
            let fname = f.name.to_string().to_lowercase();
            let Some(function) = aggregate_function(&fname) else {
                if self.provider.get_aggregate_meta(&fname).is_some() {
                    return ControlFlow::Break(SqlError::at(
                        at,
                        format!(
                            "aggregate function {fname} is not supported by the streaming \
                             engine (count, sum, avg, min, max, stddev, approx_percentile_cont)"
                        ),
                    ));
                }
                return ControlFlow::Continue(());
            };
            let index = self.aggregates.len();
            let spec = match aggregate(
                f,
                function,
                None,
                index,
                self.derived,
                self.column_names,
                at,
            ) {
                Ok(s) => s,
                Err(err) => return ControlFlow::Break(err),
            };
            // The same aggregate already computed (under any name) is reused.
            let same = self.aggregates.iter().find(|a| {
                a.function == spec.function
                    && a.column == spec.column
                    && a.percentile == spec.percentile
            });
            let name = match same {
                Some(a) => a.output_name(),
                None => {
                    let name = format!("_agg{index}");
                    self.aggregates.push(AggregateSpec {
                        alias: Some(name.clone()),
                        ..spec
                    });
                    name
                }
            };
            *e = Expr::Identifier(Ident::with_quote('"', name));
            ControlFlow::Continue(())
        }
    }
    let mut r = Rewriter {
        key_of,
        aggregates,
        derived,
        column_names,
        provider,
    };
    match e.visit(&mut r) {
        ControlFlow::Break(err) => Err(err),
        ControlFlow::Continue(()) => Ok(()),
    }
}
