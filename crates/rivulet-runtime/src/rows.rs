//! Turning Arrow rows into text: JSON objects for the file, Kafka and late-row outputs, console
//! cells, and the time formats they use (`rivulet_time`'s calendar).
//!
//! JSON: timestamps are RFC 3339 strings with milliseconds (`2026-11-24T10:00:10.000Z`),
//! floats are numbers (NaN/±inf → null), nulls are `null`, columns keep the batch's order.

use arrow::array::{
    Array, ArrayRef, BooleanArray, Float32Array, Float64Array, Int16Array, Int32Array, Int64Array,
    Int8Array, LargeStringArray, StringArray, TimestampMicrosecondArray, TimestampMillisecondArray,
    TimestampNanosecondArray, TimestampSecondArray, UInt16Array, UInt32Array, UInt64Array,
    UInt8Array,
};
use arrow::datatypes::{DataType, TimeUnit};
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};

/// `2026-11-24T10:00:10.123Z`.
pub use rivulet_time::rfc3339_ms;

/// Spark's console format: `2026-11-24 10:00:10`, with `.123` only when there are millis.
pub fn console_timestamp(ms: i64) -> String {
    let rivulet_time::Civil {
        year: y,
        month: mo,
        day: d,
        hour: h,
        minute: mi,
        second: s,
        milli: f,
    } = rivulet_time::civil_from_ms(ms);
    if f == 0 {
        format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
    } else {
        format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{f:03}")
    }
}

