//! JSON records → Arrow record batches.
//!
//! A [`Decoder`] turns a slice of raw Kafka records into one [`RecordBatch`] with the plan's
//! declared fields (in order) followed by the metadata columns of [`crate::plan::columns`]
//! (schema: [`Plan::input_schema`]). Every input record ends up either as a row or as a
//! [`DeadLetter`] with a precise reason — nothing is silently lost.
//!
//! Parsing is a single serde pass per record straight from the bytes: object keys are matched
//! against the declared fields without allocating, values of unknown keys are skipped with
//! [`IgnoredAny`], and the values of known keys land in a reusable scratch area (strings in one
//! reused buffer). Only once the whole record is known to be valid is it appended to the column
//! builders, so a bad record never leaves a half-written row behind.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int32Builder, Int64Builder, StringBuilder,
    TimestampMillisecondBuilder,
};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use rivulet_time::Rfc3339Reader;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::error::EngineError;
use crate::plan::{FieldType, Plan, TimeFormat, UTC};

/// One Kafka record as fetched: borrowed key and value plus its coordinates.
#[derive(Debug, Clone, Copy)]
pub struct RawRecord<'a> {
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: i64,
}

/// A record that could not be decoded, with everything needed to re-publish it to a
/// dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    /// Why it was rejected, e.g. `field "id": expected integer, got string "x"`.
    pub reason: String,
}

/// The result of decoding a slice of records: `batch.num_rows() + dead_letters.len()` equals
/// the number of input records.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub batch: RecordBatch,
    pub dead_letters: Vec<DeadLetter>,
}

/// Decodes JSON records against a plan's schema. Reuse one per source: builders and scratch
/// buffers are kept between calls.
pub struct Decoder {
    schema: SchemaRef,
    fields: Vec<FieldDecoder>,
    lookup: FieldLookup,
    event_field: usize,
    /// Multiplier turning the event-time field's integer into ms (bigint event-time fields).
    event_bigint_mult: Option<i64>,
    columns: Vec<ColumnBuilder>,
    key: StringBuilder,
    partition: Int32Builder,
    offset: Int64Builder,
    kafka_ts: TimestampMillisecondBuilder,
    event_time: Int64Builder,
    // Per-record scratch, reused.
    slots: Vec<Slot>,
    cells: Vec<Cell>,
    strbuf: String,
}

impl fmt::Debug for Decoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decoder")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

struct FieldDecoder {
    name: String,
    ty: FieldType,
    nullable: bool,
    /// For timestamp fields: JSON integers in this unit instead of RFC 3339 strings.
    epoch: Option<TimeFormat>,
    /// For RFC 3339 timestamp fields: the last date read (events of a batch mostly share it).
    dates: Rfc3339Reader,
}

/// Key → field index. A linear scan beats hashing for the usual handful of fields.
enum FieldLookup {
    Linear(Vec<String>),
    Hashed(HashMap<String, usize>),
}

impl FieldLookup {
    fn get(&self, key: &str) -> Option<usize> {
        match self {
            FieldLookup::Linear(names) => names.iter().position(|n| n == key),
            FieldLookup::Hashed(map) => map.get(key).copied(),
        }
    }
}

/// A JSON value as seen while parsing (strings as a range of the scratch buffer).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Slot {
    Missing,
    Null,
    Bool(bool),
    I64(i64),
    U64(u64),
    F64(f64),
    Str(usize, usize),
    Array,
    Object,
}

/// A validated value, ready to append.
#[derive(Debug, Clone, Copy)]
enum Cell {
    Null,
    I64(i64),
    I32(i32),
    F64(f64),
    Bool(bool),
    Str(usize, usize),
}

enum ColumnBuilder {
    Int64(Int64Builder),
    Int32(Int32Builder),
    Float64(Float64Builder),
    Utf8(StringBuilder),
    Boolean(BooleanBuilder),
    Timestamp(TimestampMillisecondBuilder),
}

impl ColumnBuilder {
    fn new(ty: FieldType) -> Self {
        match ty {
            FieldType::Bigint => ColumnBuilder::Int64(Int64Builder::new()),
            FieldType::Int => ColumnBuilder::Int32(Int32Builder::new()),
            FieldType::Double => ColumnBuilder::Float64(Float64Builder::new()),
            FieldType::String => ColumnBuilder::Utf8(StringBuilder::new()),
            FieldType::Boolean => ColumnBuilder::Boolean(BooleanBuilder::new()),
            FieldType::Timestamp => ColumnBuilder::Timestamp(TimestampMillisecondBuilder::new()),
        }
    }

