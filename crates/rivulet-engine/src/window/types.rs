//! Physical value classes: how group keys and min/max state hold column values, and how they
//! are turned back into arrays of the original Arrow type.

use std::sync::Arc;

use arrow::array::{
    make_array, Array, ArrayRef, AsArray, Float64Array, Int64Array, LargeStringArray, StringArray,
};
use arrow::compute::cast;
use arrow::datatypes::DataType;

use super::codec::{Dec, Enc};
use crate::error::{EngineError, Result};

/// How a column's values are held in operator state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// 8-byte integers and temporal types (Int64, Timestamp, Date64, Time64, Duration): held as
    /// i64 and reinterpreted back without conversion.
    I64,
    /// 4-byte integers and temporal types (Int32, Date32, Time32).
    I32,
    /// Narrow integers and booleans, converted through Int64 with a cast.
    Small,
    Float,
    Str,
}

pub(crate) fn class_of(dt: &DataType) -> Option<Class> {
    use DataType::*;
    Some(match dt {
        Int64 | Timestamp(_, _) | Date64 | Time64(_) | Duration(_) => Class::I64,
        Int32 | Date32 | Time32(_) => Class::I32,
        Int8 | Int16 | UInt8 | UInt16 | UInt32 | Boolean => Class::Small,
        Float64 | Float32 | Float16 => Class::Float,
        Utf8 | LargeUtf8 => Class::Str,
        _ => return None,
    })
}

/// Whether values of `dt` are integers for sum/avg (exact integer arithmetic).
pub(crate) fn is_integer(dt: &DataType) -> bool {
    use DataType::*;
    matches!(dt, Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32)
}

pub(crate) fn is_float(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Float16 | DataType::Float32 | DataType::Float64
    )
}

/// Same buffers, another type of the same width (e.g. Int64 ↔ Timestamp(ms)).
fn retype(arr: &dyn Array, dt: &DataType) -> Result<ArrayRef> {
    let data = arr.to_data().into_builder().data_type(dt.clone()).build()?;
    Ok(make_array(data))
}

/// The column as Int64 values (class I64, I32 or Small).
pub(crate) fn to_i64(arr: &ArrayRef) -> Result<Int64Array> {
    let dt = arr.data_type();
    let out = match class_of(dt) {
        Some(Class::I64) if *dt == DataType::Int64 => return Ok(arr.as_primitive().clone()),
        Some(Class::I64) => retype(arr.as_ref(), &DataType::Int64)?,
        Some(Class::I32) => cast(&retype(arr.as_ref(), &DataType::Int32)?, &DataType::Int64)?,
        Some(Class::Small) => cast(arr, &DataType::Int64)?,
        _ => return Err(EngineError::Other(format!("cannot read {dt} as integers"))),
    };
    Ok(out.as_primitive().clone())
}

/// Inverse of [`to_i64`].
pub(crate) fn from_i64(values: Int64Array, dt: &DataType) -> Result<ArrayRef> {
    match class_of(dt) {
        Some(Class::I64) if *dt == DataType::Int64 => Ok(Arc::new(values)),
        Some(Class::I64) => retype(&values, dt),
        Some(Class::I32) => retype(cast(&values, &DataType::Int32)?.as_ref(), dt),
        Some(Class::Small) => Ok(cast(&values, dt)?),
        _ => Err(EngineError::Other(format!(
            "cannot build {dt} from integers"
        ))),
    }
}

pub(crate) fn to_f64(arr: &ArrayRef) -> Result<Float64Array> {
    if *arr.data_type() == DataType::Float64 {
        return Ok(arr.as_primitive().clone());
    }
    Ok(cast(arr, &DataType::Float64)?.as_primitive().clone())
}

pub(crate) fn from_f64(values: Float64Array, dt: &DataType) -> Result<ArrayRef> {
    if *dt == DataType::Float64 {
        return Ok(Arc::new(values));
    }
    Ok(cast(&values, dt)?)
}

pub(crate) fn from_strings<'a>(
    values: impl Iterator<Item = Option<&'a str>>,
    dt: &DataType,
) -> ArrayRef {
    if *dt == DataType::LargeUtf8 {
        Arc::new(values.collect::<LargeStringArray>())
    } else {
        Arc::new(values.collect::<StringArray>())
    }
}

/// Visits the string values of a Utf8 or LargeUtf8 column.
pub(crate) fn string_value(arr: &dyn Array, i: usize) -> Option<&str> {
    if arr.is_null(i) {
        return None;
    }
    match arr.data_type() {
        DataType::LargeUtf8 => Some(arr.as_string::<i64>().value(i)),
        _ => arr.as_string_opt::<i32>().map(|a| a.value(i)),
    }
}

/// Writes a column of any supported class (used for group keys in snapshots).
pub(crate) fn encode_array(arr: &ArrayRef, e: &mut Enc) -> Result<()> {
    e.len(arr.len());
    match class_of(arr.data_type()) {
        Some(Class::I64 | Class::I32 | Class::Small) => {
            let v = to_i64(arr)?;
            (0..v.len()).for_each(|i| e.opt_i64(v.is_valid(i).then(|| v.value(i))));
        }
        Some(Class::Float) => {
            let v = to_f64(arr)?;
            (0..v.len()).for_each(|i| e.opt_f64(v.is_valid(i).then(|| v.value(i))));
        }
        Some(Class::Str) => {
            for i in 0..arr.len() {
                match string_value(arr.as_ref(), i) {
                    None => e.u8(0),
                    Some(s) => {
                        e.u8(1);
                        e.bytes(s.as_bytes());
                    }
                }
            }
        }
        None => {
            return Err(EngineError::State(format!(
                "cannot snapshot values of type {}",
                arr.data_type()
            )))
        }
    }
    Ok(())
}

pub(crate) fn decode_array(d: &mut Dec<'_>, dt: &DataType) -> Result<ArrayRef> {
    let n = d.len(1)?;
    match class_of(dt) {
        Some(Class::I64 | Class::I32 | Class::Small) => {
            let v: Int64Array = (0..n).map(|_| d.opt_i64()).collect::<Result<_>>()?;
            from_i64(v, dt)
        }
        Some(Class::Float) => {
            let v: Float64Array = (0..n).map(|_| d.opt_f64()).collect::<Result<_>>()?;
            from_f64(v, dt)
        }
        Some(Class::Str) => {
            let mut v: Vec<Option<String>> = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(if d.bool()? {
                    let b = d.bytes()?;
                    Some(
                        String::from_utf8(b.to_vec()).map_err(|_| {
                            EngineError::State("invalid UTF-8 in window state".into())
                        })?,
                    )
                } else {
                    None
                });
            }
            Ok(from_strings(v.iter().map(|s| s.as_deref()), dt))
        }
        None => Err(EngineError::State(format!(
            "cannot restore values of type {dt}"
        ))),
    }
}
