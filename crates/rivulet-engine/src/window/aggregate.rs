//! Aggregate functions as columnar accumulators ("groups accumulators").
//!
//! Each aggregate keeps its state in plain vectors indexed by *slot* (one slot per live
//! (group, window) state row), so a batch is folded in with one tight loop per aggregate over
//! (row, slot) pairs: no per-row dispatch, no per-row allocation. Rows reach each slot in input
//! order, so results depend only on the order of rows, never on batch boundaries.
//!
//! SQL semantics: NULL inputs are ignored; an aggregate over no non-NULL value is NULL, except
//! `count`. `count` without a column is `count(*)` (rows); with a column it counts non-NULL
//! values. `sum` of integers is Int64 (wrapping on overflow, like Spark's non-ANSI mode), of
//! floats Float64. `avg` is Float64 (integers are summed exactly in 128 bits). `stddev` is the
//! **sample** standard deviation (Spark's `stddev`/`stddev_samp`), computed with Welford's
//! algorithm and merged with Chan's formula; NULL for fewer than two values. `min`/`max` keep
//! the input type; NaN is larger than every number (Spark). `approx_percentile` is a t-digest
//! ([`super::sketch`]) returning Float64; NaN inputs are ignored.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float64Array, Int64Array};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;

use super::codec::{Dec, Enc};
use super::sketch::TDigest;
use super::types::{
    class_of, from_f64, from_i64, from_strings, is_float, is_integer, string_value, to_f64, to_i64,
    Class,
};
use crate::error::{EngineError, Result};
use crate::plan::{AggregateFunction, AggregateSpec};

/// A column prepared once per batch for an aggregate's update loop.
pub(crate) enum Input {
    None,
    Int(Int64Array),
    Float(Float64Array),
    Str(ArrayRef),
    /// Only nullness matters (`count(column)`).
    Any(ArrayRef),
}

enum State {
    CountStar(Vec<i64>),
    CountCol(Vec<i64>),
    SumInt {
        sum: Vec<i64>,
        n: Vec<i64>,
    },
    SumFloat {
        sum: Vec<f64>,
        n: Vec<i64>,
    },
    AvgInt {
        sum: Vec<i128>,
        n: Vec<i64>,
    },
    AvgFloat {
        sum: Vec<f64>,
        n: Vec<i64>,
    },
    MinMaxInt {
        max: bool,
        v: Vec<Option<i64>>,
    },
    MinMaxFloat {
        max: bool,
        v: Vec<Option<f64>>,
    },
    MinMaxStr {
        max: bool,
        v: Vec<Option<Box<str>>>,
    },
    Stddev {
        n: Vec<i64>,
        mean: Vec<f64>,
        m2: Vec<f64>,
    },
    Percentile {
        q: f64,
        d: Vec<TDigest>,
    },
}

pub(crate) struct Aggregate {
    /// Index of the input column (None for count(*)).
    column: Option<usize>,
    input_type: DataType,
    output: Field,
    state: State,
}

/// `a` sorts after `b` (NaN greatest).
#[inline]
fn float_gt(a: f64, b: f64) -> bool {
    if a.is_nan() {
        !b.is_nan()
    } else {
        !b.is_nan() && a > b
    }
}

