//! `WHERE`: keeps the rows for which a SQL predicate is true (NULL counts as false).

use arrow::array::{Array, AsArray};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;

use crate::error::{EngineError, Result};
use crate::expr::{self, CompiledExpr};
use crate::operator::Operator;

/// Row filter over batches of one schema. Stateless.
#[derive(Debug)]
pub struct Filter {
    predicate: CompiledExpr,
    schema: SchemaRef,
}

impl Filter {
    /// Compiles `sql` against `schema`; the predicate must be BOOLEAN.
    pub fn new(sql: &str, schema: &SchemaRef) -> Result<Filter> {
        let predicate = expr::compile(sql, schema)?;
        if !matches!(predicate.data_type(), DataType::Boolean | DataType::Null) {
            return Err(EngineError::Expr {
                expr: sql.to_string(),
                reason: format!(
                    "a filter must be a boolean expression, got {}",
                    expr::sql_type_name(predicate.data_type())
                ),
            });
        }
        Ok(Filter {
            predicate,
            schema: schema.clone(),
        })
    }

    /// A filter with an already compiled (BOOLEAN) predicate over `schema`.
    pub fn from_compiled(predicate: CompiledExpr, schema: SchemaRef) -> Filter {
        Filter { predicate, schema }
    }

    /// Same as the input schema: a filter only removes rows.
    pub fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// The kept rows of `batch` (possibly empty).
    pub fn apply(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let mask = self.predicate.evaluate(batch)?;
        if mask.data_type() == &DataType::Null {
            // `WHERE NULL` keeps nothing.
            return Ok(batch.slice(0, 0));
        }
        let mask = mask
            .as_boolean_opt()
            .ok_or_else(|| EngineError::Other(format!("filter produced {}", mask.data_type())))?;
        // filter_record_batch treats NULL as false, which is SQL's WHERE.
        Ok(filter_record_batch(batch, mask)?)
    }
}

impl Operator for Filter {
    fn name(&self) -> &'static str {
        "filter"
    }

    fn process_batch(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let kept = self.apply(&batch)?;
        if kept.num_rows() > 0 {
            out.push(kept);
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, Int64Array};
    use arrow::datatypes::{Field, Int64Type, Schema};
    use std::sync::Arc;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("value", DataType::Float64, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3, 4])),
                Arc::new(Float64Array::from(vec![
                    Some(1.0),
                    None,
                    Some(-1.0),
                    Some(5.0),
                ])),
            ],
        )
        .unwrap()
    }

    fn run(f: &mut Filter, b: RecordBatch) -> Vec<RecordBatch> {
        let mut out = Vec::new();
        f.process_batch(b, &mut out).unwrap();
        out
    }

    #[test]
    fn keeps_true_rows_and_drops_null() {
        let b = batch();
        let mut f = Filter::new("value > 0 AND id % 2 = 0", &b.schema()).unwrap();
        assert_eq!(f.name(), "filter");
        assert_eq!(f.output_schema(), b.schema());
        let out = run(&mut f, b.clone());
        assert_eq!(out.len(), 1);
        let ids: Vec<i64> = out[0]
            .column(0)
            .as_primitive::<Int64Type>()
            .values()
            .to_vec();
        assert_eq!(ids, [4]);
        // NULL predicate drops the row: value > 0 is NULL for id 2.
        let mut f = Filter::new("value > 0", &b.schema()).unwrap();
        let out = run(&mut f, b);
        let ids: Vec<i64> = out[0]
            .column(0)
            .as_primitive::<Int64Type>()
            .values()
            .to_vec();
        assert_eq!(ids, [1, 4]);
    }

    #[test]
    fn skips_empty_batches() {
        let b = batch();
        let mut f = Filter::new("id > 100", &b.schema()).unwrap();
        assert!(run(&mut f, b.clone()).is_empty());
        let mut f = Filter::new("NULL", &b.schema()).unwrap();
        assert!(run(&mut f, b.clone()).is_empty());
        let mut f = Filter::new("TRUE", &b.schema()).unwrap();
        assert!(run(&mut f, b.slice(0, 0)).is_empty());
        assert_eq!(run(&mut f, b)[0].num_rows(), 4);
    }

    #[test]
    fn rejects_non_boolean_and_bad_sql() {
        let b = batch();
        let e = Filter::new("id + 1", &b.schema()).unwrap_err().to_string();
        assert!(
            e.contains("must be a boolean expression, got BIGINT"),
            "{e}"
        );
        let e = Filter::new("idd > 1", &b.schema()).unwrap_err().to_string();
        assert!(e.contains("did you mean \"id\""), "{e}");
    }
}
