//! SQL scalar expressions for filters and derived columns.
//!
//! A deliberately small subset of SQL, parsed with `sqlparser` (generic dialect), compiled into
//! a typed [`Expr`] tree checked against an Arrow schema, and evaluated vectorised on record
//! batches with Arrow compute kernels. A full SQL engine (DataFusion) arrives with the SQL
//! front end; this module only has to cover pipeline-file filters and derived columns.
//!
//! Supported: column references (case-insensitive unless quoted), literals (integer, float,
//! `'string'`, `TRUE`/`FALSE`, `NULL`), `+ - * / %`, unary `-`, `= != <> < <= > >=`,
//! `AND`/`OR`/`NOT`, `IS [NOT] NULL`, `[NOT] BETWEEN`, `[NOT] IN (list)`, `CASE [x] WHEN ...
//! THEN ... [ELSE ...] END`, `CAST(x AS BIGINT|INT|DOUBLE|VARCHAR|BOOLEAN|TIMESTAMP)` (also
//! `x::type`), parentheses, and the functions `abs`, `round(x[, digits])`, `floor`, `ceil`,
//! `lower`, `upper`, `length`, `coalesce`.
//!
//! Semantics:
//! - SQL NULLs with three-valued logic (`NULL AND FALSE` is `FALSE`, `NULL OR TRUE` is `TRUE`).
//! - Integer arithmetic is done in BIGINT (Int64) and wraps on overflow (Spark's default,
//!   non-ANSI behaviour) rather than failing the pipeline; mixing integers and DOUBLE promotes
//!   to DOUBLE. `/` on integers is integer division (as in DataFusion/PostgreSQL).
//! - Division or modulo by zero gives NULL (integers and doubles), never a panic or an error.
//! - `CAST` of an unconvertible value gives NULL (like `TRY_CAST`).
//! - A string literal compared with a timestamp is parsed as RFC 3339 at compile time
//!   (`timestamp >= '2026-01-01T00:00:00Z'`).

use std::sync::Arc;

use arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, BooleanArray, Datum, Float64Array, Int64Array,
    PrimitiveArray, StringArray, TimestampMillisecondArray, UInt32Array,
};
use arrow::compute::kernels::{boolean as bool_kernels, cmp, numeric};
use arrow::compute::{can_cast_types, cast, nullif, take};
use arrow::datatypes::{ArrowPrimitiveType, DataType, Float64Type, Int64Type, Schema};
use arrow::record_batch::RecordBatch;
use sqlparser::ast as sql;
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

use crate::error::EngineError;
use crate::plan::{timestamp_type, UTC};

/// A literal value in an expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Null,
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    /// Milliseconds since the epoch (a string literal compared with a timestamp).
    Timestamp(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    And,
    Or,
}

impl BinaryOp {
    fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Mod => "%",
            BinaryOp::Eq => "=",
            BinaryOp::NotEq => "<>",
            BinaryOp::Lt => "<",
            BinaryOp::LtEq => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::GtEq => ">=",
            BinaryOp::And => "AND",
            BinaryOp::Or => "OR",
        }
    }
}

/// Built-in scalar functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Abs,
    /// Rounds half away from zero to the given number of decimal digits (a literal).
    Round(i32),
    Floor,
    Ceil,
    Lower,
    Upper,
    /// Length in characters.
    Length,
    Coalesce,
}

/// A typed expression node. Operands are already coerced to the types their operator needs
/// (explicit [`ExprKind::Cast`] nodes or retyped literals), so evaluation never guesses.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub data_type: DataType,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    Column {
        index: usize,
        name: String,
    },
    Literal(Literal),
    Binary {
        op: BinaryOp,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    Not(Box<Expr>),
    Negate(Box<Expr>),
    IsNull(Box<Expr>),
    IsNotNull(Box<Expr>),
    Case {
        branches: Vec<(Expr, Expr)>,
        otherwise: Option<Box<Expr>>,
    },
    Cast(Box<Expr>),
    Call {
        func: Function,
        args: Vec<Expr>,
    },
}

/// An expression compiled against a schema, ready to evaluate on batches of that schema.
#[derive(Debug, Clone)]
pub struct CompiledExpr {
    sql: String,
    expr: Expr,
}

/// Parses `sql` and type-checks it against `schema`.
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
    let expr = Compiler { schema }.compile(&parsed).map_err(fail)?;
    Ok(CompiledExpr {
        sql: sql.to_string(),
        expr,
    })
}

impl CompiledExpr {
    /// The result type.
    pub fn data_type(&self) -> &DataType {
        &self.expr.data_type
    }

    /// The typed tree.
    pub fn expr(&self) -> &Expr {
        &self.expr
    }

    /// The source text.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// Evaluates the expression on every row of `batch` (which must have the schema the
    /// expression was compiled against, or a superset with the same leading columns).
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<ArrayRef, EngineError> {
        let v = self.eval(&self.expr, batch)?;
        v.into_array(batch.num_rows())
    }

    fn err(&self, reason: impl Into<String>) -> EngineError {
        EngineError::Expr {
            expr: self.sql.clone(),
            reason: reason.into(),
        }
    }

