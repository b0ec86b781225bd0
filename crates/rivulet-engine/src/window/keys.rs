//! Group keys, interned to dense ids.
//!
//! Each distinct group key gets a `u32` id; state is keyed by (id, window start). Interning is
//! vectorised per batch: a single integer-like key column (the common `GROUP BY id`) is hashed as
//! an `i64` directly; any other combination is encoded once per batch with Arrow's
//! [`RowConverter`], whose rows are byte strings that compare like the keys (so they also give
//! the deterministic output order). Either way the hot path allocates nothing per row — only a
//! new key allocates. Ids are reference-counted by live windows and recycled when their last
//! window is dropped, so a stream of ever-new keys with windows closing does not grow forever.

use std::cmp::Ordering;
use std::collections::HashMap;

use arrow::array::{Array, ArrayRef, Int64Array};
use arrow::datatypes::FieldRef;
use arrow::row::{RowConverter, SortField};

use super::codec::{Dec, Enc};
use super::types::{class_of, decode_array, encode_array, from_i64, to_i64, Class};
use super::Hasher;
use crate::error::{EngineError, Result};

enum Kind {
    /// No GROUP BY: one group, id 0.
    Unit,
    /// One Int64/Int32/Timestamp/Date-like column.
    Int {
        map: HashMap<i64, u32, Hasher>,
        null_id: Option<u32>,
        values: Vec<Option<i64>>,
    },
    /// Anything else, as row-format byte strings.
    Rows {
        converter: RowConverter,
        map: HashMap<Box<[u8]>, u32, Hasher>,
        rows: Vec<Box<[u8]>>,
    },
}

pub(crate) struct GroupKeys {
    kind: Kind,
    fields: Vec<FieldRef>,
    refcount: Vec<u32>,
    free: Vec<u32>,
    /// Ids created by the current batch, released at its end if no window took them.
    fresh: Vec<u32>,
    live: usize,
    key_bytes: usize,
}

impl GroupKeys {
    pub fn new(fields: Vec<FieldRef>) -> Result<Self> {
        for f in &fields {
            if class_of(f.data_type()).is_none() {
                return Err(EngineError::Plan(format!(
                    "group_by column `{}` has type {}, which cannot be a grouping key \
                     (integers, floats, booleans, strings, timestamps and dates can)",
                    f.name(),
                    f.data_type()
                )));
            }
        }
        let kind = match fields.as_slice() {
            [] => Kind::Unit,
            [f] if matches!(class_of(f.data_type()), Some(Class::I64 | Class::I32)) => Kind::Int {
                map: HashMap::with_hasher(Hasher::default()),
                null_id: None,
                values: Vec::new(),
            },
            _ => Kind::Rows {
                converter: RowConverter::new(
                    fields
                        .iter()
                        .map(|f| SortField::new(f.data_type().clone()))
                        .collect(),
                )?,
                map: HashMap::with_hasher(Hasher::default()),
                rows: Vec::new(),
            },
        };
        let mut keys = Self {
            kind,
            fields,
            refcount: Vec::new(),
            free: Vec::new(),
            fresh: Vec::new(),
            live: 0,
            key_bytes: 0,
        };
        if matches!(keys.kind, Kind::Unit) {
            keys.refcount.push(0);
            keys.live = 1;
        }
        Ok(keys)
    }