impl Aggregate {
    pub fn new(spec: &AggregateSpec, input: &Schema) -> Result<Self> {
        use AggregateFunction as F;
        let fname = spec.function.name();
        let plan_err = |msg: String| EngineError::Plan(format!("aggregate `{fname}`: {msg}"));
        if spec.percentile.is_some() && spec.function != F::ApproxPercentile {
            return Err(plan_err(
                "`percentile` only applies to approx_percentile".into(),
            ));
        }
        let column = match &spec.column {
            None if spec.function == F::Count => None,
            None => return Err(plan_err("needs a `column`".into())),
            Some(c) => Some(
                input
                    .index_of(c)
                    .map_err(|_| plan_err(format!("unknown column `{c}`")))?,
            ),
        };
        let input_type = column
            .map(|i| input.field(i).data_type().clone())
            .unwrap_or(DataType::Null);
        let name = spec.output_name();
        let numeric = is_integer(&input_type) || is_float(&input_type);
        let need_numeric = || {
            if numeric {
                Ok(())
            } else {
                Err(plan_err(format!(
                    "column `{}` has type {input_type}, a number is needed",
                    spec.column.as_deref().unwrap_or_default()
                )))
            }
        };
        let (state, out_type) = match spec.function {
            F::Count if column.is_none() => (State::CountStar(Vec::new()), DataType::Int64),
            F::Count => (State::CountCol(Vec::new()), DataType::Int64),
            F::Sum => {
                need_numeric()?;
                if is_integer(&input_type) {
                    (
                        State::SumInt {
                            sum: Vec::new(),
                            n: Vec::new(),
                        },
                        DataType::Int64,
                    )
                } else {
                    (
                        State::SumFloat {
                            sum: Vec::new(),
                            n: Vec::new(),
                        },
                        DataType::Float64,
                    )
                }
            }
            F::Avg => {
                need_numeric()?;
                if is_integer(&input_type) {
                    (
                        State::AvgInt {
                            sum: Vec::new(),
                            n: Vec::new(),
                        },
                        DataType::Float64,
                    )
                } else {
                    (
                        State::AvgFloat {
                            sum: Vec::new(),
                            n: Vec::new(),
                        },
                        DataType::Float64,
                    )
                }
            }
            F::Min | F::Max => {
                let max = spec.function == F::Max;
                let state = match class_of(&input_type) {
                    Some(Class::I64 | Class::I32 | Class::Small) => {
                        State::MinMaxInt { max, v: Vec::new() }
                    }
                    Some(Class::Float) => State::MinMaxFloat { max, v: Vec::new() },
                    Some(Class::Str) => State::MinMaxStr { max, v: Vec::new() },
                    None => return Err(plan_err(format!("unsupported input type {input_type}"))),
                };
                (state, input_type.clone())
            }
            F::Stddev => {
                need_numeric()?;
                (
                    State::Stddev {
                        n: Vec::new(),
                        mean: Vec::new(),
                        m2: Vec::new(),
                    },
                    DataType::Float64,
                )
            }
            F::ApproxPercentile => {
                need_numeric()?;
                let q = spec
                    .percentile
                    .ok_or_else(|| plan_err("needs `percentile` in [0, 1]".into()))?;
                if !(0.0..=1.0).contains(&q) {
                    return Err(plan_err(format!("percentile {q} is outside [0, 1]")));
                }
                (State::Percentile { q, d: Vec::new() }, DataType::Float64)
            }
        };
        let nullable = !matches!(state, State::CountStar(_) | State::CountCol(_));
        Ok(Self {
            column,
            input_type,
            output: Field::new(name, out_type, nullable),
            state,
        })
    }

    pub fn output_field(&self) -> &Field {
        &self.output
    }

    /// Converts this aggregate's input column once per batch.
    pub fn prepare(&self, batch: &RecordBatch) -> Result<Input> {
        let Some(i) = self.column else {
            return Ok(Input::None);
        };
        let col = batch.column(i);
        if *col.data_type() != self.input_type {
            return Err(EngineError::Other(format!(
                "column `{}` is {} in the batch but {} in the schema",
                self.output.name(),
                col.data_type(),
                self.input_type
            )));
        }
        Ok(match &self.state {
            State::CountStar(_) => Input::None,
            State::CountCol(_) => Input::Any(col.clone()),
            State::MinMaxStr { .. } => Input::Str(col.clone()),
            State::MinMaxFloat { .. } => Input::Float(to_f64(col)?),
            State::MinMaxInt { .. } | State::SumInt { .. } | State::AvgInt { .. } => {
                Input::Int(to_i64(col)?)
            }
            State::SumFloat { .. }
            | State::AvgFloat { .. }
            | State::Stddev { .. }
            | State::Percentile { .. } => Input::Float(to_f64(col)?),
        })
    }

    /// Adds a fresh slot at the end (index = current length).
    pub fn push_slot(&mut self) {
        match &mut self.state {
            State::CountStar(c) | State::CountCol(c) => c.push(0),
            State::SumInt { sum, n } => {
                sum.push(0);
                n.push(0);
            }
            State::SumFloat { sum, n } | State::AvgFloat { sum, n } => {
                sum.push(0.0);
                n.push(0);
            }
            State::AvgInt { sum, n } => {
                sum.push(0);
                n.push(0);
            }
            State::MinMaxInt { v, .. } => v.push(None),
            State::MinMaxFloat { v, .. } => v.push(None),
            State::MinMaxStr { v, .. } => v.push(None),
            State::Stddev { n, mean, m2 } => {
                n.push(0);
                mean.push(0.0);
                m2.push(0.0);
            }
            State::Percentile { d, .. } => d.push(TDigest::default()),
        }
    }