    fn eval(&self, e: &Expr, batch: &RecordBatch) -> Result<Value, EngineError> {
        let n = batch.num_rows();
        Ok(match &e.kind {
            ExprKind::Column { index, name } => {
                let schema = batch.schema_ref();
                let col = if schema
                    .fields()
                    .get(*index)
                    .is_some_and(|f| f.name() == name)
                {
                    batch.column(*index).clone()
                } else {
                    batch
                        .column_by_name(name)
                        .cloned()
                        .ok_or_else(|| self.err(format!("column \"{name}\" is not in the batch")))?
                };
                if col.data_type() != &e.data_type {
                    return Err(self.err(format!(
                        "column \"{name}\" has type {} in the batch, expected {}",
                        col.data_type(),
                        e.data_type
                    )));
                }
                Value::Array(col)
            }
            ExprKind::Literal(lit) => Value::Scalar(literal_array(lit, &e.data_type)?),
            ExprKind::Binary { op, left, right } => {
                let l = self.eval(left, batch)?;
                let r = self.eval(right, batch)?;
                let scalar = l.is_scalar() && r.is_scalar();
                let out: ArrayRef = match op {
                    BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul => {
                        let int = e.data_type != DataType::Float64;
                        match (op, int) {
                            (BinaryOp::Add, true) => numeric::add_wrapping(&l, &r)?,
                            (BinaryOp::Add, false) => numeric::add(&l, &r)?,
                            (BinaryOp::Sub, true) => numeric::sub_wrapping(&l, &r)?,
                            (BinaryOp::Sub, false) => numeric::sub(&l, &r)?,
                            (_, true) => numeric::mul_wrapping(&l, &r)?,
                            (_, false) => numeric::mul(&l, &r)?,
                        }
                    }
                    BinaryOp::Div | BinaryOp::Mod => {
                        let rem = *op == BinaryOp::Mod;
                        if e.data_type == DataType::Float64 {
                            float_div_rem(&l, &r, rem)?
                        } else {
                            int_div_rem(&l, &r, rem)?
                        }
                    }
                    BinaryOp::Eq => Arc::new(cmp::eq(&l, &r)?),
                    BinaryOp::NotEq => Arc::new(cmp::neq(&l, &r)?),
                    BinaryOp::Lt => Arc::new(cmp::lt(&l, &r)?),
                    BinaryOp::LtEq => Arc::new(cmp::lt_eq(&l, &r)?),
                    BinaryOp::Gt => Arc::new(cmp::gt(&l, &r)?),
                    BinaryOp::GtEq => Arc::new(cmp::gt_eq(&l, &r)?),
                    BinaryOp::And | BinaryOp::Or => {
                        let len = if scalar { 1 } else { n };
                        let la = l.into_array(len)?;
                        let ra = r.into_array(len)?;
                        let (la, ra) = (bool_array(&la)?, bool_array(&ra)?);
                        Arc::new(if *op == BinaryOp::And {
                            bool_kernels::and_kleene(&la, &ra)?
                        } else {
                            bool_kernels::or_kleene(&la, &ra)?
                        })
                    }
                };
                Value::wrap(out, scalar)
            }
            ExprKind::Not(inner) => {
                let v = self.eval(inner, batch)?;
                let s = v.is_scalar();
                let out = bool_kernels::not(&bool_array(v.array())?)?;
                Value::wrap(Arc::new(out), s)
            }
            ExprKind::Negate(inner) => {
                let v = self.eval(inner, batch)?;
                let s = v.is_scalar();
                Value::wrap(numeric::neg_wrapping(v.array())?, s)
            }
            ExprKind::IsNull(inner) | ExprKind::IsNotNull(inner) => {
                let v = self.eval(inner, batch)?;
                let s = v.is_scalar();
                let out = if matches!(e.kind, ExprKind::IsNull(_)) {
                    bool_kernels::is_null(v.array())?
                } else {
                    bool_kernels::is_not_null(v.array())?
                };
                Value::wrap(Arc::new(out), s)
            }
            ExprKind::Case {
                branches,
                otherwise,
            } => {
                let mut result = match otherwise {
                    Some(o) => self.eval(o, batch)?.into_array(n)?,
                    None => new_null_array(&e.data_type, n),
                };
                // Later branches first, so earlier matching branches win.
                for (cond, then) in branches.iter().rev() {
                    let cond = self.eval(cond, batch)?.into_array(n)?;
                    let mask = nulls_as_false(&bool_array(&cond)?);
                    let then = self.eval(then, batch)?;
                    result = arrow::compute::kernels::zip::zip(&mask, &then, &result)?;
                }
                Value::Array(result)
            }
            ExprKind::Cast(inner) => {
                let v = self.eval(inner, batch)?;
                let s = v.is_scalar();
                Value::wrap(cast(v.array(), &e.data_type)?, s)
            }
            ExprKind::Call { func, args } => self.call(*func, args, &e.data_type, batch)?,
        })
    }

    fn call(
        &self,
        func: Function,
        args: &[Expr],
        out_type: &DataType,
        batch: &RecordBatch,
    ) -> Result<Value, EngineError> {
        let n = batch.num_rows();
        if func == Function::Coalesce {
            let mut result = new_null_array(out_type, n);
            for a in args.iter().rev() {
                let v = self.eval(a, batch)?;
                let present = bool_kernels::is_not_null(v.array())?;
                result = match v {
                    // A non-null literal ends the chain for every row.
                    Value::Scalar(_) if present.value(0) => v.into_array(n)?,
                    Value::Scalar(_) => result,
                    Value::Array(_) => arrow::compute::kernels::zip::zip(&present, &v, &result)?,
                };
            }
            return Ok(Value::Array(result));
        }
        let Some(arg) = args.first() else {
            return Err(self.err("function called without arguments"));
        };
        let v = self.eval(arg, batch)?;
        let s = v.is_scalar();
        let a = v.array();
        let out: ArrayRef = match (func, a.data_type()) {
            (Function::Abs, DataType::Int64) => {
                Arc::new(prim::<Int64Type>(a)?.unary_opt::<_, Int64Type>(i64::checked_abs))
            }
            (Function::Abs, _) => {
                Arc::new(prim::<Float64Type>(a)?.unary::<_, Float64Type>(f64::abs))
            }
            (Function::Floor | Function::Ceil, DataType::Int64) => a.clone(),
            (Function::Floor, _) => {
                Arc::new(prim::<Float64Type>(a)?.unary::<_, Float64Type>(f64::floor))
            }
            (Function::Ceil, _) => {
                Arc::new(prim::<Float64Type>(a)?.unary::<_, Float64Type>(f64::ceil))
            }
            (Function::Round(d), DataType::Int64) => {
                if d >= 0 {
                    a.clone()
                } else {
                    // Round to tens, hundreds, ...: half away from zero, NULL on overflow.
                    let f = 10i64.checked_pow(d.unsigned_abs()).unwrap_or(i64::MAX);
                    Arc::new(prim::<Int64Type>(a)?.unary_opt::<_, Int64Type>(move |v| {
                        let half = if v < 0 { -(f / 2) } else { f / 2 };
                        v.checked_add(half).map(|x| x / f * f)
                    }))
                }
            }
            (Function::Round(d), _) => {
                let f = 10f64.powi(d);
                Arc::new(
                    prim::<Float64Type>(a)?.unary::<_, Float64Type>(move |v| (v * f).round() / f),
                )
            }
            (Function::Lower | Function::Upper | Function::Length, _) => {
                let strs = a
                    .as_string_opt::<i32>()
                    .ok_or_else(|| self.err("expected a string argument"))?;
                match func {
                    Function::Lower => Arc::new(
                        strs.iter()
                            .map(|o| o.map(str::to_lowercase))
                            .collect::<StringArray>(),
                    ),
                    Function::Upper => Arc::new(
                        strs.iter()
                            .map(|o| o.map(str::to_uppercase))
                            .collect::<StringArray>(),
                    ),
                    _ => Arc::new(
                        strs.iter()
                            .map(|o| o.map(|s| s.chars().count() as i64))
                            .collect::<Int64Array>(),
                    ),
                }
            }
            (Function::Coalesce, _) => return Err(self.err("coalesce handled above")),
        };
        Ok(Value::wrap(out, s))
    }
}

