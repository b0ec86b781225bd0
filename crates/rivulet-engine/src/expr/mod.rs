//! SQL scalar expressions — filters, derived columns, HAVING and result columns — planned and
//! evaluated by Apache DataFusion.
//!
//! The text is parsed by `sqlparser` (generic dialect) and planned by DataFusion's SQL planner
//! against the batch's schema with every default DataFusion scalar function registered
//! ([`FunctionProvider`]); DataFusion's own type coercion and expression simplifier run next
//! (the casts and constant folding a DataFusion session applies), and its physical planner
//! turns the result into a vectorised evaluator over Arrow arrays. Nothing here parses SQL or
//! implements a function by hand: the engine only adds two rules a stream needs so that one
//! bad record cannot stop a query:
//! - `CAST` behaves as `TRY_CAST`: an unconvertible value becomes NULL (Spark's non-ANSI
//!   behaviour) instead of failing the micro-batch;
//! - division and modulo by zero give NULL (integers and doubles) rather than an error or
//!   infinity.
//!
//! Integer arithmetic wraps on overflow (DataFusion's default). Time functions that DataFusion
//! folds at planning time (`now()`, `current_date`) are the query's start time.

mod provider;

use std::sync::{Arc, LazyLock};

use arrow::array::{Array, ArrayRef};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Schema};
use arrow::record_batch::RecordBatch;
use datafusion_common::tree_node::{Transformed, TreeNode};
use datafusion_common::{DFSchema, DataFusionError, ScalarValue, SchemaError};
use datafusion_expr::execution_props::ExecutionProps;
use datafusion_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion_expr::simplify::SimplifyContext;
use datafusion_expr::{BinaryExpr, Cast, Expr, ExprSchemable, Operator, TryCast};
use datafusion_optimizer::simplify_expressions::ExprSimplifier;
use datafusion_physical_expr::{create_physical_expr, PhysicalExpr};
use datafusion_sql::planner::{PlannerContext, SqlToRel};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

pub use provider::FunctionProvider;

use crate::error::EngineError;
use crate::plan::timestamp_type;

/// The function registry, built once: planning an expression only looks names up in it.
static FUNCTIONS: LazyLock<FunctionProvider> = LazyLock::new(FunctionProvider::new);

/// An expression compiled against a schema, ready to evaluate on batches of that schema.
#[derive(Debug, Clone)]
pub struct CompiledExpr {
    sql: String,
    physical: Arc<dyn PhysicalExpr>,
    /// The type DataFusion computes.
    planned_type: DataType,
    /// The result type after [`compile_column`]'s normalisation (equal to `planned_type` for
    /// [`compile`]).
    data_type: DataType,
}

/// Parses `sql` and plans it against `schema`; the result has DataFusion's type.
pub fn compile(sql: &str, schema: &Schema) -> Result<CompiledExpr, EngineError> {
    let fail = |reason: String| EngineError::Expr {
        expr: sql.to_string(),
        reason,
    };
    let dialect = GenericDialect {};
    let parsed = Parser::new(&dialect)
        .try_with_sql(sql)
        .and_then(|mut p| {
            let e = p.parse_expr()?;
            // parse_expr stops at the first token it cannot use; anything left is an error.
            p.expect_token(&sqlparser::tokenizer::Token::EOF)?;
            Ok(e)
        })
        .map_err(|e| fail(format!("syntax error: {e}")))?;
    let df_schema = DFSchema::try_from(schema.clone()).map_err(|e| fail(df_message(&e)))?;
    let logical = SqlToRel::new(&*FUNCTIONS)
        .sql_to_expr(parsed, &df_schema, &mut PlannerContext::new())
        .map_err(|e| fail(df_message(&e)))?;
    if let Some(what) = not_scalar(&logical) {
        return Err(fail(format!(
            "{what} cannot be used here (only scalar expressions over one row)"
        )));
    }
    let logical = stream_rules(logical).map_err(|e| fail(df_message(&e)))?;
    let context = SimplifyContext::builder()
        .with_schema(Arc::new(df_schema.clone()))
        .with_current_time()
        .build();
    let simplifier = ExprSimplifier::new(context);
    let logical = simplifier
        .coerce(logical, &df_schema)
        .and_then(|e| simplifier.simplify(e))
        .map_err(|e| fail(df_message(&e)))?;
    let planned_type = logical
        .get_type(&df_schema)
        .map_err(|e| fail(df_message(&e)))?;
    let physical = create_physical_expr(
        &logical,
        &df_schema,
        &ExecutionProps::new(),
        &PhysicalPlanningContext::default(),
    )
    .map_err(|e| fail(df_message(&e)))?;
    Ok(CompiledExpr {
        sql: sql.to_string(),
        physical,
        data_type: planned_type.clone(),
        planned_type,
    })
}

/// [`compile`] for an expression that becomes a column of the engine's batches (a derived
/// column, a group key, a result column): the result is cast to one of the types every
/// operator and sink handles — BIGINT, INT, DOUBLE, VARCHAR, BOOLEAN, TIMESTAMP (ms, UTC).
pub fn compile_column(sql: &str, schema: &Schema) -> Result<CompiledExpr, EngineError> {
    let mut c = compile(sql, schema)?;
    c.data_type = column_type(&c.planned_type).ok_or_else(|| EngineError::Expr {
        expr: sql.to_string(),
        reason: format!(
            "has type {}, which a column cannot hold: CAST it to BIGINT, DOUBLE, VARCHAR, \
             BOOLEAN or TIMESTAMP",
            sql_type_name(&c.planned_type)
        ),
    })?;
    Ok(c)
}