    fn new_id(&mut self) -> u32 {
        self.live += 1;
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                self.refcount.push(0);
                (self.refcount.len() - 1) as u32
            }
        };
        self.fresh.push(id);
        id
    }

    /// Ids of every row of the key columns (in `fields` order) into `out`.
    pub fn intern(
        &mut self,
        columns: &[ArrayRef],
        num_rows: usize,
        out: &mut Vec<u32>,
    ) -> Result<()> {
        out.clear();
        match &mut self.kind {
            Kind::Unit => out.resize(num_rows, 0),
            Kind::Int { .. } => {
                let col = to_i64(&columns[0])?;
                let vals = col.values();
                out.reserve(num_rows);
                for i in 0..num_rows {
                    let id = if col.is_null(i) {
                        self.int_null_id()
                    } else {
                        self.int_id(vals[i])
                    };
                    out.push(id);
                }
            }
            Kind::Rows { converter, .. } => {
                let rows = converter.convert_columns(columns)?;
                out.reserve(num_rows);
                for row in rows.iter() {
                    let bytes = row.as_ref();
                    let found = match &self.kind {
                        Kind::Rows { map, .. } => map.get(bytes).copied(),
                        _ => None,
                    };
                    let id = match found {
                        Some(id) => id,
                        None => {
                            let id = self.new_id();
                            self.key_bytes += bytes.len();
                            if let Kind::Rows { map, rows, .. } = &mut self.kind {
                                let boxed: Box<[u8]> = bytes.into();
                                map.insert(boxed.clone(), id);
                                let slot = id as usize;
                                if slot < rows.len() {
                                    rows[slot] = boxed;
                                } else {
                                    rows.push(boxed);
                                }
                            }
                            id
                        }
                    };
                    out.push(id);
                }
            }
        }
        Ok(())
    }

    #[inline]
    fn int_id(&mut self, v: i64) -> u32 {
        if let Kind::Int { map, .. } = &self.kind {
            if let Some(&id) = map.get(&v) {
                return id;
            }
        }
        let id = self.new_id();
        if let Kind::Int { map, values, .. } = &mut self.kind {
            map.insert(v, id);
            set(values, id, Some(v));
        }
        id
    }

    fn int_null_id(&mut self) -> u32 {
        if let Kind::Int {
            null_id: Some(id), ..
        } = &self.kind
        {
            return *id;
        }
        let id = self.new_id();
        if let Kind::Int {
            null_id, values, ..
        } = &mut self.kind
        {
            *null_id = Some(id);
            set(values, id, None);
        }
        id
    }

    pub fn acquire(&mut self, id: u32) {
        self.refcount[id as usize] += 1;
    }

    pub fn release(&mut self, id: u32) {
        let rc = &mut self.refcount[id as usize];
        *rc = rc.saturating_sub(1);
        if *rc == 0 {
            self.forget(id);
        }
    }

    /// Drops the ids interned by the last batch that no window references (late rows).
    pub fn end_batch(&mut self) {
        let fresh = std::mem::take(&mut self.fresh);
        for &id in &fresh {
            if self.refcount[id as usize] == 0 {
                self.forget(id);
            }
        }
        self.fresh = fresh;
        self.fresh.clear();
    }

    fn forget(&mut self, id: u32) {
        match &mut self.kind {
            Kind::Unit => return,
            Kind::Int {
                map,
                null_id,
                values,
            } => match values[id as usize] {
                Some(v) => {
                    map.remove(&v);
                }
                None => *null_id = None,
            },
            Kind::Rows { map, rows, .. } => {
                let row = std::mem::take(&mut rows[id as usize]);
                self.key_bytes -= row.len();
                map.remove(&row);
            }
        }
        self.live -= 1;
        self.free.push(id);
    }

    /// Output order of keys: the row format compares like the key columns (nulls first).
    pub fn cmp(&self, a: u32, b: u32) -> Ordering {
        match &self.kind {
            Kind::Unit => Ordering::Equal,
            Kind::Int { values, .. } => values[a as usize].cmp(&values[b as usize]),
            Kind::Rows { rows, .. } => rows[a as usize].cmp(&rows[b as usize]),
        }
    }

    /// The key columns for the given ids.
    pub fn columns(&self, ids: &[u32]) -> Result<Vec<ArrayRef>> {
        match &self.kind {
            Kind::Unit => Ok(Vec::new()),
            Kind::Int { values, .. } => {
                let arr: Int64Array = ids.iter().map(|&id| values[id as usize]).collect();
                Ok(vec![from_i64(arr, self.fields[0].data_type())?])
            }
            Kind::Rows {
                converter, rows, ..
            } => {
                let parser = converter.parser();
                Ok(converter
                    .convert_rows(ids.iter().map(|&id| parser.parse(&rows[id as usize])))?)
            }
        }
    }

    #[cfg(test)]
    pub fn live_count(&self) -> usize {
        self.live
    }

    pub fn memory_bytes(&self) -> usize {
        let per_entry = match &self.kind {
            Kind::Unit => 0,
            Kind::Int { .. } => 8 + 4 + 8 + 16,
            Kind::Rows { .. } => 16 + 4 + 16 + 16,
        };
        self.live * per_entry + self.key_bytes + self.refcount.capacity() * 4
    }

    /// Writes the keys of `ids` (as values, not row bytes: the row format is not promised to be
    /// stable across Arrow versions).
    pub fn encode(&self, ids: &[u32], e: &mut Enc) -> Result<()> {
        for col in self.columns(ids)? {
            encode_array(&col, e)?;
        }
        Ok(())
    }

    /// Reads keys written by [`encode`](Self::encode) and interns them; returns their new ids.
    pub fn decode(&mut self, d: &mut Dec<'_>, n: usize) -> Result<Vec<u32>> {
        let mut cols = Vec::with_capacity(self.fields.len());
        for f in &self.fields {
            let col = decode_array(d, f.data_type())?;
            if col.len() != n {
                return Err(EngineError::State("group key count mismatch".into()));
            }
            cols.push(col);
        }
        let mut ids = Vec::with_capacity(n);
        self.intern(&cols, n, &mut ids)?;
        Ok(ids)
    }
}

fn set<T: Default + Clone>(v: &mut Vec<T>, id: u32, x: T) {
    let i = id as usize;
    if i >= v.len() {
        v.resize(i + 1, T::default());
    }
    v[i] = x;
}