/// An evaluated operand: a full column, or a one-row literal that kernels broadcast.
#[derive(Debug, Clone)]
enum Value {
    Array(ArrayRef),
    Scalar(ArrayRef),
}

impl Datum for Value {
    fn get(&self) -> (&dyn Array, bool) {
        match self {
            Value::Array(a) => (a.as_ref(), false),
            Value::Scalar(a) => (a.as_ref(), true),
        }
    }
}

impl Value {
    fn wrap(a: ArrayRef, scalar: bool) -> Value {
        if scalar {
            Value::Scalar(a)
        } else {
            Value::Array(a)
        }
    }

    fn is_scalar(&self) -> bool {
        matches!(self, Value::Scalar(_))
    }

    fn array(&self) -> &ArrayRef {
        match self {
            Value::Array(a) | Value::Scalar(a) => a,
        }
    }

    /// The value as a column of `len` rows (scalars repeated).
    fn into_array(self, len: usize) -> Result<ArrayRef, EngineError> {
        match self {
            Value::Array(a) => Ok(a),
            Value::Scalar(a) if a.is_null(0) => Ok(new_null_array(a.data_type(), len)),
            Value::Scalar(a) => {
                let idx = UInt32Array::from(vec![0u32; len]);
                Ok(take(a.as_ref(), &idx, None)?)
            }
        }
    }
}

fn prim<T: ArrowPrimitiveType>(a: &dyn Array) -> Result<&PrimitiveArray<T>, EngineError> {
    a.as_primitive_opt::<T>().ok_or_else(|| {
        EngineError::Other(format!(
            "expression evaluation: expected {}, got {}",
            T::DATA_TYPE,
            a.data_type()
        ))
    })
}

fn bool_array(a: &ArrayRef) -> Result<BooleanArray, EngineError> {
    match a.data_type() {
        DataType::Boolean => Ok(a.as_boolean().clone()),
        DataType::Null => Ok(BooleanArray::new_null(a.len())),
        t => Err(EngineError::Other(format!(
            "expression evaluation: expected BOOLEAN, got {t}"
        ))),
    }
}

/// A selection mask where NULL counts as false (SQL WHERE / CASE WHEN semantics).
pub(crate) fn nulls_as_false(b: &BooleanArray) -> BooleanArray {
    match b.nulls() {
        Some(nulls) if b.null_count() > 0 => BooleanArray::new(b.values() & nulls.inner(), None),
        _ => b.clone(),
    }
}

/// Integer `/` and `%` with NULL for a zero divisor (and for the one overflowing case,
/// `i64::MIN / -1`).
fn int_div_rem(l: &Value, r: &Value, rem: bool) -> Result<ArrayRef, EngineError> {
    let op = move |a: i64, b: i64| {
        if rem {
            a.checked_rem(b)
        } else {
            a.checked_div(b)
        }
    };
    let la = prim::<Int64Type>(l.array())?;
    let ra = prim::<Int64Type>(r.array())?;
    let out: Int64Array = match (l, r) {
        (_, Value::Scalar(_)) if ra.is_null(0) => Int64Array::new_null(la.len()),
        (_, Value::Scalar(_)) => {
            let b = ra.value(0);
            la.unary_opt::<_, Int64Type>(|a| op(a, b))
        }
        (Value::Scalar(_), _) if la.is_null(0) => Int64Array::new_null(ra.len()),
        (Value::Scalar(_), _) => {
            let a = la.value(0);
            ra.unary_opt::<_, Int64Type>(|b| op(a, b))
        }
        _ => la.iter().zip(ra.iter()).map(|(a, b)| op(a?, b?)).collect(),
    };
    Ok(Arc::new(out))
}

/// Double `/` and `%` with NULL for a zero divisor (SQL, not IEEE infinities).
fn float_div_rem(l: &Value, r: &Value, rem: bool) -> Result<ArrayRef, EngineError> {
    let zero = Value::Scalar(Arc::new(Float64Array::from(vec![0.0])));
    let is_zero = cmp::eq(r, &zero)?;
    let divisor = Value::wrap(nullif(r.array(), &is_zero)?, r.is_scalar());
    Ok(if rem {
        numeric::rem(l, &divisor)?
    } else {
        numeric::div(l, &divisor)?
    })
}

/// A one-row array holding `lit` as `data_type`.
fn literal_array(lit: &Literal, data_type: &DataType) -> Result<ArrayRef, EngineError> {
    let natural: ArrayRef = match lit {
        Literal::Null => return Ok(new_null_array(data_type, 1)),
        Literal::Int(v) => Arc::new(Int64Array::from(vec![*v])),
        Literal::Float(v) => Arc::new(Float64Array::from(vec![*v])),
        Literal::Str(s) => Arc::new(StringArray::from(vec![s.as_str()])),
        Literal::Bool(b) => Arc::new(BooleanArray::from(vec![*b])),
        Literal::Timestamp(ms) => {
            Arc::new(TimestampMillisecondArray::from(vec![*ms]).with_timezone(UTC))
        }
    };
    if natural.data_type() == data_type {
        Ok(natural)
    } else {
        Ok(cast(&natural, data_type)?)
    }
}

// ---------------------------------------------------------------------------------------------
// Compilation: sqlparser AST → typed Expr.