    /// Empties a recycled slot.
    pub fn reset_slot(&mut self, s: u32) {
        let s = s as usize;
        match &mut self.state {
            State::CountStar(c) | State::CountCol(c) => c[s] = 0,
            State::SumInt { sum, n } => {
                sum[s] = 0;
                n[s] = 0;
            }
            State::SumFloat { sum, n } | State::AvgFloat { sum, n } => {
                sum[s] = 0.0;
                n[s] = 0;
            }
            State::AvgInt { sum, n } => {
                sum[s] = 0;
                n[s] = 0;
            }
            State::MinMaxInt { v, .. } => v[s] = None,
            State::MinMaxFloat { v, .. } => v[s] = None,
            State::MinMaxStr { v, .. } => v[s] = None,
            State::Stddev { n, mean, m2 } => {
                n[s] = 0;
                mean[s] = 0.0;
                m2[s] = 0.0;
            }
            State::Percentile { d, .. } => d[s] = TDigest::default(),
        }
    }

    /// Folds input rows `rows[i]` into slots `slots[i]`, in order.
    pub fn update(&mut self, input: &Input, rows: &[u32], slots: &[u32]) {
        let pairs = rows
            .iter()
            .zip(slots)
            .map(|(&r, &s)| (r as usize, s as usize));
        match (&mut self.state, input) {
            (State::CountStar(c), _) => pairs.for_each(|(_, s)| c[s] += 1),
            (State::CountCol(c), Input::Any(a)) => pairs
                .filter(|&(r, _)| a.is_valid(r))
                .for_each(|(_, s)| c[s] += 1),
            (State::SumInt { sum, n }, Input::Int(a)) => {
                let v = a.values();
                for (r, s) in pairs {
                    if a.is_valid(r) {
                        sum[s] = sum[s].wrapping_add(v[r]);
                        n[s] += 1;
                    }
                }
            }
            (State::SumFloat { sum, n } | State::AvgFloat { sum, n }, Input::Float(a)) => {
                let v = a.values();
                for (r, s) in pairs {
                    if a.is_valid(r) {
                        sum[s] += v[r];
                        n[s] += 1;
                    }
                }
            }
            (State::AvgInt { sum, n }, Input::Int(a)) => {
                let v = a.values();
                for (r, s) in pairs {
                    if a.is_valid(r) {
                        sum[s] += i128::from(v[r]);
                        n[s] += 1;
                    }
                }
            }
            (State::MinMaxInt { max, v }, Input::Int(a)) => {
                let vals = a.values();
                let max = *max;
                for (r, s) in pairs {
                    if a.is_valid(r) {
                        let x = vals[r];
                        v[s] = Some(match v[s] {
                            None => x,
                            Some(cur) if max => cur.max(x),
                            Some(cur) => cur.min(x),
                        });
                    }
                }
            }
            (State::MinMaxFloat { max, v }, Input::Float(a)) => {
                let vals = a.values();
                let max = *max;
                for (r, s) in pairs {
                    if a.is_valid(r) {
                        let x = vals[r];
                        v[s] = Some(match v[s] {
                            Some(cur)
                                if (max && !float_gt(x, cur)) || (!max && !float_gt(cur, x)) =>
                            {
                                cur
                            }
                            _ => x,
                        });
                    }
                }
            }
            (State::MinMaxStr { max, v }, Input::Str(a)) => {
                let max = *max;
                for (r, s) in pairs {
                    if let Some(x) = string_value(a.as_ref(), r) {
                        let replace = match &v[s] {
                            None => true,
                            Some(cur) => (max && x > &**cur) || (!max && x < &**cur),
                        };
                        if replace {
                            v[s] = Some(x.into());
                        }
                    }
                }
            }
            (State::Stddev { n, mean, m2 }, Input::Float(a)) => {
                let vals = a.values();
                for (r, s) in pairs {
                    if a.is_valid(r) {
                        let x = vals[r];
                        n[s] += 1;
                        let delta = x - mean[s];
                        mean[s] += delta / n[s] as f64;
                        m2[s] += delta * (x - mean[s]);
                    }
                }
            }
            (State::Percentile { d, .. }, Input::Float(a)) => {
                let vals = a.values();
                for (r, s) in pairs {
                    if a.is_valid(r) {
                        d[s].add(vals[r]);
                    }
                }
            }
            // `prepare` builds the input matching the state; nothing else can reach here.
            _ => {}
        }
    }