    /// Appends a cell already checked against this column's type.
    fn append(&mut self, cell: Cell, strbuf: &str) {
        match (self, cell) {
            (ColumnBuilder::Int64(b), Cell::I64(v)) => b.append_value(v),
            (ColumnBuilder::Int32(b), Cell::I32(v)) => b.append_value(v),
            (ColumnBuilder::Float64(b), Cell::F64(v)) => b.append_value(v),
            (ColumnBuilder::Utf8(b), Cell::Str(s, e)) => b.append_value(&strbuf[s..e]),
            (ColumnBuilder::Boolean(b), Cell::Bool(v)) => b.append_value(v),
            (ColumnBuilder::Timestamp(b), Cell::I64(v)) => b.append_value(v),
            // Null, or (impossible by construction) a mismatched cell: a null keeps the row
            // count consistent either way.
            (b, _) => b.append_null(),
        }
    }

    fn append_null(&mut self) {
        match self {
            ColumnBuilder::Int64(b) => b.append_null(),
            ColumnBuilder::Int32(b) => b.append_null(),
            ColumnBuilder::Float64(b) => b.append_null(),
            ColumnBuilder::Utf8(b) => b.append_null(),
            ColumnBuilder::Boolean(b) => b.append_null(),
            ColumnBuilder::Timestamp(b) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            ColumnBuilder::Int64(b) => Arc::new(b.finish()),
            ColumnBuilder::Int32(b) => Arc::new(b.finish()),
            ColumnBuilder::Float64(b) => Arc::new(b.finish()),
            ColumnBuilder::Utf8(b) => Arc::new(b.finish()),
            ColumnBuilder::Boolean(b) => Arc::new(b.finish()),
            ColumnBuilder::Timestamp(b) => Arc::new(b.finish().with_timezone(UTC)),
        }
    }
}

impl Decoder {
    /// Builds a decoder for `plan`'s schema. Fails when the event-time field is missing or of
    /// an unusable type (see [`Plan::validate`] for the full check).
    pub fn new(plan: &Plan) -> Result<Decoder, EngineError> {
        let et = &plan.event_time;
        let event_field = plan
            .schema
            .iter()
            .position(|f| f.name == et.field)
            .ok_or_else(|| {
                EngineError::Plan(format!("event_time.field: unknown column \"{}\"", et.field))
            })?;
        let epoch = match et.format {
            TimeFormat::Rfc3339 => None,
            f => Some(f),
        };
        let event_bigint_mult = match (plan.schema[event_field].data_type, et.format) {
            (FieldType::Timestamp, _) => None,
            (FieldType::Bigint, TimeFormat::EpochMillis) => Some(1),
            (FieldType::Bigint, TimeFormat::EpochSeconds) => Some(1000),
            (t, _) => {
                return Err(EngineError::Plan(format!(
                    "event_time.field: \"{}\" has type {}; the event-time field must be a \
                     timestamp (or a bigint with an epoch format)",
                    et.field,
                    t.name()
                )))
            }
        };
        let fields: Vec<FieldDecoder> = plan
            .schema
            .iter()
            .enumerate()
            .map(|(i, f)| FieldDecoder {
                name: f.name.clone(),
                ty: f.data_type,
                nullable: f.nullable && i != event_field,
                epoch: if i == event_field { epoch } else { None },
                dates: Rfc3339Reader::default(),
            })
            .collect();
        let names: Vec<String> = fields.iter().map(|f| f.name.clone()).collect();
        let lookup = if names.len() <= 16 {
            FieldLookup::Linear(names)
        } else {
            // Later duplicates lose, like the linear scan (validate rejects duplicates anyway).
            let mut map = HashMap::new();
            for (i, n) in names.into_iter().enumerate() {
                map.entry(n).or_insert(i);
            }
            FieldLookup::Hashed(map)
        };
        Ok(Decoder {
            schema: plan.input_schema(),
            columns: fields.iter().map(|f| ColumnBuilder::new(f.ty)).collect(),
            slots: vec![Slot::Missing; fields.len()],
            cells: Vec::with_capacity(fields.len()),
            fields,
            lookup,
            event_field,
            event_bigint_mult,
            key: StringBuilder::new(),
            partition: Int32Builder::new(),
            offset: Int64Builder::new(),
            kafka_ts: TimestampMillisecondBuilder::new(),
            event_time: Int64Builder::new(),
            strbuf: String::new(),
        })
    }