/// The engine column type a DataFusion result type is stored as, if any.
fn column_type(t: &DataType) -> Option<DataType> {
    Some(match t {
        DataType::Int64
        | DataType::Int32
        | DataType::Float64
        | DataType::Utf8
        | DataType::Boolean
        | DataType::Null => t.clone(),
        DataType::Int8 | DataType::Int16 | DataType::UInt8 | DataType::UInt16 => DataType::Int32,
        DataType::UInt32 | DataType::UInt64 => DataType::Int64,
        DataType::Float16 | DataType::Float32 => DataType::Float64,
        DataType::Decimal32(_, _)
        | DataType::Decimal64(_, _)
        | DataType::Decimal128(_, _)
        | DataType::Decimal256(_, _) => DataType::Float64,
        DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
        DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64 => timestamp_type(),
        DataType::Dictionary(_, v) => return column_type(v),
        _ => return None,
    })
}

/// Names an aggregate or window function call, which a per-row expression cannot evaluate.
fn not_scalar(e: &Expr) -> Option<String> {
    let mut found = None;
    // `apply` only fails if the closure does; this one never does.
    let _ = e.apply(|n| {
        let what = match n {
            Expr::AggregateFunction(f) => Some(format!("aggregate function {}", f.func.name())),
            Expr::WindowFunction(_) => Some("a window function".to_string()),
            Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_) => {
                Some("a subquery".to_string())
            }
            _ => None,
        };
        Ok(match what {
            Some(w) => {
                found = Some(w);
                datafusion_common::tree_node::TreeNodeRecursion::Stop
            }
            None => datafusion_common::tree_node::TreeNodeRecursion::Continue,
        })
    });
    found
}

/// The two stream rules of the module docs: `CAST` → `TRY_CAST`; `x / y` and `x % y` →
/// `x / nullif(y, 0)`.
fn stream_rules(e: Expr) -> datafusion_common::Result<Expr> {
    e.transform_up(|n| {
        Ok(match n {
            Expr::Cast(Cast { expr, field }) => {
                Transformed::yes(Expr::TryCast(TryCast { expr, field }))
            }
            Expr::BinaryExpr(BinaryExpr { left, op, right })
                if matches!(op, Operator::Divide | Operator::Modulo)
                    && !is_nonzero_literal(&right) =>
            {
                let zero = Expr::Literal(ScalarValue::Int64(Some(0)), None);
                let guarded = datafusion_functions::core::nullif().call(vec![*right, zero]);
                Transformed::yes(Expr::BinaryExpr(BinaryExpr {
                    left,
                    op,
                    right: Box::new(guarded),
                }))
            }
            other => Transformed::no(other),
        })
    })
    .map(|t| t.data)
}

fn is_nonzero_literal(e: &Expr) -> bool {
    match e {
        Expr::Literal(v, _) => {
            !v.is_null() && ScalarValue::new_zero(&v.data_type()).is_ok_and(|z| z != *v)
        }
        _ => false,
    }
}

/// One line, no backtrace; an unknown column gets the engine's "did you mean" message.
fn df_message(e: &DataFusionError) -> String {
    if let DataFusionError::SchemaError(s, _) = e.find_root() {
        if let SchemaError::FieldNotFound {
            field,
            valid_fields,
        } = s.as_ref()
        {
            let names: Vec<&str> = valid_fields
                .iter()
                .map(|c| c.name.as_str())
                .filter(|n| !n.starts_with('_'))
                .collect();
            return unknown_column_message(&field.name, names);
        }
    }
    e.find_root()
        .to_string()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

impl CompiledExpr {
    /// The result type.
    pub fn data_type(&self) -> &DataType {
        &self.data_type
    }

    /// The source text.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// Evaluates the expression on every row of `batch` (which must have the schema the
    /// expression was compiled against).
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<ArrayRef, EngineError> {
        let fail = |reason: String| EngineError::Expr {
            expr: self.sql.clone(),
            reason,
        };
        let value = self
            .physical
            .evaluate(batch)
            .and_then(|v| v.into_array(batch.num_rows()))
            .map_err(|e| fail(df_message(&e)))?;
        if value.data_type() == &self.data_type {
            return Ok(value);
        }
        cast(&value, &self.data_type).map_err(|e| fail(e.to_string()))
    }
}

/// The SQL name of an Arrow type, for messages.
pub fn sql_type_name(t: &DataType) -> String {
    match t {
        DataType::Int32 => "INT".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => "VARCHAR".into(),
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Timestamp(_, _) => "TIMESTAMP".into(),
        DataType::Null => "NULL".into(),
        other => other.to_string(),
    }
}

/// `unknown column "vale" (did you mean "value"?)`.
pub fn unknown_column_message<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> String {
    let lower = name.to_lowercase();
    let best = candidates
        .into_iter()
        .map(|c| (levenshtein(&lower, &c.to_lowercase()), c))
        .min_by_key(|(d, _)| *d)
        .filter(|(d, _)| *d <= 2.max(name.chars().count() / 3));
    match best {
        Some((_, c)) => format!("unknown column \"{name}\" (did you mean \"{c}\"?)"),
        None => format!("unknown column \"{name}\""),
    }
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests;