/// A float with at most 4 decimals, trailing zeros trimmed but one kept (`17.3`, `5.0`).
pub fn console_float(v: f64) -> String {
    if !v.is_finite() {
        return if v.is_nan() {
            "NaN".into()
        } else if v > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    let s = format!("{v:.4}");
    let t = s.trim_end_matches('0');
    let t = if t.ends_with('.') {
        format!("{t}0")
    } else {
        t.to_string()
    };
    if t == "-0.0" {
        "0.0".into()
    } else {
        t
    }
}

/// Timestamp value of row `i` in milliseconds, whatever the unit.
fn timestamp_ms(col: &ArrayRef, unit: &TimeUnit, i: usize) -> Option<i64> {
    let any = col.as_any();
    match unit {
        TimeUnit::Second => any
            .downcast_ref::<TimestampSecondArray>()
            .map(|a| a.value(i).saturating_mul(1000)),
        TimeUnit::Millisecond => any
            .downcast_ref::<TimestampMillisecondArray>()
            .map(|a| a.value(i)),
        TimeUnit::Microsecond => any
            .downcast_ref::<TimestampMicrosecondArray>()
            .map(|a| a.value(i).div_euclid(1000)),
        TimeUnit::Nanosecond => any
            .downcast_ref::<TimestampNanosecondArray>()
            .map(|a| a.value(i).div_euclid(1_000_000)),
    }
}

macro_rules! int_json {
    ($col:expr, $t:ty, $i:expr) => {
        $col.as_any()
            .downcast_ref::<$t>()
            .map(|a| serde_json::Value::from(a.value($i)))
    };
}

/// The JSON value of row `i` of `col`.
pub fn json_value(col: &ArrayRef, i: usize) -> serde_json::Value {
    use serde_json::Value;
    if col.is_null(i) {
        return Value::Null;
    }
    let v = match col.data_type() {
        DataType::Int8 => int_json!(col, Int8Array, i),
        DataType::Int16 => int_json!(col, Int16Array, i),
        DataType::Int32 => int_json!(col, Int32Array, i),
        DataType::Int64 => int_json!(col, Int64Array, i),
        DataType::UInt8 => int_json!(col, UInt8Array, i),
        DataType::UInt16 => int_json!(col, UInt16Array, i),
        DataType::UInt32 => int_json!(col, UInt32Array, i),
        DataType::UInt64 => int_json!(col, UInt64Array, i),
        DataType::Float32 => col.as_any().downcast_ref::<Float32Array>().map(|a| {
            serde_json::Number::from_f64(f64::from(a.value(i))).map_or(Value::Null, Value::Number)
        }),
        DataType::Float64 => col
            .as_any()
            .downcast_ref::<Float64Array>()
            .map(|a| serde_json::Number::from_f64(a.value(i)).map_or(Value::Null, Value::Number)),
        DataType::Boolean => col
            .as_any()
            .downcast_ref::<BooleanArray>()
            .map(|a| Value::Bool(a.value(i))),
        DataType::Utf8 => col
            .as_any()
            .downcast_ref::<StringArray>()
            .map(|a| Value::String(a.value(i).to_string())),
        DataType::LargeUtf8 => col
            .as_any()
            .downcast_ref::<LargeStringArray>()
            .map(|a| Value::String(a.value(i).to_string())),
        DataType::Timestamp(unit, _) => {
            timestamp_ms(col, unit, i).map(|ms| Value::String(rfc3339_ms(ms)))
        }
        _ => None,
    };
    v.unwrap_or_else(|| Value::String(display_cell(col, i)))
}

/// Arrow's own display of a value, for types without a dedicated rendering.
fn display_cell(col: &ArrayRef, i: usize) -> String {
    match ArrayFormatter::try_new(col.as_ref(), &FormatOptions::default()) {
        Ok(f) => f.value(i).to_string(),
        Err(_) => "?".to_string(),
    }
}

/// The console rendering of row `i` of `col` (Spark `show()` style).
pub fn console_cell(col: &ArrayRef, i: usize) -> String {
    if col.is_null(i) {
        return "null".to_string();
    }
    match col.data_type() {
        DataType::Float64 => col
            .as_any()
            .downcast_ref::<Float64Array>()
            .map(|a| console_float(a.value(i))),
        DataType::Float32 => col
            .as_any()
            .downcast_ref::<Float32Array>()
            .map(|a| console_float(f64::from(a.value(i)))),
        DataType::Timestamp(unit, _) => timestamp_ms(col, unit, i).map(console_timestamp),
        DataType::Utf8 => col
            .as_any()
            .downcast_ref::<StringArray>()
            .map(|a| a.value(i).to_string()),
        _ => None,
    }
    .unwrap_or_else(|| display_cell(col, i))
}

/// Row `i` of `batch` as a JSON object text, columns in schema order.
pub fn row_json(batch: &RecordBatch, i: usize) -> String {
    row_json_columns(batch, i, None)
}

/// Row `i` as a JSON object of only the columns named in `only` (in that order), or all.
pub fn row_json_columns(batch: &RecordBatch, i: usize, only: Option<&[String]>) -> String {
    let schema = batch.schema();
    let mut out = String::from("{");
    let mut first = true;
    let mut push = |name: &str, col: &ArrayRef| {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(&serde_json::Value::String(name.to_string()).to_string());
        out.push(':');
        out.push_str(&json_value(col, i).to_string());
    };
    match only {
        None => {
            for (f, col) in schema.fields().iter().zip(batch.columns()) {
                push(f.name(), col);
            }
        }
        Some(names) => {
            for n in names {
                if let Some(col) = batch.column_by_name(n) {
                    push(n, col);
                }
            }
        }
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_formats() {
        // 2026-11-24T10:00:10Z
        let ms = 1_795_514_410_000;
        assert_eq!(rfc3339_ms(ms), "2026-11-24T10:00:10.000Z");
        assert_eq!(console_timestamp(ms), "2026-11-24 10:00:10");
        assert_eq!(console_timestamp(ms + 123), "2026-11-24 10:00:10.123");
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(rfc3339_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn floats() {
        assert_eq!(console_float(17.30), "17.3");
        assert_eq!(console_float(5.0), "5.0");
        assert_eq!(console_float(12.345_67), "12.3457");
        assert_eq!(console_float(-0.00001), "0.0");
    }
}