/// The SQL name of an Arrow type, for messages.
pub fn sql_type_name(t: &DataType) -> String {
    match t {
        DataType::Int32 => "INT".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Utf8 => "VARCHAR".into(),
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

fn is_numeric(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int32 | DataType::Int64 | DataType::Float64 | DataType::Null
    )
}

fn lit(l: Literal, data_type: DataType) -> Expr {
    Expr {
        kind: ExprKind::Literal(l),
        data_type,
    }
}

/// Retypes `e` as `to`: literals are converted in place, anything else gets a cast node.
fn coerce(e: Expr, to: &DataType) -> Result<Expr, String> {
    if &e.data_type == to {
        return Ok(e);
    }
    if let ExprKind::Literal(l) = &e.kind {
        match (l, to) {
            (Literal::Str(s), DataType::Timestamp(_, _)) => {
                let ms = crate::decode::parse_rfc3339_ms(s)
                    .map_err(|why| format!("invalid timestamp literal '{s}': {why}"))?;
                return Ok(lit(Literal::Timestamp(ms), to.clone()));
            }
            (Literal::Int(v), DataType::Int32) if i32::try_from(*v).is_err() => {}
            (Literal::Null, _)
            | (Literal::Int(_), DataType::Int32 | DataType::Int64 | DataType::Float64)
            | (Literal::Float(_), DataType::Float64) => {
                return Ok(Expr {
                    kind: e.kind,
                    data_type: to.clone(),
                })
            }
            _ => {}
        }
    }
    Ok(Expr {
        kind: ExprKind::Cast(Box::new(e)),
        data_type: to.clone(),
    })
}

/// The type two operands of a comparison, CASE or COALESCE are unified to.
fn common_type(a: &Expr, b: &Expr) -> Option<DataType> {
    let (ta, tb) = (&a.data_type, &b.data_type);
    let is_str_lit = |e: &Expr| matches!(e.kind, ExprKind::Literal(Literal::Str(_)));
    let small_int_lit =
        |e: &Expr| matches!(e.kind, ExprKind::Literal(Literal::Int(v)) if i32::try_from(v).is_ok());
    match (ta, tb) {
        _ if ta == tb => Some(ta.clone()),
        (DataType::Null, t) | (t, DataType::Null) => Some(t.clone()),
        // Keep an INT column as is when compared with a small literal.
        (DataType::Int32, DataType::Int64) if small_int_lit(b) => Some(DataType::Int32),
        (DataType::Int64, DataType::Int32) if small_int_lit(a) => Some(DataType::Int32),
        (x, y) if is_numeric(x) && is_numeric(y) => {
            Some(if *x == DataType::Float64 || *y == DataType::Float64 {
                DataType::Float64
            } else {
                DataType::Int64
            })
        }
        (DataType::Timestamp(_, _), DataType::Utf8) if is_str_lit(b) => Some(ta.clone()),
        (DataType::Utf8, DataType::Timestamp(_, _)) if is_str_lit(a) => Some(tb.clone()),
        (DataType::Timestamp(_, _), DataType::Timestamp(_, _)) => Some(timestamp_type()),
        _ => None,
    }
}

struct Compiler<'a> {
    schema: &'a Schema,
}