    /// Schema of the batches [`Decoder::decode`] returns ([`Plan::input_schema`]).
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Decodes `records` into one batch (possibly empty) plus dead letters.
    pub fn decode(&mut self, records: &[RawRecord<'_>]) -> Decoded {
        let mut dead_letters = Vec::new();
        for rec in records {
            match self.decode_one(rec) {
                Ok(event_time) => self.append_row(rec, event_time),
                Err(reason) => dead_letters.push(dead_letter(rec, reason)),
            }
        }
        let mut cols: Vec<ArrayRef> = self.columns.iter_mut().map(|c| c.finish()).collect();
        cols.push(Arc::new(self.key.finish()));
        cols.push(Arc::new(self.partition.finish()));
        cols.push(Arc::new(self.offset.finish()));
        cols.push(Arc::new(self.kafka_ts.finish().with_timezone(UTC)));
        cols.push(Arc::new(self.event_time.finish()));
        match RecordBatch::try_new(self.schema.clone(), cols) {
            Ok(batch) => Decoded {
                batch,
                dead_letters,
            },
            Err(e) => {
                // Cannot happen (the builders follow the schema); should it anyway, keep the
                // "every record is a row or a dead letter" promise rather than drop rows.
                tracing::error!(error = %e, "decoder built an invalid batch");
                let dead_letters = records
                    .iter()
                    .map(|r| dead_letter(r, format!("internal decoder error: {e}")))
                    .collect();
                Decoded {
                    batch: RecordBatch::new_empty(self.schema.clone()),
                    dead_letters,
                }
            }
        }
    }

    /// Parses and checks one record into `self.cells`; returns its event time (ms).
    fn decode_one(&mut self, rec: &RawRecord<'_>) -> Result<i64, String> {
        let Some(value) = rec.value else {
            return Err("null value".to_string());
        };
        self.slots.fill(Slot::Missing);
        self.strbuf.clear();
        let mut de = serde_json::Deserializer::from_slice(value);
        let seed = RecordSeed {
            lookup: &self.lookup,
            slots: &mut self.slots,
            strbuf: &mut self.strbuf,
        };
        seed.deserialize(&mut de)
            .and_then(|()| de.end())
            .map_err(json_error_reason)?;

        self.cells.clear();
        let mut event_time = None;
        for (i, (field, slot)) in self.fields.iter_mut().zip(&self.slots).enumerate() {
            let cell = convert(field, *slot, &self.strbuf)?;
            if i == self.event_field {
                event_time = Some(match (cell, self.event_bigint_mult) {
                    (Cell::I64(v), None) => v,
                    (Cell::I64(v), Some(mult)) => v.checked_mul(mult).ok_or_else(|| {
                        format!("field \"{}\": event time {v} is out of range", field.name)
                    })?,
                    _ => {
                        return Err(format!(
                            "field \"{}\": the event-time field is null",
                            field.name
                        ))
                    }
                });
            }
            self.cells.push(cell);
        }
        event_time.ok_or_else(|| "internal: event-time field not decoded".to_string())
    }

    fn append_row(&mut self, rec: &RawRecord<'_>, event_time: i64) {
        for (col, cell) in self.columns.iter_mut().zip(&self.cells) {
            match cell {
                Cell::Null => col.append_null(),
                c => col.append(*c, &self.strbuf),
            }
        }
        match rec.key {
            Some(k) => self.key.append_value(String::from_utf8_lossy(k)),
            None => self.key.append_null(),
        }
        self.partition.append_value(rec.partition);
        self.offset.append_value(rec.offset);
        self.kafka_ts.append_value(rec.timestamp_ms);
        self.event_time.append_value(event_time);
    }
}

fn dead_letter(rec: &RawRecord<'_>, reason: String) -> DeadLetter {
    DeadLetter {
        partition: rec.partition,
        offset: rec.offset,
        key: rec.key.map(<[u8]>::to_vec),
        value: rec.value.map(<[u8]>::to_vec),
        reason,
    }
}

/// `invalid JSON at column 17: ...` / `record is not a JSON object`.
fn json_error_reason(e: serde_json::Error) -> String {
    use serde_json::error::Category;
    let full = e.to_string();
    // serde_json appends " at line L column C"; we put the position first instead.
    let msg = full
        .rfind(" at line ")
        .map_or(full.as_str(), |i| &full[..i]);
    match e.classify() {
        Category::Data => match msg
            .strip_prefix("invalid type: ")
            .and_then(|m| m.split(", expected").next())
        {
            Some(got) => format!("record is not a JSON object (got {got})"),
            None => format!("record is not a JSON object: {msg}"),
        },
        Category::Syntax | Category::Eof | Category::Io => {
            if e.line() <= 1 {
                format!("invalid JSON at column {}: {msg}", e.column())
            } else {
                format!(
                    "invalid JSON at line {} column {}: {msg}",
                    e.line(),
                    e.column()
                )
            }
        }
    }
}

/// Describes a JSON value for error messages: `string "x"`, `integer 5`, `array`.
fn describe(slot: Slot, strbuf: &str) -> String {
    match slot {
        Slot::Missing => "nothing".into(),
        Slot::Null => "null".into(),
        Slot::Bool(b) => format!("boolean {b}"),
        Slot::I64(v) => format!("integer {v}"),
        Slot::U64(v) => format!("integer {v}"),
        Slot::F64(v) => format!("number {v}"),
        Slot::Str(s, e) => {
            let text = &strbuf[s..e];
            let mut shown: String = text.chars().take(40).collect();
            if shown.len() < text.len() {
                shown.push('…');
            }
            format!("string {shown:?}")
        }
        Slot::Array => "array".into(),
        Slot::Object => "object".into(),
    }
}

/// Checks one parsed value against its field's declared type.
fn convert(field: &mut FieldDecoder, slot: Slot, strbuf: &str) -> Result<Cell, String> {
    let name = &field.name;
    let wrong = |expected: &str| {
        format!(
            "field \"{name}\": expected {expected}, got {}",
            describe(slot, strbuf)
        )
    };
    let out_of_range = |ty: &str| {
        format!(
            "field \"{name}\": {} is out of range for {ty}",
            describe(slot, strbuf)
        )
    };
    match slot {
        Slot::Missing if field.nullable => return Ok(Cell::Null),
        Slot::Missing => return Err(format!("missing field \"{name}\"")),
        Slot::Null if field.nullable => return Ok(Cell::Null),
        Slot::Null => {
            return Err(format!(
                "field \"{name}\": null value (field is not nullable)"
            ))
        }
        _ => {}
    }
    match field.ty {
        FieldType::Bigint => match slot {
            Slot::I64(v) => Ok(Cell::I64(v)),
            Slot::U64(_) => Err(out_of_range("bigint")),
            _ => Err(wrong("integer")),
        },
        FieldType::Int => match slot {
            Slot::I64(v) => i32::try_from(v)
                .map(Cell::I32)
                .map_err(|_| out_of_range("int")),
            Slot::U64(_) => Err(out_of_range("int")),
            _ => Err(wrong("integer")),
        },
        FieldType::Double => match slot {
            Slot::I64(v) => Ok(Cell::F64(v as f64)),
            Slot::U64(v) => Ok(Cell::F64(v as f64)),
            Slot::F64(v) => Ok(Cell::F64(v)),
            _ => Err(wrong("number")),
        },
        FieldType::String => match slot {
            Slot::Str(s, e) => Ok(Cell::Str(s, e)),
            _ => Err(wrong("string")),
        },
        FieldType::Boolean => match slot {
            Slot::Bool(b) => Ok(Cell::Bool(b)),
            _ => Err(wrong("boolean")),
        },
        FieldType::Timestamp => {
            match (field.epoch, slot) {
                (Some(TimeFormat::EpochSeconds), Slot::I64(v)) => v
                    .checked_mul(1000)
                    .map(Cell::I64)
                    .ok_or_else(|| out_of_range("epoch seconds")),
                (Some(_), Slot::I64(v)) => Ok(Cell::I64(v)),
                (Some(_), Slot::U64(_)) => Err(out_of_range("a timestamp")),
                (Some(TimeFormat::EpochSeconds), _) => Err(wrong("integer (epoch seconds)")),
                (Some(_), _) => Err(wrong("integer (epoch milliseconds)")),
                (None, Slot::Str(s, e)) => field
                    .dates
                    .parse_ms(&strbuf[s..e])
                    .map(Cell::I64)
                    .map_err(|why| {
                        format!(
                            "field \"{name}\": invalid RFC 3339 timestamp {:?}: {why}",
                            &strbuf[s..e]
                        )
                    }),
                (None, _) => Err(wrong("RFC 3339 timestamp string")),
            }
        }
    }
}

/// Parses an RFC 3339 timestamp (`2026-11-24T10:00:00.123Z`, `...+02:00`) into ms since the
/// epoch. Fractions beyond milliseconds are truncated; `T`, `t` or a space separate date and
/// time; a leap second (`:60`) counts as the next second. The error is the dead letter's reason.
pub use rivulet_time::parse_rfc3339_ms;

// ---------------------------------------------------------------------------------------------
// serde plumbing: one pass over the record, no allocation per key or value.

struct RecordSeed<'s> {
    lookup: &'s FieldLookup,
    slots: &'s mut [Slot],
    strbuf: &'s mut String,
}