    /// Folds slot `src` into slot `dst` (session merges). `src` is left as is.
    pub fn merge(&mut self, dst: u32, src: u32) {
        let (d, s) = (dst as usize, src as usize);
        match &mut self.state {
            State::CountStar(c) | State::CountCol(c) => c[d] += c[s],
            State::SumInt { sum, n } => {
                sum[d] = sum[d].wrapping_add(sum[s]);
                n[d] += n[s];
            }
            State::SumFloat { sum, n } | State::AvgFloat { sum, n } => {
                sum[d] += sum[s];
                n[d] += n[s];
            }
            State::AvgInt { sum, n } => {
                sum[d] += sum[s];
                n[d] += n[s];
            }
            State::MinMaxInt { max, v } => {
                v[d] = match (v[d], v[s]) {
                    (Some(a), Some(b)) => Some(if *max { a.max(b) } else { a.min(b) }),
                    (a, b) => a.or(b),
                }
            }
            State::MinMaxFloat { max, v } => {
                v[d] = match (v[d], v[s]) {
                    (Some(a), Some(b)) => Some(if float_gt(a, b) == *max { a } else { b }),
                    (a, b) => a.or(b),
                }
            }
            State::MinMaxStr { max, v } => {
                let take = match (&v[d], &v[s]) {
                    (_, None) => false,
                    (None, Some(_)) => true,
                    (Some(a), Some(b)) => (*max && b > a) || (!*max && b < a),
                };
                if take {
                    v[d] = v[s].clone();
                }
            }
            State::Stddev { n, mean, m2 } => {
                let (na, nb) = (n[d], n[s]);
                if nb == 0 {
                    return;
                }
                if na == 0 {
                    (n[d], mean[d], m2[d]) = (nb, mean[s], m2[s]);
                    return;
                }
                let total = na + nb;
                let delta = mean[s] - mean[d];
                mean[d] += delta * nb as f64 / total as f64;
                m2[d] += m2[s] + delta * delta * (na as f64) * (nb as f64) / total as f64;
                n[d] = total;
            }
            State::Percentile { d: digests, .. } => {
                let other = std::mem::take(&mut digests[s]);
                digests[d].merge(&other);
                digests[s] = other;
            }
        }
    }

    /// The output column for `slots`, in order.
    pub fn evaluate(&self, slots: &[u32]) -> Result<ArrayRef> {
        let it = slots.iter().map(|&s| s as usize);
        let dt = self.output.data_type();
        Ok(match &self.state {
            State::CountStar(c) | State::CountCol(c) => {
                Arc::new(Int64Array::from_iter_values(it.map(|s| c[s])))
            }
            State::SumInt { sum, n } => Arc::new(
                it.map(|s| (n[s] > 0).then(|| sum[s]))
                    .collect::<Int64Array>(),
            ),
            State::SumFloat { sum, n } | State::AvgFloat { sum, n } => {
                let avg = matches!(self.state, State::AvgFloat { .. });
                Arc::new(
                    it.map(|s| (n[s] > 0).then(|| if avg { sum[s] / n[s] as f64 } else { sum[s] }))
                        .collect::<Float64Array>(),
                )
            }
            State::AvgInt { sum, n } => Arc::new(
                it.map(|s| (n[s] > 0).then(|| sum[s] as f64 / n[s] as f64))
                    .collect::<Float64Array>(),
            ),
            State::MinMaxInt { v, .. } => from_i64(it.map(|s| v[s]).collect(), dt)?,
            State::MinMaxFloat { v, .. } => from_f64(it.map(|s| v[s]).collect(), dt)?,
            State::MinMaxStr { v, .. } => from_strings(it.map(|s| v[s].as_deref()), dt),
            State::Stddev { n, m2, .. } => Arc::new(
                it.map(|s| (n[s] >= 2).then(|| (m2[s] / (n[s] - 1) as f64).max(0.0).sqrt()))
                    .collect::<Float64Array>(),
            ),
            State::Percentile { q, d } => {
                Arc::new(it.map(|s| d[s].quantile(*q)).collect::<Float64Array>())
            }
        })
    }