impl Compiler<'_> {
    fn compile(&self, e: &sql::Expr) -> Result<Expr, String> {
        use sql::Expr as E;
        match e {
            E::Identifier(ident) => self.column(ident),
            E::CompoundIdentifier(parts) => Err(format!(
                "qualified name `{}` is not supported; use the plain column name",
                parts
                    .iter()
                    .map(|p| p.value.as_str())
                    .collect::<Vec<_>>()
                    .join(".")
            )),
            E::Value(v) => self.value(&v.value),
            E::Nested(inner) => self.compile(inner),
            E::BinaryOp { left, op, right } => {
                let op = match op {
                    sql::BinaryOperator::Plus => BinaryOp::Add,
                    sql::BinaryOperator::Minus => BinaryOp::Sub,
                    sql::BinaryOperator::Multiply => BinaryOp::Mul,
                    sql::BinaryOperator::Divide => BinaryOp::Div,
                    sql::BinaryOperator::Modulo => BinaryOp::Mod,
                    sql::BinaryOperator::Eq => BinaryOp::Eq,
                    sql::BinaryOperator::NotEq => BinaryOp::NotEq,
                    sql::BinaryOperator::Lt => BinaryOp::Lt,
                    sql::BinaryOperator::LtEq => BinaryOp::LtEq,
                    sql::BinaryOperator::Gt => BinaryOp::Gt,
                    sql::BinaryOperator::GtEq => BinaryOp::GtEq,
                    sql::BinaryOperator::And => BinaryOp::And,
                    sql::BinaryOperator::Or => BinaryOp::Or,
                    other => return Err(format!("operator {other} is not supported")),
                };
                let l = self.compile(left)?;
                let r = self.compile(right)?;
                self.binary(op, l, r)
            }
            E::UnaryOp { op, expr } => {
                let inner = self.compile(expr)?;
                match op {
                    sql::UnaryOperator::Not => Ok(Expr {
                        kind: ExprKind::Not(Box::new(self.boolean(inner, "NOT")?)),
                        data_type: DataType::Boolean,
                    }),
                    sql::UnaryOperator::Plus if is_numeric(&inner.data_type) => Ok(inner),
                    sql::UnaryOperator::Minus => self.negate(inner),
                    other => Err(format!(
                        "unary {other} needs a numeric operand, got {}",
                        sql_type_name(&inner.data_type)
                    )),
                }
            }
            E::IsNull(inner) | E::IsNotNull(inner) => {
                let inner = Box::new(self.compile(inner)?);
                Ok(Expr {
                    kind: if matches!(e, E::IsNull(_)) {
                        ExprKind::IsNull(inner)
                    } else {
                        ExprKind::IsNotNull(inner)
                    },
                    data_type: DataType::Boolean,
                })
            }
            E::Between {
                expr,
                negated,
                low,
                high,
            } => {
                let x = self.compile(expr)?;
                let ge = self.binary(BinaryOp::GtEq, x.clone(), self.compile(low)?)?;
                let le = self.binary(BinaryOp::LtEq, x, self.compile(high)?)?;
                let both = self.binary(BinaryOp::And, ge, le)?;
                Ok(self.maybe_not(both, *negated))
            }
            E::InList {
                expr,
                list,
                negated,
            } => {
                let x = self.compile(expr)?;
                let mut acc: Option<Expr> = None;
                for item in list {
                    let eq = self.binary(BinaryOp::Eq, x.clone(), self.compile(item)?)?;
                    acc = Some(match acc {
                        None => eq,
                        Some(prev) => self.binary(BinaryOp::Or, prev, eq)?,
                    });
                }
                let any = acc.ok_or("IN needs at least one value")?;
                Ok(self.maybe_not(any, *negated))
            }
            E::Case {
                operand,
                conditions,
                else_result,
                ..
            } => self.case(operand.as_deref(), conditions, else_result.as_deref()),
            E::Cast {
                expr, data_type, ..
            } => {
                let inner = self.compile(expr)?;
                let to = cast_target(data_type)?;
                if inner.data_type != DataType::Null && !can_cast_types(&inner.data_type, &to) {
                    return Err(format!(
                        "cannot cast {} to {}",
                        sql_type_name(&inner.data_type),
                        sql_type_name(&to)
                    ));
                }
                if inner.data_type == to {
                    return Ok(inner);
                }
                Ok(Expr {
                    kind: ExprKind::Cast(Box::new(inner)),
                    data_type: to,
                })
            }
            E::Function(f) => self.function(f),
            // sqlparser has dedicated nodes for FLOOR(x) / CEIL(x).
            E::Floor { expr, field } | E::Ceil { expr, field } => {
                let (name, func) = if matches!(e, E::Floor { .. }) {
                    ("floor", Function::Floor)
                } else {
                    ("ceil", Function::Ceil)
                };
                if !matches!(
                    field,
                    sql::CeilFloorKind::DateTimeField(sql::DateTimeField::NoDateTime)
                ) {
                    return Err(format!("{name}: only {name}(x) is supported"));
                }
                let a = numeric_arg(name, self.compile(expr)?)?;
                Ok(Expr {
                    data_type: a.data_type.clone(),
                    kind: ExprKind::Call {
                        func,
                        args: vec![a],
                    },
                })
            }
            other => Err(format!("unsupported expression `{other}`")),
        }
    }

    fn column(&self, ident: &sql::Ident) -> Result<Expr, String> {
        let fields = self.schema.fields();
        let name = ident.value.as_str();
        let found = fields.iter().position(|f| f.name() == name).or_else(|| {
            // Unquoted identifiers are case-insensitive, as in SQL (when unambiguous).
            if ident.quote_style.is_some() {
                return None;
            }
            let mut hits = fields
                .iter()
                .enumerate()
                .filter(|(_, f)| f.name().eq_ignore_ascii_case(name));
            match (hits.next(), hits.next()) {
                (Some((i, _)), None) => Some(i),
                _ => None,
            }
        });
        match found {
            Some(index) => Ok(Expr {
                kind: ExprKind::Column {
                    index,
                    name: fields[index].name().clone(),
                },
                data_type: fields[index].data_type().clone(),
            }),
            None => Err(unknown_column_message(
                name,
                fields.iter().map(|f| f.name().as_str()),
            )),
        }
    }

    fn value(&self, v: &sql::Value) -> Result<Expr, String> {
        Ok(match v {
            sql::Value::Number(s, _) => {
                if let Ok(i) = s.parse::<i64>() {
                    lit(Literal::Int(i), DataType::Int64)
                } else {
                    let f: f64 = s.parse().map_err(|_| format!("invalid number {s}"))?;
                    lit(Literal::Float(f), DataType::Float64)
                }
            }
            sql::Value::SingleQuotedString(s) => lit(Literal::Str(s.clone()), DataType::Utf8),
            sql::Value::Boolean(b) => lit(Literal::Bool(*b), DataType::Boolean),
            sql::Value::Null => lit(Literal::Null, DataType::Null),
            other => return Err(format!("unsupported literal {other}")),
        })
    }

    fn boolean(&self, e: Expr, what: &str) -> Result<Expr, String> {
        match e.data_type {
            DataType::Boolean => Ok(e),
            DataType::Null => coerce(e, &DataType::Boolean),
            ref t => Err(format!(
                "{what} needs BOOLEAN operands, got {}",
                sql_type_name(t)
            )),
        }
    }

    fn maybe_not(&self, e: Expr, negated: bool) -> Expr {
        if negated {
            Expr {
                kind: ExprKind::Not(Box::new(e)),
                data_type: DataType::Boolean,
            }
        } else {
            e
        }
    }

    fn negate(&self, inner: Expr) -> Result<Expr, String> {
        match (&inner.kind, &inner.data_type) {
            (ExprKind::Literal(Literal::Int(v)), _) => Ok(match v.checked_neg() {
                Some(n) => lit(Literal::Int(n), DataType::Int64),
                None => lit(Literal::Float(-(*v as f64)), DataType::Float64),
            }),
            (ExprKind::Literal(Literal::Float(v)), _) => {
                Ok(lit(Literal::Float(-v), DataType::Float64))
            }
            (_, t) if is_numeric(t) => {
                // Negation is computed in BIGINT like the other integer arithmetic.
                let to = if *t == DataType::Float64 {
                    DataType::Float64
                } else {
                    DataType::Int64
                };
                Ok(Expr {
                    kind: ExprKind::Negate(Box::new(coerce(inner, &to)?)),
                    data_type: to,
                })
            }
            (_, t) => Err(format!(
                "unary - needs a numeric operand, got {}",
                sql_type_name(t)
            )),
        }
    }

    fn binary(&self, op: BinaryOp, l: Expr, r: Expr) -> Result<Expr, String> {
        let types = || {
            format!(
                "{} and {}",
                sql_type_name(&l.data_type),
                sql_type_name(&r.data_type)
            )
        };
        match op {
            BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod => {
                if !is_numeric(&l.data_type) || !is_numeric(&r.data_type) {
                    return Err(format!(
                        "operator {} needs numeric operands, got {}",
                        op.symbol(),
                        types()
                    ));
                }
                let to = if l.data_type == DataType::Float64 || r.data_type == DataType::Float64 {
                    DataType::Float64
                } else {
                    DataType::Int64
                };
                Ok(Expr {
                    kind: ExprKind::Binary {
                        op,
                        left: Box::new(coerce(l, &to)?),
                        right: Box::new(coerce(r, &to)?),
                    },
                    data_type: to,
                })
            }
            BinaryOp::And | BinaryOp::Or => {
                let l = self.boolean(l, op.symbol())?;
                let r = self.boolean(r, op.symbol())?;
                Ok(Expr {
                    kind: ExprKind::Binary {
                        op,
                        left: Box::new(l),
                        right: Box::new(r),
                    },
                    data_type: DataType::Boolean,
                })
            }
            _ => {
                let Some(mut to) = common_type(&l, &r) else {
                    return Err(format!("cannot compare {}", types()));
                };
                if to == DataType::Null {
                    // NULL = NULL: any concrete type works; the result is NULL anyway.
                    to = DataType::Int64;
                }
                Ok(Expr {
                    kind: ExprKind::Binary {
                        op,
                        left: Box::new(coerce(l, &to)?),
                        right: Box::new(coerce(r, &to)?),
                    },
                    data_type: DataType::Boolean,
                })
            }
        }
    }

    /// Unifies the types of several expressions (CASE results, COALESCE arguments).
    fn unify(&self, exprs: Vec<Expr>, what: &str) -> Result<(Vec<Expr>, DataType), String> {
        let mut to = DataType::Null;
        for e in &exprs {
            let probe = lit(Literal::Null, to.clone());
            to = common_type(&probe, e).ok_or_else(|| {
                format!(
                    "{what}: incompatible types {} and {}",
                    sql_type_name(&to),
                    sql_type_name(&e.data_type)
                )
            })?;
        }
        let exprs = exprs
            .into_iter()
            .map(|e| coerce(e, &to))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((exprs, to))
    }

    fn case(
        &self,
        operand: Option<&sql::Expr>,
        conditions: &[sql::CaseWhen],
        else_result: Option<&sql::Expr>,
    ) -> Result<Expr, String> {
        let operand = operand.map(|o| self.compile(o)).transpose()?;
        let mut conds = Vec::with_capacity(conditions.len());
        let mut results = Vec::with_capacity(conditions.len() + 1);
        for w in conditions {
            let c = self.compile(&w.condition)?;
            let c = match &operand {
                Some(x) => self.binary(BinaryOp::Eq, x.clone(), c)?,
                None => self.boolean(c, "CASE WHEN")?,
            };
            conds.push(c);
            results.push(self.compile(&w.result)?);
        }
        let has_else = else_result.is_some();
        if let Some(e) = else_result {
            results.push(self.compile(e)?);
        }
        let (mut results, to) = self.unify(results, "CASE")?;
        let otherwise = if has_else {
            results.pop().map(Box::new)
        } else {
            None
        };
        Ok(Expr {
            kind: ExprKind::Case {
                branches: conds.into_iter().zip(results).collect(),
                otherwise,
            },
            data_type: to,
        })
    }

    fn function(&self, f: &sql::Function) -> Result<Expr, String> {
        let name = f.name.to_string().to_lowercase();
        if f.filter.is_some() || f.over.is_some() {
            return Err(format!("{name}: FILTER/OVER are not supported"));
        }
        let args: Vec<&sql::Expr> = match &f.args {
            sql::FunctionArguments::None => Vec::new(),
            sql::FunctionArguments::List(list) => {
                if list.duplicate_treatment.is_some() || !list.clauses.is_empty() {
                    return Err(format!("{name}: DISTINCT/ORDER BY are not supported"));
                }
                list.args
                    .iter()
                    .map(|a| match a {
                        sql::FunctionArg::Unnamed(sql::FunctionArgExpr::Expr(e)) => Ok(e),
                        other => Err(format!("{name}: unsupported argument {other}")),
                    })
                    .collect::<Result<_, _>>()?
            }
            sql::FunctionArguments::Subquery(_) => {
                return Err(format!("{name}: subqueries are not supported"))
            }
        };
        let arity = |n: usize| {
            if args.len() == n {
                Ok(())
            } else {
                Err(format!(
                    "{name} takes {n} argument{}, got {}",
                    if n == 1 { "" } else { "s" },
                    args.len()
                ))
            }
        };
        let numeric_arg = |e: Expr| numeric_arg(&name, e);
        let string_arg = |e: Expr| -> Result<Expr, String> {
            match e.data_type {
                DataType::Utf8 => Ok(e),
                DataType::Null => coerce(e, &DataType::Utf8),
                ref t => Err(format!(
                    "{name} needs a VARCHAR argument, got {}",
                    sql_type_name(t)
                )),
            }
        };
        let (func, args, data_type) = match name.as_str() {
            "abs" | "floor" | "ceil" | "ceiling" => {
                arity(1)?;
                let a = numeric_arg(self.compile(args[0])?)?;
                let func = match name.as_str() {
                    "abs" => Function::Abs,
                    "floor" => Function::Floor,
                    _ => Function::Ceil,
                };
                let t = a.data_type.clone();
                (func, vec![a], t)
            }
            "round" => {
                if args.is_empty() || args.len() > 2 {
                    return Err(format!("round takes 1 or 2 arguments, got {}", args.len()));
                }
                let digits = match args.get(1) {
                    None => 0,
                    Some(d) => match self.compile(d)?.kind {
                        ExprKind::Literal(Literal::Int(v)) => i32::try_from(v)
                            .ok()
                            .filter(|v| (-18..=18).contains(v))
                            .ok_or("round: digits must be within [-18, 18]")?,
                        _ => return Err("round: digits must be an integer literal".into()),
                    },
                };
                let a = numeric_arg(self.compile(args[0])?)?;
                let t = a.data_type.clone();
                (Function::Round(digits), vec![a], t)
            }
            "lower" | "upper" | "length" | "char_length" | "character_length" => {
                arity(1)?;
                let a = string_arg(self.compile(args[0])?)?;
                match name.as_str() {
                    "lower" => (Function::Lower, vec![a], DataType::Utf8),
                    "upper" => (Function::Upper, vec![a], DataType::Utf8),
                    _ => (Function::Length, vec![a], DataType::Int64),
                }
            }
            "coalesce" => {
                if args.is_empty() {
                    return Err("coalesce needs at least one argument".into());
                }
                let compiled = args
                    .iter()
                    .map(|a| self.compile(a))
                    .collect::<Result<Vec<_>, _>>()?;
                let (args, t) = self.unify(compiled, "coalesce")?;
                (Function::Coalesce, args, t)
            }
            _ => {
                return Err(format!(
                    "unknown function {name} (supported: abs, round, floor, ceil, lower, upper, \
                     length, coalesce)"
                ))
            }
        };
        Ok(Expr {
            kind: ExprKind::Call { func, args },
            data_type,
        })
    }
}