impl<'de> DeserializeSeed<'de> for RecordSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RecordSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(idx) = map.next_key_seed(KeySeed(self.lookup))? {
            match idx {
                Some(i) => {
                    let slot = map.next_value_seed(ValueSeed(self.strbuf))?;
                    if let Some(s) = self.slots.get_mut(i) {
                        *s = slot;
                    }
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// Resolves an object key to a declared field index without allocating.
struct KeySeed<'s>(&'s FieldLookup);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<usize>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<usize>, E> {
        Ok(self.0.get(v))
    }
}

/// Captures a declared field's value; strings are copied into the shared scratch buffer.
struct ValueSeed<'s>(&'s mut String);

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Slot;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Slot, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Slot;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Slot, E> {
        Ok(Slot::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Slot, E> {
        Ok(Slot::I64(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Slot, E> {
        Ok(i64::try_from(v).map_or(Slot::U64(v), Slot::I64))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Slot, E> {
        Ok(Slot::F64(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Slot, E> {
        let start = self.0.len();
        self.0.push_str(v);
        Ok(Slot::Str(start, self.0.len()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Slot, E> {
        Ok(Slot::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Slot, E> {
        Ok(Slot::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Slot, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Slot::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Slot, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Slot::Object)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::plan::columns;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{
        DataType, Float64Type, Int32Type, Int64Type, TimeUnit, TimestampMillisecondType,
    };
    use proptest::prelude::*;

    fn plan_with(schema: &str, event: &str) -> Plan {
        let text = format!("[source]\ntopics = [\"t\"]\n{schema}\n[event_time]\n{event}\n");
        Plan::from_toml(&text).unwrap()
    }

    fn default_plan() -> Plan {
        plan_with(
            r#"
[[schema]]
name = "id"
type = "bigint"
[[schema]]
name = "value"
type = "double"
[[schema]]
name = "name"
type = "string"
nullable = true
[[schema]]
name = "ok"
type = "boolean"
nullable = true
[[schema]]
name = "small"
type = "int"
nullable = true
[[schema]]
name = "timestamp"
type = "timestamp"
"#,
            "field = \"timestamp\"",
        )
    }

    fn rec(value: &[u8]) -> RawRecord<'_> {
        RawRecord {
            key: Some(b"k1"),
            value: Some(value),
            partition: 3,
            offset: 42,
            timestamp_ms: 1_000,
        }
    }

    fn one(dec: &mut Decoder, json: &str) -> Decoded {
        dec.decode(&[rec(json.as_bytes())])
    }

    fn reason(dec: &mut Decoder, json: &str) -> String {
        let d = one(dec, json);
        assert_eq!(d.batch.num_rows(), 0, "{json} decoded");
        assert_eq!(d.dead_letters.len(), 1);
        d.dead_letters[0].reason.clone()
    }

    const TS: &str = "2026-11-24T10:00:00.123Z";
    const TS_MS: i64 = 1_795_514_400_123;

    #[test]
    fn schema_has_fields_then_metadata() {
        let dec = Decoder::new(&default_plan()).unwrap();
        let s = dec.schema();
        let names: Vec<&str> = s.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(
            names,
            [
                "id",
                "value",
                "name",
                "ok",
                "small",
                "timestamp",
                "_key",
                "_partition",
                "_offset",
                "_timestamp",
                "_event_time"
            ]
        );
        assert_eq!(s.field(0).data_type(), &DataType::Int64);
        assert_eq!(s.field(4).data_type(), &DataType::Int32);
        assert_eq!(
            s.field(5).data_type(),
            &DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
        );
        assert!(s.field(6).is_nullable());
        assert!(!s.field(0).is_nullable());
        assert!(s.field(2).is_nullable());
    }

    #[test]
    fn decodes_a_full_record() {
        let mut dec = Decoder::new(&default_plan()).unwrap();
        let json = format!(
            r#"{{"id": 7, "value": 1.5, "name": "a\"b", "ok": true, "small": -3, "timestamp": "{TS}", "extra": {{"x": [1,2]}}}}"#
        );
        let d = one(&mut dec, &json);
        assert!(d.dead_letters.is_empty(), "{:?}", d.dead_letters);
        let b = &d.batch;
        assert_eq!(b.num_rows(), 1);
        assert_eq!(b.column(0).as_primitive::<Int64Type>().value(0), 7);
        assert_eq!(b.column(1).as_primitive::<Float64Type>().value(0), 1.5);
        assert_eq!(b.column(2).as_string::<i32>().value(0), "a\"b");
        assert!(b.column(3).as_boolean().value(0));
        assert_eq!(b.column(4).as_primitive::<Int32Type>().value(0), -3);
        assert_eq!(
            b.column(5)
                .as_primitive::<TimestampMillisecondType>()
                .value(0),
            TS_MS
        );
        let s = b.schema();
        let col = |n: &str| b.column(s.index_of(n).unwrap()).clone();
        assert_eq!(col(columns::KEY).as_string::<i32>().value(0), "k1");
        assert_eq!(
            col(columns::PARTITION).as_primitive::<Int32Type>().value(0),
            3
        );
        assert_eq!(
            col(columns::OFFSET).as_primitive::<Int64Type>().value(0),
            42
        );
        assert_eq!(
            col(columns::KAFKA_TIMESTAMP)
                .as_primitive::<TimestampMillisecondType>()
                .value(0),
            1_000
        );
        assert_eq!(
            col(columns::EVENT_TIME)
                .as_primitive::<Int64Type>()
                .value(0),
            TS_MS
        );
        // The batch's schema equals the declared one, timezone included.
        assert_eq!(b.schema(), dec.schema());
    }

    #[test]
    fn nullable_fields_may_be_missing_or_null_and_keys_lossy() {
        let mut dec = Decoder::new(&default_plan()).unwrap();
        let json = format!(r#"{{"id": 1, "value": 2, "name": null, "timestamp": "{TS}"}}"#);
        let r = RawRecord {
            key: Some(&[0x66, 0xff]),
            value: Some(json.as_bytes()),
            partition: 0,
            offset: 0,
            timestamp_ms: 0,
        };
        let r2 = RawRecord { key: None, ..r };
        let d = dec.decode(&[r, r2]);
        assert!(d.dead_letters.is_empty());
        let b = &d.batch;
        assert_eq!(b.num_rows(), 2);
        assert_eq!(b.column(1).as_primitive::<Float64Type>().value(0), 2.0);
        assert!(b.column(2).is_null(0));
        assert!(b.column(3).is_null(0));
        assert!(b.column(4).is_null(0));
        assert_eq!(b.column(6).as_string::<i32>().value(0), "f\u{fffd}");
        assert!(b.column(6).is_null(1));
    }

    #[test]
    fn dead_letter_reasons() {
        let mut dec = Decoder::new(&default_plan()).unwrap();
        let ok = |extra: &str| format!(r#"{{"id": 1, "value": 2.0, "timestamp": "{TS}"{extra}}}"#);
        assert_eq!(
            reason(&mut dec, &format!(r#"{{"id": 1, "timestamp": "{TS}"}}"#)),
            "missing field \"value\""
        );
        assert_eq!(
            reason(
                &mut dec,
                &format!(r#"{{"id": "x", "value": 1, "timestamp": "{TS}"}}"#)
            ),
            "field \"id\": expected integer, got string \"x\""
        );
        assert_eq!(
            reason(
                &mut dec,
                &format!(r#"{{"id": 1.5, "value": 1, "timestamp": "{TS}"}}"#)
            ),
            "field \"id\": expected integer, got number 1.5"
        );
        assert!(reason(
            &mut dec,
            &format!(r#"{{"id": 18446744073709551615, "value": 1, "timestamp": "{TS}"}}"#)
        )
        .contains("out of range for bigint"));
        assert!(reason(&mut dec, &ok(r#", "small": 3000000000"#)).contains("out of range for int"));
        assert_eq!(
            reason(&mut dec, &ok(r#", "ok": "yes""#)),
            "field \"ok\": expected boolean, got string \"yes\""
        );
        assert_eq!(
            reason(&mut dec, &ok(r#", "name": 5"#)),
            "field \"name\": expected string, got integer 5"
        );
        assert_eq!(
            reason(&mut dec, &ok(r#", "name": [1]"#)),
            "field \"name\": expected string, got array"
        );
        assert_eq!(
            reason(
                &mut dec,
                &format!(r#"{{"id": 1, "value": "1", "timestamp": "{TS}"}}"#)
            ),
            "field \"value\": expected number, got string \"1\""
        );
        assert!(reason(
            &mut dec,
            &format!(r#"{{"id": null, "value": 1, "timestamp": "{TS}"}}"#)
        )
        .contains("field \"id\": null value"));
        let r = reason(&mut dec, r#"{"id": 1, "value": 2,, "timestamp": 1}"#);
        assert!(r.starts_with("invalid JSON at column 22: "), "{r}");
        let r = reason(&mut dec, "{\"id\": 1,\n \"value\": }");
        assert!(r.starts_with("invalid JSON at line 2 column "), "{r}");
        assert!(reason(&mut dec, r#"{"id": 1"#).starts_with("invalid JSON at column"));
        assert!(reason(&mut dec, &ok("").replace('}', "} x")).starts_with("invalid JSON"));
        assert!(reason(&mut dec, "").starts_with("invalid JSON"));
        assert_eq!(
            reason(&mut dec, "[1, 2]"),
            "record is not a JSON object (got sequence)"
        );
        assert!(reason(&mut dec, "null").starts_with("record is not a JSON object"));
        assert!(reason(&mut dec, "42").starts_with("record is not a JSON object"));
        // Kafka tombstone.
        let d = dec.decode(&[RawRecord {
            value: None,
            ..rec(b"")
        }]);
        assert_eq!(d.dead_letters[0].reason, "null value");
        // Timestamps.
        assert!(reason(
            &mut dec,
            r#"{"id": 1, "value": 2, "timestamp": "2026-13-01T00:00:00Z"}"#
        )
        .contains("invalid RFC 3339 timestamp \"2026-13-01T00:00:00Z\": month out of range"));
        assert!(reason(&mut dec, r#"{"id": 1, "value": 2, "timestamp": 5}"#)
            .contains("expected RFC 3339 timestamp string, got integer 5"));
        assert!(reason(&mut dec, r#"{"id": 1, "value": 2, "timestamp": null}"#).contains("null"));
    }

    #[test]
    fn dead_letters_keep_the_record_and_good_rows_survive() {
        let mut dec = Decoder::new(&default_plan()).unwrap();
        let good = format!(r#"{{"id": 1, "value": 2, "timestamp": "{TS}"}}"#);
        let bad = r#"{"id": "nope"}"#;
        let d = dec.decode(&[
            rec(good.as_bytes()),
            rec(bad.as_bytes()),
            rec(good.as_bytes()),
        ]);
        assert_eq!(d.batch.num_rows(), 2);
        assert_eq!(d.dead_letters.len(), 1);
        let dl = &d.dead_letters[0];
        assert_eq!(dl.value.as_deref(), Some(bad.as_bytes()));
        assert_eq!(dl.key.as_deref(), Some(&b"k1"[..]));
        assert_eq!((dl.partition, dl.offset), (3, 42));
        // Builders are reset between calls.
        let d = dec.decode(&[rec(good.as_bytes())]);
        assert_eq!(d.batch.num_rows(), 1);
        let d = dec.decode(&[]);
        assert_eq!(d.batch.num_rows(), 0);
    }

    #[test]
    fn epoch_event_time_formats() {
        let schema = "[[schema]]\nname = \"ts\"\ntype = \"bigint\"\n";
        let mut dec = Decoder::new(&plan_with(
            schema,
            "field = \"ts\"\nformat = \"epoch_seconds\"",
        ))
        .unwrap();
        let d = one(&mut dec, r#"{"ts": 1700000000}"#);
        assert_eq!(
            d.batch.column(0).as_primitive::<Int64Type>().value(0),
            1_700_000_000
        );
        assert_eq!(
            d.batch.column(5).as_primitive::<Int64Type>().value(0),
            1_700_000_000_000
        );
        assert!(reason(&mut dec, r#"{"ts": 9223372036854775807}"#).contains("out of range"));

        let schema = "[[schema]]\nname = \"ts\"\ntype = \"timestamp\"\n";
        let mut dec = Decoder::new(&plan_with(
            schema,
            "field = \"ts\"\nformat = \"epoch_millis\"",
        ))
        .unwrap();
        let d = one(&mut dec, r#"{"ts": 1700000000123}"#);
        assert_eq!(
            d.batch
                .column(0)
                .as_primitive::<TimestampMillisecondType>()
                .value(0),
            1_700_000_000_123
        );
        assert_eq!(
            d.batch.column(5).as_primitive::<Int64Type>().value(0),
            1_700_000_000_123
        );
        assert!(reason(&mut dec, r#"{"ts": "2026-01-01T00:00:00Z"}"#)
            .contains("expected integer (epoch milliseconds), got string"));
    }

    #[test]
    fn rfc3339_parsing() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_rfc3339_ms(TS), Ok(TS_MS));
        assert_eq!(parse_rfc3339_ms("2026-11-24T12:00:00.123+02:00"), Ok(TS_MS));
        assert_eq!(parse_rfc3339_ms("2026-11-24t05:30:00.123-04:30"), Ok(TS_MS));
        assert_eq!(parse_rfc3339_ms("2026-11-24 10:00:00.1234567Z"), Ok(TS_MS));
        assert_eq!(parse_rfc3339_ms("2026-11-24T10:00:00.1Z"), Ok(TS_MS - 23));
        assert_eq!(parse_rfc3339_ms("1969-12-31T23:59:59.999Z"), Ok(-1));
        assert_eq!(
            parse_rfc3339_ms("2000-02-29T00:00:00Z"),
            Ok(951_782_400_000)
        );
        assert_eq!(
            parse_rfc3339_ms("1900-02-29T00:00:00Z"),
            Err("day out of range")
        );
        assert_eq!(
            parse_rfc3339_ms("2026-11-24T10:00:00"),
            Err("missing time zone ('Z' or ±HH:MM)")
        );
        assert!(parse_rfc3339_ms("2026-11-24T24:00:00Z").is_err());
        assert!(parse_rfc3339_ms("2026-11-24T10:00:00.Z").is_err());
        assert!(parse_rfc3339_ms("2026-11-24T10:00:00Zx").is_err());
        assert!(parse_rfc3339_ms("2026-11-24").is_err());
        assert!(parse_rfc3339_ms("").is_err());
        assert!(parse_rfc3339_ms("2026-11-24T10:00:00+0200").is_err());
        assert!(parse_rfc3339_ms("２026-11-24T10:00:00Z").is_err());
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic_and_nothing_is_lost(
            values in proptest::collection::vec(
                proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)), 0..16),
        ) {
            let mut dec = Decoder::new(&default_plan()).unwrap();
            let recs: Vec<RawRecord<'_>> = values.iter().enumerate().map(|(i, v)| RawRecord {
                key: v.as_deref(), value: v.as_deref(), partition: 0, offset: i as i64, timestamp_ms: 0,
            }).collect();
            let d = dec.decode(&recs);
            prop_assert_eq!(d.batch.num_rows() + d.dead_letters.len(), recs.len());
        }

        #[test]
        fn json_like_input_never_panics_and_nothing_is_lost(
            parts in proptest::collection::vec(
                prop_oneof![
                    Just("{".to_string()), Just("}".to_string()), Just("\"id\":".to_string()),
                    Just("\"value\":".to_string()), Just("\"timestamp\":".to_string()),
                    Just(format!("\"{TS}\"")), Just(",".to_string()), Just("1".to_string()),
                    Just("-2.5e3".to_string()), Just("null".to_string()), Just("[".to_string()),
                    Just("]".to_string()), Just("\"s\\u00e9\"".to_string()),
                    Just("99999999999999999999".to_string()),
                ],
                0..24,
            ),
        ) {
            let json = parts.concat();
            let mut dec = Decoder::new(&default_plan()).unwrap();
            let d = dec.decode(&[rec(json.as_bytes()), rec(json.as_bytes())]);
            prop_assert_eq!(d.batch.num_rows() + d.dead_letters.len(), 2);
        }
    }
}

/// `cargo test --release -p rivulet-engine decode_throughput -- --ignored --nocapture`
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod throughput {
    use super::*;

    #[test]
    #[ignore]
    fn decode_throughput() {
        let plan = Plan::from_toml(rivulet_testkit::SMALL_PLAN).unwrap();
        let mut dec = Decoder::new(&plan).unwrap();
        let n = 1_000_000usize;
        let values: Vec<String> = (0..n)
            .map(|i| {
                format!(
                    r#"{{"id":{},"value":{:.2},"timestamp":"2026-11-24T10:{:02}:{:02}.{:03}Z"}}"#,
                    i % 10,
                    (i % 1000) as f64 * 0.37,
                    (i / 60_000) % 60,
                    (i / 1000) % 60,
                    i % 1000
                )
            })
            .collect();
        let keys: Vec<String> = (0..n).map(|i| (i % 10).to_string()).collect();
        let raw: Vec<RawRecord<'_>> = (0..n)
            .map(|i| RawRecord {
                key: Some(keys[i].as_bytes()),
                value: Some(values[i].as_bytes()),
                partition: 0,
                offset: i as i64,
                timestamp_ms: 0,
            })
            .collect();
        for _ in 0..3 {
            let start = std::time::Instant::now();
            let mut rows = 0;
            for c in raw.chunks(32_768) {
                rows += dec.decode(c).batch.num_rows();
            }
            let secs = start.elapsed().as_secs_f64();
            assert_eq!(rows, n);
            println!(
                "decode: {:.0} ns/record, {:.2} M records/s",
                secs * 1e9 / n as f64,
                n as f64 / secs / 1e6
            );
        }
    }
}