    pub fn memory_bytes(&self) -> usize {
        match &self.state {
            State::CountStar(c) | State::CountCol(c) => c.capacity() * 8,
            State::SumInt { sum, n } => (sum.capacity() + n.capacity()) * 8,
            State::SumFloat { sum, n } | State::AvgFloat { sum, n } => {
                (sum.capacity() + n.capacity()) * 8
            }
            State::AvgInt { sum, n } => sum.capacity() * 16 + n.capacity() * 8,
            State::MinMaxInt { v, .. } => v.capacity() * 16,
            State::MinMaxFloat { v, .. } => v.capacity() * 16,
            State::MinMaxStr { v, .. } => {
                v.capacity() * 16 + v.iter().flatten().map(|s| s.len()).sum::<usize>()
            }
            State::Stddev { n, mean, m2 } => (n.capacity() + mean.capacity() + m2.capacity()) * 8,
            State::Percentile { d, .. } => {
                d.capacity() * std::mem::size_of::<TDigest>()
                    + d.iter().map(TDigest::memory_bytes).sum::<usize>()
            }
        }
    }

    pub fn encode_slot(&self, s: u32, e: &mut Enc) {
        let s = s as usize;
        match &self.state {
            State::CountStar(c) | State::CountCol(c) => e.i64(c[s]),
            State::SumInt { sum, n } => {
                e.i64(sum[s]);
                e.i64(n[s]);
            }
            State::SumFloat { sum, n } | State::AvgFloat { sum, n } => {
                e.f64(sum[s]);
                e.i64(n[s]);
            }
            State::AvgInt { sum, n } => {
                e.i128(sum[s]);
                e.i64(n[s]);
            }
            State::MinMaxInt { v, .. } => e.opt_i64(v[s]),
            State::MinMaxFloat { v, .. } => e.opt_f64(v[s]),
            State::MinMaxStr { v, .. } => match &v[s] {
                None => e.u8(0),
                Some(x) => {
                    e.u8(1);
                    e.bytes(x.as_bytes());
                }
            },
            State::Stddev { n, mean, m2 } => {
                e.i64(n[s]);
                e.f64(mean[s]);
                e.f64(m2[s]);
            }
            State::Percentile { d, .. } => d[s].encode(e),
        }
    }

    /// Reads a slot written by [`encode_slot`](Self::encode_slot) into (reset) slot `s`.
    pub fn decode_slot(&mut self, s: u32, d: &mut Dec<'_>) -> Result<()> {
        let s = s as usize;
        match &mut self.state {
            State::CountStar(c) | State::CountCol(c) => c[s] = d.i64()?,
            State::SumInt { sum, n } => {
                sum[s] = d.i64()?;
                n[s] = d.i64()?;
            }
            State::SumFloat { sum, n } | State::AvgFloat { sum, n } => {
                sum[s] = d.f64()?;
                n[s] = d.i64()?;
            }
            State::AvgInt { sum, n } => {
                sum[s] = d.i128()?;
                n[s] = d.i64()?;
            }
            State::MinMaxInt { v, .. } => v[s] = d.opt_i64()?,
            State::MinMaxFloat { v, .. } => v[s] = d.opt_f64()?,
            State::MinMaxStr { v, .. } => {
                v[s] = if d.bool()? {
                    let b = d.bytes()?;
                    Some(
                        std::str::from_utf8(b)
                            .map_err(|_| {
                                EngineError::State("invalid UTF-8 in window state".into())
                            })?
                            .into(),
                    )
                } else {
                    None
                }
            }
            State::Stddev { n, mean, m2 } => {
                n[s] = d.i64()?;
                mean[s] = d.f64()?;
                m2[s] = d.f64()?;
            }
            State::Percentile { d: digests, .. } => digests[s] = TDigest::decode(d)?,
        }
        Ok(())
    }
}