/// A numeric function argument: DOUBLE stays, integers are computed in BIGINT.
fn numeric_arg(name: &str, e: Expr) -> Result<Expr, String> {
    match e.data_type {
        DataType::Float64 => Ok(e),
        ref t if is_numeric(t) => coerce(e, &DataType::Int64),
        ref t => Err(format!(
            "{name} needs a numeric argument, got {}",
            sql_type_name(t)
        )),
    }
}

/// The Arrow type of a `CAST(... AS type)` target.
fn cast_target(t: &sql::DataType) -> Result<DataType, String> {
    let text = t.to_string().to_uppercase();
    let base = text.split('(').next().unwrap_or("").trim();
    Ok(match base {
        "BIGINT" | "INT64" | "LONG" | "INT8" => DataType::Int64,
        "INT" | "INTEGER" | "INT4" | "INT32" => DataType::Int32,
        "DOUBLE" | "DOUBLE PRECISION" | "FLOAT" | "FLOAT8" | "FLOAT64" | "REAL" => {
            DataType::Float64
        }
        "VARCHAR" | "STRING" | "TEXT" | "CHAR" | "CHARACTER VARYING" => DataType::Utf8,
        "BOOLEAN" | "BOOL" => DataType::Boolean,
        "TIMESTAMP" => timestamp_type(),
        _ => {
            return Err(format!(
                "cannot cast to {text} (supported: BIGINT, INT, DOUBLE, VARCHAR, BOOLEAN, \
                 TIMESTAMP)"
            ))
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use arrow::array::{Int32Array, TimestampMillisecondArray};
    use arrow::datatypes::{Field, Int32Type};

    fn batch() -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("value", DataType::Float64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("ok", DataType::Boolean, true),
            Field::new("small", DataType::Int32, true),
            Field::new("ts", timestamp_type(), true),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Int64Array::from(vec![Some(1), Some(2), None, Some(4)])),
                Arc::new(Float64Array::from(vec![
                    Some(1.5),
                    None,
                    Some(-2.0),
                    Some(0.0),
                ])),
                Arc::new(StringArray::from(vec![
                    Some("Ab"),
                    Some("cd"),
                    None,
                    Some("éÉ"),
                ])),
                Arc::new(BooleanArray::from(vec![
                    Some(true),
                    Some(false),
                    None,
                    Some(true),
                ])),
                Arc::new(Int32Array::from(vec![Some(10), None, Some(-3), Some(0)])),
                Arc::new(
                    TimestampMillisecondArray::from(vec![Some(0), Some(1000), None, Some(2000)])
                        .with_timezone(UTC),
                ),
            ],
        )
        .unwrap()
    }

    fn eval(sql: &str) -> ArrayRef {
        let b = batch();
        let c = compile(sql, &b.schema()).unwrap_or_else(|e| panic!("{sql}: {e}"));
        let out = c.evaluate(&b).unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert_eq!(out.len(), 4, "{sql}");
        assert_eq!(out.data_type(), c.data_type(), "{sql}");
        out
    }

    fn ints(sql: &str) -> Vec<Option<i64>> {
        eval(sql).as_primitive::<Int64Type>().iter().collect()
    }
    fn floats(sql: &str) -> Vec<Option<f64>> {
        eval(sql).as_primitive::<Float64Type>().iter().collect()
    }
    fn bools(sql: &str) -> Vec<Option<bool>> {
        eval(sql).as_boolean().iter().collect()
    }
    fn strs(sql: &str) -> Vec<Option<String>> {
        eval(sql)
            .as_string::<i32>()
            .iter()
            .map(|o| o.map(String::from))
            .collect()
    }
    fn error(sql: &str) -> String {
        compile(sql, &batch().schema()).unwrap_err().to_string()
    }

    #[test]
    fn columns_and_literals() {
        assert_eq!(ints("id"), [Some(1), Some(2), None, Some(4)]);
        assert_eq!(ints("ID"), [Some(1), Some(2), None, Some(4)]);
        assert_eq!(ints("7"), [Some(7); 4]);
        assert_eq!(floats("2.5"), [Some(2.5); 4]);
        assert_eq!(strs("'x'"), vec![Some("x".to_string()); 4]);
        assert_eq!(bools("TRUE"), [Some(true); 4]);
        assert_eq!(eval("NULL").logical_null_count(), 4);
        assert_eq!(ints("(((id)))"), [Some(1), Some(2), None, Some(4)]);
        assert!(error("\"ID\"").contains("unknown column \"ID\" (did you mean \"id\"?)"));
        assert!(error("vale + 1").contains("unknown column \"vale\" (did you mean \"value\"?)"));
        assert!(error("t.id").contains("qualified name"));
    }

    #[test]
    fn arithmetic_and_promotion() {
        assert_eq!(ints("id + 1"), [Some(2), Some(3), None, Some(5)]);
        assert_eq!(ints("id * 2 - 1"), [Some(1), Some(3), None, Some(7)]);
        assert_eq!(ints("small + 1"), [Some(11), None, Some(-2), Some(1)]);
        assert_eq!(floats("id + value"), [Some(2.5), None, None, Some(4.0)]);
        assert_eq!(floats("id / 2.0"), [Some(0.5), Some(1.0), None, Some(2.0)]);
        assert_eq!(ints("id / 2"), [Some(0), Some(1), None, Some(2)]);
        assert_eq!(ints("id % 2"), [Some(1), Some(0), None, Some(0)]);
        assert_eq!(ints("-id"), [Some(-1), Some(-2), None, Some(-4)]);
        assert_eq!(ints("-5 + id"), [Some(-4), Some(-3), None, Some(-1)]);
        assert_eq!(ints("9223372036854775807 + id")[0], Some(i64::MIN));
        assert_eq!(ints("id + NULL"), [None; 4]);
        assert!(
            error("name + 1").contains("operator + needs numeric operands, got VARCHAR and BIGINT")
        );
    }

    #[test]
    fn division_by_zero_is_null() {
        assert_eq!(ints("id / 0"), [None; 4]);
        assert_eq!(ints("id % 0"), [None; 4]);
        assert_eq!(ints("10 / (id - 2)"), [Some(-10), None, None, Some(5)]);
        assert_eq!(ints("id % (small)"), [Some(1), None, None, None]);
        assert_eq!(floats("value / 0"), [None; 4]);
        assert_eq!(
            floats("1 / value"),
            [Some(1.0 / 1.5), None, Some(-0.5), None]
        );
        assert_eq!(ints("(id - 9223372036854775807 - 2) / -1")[0], None);
    }

    #[test]
    fn comparisons() {
        assert_eq!(
            bools("id = 2"),
            [Some(false), Some(true), None, Some(false)]
        );
        assert_eq!(
            bools("id != 2"),
            [Some(true), Some(false), None, Some(true)]
        );
        assert_eq!(
            bools("id <> 2"),
            [Some(true), Some(false), None, Some(true)]
        );
        assert_eq!(
            bools("value < 1"),
            [Some(false), None, Some(true), Some(true)]
        );
        assert_eq!(
            bools("value <= 1.5"),
            [Some(true), None, Some(true), Some(true)]
        );
        assert_eq!(bools("id > value"), [Some(false), None, None, Some(true)]);
        assert_eq!(
            bools("small >= 0"),
            [Some(true), None, Some(false), Some(true)]
        );
        assert_eq!(
            bools("name = 'cd'"),
            [Some(false), Some(true), None, Some(false)]
        );
        assert_eq!(
            bools("ok = TRUE"),
            [Some(true), Some(false), None, Some(true)]
        );
        assert_eq!(
            bools("ts >= '1970-01-01T00:00:01Z'"),
            [Some(false), Some(true), None, Some(true)]
        );
        assert_eq!(bools("id = NULL"), [None; 4]);
        assert!(error("name = 1").contains("cannot compare VARCHAR and BIGINT"));
        assert!(error("ts > 'yesterday'").contains("invalid timestamp literal"));
        // An INT column compared with a small literal stays INT (no cast of the column).
        let c = compile("small = 3", &batch().schema()).unwrap();
        let ExprKind::Binary { left, .. } = &c.expr().kind else {
            panic!()
        };
        assert!(matches!(left.kind, ExprKind::Column { .. }));
    }

    #[test]
    fn three_valued_logic() {
        // ok: [true, false, NULL, true]
        assert_eq!(bools("ok AND NULL"), [None, Some(false), None, None]);
        assert_eq!(bools("ok OR NULL"), [Some(true), None, None, Some(true)]);
        assert_eq!(
            bools("NOT ok"),
            [Some(false), Some(true), None, Some(false)]
        );
        assert_eq!(
            bools("ok AND id > 1"),
            [Some(false), Some(false), None, Some(true)]
        );
        assert_eq!(
            bools("ok OR id > 1"),
            [Some(true), Some(true), None, Some(true)]
        );
        assert_eq!(bools("NULL AND FALSE"), [Some(false); 4]);
        assert_eq!(bools("TRUE OR NULL"), [Some(true); 4]);
        assert!(error("id AND ok").contains("AND needs BOOLEAN operands, got BIGINT"));
        assert!(error("NOT id").contains("NOT needs BOOLEAN"));
    }

    #[test]
    fn null_tests_between_in() {
        assert_eq!(
            bools("id IS NULL"),
            [Some(false), Some(false), Some(true), Some(false)]
        );
        assert_eq!(
            bools("name IS NOT NULL"),
            [Some(true), Some(true), Some(false), Some(true)]
        );
        assert_eq!(
            bools("id BETWEEN 2 AND 4"),
            [Some(false), Some(true), None, Some(true)]
        );
        assert_eq!(
            bools("id NOT BETWEEN 2 AND 3"),
            [Some(true), Some(false), None, Some(true)]
        );
        assert_eq!(
            bools("id IN (1, 4)"),
            [Some(true), Some(false), None, Some(true)]
        );
        assert_eq!(
            bools("id NOT IN (1, 4)"),
            [Some(false), Some(true), None, Some(false)]
        );
        // x IN (.., NULL) is NULL rather than false when there is no match.
        assert_eq!(bools("id IN (1, NULL)"), [Some(true), None, None, None]);
        assert_eq!(
            bools("name IN ('Ab', 'zz')"),
            [Some(true), Some(false), None, Some(false)]
        );
    }

    #[test]
    fn case_when() {
        assert_eq!(
            strs("CASE WHEN id = 1 THEN 'one' WHEN id > 1 THEN 'many' ELSE 'none' END"),
            [Some("one"), Some("many"), Some("none"), Some("many")].map(|s| s.map(String::from))
        );
        // No ELSE → NULL; NULL condition counts as false.
        assert_eq!(
            ints("CASE WHEN ok THEN id END"),
            [Some(1), None, None, Some(4)]
        );
        // Numeric branches promote.
        assert_eq!(
            floats("CASE WHEN ok THEN 1 ELSE value END"),
            [Some(1.0), None, Some(-2.0), Some(1.0)]
        );
        // Simple CASE.
        assert_eq!(
            ints("CASE id WHEN 1 THEN 10 WHEN 2 THEN 20 ELSE 0 END"),
            [Some(10), Some(20), Some(0), Some(0)]
        );
        assert!(error("CASE WHEN ok THEN 1 ELSE 'x' END").contains("CASE: incompatible types"));
        assert!(error("CASE WHEN id THEN 1 END").contains("CASE WHEN needs BOOLEAN"));
    }

    #[test]
    fn casts() {
        assert_eq!(
            floats("CAST(id AS DOUBLE)"),
            [Some(1.0), Some(2.0), None, Some(4.0)]
        );
        assert_eq!(
            ints("CAST(value AS BIGINT)"),
            [Some(1), None, Some(-2), Some(0)]
        );
        assert_eq!(strs("CAST(id AS VARCHAR)")[0].as_deref(), Some("1"));
        assert_eq!(
            bools("CAST(small AS BOOLEAN)"),
            [Some(true), None, Some(true), Some(false)]
        );
        assert_eq!(ints("CAST(name AS BIGINT)"), [None; 4]);
        assert_eq!(ints("CAST('12' AS BIGINT) + id")[0], Some(13));
        assert_eq!(ints("id::BIGINT"), [Some(1), Some(2), None, Some(4)]);
        let out = eval("CAST(id AS INT)");
        assert_eq!(out.as_primitive::<Int32Type>().value(0), 1);
        assert!(error("CAST(id AS BLOB)").contains("cannot cast to BLOB"));
    }

    #[test]
    fn functions() {
        assert_eq!(ints("abs(-id)"), [Some(1), Some(2), None, Some(4)]);
        assert_eq!(
            floats("abs(value)"),
            [Some(1.5), None, Some(2.0), Some(0.0)]
        );
        assert_eq!(
            floats("round(value)"),
            [Some(2.0), None, Some(-2.0), Some(0.0)]
        );
        assert_eq!(floats("round(value * 1.2345, 2)")[0], Some(1.85));
        assert_eq!(
            ints("round(id * 16, -1)"),
            [Some(20), Some(30), None, Some(60)]
        );
        assert_eq!(
            floats("floor(value)"),
            [Some(1.0), None, Some(-2.0), Some(0.0)]
        );
        assert_eq!(
            floats("ceil(value)"),
            [Some(2.0), None, Some(-2.0), Some(0.0)]
        );
        assert_eq!(ints("floor(id)"), [Some(1), Some(2), None, Some(4)]);
        assert_eq!(
            strs("lower(name)"),
            [Some("ab"), Some("cd"), None, Some("éé")].map(|s| s.map(String::from))
        );
        assert_eq!(
            strs("UPPER(name)"),
            [Some("AB"), Some("CD"), None, Some("ÉÉ")].map(|s| s.map(String::from))
        );
        assert_eq!(ints("length(name)"), [Some(2), Some(2), None, Some(2)]);
        assert_eq!(
            ints("coalesce(id, small, 0)"),
            [Some(1), Some(2), Some(-3), Some(4)]
        );
        assert_eq!(
            floats("coalesce(value, id)"),
            [Some(1.5), Some(2.0), Some(-2.0), Some(0.0)]
        );
        assert_eq!(
            ints("coalesce(NULL, id)"),
            [Some(1), Some(2), None, Some(4)]
        );
        assert!(error("lower(id)").contains("lower needs a VARCHAR argument, got BIGINT"));
        assert!(error("abs(name)").contains("abs needs a numeric argument"));
        assert!(error("abs(id, 2)").contains("abs takes 1 argument, got 2"));
        assert!(error("sqrt(id)").contains("unknown function sqrt"));
        assert!(error("coalesce(id, name)").contains("coalesce: incompatible types"));
    }

    #[test]
    fn syntax_errors() {
        assert!(error("id +").contains("syntax error"));
        assert!(error("id > 1 garbage").contains("syntax error"));
        assert!(error("").contains("syntax error"));
        let e = compile("id >", &batch().schema()).unwrap_err();
        assert!(matches!(e, EngineError::Expr { ref expr, .. } if expr == "id >"));
    }

    #[test]
    fn empty_batch() {
        let b = batch().slice(0, 0);
        let c = compile("CASE WHEN id > 1 THEN coalesce(id, 2) END", &b.schema()).unwrap();
        assert_eq!(c.evaluate(&b).unwrap().len(), 0);
        let c = compile("1 + 2", &b.schema()).unwrap();
        assert_eq!(c.evaluate(&b).unwrap().len(), 0);
    }
}
