//! Golden test of the Spark-like console rendering.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use arrow::array::{Float64Array, Int64Array, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use rivulet_runtime::sinks::{ConsoleSink, Sink};

#[test]
fn console_golden() {
    let ts = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("window_start", ts.clone(), false),
        Field::new("count", DataType::Int64, false),
        Field::new("avg_value", DataType::Float64, true),
    ]));
    let b = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1, 42])),
            Arc::new(
                TimestampMillisecondArray::from(vec![1_795_514_410_000, 1_795_514_420_000])
                    .with_timezone("UTC"),
            ),
            Arc::new(Int64Array::from(vec![3, 12])),
            Arc::new(Float64Array::from(vec![Some(17.3), Some(12.345_678)])),
        ],
    )
    .unwrap();
    let mut sink = ConsoleSink::new(Vec::<u8>::new()).with_schema(schema);
    sink.write_epoch(3, &[b]).unwrap();
    sink.write_epoch(4, &[]).unwrap();
    let text = String::from_utf8(sink.into_inner()).unwrap();
    let expected = "\
-------------------------------------------
Batch: 3
-------------------------------------------
+---+-------------------+-----+---------+
| id|       window_start|count|avg_value|
+---+-------------------+-----+---------+
|  1|2026-11-24 10:00:10|    3|     17.3|
| 42|2026-11-24 10:00:20|   12|  12.3457|
+---+-------------------+-----+---------+

-------------------------------------------
Batch: 4
-------------------------------------------
+---+------------+-----+---------+
| id|window_start|count|avg_value|
+---+------------+-----+---------+
+---+------------+-----+---------+

";
    assert_eq!(text, expected);
}
