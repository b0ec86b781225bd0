#![allow(clippy::unwrap_used)]

use super::*;
use arrow::array::{
    AsArray, BooleanArray, Float64Array, Int32Array, Int64Array, StringArray,
    TimestampMillisecondArray,
};
use arrow::datatypes::{Field, Float64Type, Int32Type, Int64Type};

use crate::plan::UTC;

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

/// Evaluates a result column (normalised types), checking the declared type.
fn eval(sql: &str) -> ArrayRef {
    let b = batch();
    let c = compile_column(sql, &b.schema()).unwrap_or_else(|e| panic!("{sql}: {e}"));
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
    compile_column(sql, &batch().schema())
        .unwrap_err()
        .to_string()
}
fn s(v: &[Option<&str>]) -> Vec<Option<String>> {
    v.iter().map(|o| o.map(String::from)).collect()
}

#[test]
fn columns_and_literals() {
    assert_eq!(ints("id"), [Some(1), Some(2), None, Some(4)]);
    assert_eq!(ints("ID"), [Some(1), Some(2), None, Some(4)]);
    assert_eq!(ints("7"), [Some(7); 4]);
    assert_eq!(floats("2.5"), [Some(2.5); 4]);
    assert_eq!(strs("'x'"), s(&[Some("x"); 4]));
    assert_eq!(bools("TRUE"), [Some(true); 4]);
    assert_eq!(eval("NULL").logical_null_count(), 4);
    assert_eq!(ints("(((id)))"), [Some(1), Some(2), None, Some(4)]);
    assert!(error("\"ID\"").contains("unknown column \"ID\" (did you mean \"id\"?)"));
    assert!(error("vale + 1").contains("unknown column \"vale\" (did you mean \"value\"?)"));
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
        error("name + 1").contains("name + 1"),
        "{}",
        error("name + 1")
    );
}

#[test]
fn division_by_zero_is_null() {
    assert_eq!(ints("id / 0"), [None; 4]);
    assert_eq!(ints("id % 0"), [None; 4]);
    assert_eq!(ints("10 / (id - 2)"), [Some(-10), None, None, Some(5)]);
    assert_eq!(ints("id % small"), [Some(1), None, None, None]);
    assert_eq!(floats("value / 0"), [None; 4]);
    assert_eq!(
        floats("1 / value"),
        [Some(1.0 / 1.5), None, Some(-0.5), None]
    );
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
    assert_eq!(
        bools("ts < TIMESTAMP '1970-01-01 00:00:01'"),
        [Some(true), Some(false), None, Some(false)]
    );
    assert_eq!(bools("id = NULL"), [None; 4]);
    // A string literal that is no timestamp fails at planning, not on the first batch.
    assert!(error("ts > 'yesterday'").contains("ts > 'yesterday'"));
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
        s(&[Some("one"), Some("many"), Some("none"), Some("many")])
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
}

#[test]
fn casts_are_try_casts() {
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
    // An unconvertible value is NULL, not a failed micro-batch.
    assert_eq!(ints("CAST(name AS BIGINT)"), [None; 4]);
    assert_eq!(ints("CAST('12' AS BIGINT) + id")[0], Some(13));
    assert_eq!(ints("id::BIGINT"), [Some(1), Some(2), None, Some(4)]);
    let out = eval("CAST(id AS INT)");
    assert_eq!(out.as_primitive::<Int32Type>().value(0), 1);
}

#[test]
fn datafusion_functions() {
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
        floats("floor(value)"),
        [Some(1.0), None, Some(-2.0), Some(0.0)]
    );
    assert_eq!(
        floats("ceil(value)"),
        [Some(2.0), None, Some(-2.0), Some(0.0)]
    );
    assert_eq!(
        strs("lower(name)"),
        s(&[Some("ab"), Some("cd"), None, Some("éé")])
    );
    assert_eq!(
        strs("UPPER(name)"),
        s(&[Some("AB"), Some("CD"), None, Some("ÉÉ")])
    );
    assert_eq!(
        strs("concat(name, '-', id)"),
        s(&[Some("Ab-1"), Some("cd-2"), Some("-"), Some("éÉ-4")])
    );
    assert_eq!(strs("name || '!'")[0].as_deref(), Some("Ab!"));
    assert_eq!(
        ints("coalesce(id, small, 0)"),
        [Some(1), Some(2), Some(-3), Some(4)]
    );
    assert_eq!(
        floats("coalesce(value, id)"),
        [Some(1.5), Some(2.0), Some(-2.0), Some(0.0)]
    );
    assert_eq!(
        floats("sqrt(id)")[3],
        Some(2.0),
        "functions the old hand-written evaluator lacked"
    );
    assert_eq!(floats("power(id, 2)")[1], Some(4.0));
    assert_eq!(
        strs("substr(name, 1, 1)"),
        s(&[Some("A"), Some("c"), None, Some("é")])
    );
    assert_eq!(
        strs("regexp_replace(name, '[a-z]', '_', 'g')"),
        s(&[Some("A_"), Some("__"), None, Some("éÉ")])
    );
    assert_eq!(ints("CAST(date_part('second', ts) AS BIGINT)")[1], Some(1));
    assert_eq!(strs("encode(name, 'hex')")[0].as_deref(), Some("4162"));
    assert_eq!(
        strs("md5(name)")[0].as_deref(),
        Some("0e4c46df226b9c0cb391311c54f28efe"),
        "crypto functions"
    );
    assert_eq!(
        ints("CAST(array_length(string_to_array(name, 'b')) AS BIGINT)")[0],
        Some(2),
        "nested (array) functions inside an expression"
    );
    assert_eq!(ints("CAST(cardinality([id, 2, 3]) AS BIGINT)")[0], Some(3));
    assert_eq!(bools("regexp_like(name, '^[a-z]+$')")[1], Some(true));
    assert_eq!(
        ints("CAST(extract(second FROM ts) AS BIGINT)"),
        [Some(0), Some(1), None, Some(2)]
    );
    assert_eq!(
        eval("date_trunc('minute', ts)").data_type(),
        &timestamp_type(),
        "timestamps become the engine's TIMESTAMP (ms, UTC)"
    );
    assert_eq!(
        ints("CAST(character_length(name) AS BIGINT)"),
        [Some(2), Some(2), None, Some(2)]
    );
    assert!(
        error("lower(id, 2)").contains("lower"),
        "{}",
        error("lower(id, 2)")
    );
    assert!(
        error("no_such_fn(id)").contains("no_such_fn"),
        "{}",
        error("no_such_fn(id)")
    );
}

#[test]
fn aggregates_and_unsupported_types_are_refused() {
    assert!(
        error("count(*) > 1").contains("aggregate function count cannot be used here"),
        "{}",
        error("count(*) > 1")
    );
    assert!(
        error("ts - ts").contains("CAST it to"),
        "{}",
        error("ts - ts")
    );
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
