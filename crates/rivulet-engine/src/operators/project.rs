//! Derived columns (appended to every batch, before grouping) and result columns (SQL
//! `SELECT` over the aggregate's output: only the listed columns, in order).

use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use crate::error::{EngineError, Result};
use crate::expr::{self, CompiledExpr};
use crate::operator::Operator;
use crate::plan::DerivedColumn;

/// Appends derived columns, in order, each of which may reference the input columns and the
/// derived columns before it ([`Project::new`]); or replaces the columns by a SELECT list
/// whose expressions see the input columns only ([`Project::select`]). Stateless.
#[derive(Debug)]
pub struct Project {
    columns: Vec<CompiledExpr>,
    output: SchemaRef,
    /// `new`: input columns first, then the derived ones; `select`: the listed ones only.
    keep_input: bool,
}

impl Project {
    /// Compiles every column's expression against `schema` plus the columns before it.
    pub fn new(columns: &[DerivedColumn], schema: &SchemaRef) -> Result<Project> {
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        let mut compiled = Vec::with_capacity(columns.len());
        for c in columns {
            if fields.iter().any(|f| f.name() == &c.name) {
                return Err(EngineError::Plan(format!(
                    "derived column \"{}\" clashes with an existing column",
                    c.name
                )));
            }
            let e = expr::compile_column(&c.expr, &Schema::new(fields.clone()))?;
            // Nullable: even over non-null inputs, e.g. division by zero yields NULL.
            fields.push(Field::new(&c.name, e.data_type().clone(), true));
            compiled.push(e);
        }
        Ok(Project {
            columns: compiled,
            output: Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone())),
            keep_input: true,
        })
    }

    /// The result columns `columns` (names unique), each an expression over `schema`.
    pub fn select(columns: &[DerivedColumn], schema: &SchemaRef) -> Result<Project> {
        let mut fields: Vec<Field> = Vec::with_capacity(columns.len());
        let mut compiled = Vec::with_capacity(columns.len());
        for c in columns {
            if fields.iter().any(|f| f.name() == &c.name) {
                return Err(EngineError::Plan(format!(
                    "result column \"{}\" appears twice",
                    c.name
                )));
            }
            let e = expr::compile_column(&c.expr, schema)?;
            // A plain column keeps its nullability; anything computed may be NULL.
            let plain = c.expr.trim().trim_matches('"');
            let nullable = schema
                .field_with_name(plain)
                .map_or(true, |f| f.is_nullable());
            fields.push(Field::new(&c.name, e.data_type().clone(), nullable));
            compiled.push(e);
        }
        Ok(Project {
            columns: compiled,
            output: Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone())),
            keep_input: false,
        })
    }

    /// The input schema followed by the derived columns, or the SELECT list.
    pub fn output_schema(&self) -> SchemaRef {
        self.output.clone()
    }

    /// `batch` with the derived columns appended.
    pub fn apply(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        if !self.keep_input {
            let cols = self
                .columns
                .iter()
                .map(|e| e.evaluate(batch))
                .collect::<Result<Vec<ArrayRef>>>()?;
            return Ok(RecordBatch::try_new(self.output.clone(), cols)?);
        }
        let n_in = self.output.fields().len() - self.columns.len();
        if batch.num_columns() != n_in {
            return Err(EngineError::Other(format!(
                "project: batch has {} columns, expected {n_in}",
                batch.num_columns()
            )));
        }
        let mut cols: Vec<ArrayRef> = batch.columns().to_vec();
        for (i, e) in self.columns.iter().enumerate() {
            // Later expressions see the earlier derived columns: evaluate on a batch that has
            // them (cheap: columns are reference-counted).
            let partial = Arc::new(Schema::new(self.output.fields()[..n_in + i].to_vec()));
            let so_far = RecordBatch::try_new(partial, cols.clone())?;
            cols.push(e.evaluate(&so_far)?);
        }
        Ok(RecordBatch::try_new(self.output.clone(), cols)?)
    }
}

impl Operator for Project {
    fn name(&self) -> &'static str {
        "project"
    }

    fn process_batch(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        out.push(self.apply(&batch)?);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray, Float64Array, Int64Array};
    use arrow::datatypes::{DataType, Float64Type, Int64Type};

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("value", DataType::Float64, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3])),
                Arc::new(Float64Array::from(vec![Some(1.0), None, Some(3.0)])),
            ],
        )
        .unwrap()
    }

    fn col(name: &str, expr: &str) -> DerivedColumn {
        DerivedColumn {
            name: name.into(),
            expr: expr.into(),
        }
    }

    #[test]
    fn appends_columns_in_order_with_references_to_earlier_ones() {
        let b = batch();
        let mut p = Project::new(
            &[
                col("double_value", "value * 2"),
                col("bucket", "id % 2"),
                col("total", "double_value + bucket"),
            ],
            &b.schema(),
        )
        .unwrap();
        assert_eq!(p.name(), "project");
        let schema = p.output_schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["id", "value", "double_value", "bucket", "total"]);
        assert_eq!(schema.field(2).data_type(), &DataType::Float64);
        assert_eq!(schema.field(3).data_type(), &DataType::Int64);
        let mut out = Vec::new();
        p.process_batch(b, &mut out).unwrap();
        assert_eq!(out.len(), 1);
        let o = &out[0];
        assert_eq!(o.schema(), schema);
        let total: Vec<Option<f64>> = o.column(4).as_primitive::<Float64Type>().iter().collect();
        assert_eq!(total, [Some(3.0), None, Some(7.0)]);
        let bucket: Vec<Option<i64>> = o.column(3).as_primitive::<Int64Type>().iter().collect();
        assert_eq!(bucket, [Some(1), Some(0), Some(1)]);
        assert!(o.column(2).is_null(1));
    }

    #[test]
    fn select_replaces_the_columns_in_the_listed_order() {
        let b = batch();
        let mut p = Project::select(
            &[
                col("half", "value / 2"),
                col("id", "id"),
                col(
                    "label",
                    "CASE WHEN value IS NULL THEN 'none' ELSE 'v' || id END",
                ),
            ],
            &b.schema(),
        )
        .unwrap();
        let schema = p.output_schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["half", "id", "label"]);
        assert!(
            !schema.field(1).is_nullable(),
            "a plain column keeps NOT NULL"
        );
        let mut out = Vec::new();
        p.process_batch(b.clone(), &mut out).unwrap();
        let o = &out[0];
        let half: Vec<Option<f64>> = o.column(0).as_primitive::<Float64Type>().iter().collect();
        assert_eq!(half, [Some(0.5), None, Some(1.5)]);
        let label: Vec<Option<&str>> = o.column(2).as_string::<i32>().iter().collect();
        assert_eq!(label, [Some("v1"), Some("none"), Some("v3")]);
        // SELECT items see the input only, not each other.
        let e = Project::select(&[col("a", "1"), col("b", "a + 1")], &b.schema())
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown column \"a\""), "{e}");
        let e = Project::select(&[col("a", "1"), col("a", "2")], &b.schema())
            .unwrap_err()
            .to_string();
        assert!(e.contains("appears twice"), "{e}");
    }

    #[test]
    fn errors_and_empty_batches() {
        let b = batch();
        let e = Project::new(&[col("x", "nope + 1")], &b.schema())
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown column \"nope\""), "{e}");
        // A column cannot reference a later one.
        let e = Project::new(&[col("a", "b + 1"), col("b", "1")], &b.schema())
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown column \"b\""), "{e}");
        let e = Project::new(&[col("id", "1")], &b.schema())
            .unwrap_err()
            .to_string();
        assert!(e.contains("clashes"), "{e}");
        let mut p = Project::new(&[col("x", "id + 1")], &b.schema()).unwrap();
        let mut out = Vec::new();
        p.process_batch(b.slice(0, 0), &mut out).unwrap();
        assert!(out.is_empty());
        // No derived columns: the batch passes through.
        let mut p = Project::new(&[], &b.schema()).unwrap();
        p.process_batch(b.clone(), &mut out).unwrap();
        assert_eq!(out[0], b);
    }
}
