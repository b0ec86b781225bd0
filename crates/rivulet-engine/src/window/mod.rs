//! Event-time windowed aggregation: the engine's `groupBy(window(...), keys).agg(...)`.
//!
//! [`WindowAggregate`] is a stateful [`Operator`]. It keeps one *state row* per (group key,
//! window) — Spark's state store rows, Flink's keyed window state — holding the partial
//! aggregates, and emits result rows according to the output mode:
//!
//! * **Append** (Spark `outputMode("append")`, Flink's default event-time trigger): a window is
//!   emitted exactly once, final, when the watermark passes its end (`end ≤ watermark`, in
//!   [`Operator::on_watermark`]); its state is then dropped.
//! * **Update** (Spark `outputMode("update")`): at every trigger ([`Operator::on_trigger`]) the
//!   rows whose aggregates changed since the previous trigger are emitted. Windows whose end
//!   passes the watermark are dropped from state once their last change has been emitted. Without
//!   a window (`window = None`, a running aggregate per group, Spark's aggregation without
//!   watermark) only update mode is possible and state is never dropped.
//!
//! **Lateness.** Rows for a window that is already closed (`end ≤ watermark`) are not aggregated
//! and count in [`OperatorMetrics::num_rows_dropped_by_watermark`] (Spark's
//! `numRowsDroppedByWatermark`). For hopping windows a row is counted when it reached none of its
//! windows (it is still added to those of its windows that are open). For session windows the
//! rule is `t < watermark` (see the `session` module). Rows with a NULL `_event_time` cannot be placed in a
//! window and are counted as dropped too.
//!
//! **Determinism.** Output batches are sorted by `window_start`, then group key (nulls first),
//! then `window_end`, and aggregates see each state row's input rows in arrival order, so the same
//! input rows in the same order give identical output regardless of how they are cut into
//! batches — what exactly-once replay after a restore relies on. [`Operator::snapshot`] captures
//! the full state (state rows, watermark, the set changed since the last trigger, counters)
//! bit-exactly.
//!
//! **Output schema**: group-by columns (same types), `window_start`, `window_end`
//! (Timestamp(ms, UTC)) when windowed, then one column per aggregate, named `alias` or `count` /
//! `<function>_<column>` (types and NULL rules in the `aggregate` module).
//!
//! Performance: group keys are interned to dense ids (`keys`), state rows are slots in
//! columnar accumulators (`aggregate`) found through one hash lookup on (key id, window
//! start); a batch is folded in with one loop per aggregate and no per-row allocation.

mod aggregate;
mod assign;
mod codec;
mod keys;
mod session;
mod sketch;
#[cfg(test)]
mod tests;
mod types;

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int64Array, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;

use self::aggregate::{Aggregate, Input};
use self::assign::{hopping_windows, tumbling_start, Assigner};
use self::codec::{Dec, Enc};
use self::keys::GroupKeys;
use self::session::Sessions;
use crate::error::{EngineError, Result};
use crate::operator::{Operator, OperatorMetrics};
use crate::plan::{columns, AggregateSpec, OutputMode, WindowSpec};

/// ahash with fixed seeds: fast, and no dependence on a random source.
#[derive(Clone)]
pub(crate) struct Hasher(ahash::RandomState);

impl Default for Hasher {
    fn default() -> Self {
        Hasher(ahash::RandomState::with_seeds(
            0x243f_6a88_85a3_08d3,
            0x1319_8a2e_0370_7344,
            0xa409_3822_299f_31d0,
            0x082e_fa98_ec4e_6c89,
        ))
    }
}

impl BuildHasher for Hasher {
    type Hasher = ahash::AHasher;
    #[inline]
    fn build_hasher(&self) -> ahash::AHasher {
        self.0.build_hasher()
    }
}

/// Per-slot metadata; slots are recycled through a free list.
#[derive(Default)]
struct Slots {
    gid: Vec<u32>,
    start: Vec<i64>,
    end: Vec<i64>,
    live: Vec<bool>,
    dirty: Vec<bool>,
    free_list: Vec<u32>,
    live_count: usize,
}

impl Slots {
    fn alloc(&mut self, aggs: &mut [Aggregate], gid: u32, start: i64, end: i64) -> u32 {
        self.live_count += 1;
        if let Some(s) = self.free_list.pop() {
            let i = s as usize;
            (self.gid[i], self.start[i], self.end[i]) = (gid, start, end);
            self.live[i] = true;
            return s;
        }
        self.gid.push(gid);
        self.start.push(start);
        self.end.push(end);
        self.live.push(true);
        self.dirty.push(false);
        aggs.iter_mut().for_each(Aggregate::push_slot);
        (self.gid.len() - 1) as u32
    }

    /// Frees a slot; its accumulators are reset now so their memory (sketches) is released.
    fn free(&mut self, aggs: &mut [Aggregate], s: u32, dirty_count: &mut usize) {
        let i = s as usize;
        self.live[i] = false;
        if self.dirty[i] {
            self.dirty[i] = false;
            *dirty_count -= 1;
        }
        aggs.iter_mut().for_each(|a| a.reset_slot(s));
        self.free_list.push(s);
        self.live_count -= 1;
    }

    fn memory_bytes(&self) -> usize {
        self.gid.capacity() * 4
            + (self.start.capacity() + self.end.capacity()) * 8
            + self.live.capacity()
            + self.dirty.capacity()
            + self.free_list.capacity() * 4
    }
}

/// The windowed aggregation operator; see the module docs.
pub struct WindowAggregate {
    // Construction arguments, kept so `restore` can rebuild a pristine operator.
    group_by: Vec<String>,
    window_spec: Option<WindowSpec>,
    aggregate_specs: Vec<AggregateSpec>,
    input_schema: SchemaRef,
    output_schema: SchemaRef,
    mode: OutputMode,
    assigner: Assigner,
    key_columns: Vec<usize>,
    event_time_column: Option<usize>,
    keys: GroupKeys,
    aggs: Vec<Aggregate>,
    slots: Slots,
    /// (key id, window start) → slot, for tumbling, hopping and global windows.
    fixed: HashMap<(u32, i64), u32, Hasher>,
    /// Open tumbling/hopping slots by window end, to close them in order.
    fixed_by_end: BTreeMap<i64, Vec<u32>>,
    sessions: Sessions,
    /// Slots changed since the last trigger (may hold stale entries: the `dirty` flag decides).
    dirty_list: Vec<u32>,
    dirty_count: usize,
    /// Update mode: closed slots waiting for their last emission.
    closing: Vec<u32>,
    watermark: Option<i64>,
    dropped: u64,
    // Scratch buffers reused across batches.
    gids: Vec<u32>,
    pair_rows: Vec<u32>,
    pair_slots: Vec<u32>,
}

impl std::fmt::Debug for WindowAggregate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WindowAggregate")
            .field("group_by", &self.group_by)
            .field("window", &self.window_spec)
            .field("mode", &self.mode)
            .field("watermark", &self.watermark)
            .field("state_rows", &self.slots.live_count)
            .finish_non_exhaustive()
    }
}

fn window_field(name: &str) -> Field {
    Field::new(
        name,
        DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
        false,
    )
}

impl WindowAggregate {
    pub fn new(
        input_schema: SchemaRef,
        group_by: &[String],
        window: Option<&WindowSpec>,
        aggregates: &[AggregateSpec],
        mode: OutputMode,
    ) -> Result<Self> {
        let assigner = Assigner::from_spec(window)?;
        if !assigner.is_windowed() && mode == OutputMode::Append {
            return Err(EngineError::Plan(
                "append output mode needs a window: without one, aggregates are never final \
                 (use update mode)"
                    .into(),
            ));
        }
        let mut key_columns = Vec::with_capacity(group_by.len());
        let mut key_fields = Vec::with_capacity(group_by.len());
        for name in group_by {
            let i = input_schema.index_of(name).map_err(|_| {
                EngineError::Plan(format!(
                    "group_by column `{name}` is not in the input schema"
                ))
            })?;
            key_columns.push(i);
            key_fields.push(Arc::new(input_schema.field(i).clone()));
        }
        let event_time_column = if assigner.is_windowed() {
            let i = input_schema.index_of(columns::EVENT_TIME).map_err(|_| {
                EngineError::Plan(format!(
                    "windowed input needs a `{}` column",
                    columns::EVENT_TIME
                ))
            })?;
            let dt = input_schema.field(i).data_type();
            if *dt != DataType::Int64 {
                return Err(EngineError::Plan(format!(
                    "`{}` must be Int64 (ms since the epoch), found {dt}",
                    columns::EVENT_TIME
                )));
            }
            Some(i)
        } else {
            None
        };
        let aggs = aggregates
            .iter()
            .map(|spec| Aggregate::new(spec, &input_schema))
            .collect::<Result<Vec<_>>>()?;
        let mut fields: Vec<Field> = key_fields.iter().map(|f| f.as_ref().clone()).collect();
        if assigner.is_windowed() {
            fields.push(window_field(columns::WINDOW_START));
            fields.push(window_field(columns::WINDOW_END));
        }
        fields.extend(aggs.iter().map(|a| a.output_field().clone()));
        let mut seen = std::collections::HashSet::new();
        for f in &fields {
            if !seen.insert(f.name().as_str()) {
                return Err(EngineError::Plan(format!(
                    "output column `{}` appears twice (set an `alias`)",
                    f.name()
                )));
            }
        }
        Ok(Self {
            group_by: group_by.to_vec(),
            window_spec: window.cloned(),
            aggregate_specs: aggregates.to_vec(),
            input_schema,
            output_schema: Arc::new(Schema::new(fields)),
            mode,
            assigner,
            key_columns,
            event_time_column,
            keys: GroupKeys::new(key_fields)?,
            aggs,
            slots: Slots::default(),
            fixed: HashMap::with_hasher(Hasher::default()),
            fixed_by_end: BTreeMap::new(),
            sessions: Sessions::default(),
            dirty_list: Vec::new(),
            dirty_count: 0,
            closing: Vec::new(),
            watermark: None,
            dropped: 0,
            gids: Vec::new(),
            pair_rows: Vec::new(),
            pair_slots: Vec::new(),
        })
    }

    pub fn output_schema(&self) -> SchemaRef {
        self.output_schema.clone()
    }

    pub fn input_schema(&self) -> SchemaRef {
        self.input_schema.clone()
    }

    pub fn mode(&self) -> OutputMode {
        self.mode
    }

    /// The watermark the operator last saw (`None` before the first).
    pub fn watermark(&self) -> Option<i64> {
        self.watermark
    }

    /// End of input, for tests that compare a whole bounded stream with its ground truth:
    /// closes every window (append) or emits what changed (update). A query never ends its
    /// input, so the runtime has no use for it.
    #[cfg(test)]
    pub(crate) fn on_close(&mut self, out: &mut Vec<RecordBatch>) -> Result<()> {
        match self.mode {
            OutputMode::Append => {
                let closed = self.close_until(i64::MAX);
                self.finish_closed(closed, out)?;
                self.emit_changed(&mut Vec::new())
            }
            OutputMode::Update => self.emit_changed(out),
        }
    }

    #[inline]
    fn mark_dirty(&mut self, slot: u32) {
        let i = slot as usize;
        if !self.slots.dirty[i] {
            self.slots.dirty[i] = true;
            self.dirty_count += 1;
            self.dirty_list.push(slot);
        }
    }

    /// The slot of fixed window (gid, start), created when missing.
    #[inline]
    fn fixed_slot(&mut self, gid: u32, start: i64, end: i64) -> u32 {
        match self.fixed.entry((gid, start)) {
            Entry::Occupied(o) => *o.get(),
            Entry::Vacant(v) => {
                let slot = self.slots.alloc(&mut self.aggs, gid, start, end);
                v.insert(slot);
                self.keys.acquire(gid);
                if self.assigner.is_windowed() {
                    self.fixed_by_end.entry(end).or_default().push(slot);
                }
                slot
            }
        }
    }

    fn process(&mut self, batch: &RecordBatch) -> Result<()> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        self.check_batch_schema(batch)?;
        let key_cols: Vec<ArrayRef> = self
            .key_columns
            .iter()
            .map(|&i| batch.column(i).clone())
            .collect();
        let mut gids = std::mem::take(&mut self.gids);
        self.keys.intern(&key_cols, n, &mut gids)?;
        let inputs = self
            .aggs
            .iter()
            .map(|a| a.prepare(batch))
            .collect::<Result<Vec<Input>>>()?;
        let times: Option<Int64Array> = match self.event_time_column {
            Some(i) => Some(
                batch
                    .column(i)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .ok_or_else(|| {
                        EngineError::Other(format!("`{}` must be Int64", columns::EVENT_TIME))
                    })?
                    .clone(),
            ),
            None => None,
        };
        let result = match (self.assigner, &times) {
            (Assigner::Session { gap }, Some(times)) => {
                self.process_sessions(times, &gids, &inputs, gap);
                Ok(())
            }
            _ => self.process_fixed(times.as_ref(), &gids, &inputs),
        };
        self.keys.end_batch();
        self.gids = gids;
        result
    }

    fn process_fixed(
        &mut self,
        times: Option<&Int64Array>,
        gids: &[u32],
        inputs: &[Input],
    ) -> Result<()> {
        let mut rows = std::mem::take(&mut self.pair_rows);
        let mut slots = std::mem::take(&mut self.pair_slots);
        rows.clear();
        slots.clear();
        // Windows with end ≤ closed_until are closed; i64::MIN when there is no watermark yet.
        let closed_until = self.watermark.unwrap_or(i64::MIN);
        // Consecutive rows often hit the same (key, window): skip the hash lookup then.
        let mut last: Option<(u32, i64, u32)> = None;
        match (self.assigner, times) {
            (Assigner::Tumbling { size }, Some(times)) => {
                for (r, &gid) in gids.iter().enumerate() {
                    if times.is_null(r) {
                        self.dropped += 1;
                        continue;
                    }
                    let start = tumbling_start(times.value(r), size);
                    let end = start.saturating_add(size);
                    if end <= closed_until {
                        self.dropped += 1;
                        continue;
                    }
                    let slot = match last {
                        Some((g, s, slot)) if g == gid && s == start => slot,
                        _ => {
                            let slot = self.fixed_slot(gid, start, end);
                            last = Some((gid, start, slot));
                            slot
                        }
                    };
                    rows.push(r as u32);
                    slots.push(slot);
                }
            }
            (Assigner::Hopping { size, slide }, Some(times)) => {
                let mut windows: Vec<(i64, i64)> = Vec::new();
                for (r, &gid) in gids.iter().enumerate() {
                    if times.is_null(r) {
                        self.dropped += 1;
                        continue;
                    }
                    windows.clear();
                    hopping_windows(times.value(r), size, slide, |s, e| {
                        if e > closed_until {
                            windows.push((s, e));
                        }
                    });
                    if windows.is_empty() {
                        self.dropped += 1;
                        continue;
                    }
                    // Oldest window first, so each row's slots come in a stable order.
                    for &(start, end) in windows.iter().rev() {
                        let slot = self.fixed_slot(gid, start, end);
                        rows.push(r as u32);
                        slots.push(slot);
                    }
                }
            }
            (Assigner::Global, _) => {
                for (r, &gid) in gids.iter().enumerate() {
                    let slot = match last {
                        Some((g, _, slot)) if g == gid => slot,
                        _ => {
                            let slot = self.fixed_slot(gid, 0, i64::MAX);
                            last = Some((gid, 0, slot));
                            slot
                        }
                    };
                    rows.push(r as u32);
                    slots.push(slot);
                }
            }
            _ => {
                self.pair_rows = rows;
                self.pair_slots = slots;
                return Err(EngineError::Other("window operator misconfigured".into()));
            }
        }
        for &slot in &slots {
            self.mark_dirty(slot);
        }
        for (agg, input) in self.aggs.iter_mut().zip(inputs) {
            agg.update(input, &rows, &slots);
        }
        self.pair_rows = rows;
        self.pair_slots = slots;
        Ok(())
    }

    fn process_sessions(&mut self, times: &Int64Array, gids: &[u32], inputs: &[Input], gap: i64) {
        let watermark = self.watermark;
        for (r, &gid) in gids.iter().enumerate() {
            if times.is_null(r) {
                self.dropped += 1;
                continue;
            }
            let t = times.value(r);
            if watermark.is_some_and(|w| t < w) {
                self.dropped += 1;
                continue;
            }
            // Row at a time: a later row of this batch may merge this row's session away.
            let slot = self.session_slot(gid, t, gap);
            self.mark_dirty(slot);
            let row = [r as u32];
            let slot = [slot];
            for (agg, input) in self.aggs.iter_mut().zip(inputs) {
                agg.update(input, &row, &slot);
            }
        }
    }

    /// Columns are read by position: make sure the batch has the declared layout (cheap: only
    /// when the schema is not the very same `Arc`).
    fn check_batch_schema(&self, batch: &RecordBatch) -> Result<()> {
        let schema = batch.schema_ref();
        if Arc::ptr_eq(schema, &self.input_schema) {
            return Ok(());
        }
        let fields = schema.fields();
        let expected = self.input_schema.fields();
        if fields.len() != expected.len()
            || fields
                .iter()
                .zip(expected.iter())
                .any(|(a, b)| a.name() != b.name())
        {
            return Err(EngineError::Other(format!(
                "window aggregate got a batch with columns [{}], expected [{}]",
                fields
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                expected
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(())
    }

    /// Removes every window with `end ≤ until` from the lookup structures; returns their slots.
    fn close_until(&mut self, until: i64) -> Vec<u32> {
        let mut closed = Vec::new();
        match self.assigner {
            Assigner::Global => {}
            Assigner::Tumbling { .. } | Assigner::Hopping { .. } => {
                let open = match until.checked_add(1) {
                    Some(k) => self.fixed_by_end.split_off(&k),
                    None => BTreeMap::new(),
                };
                for (_, slots) in std::mem::replace(&mut self.fixed_by_end, open) {
                    for slot in slots {
                        let s = slot as usize;
                        self.fixed.remove(&(self.slots.gid[s], self.slots.start[s]));
                        closed.push(slot);
                    }
                }
            }
            Assigner::Session { .. } => {
                let open = match until.checked_add(1) {
                    Some(k) => self.sessions.by_end.split_off(&(k, 0)),
                    None => Default::default(),
                };
                for (_, slot) in std::mem::replace(&mut self.sessions.by_end, open) {
                    self.unlink_session(slot);
                    closed.push(slot);
                }
            }
        }
        closed
    }

    fn free_slot(&mut self, slot: u32) {
        let gid = self.slots.gid[slot as usize];
        self.slots.free(&mut self.aggs, slot, &mut self.dirty_count);
        self.keys.release(gid);
    }

    /// Windows closed by the watermark: emitted now (append) or after their last update.
    fn finish_closed(&mut self, mut closed: Vec<u32>, out: &mut Vec<RecordBatch>) -> Result<()> {
        match self.mode {
            OutputMode::Append => {
                self.emit(&mut closed, out)?;
                for slot in closed {
                    self.free_slot(slot);
                }
            }
            OutputMode::Update => {
                for slot in closed {
                    if self.slots.dirty[slot as usize] {
                        self.closing.push(slot);
                    } else {
                        self.free_slot(slot);
                    }
                }
            }
        }
        Ok(())
    }

    /// Sorts `slots` into output order and pushes their result rows as one batch.
    fn emit(&self, slots: &mut [u32], out: &mut Vec<RecordBatch>) -> Result<()> {
        if slots.is_empty() {
            return Ok(());
        }
        let meta = &self.slots;
        slots.sort_unstable_by(|&a, &b| {
            let (a, b) = (a as usize, b as usize);
            meta.start[a]
                .cmp(&meta.start[b])
                .then_with(|| self.keys.cmp(meta.gid[a], meta.gid[b]))
                .then_with(|| meta.end[a].cmp(&meta.end[b]))
        });
        let gids: Vec<u32> = slots.iter().map(|&s| meta.gid[s as usize]).collect();
        let mut cols = self.keys.columns(&gids)?;
        if self.assigner.is_windowed() {
            for bound in [&meta.start, &meta.end] {
                let arr = TimestampMillisecondArray::from_iter_values(
                    slots.iter().map(|&s| bound[s as usize]),
                )
                .with_timezone("UTC");
                cols.push(Arc::new(arr));
            }
        }
        for agg in &self.aggs {
            cols.push(agg.evaluate(slots)?);
        }
        out.push(RecordBatch::try_new(self.output_schema.clone(), cols)?);
        Ok(())
    }

    /// Emits the rows changed since the last trigger and clears the changed set.
    fn emit_changed(&mut self, out: &mut Vec<RecordBatch>) -> Result<()> {
        let mut changed = Vec::with_capacity(self.dirty_count);
        for slot in std::mem::take(&mut self.dirty_list) {
            let i = slot as usize;
            if self.slots.dirty[i] {
                self.slots.dirty[i] = false;
                changed.push(slot);
            }
        }
        self.dirty_count = 0;
        if self.mode == OutputMode::Update {
            self.emit(&mut changed, out)?;
        }
        for slot in std::mem::take(&mut self.closing) {
            self.free_slot(slot);
        }
        Ok(())
    }

    /// A fingerprint of the configuration, so a snapshot is not restored into another query.
    fn fingerprint(&self) -> String {
        format!(
            "{:?}|{:?}|{:?}|{:?}",
            self.output_schema.fields(),
            self.window_spec,
            self.mode,
            self.aggregate_specs
        )
    }
}

const MAGIC: &[u8; 4] = b"RVWA";
const VERSION: u8 = 1;

impl Operator for WindowAggregate {
    fn name(&self) -> &'static str {
        "window_aggregate"
    }

    fn process_batch(&mut self, batch: RecordBatch, _out: &mut Vec<RecordBatch>) -> Result<()> {
        self.process(&batch)
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Vec<RecordBatch>) -> Result<()> {
        if self.watermark.is_some_and(|w| watermark <= w) {
            return Ok(());
        }
        self.watermark = Some(watermark);
        let closed = self.close_until(watermark);
        self.finish_closed(closed, out)
    }

    fn on_trigger(&mut self, out: &mut Vec<RecordBatch>) -> Result<()> {
        self.emit_changed(out)
    }

    fn metrics(&self) -> OperatorMetrics {
        let fixed = self.fixed.capacity() * (16 + 4 + 8)
            + self.fixed_by_end.len() * 48
            + self.slots.live_count * 4;
        let memory = self.slots.memory_bytes()
            + self.aggs.iter().map(Aggregate::memory_bytes).sum::<usize>()
            + self.keys.memory_bytes()
            + fixed
            + self.sessions.memory_bytes()
            + self.dirty_list.capacity() * 4;
        OperatorMetrics {
            num_rows_total: self.slots.live_count as u64,
            num_rows_updated: self.dirty_count as u64,
            num_rows_dropped_by_watermark: self.dropped,
            memory_used_bytes: memory as u64,
        }
    }

    fn snapshot(&self) -> Result<Vec<u8>> {
        let mut e = Enc::default();
        e.buf.extend_from_slice(MAGIC);
        e.u8(VERSION);
        e.bytes(self.fingerprint().as_bytes());
        e.opt_i64(self.watermark);
        e.u64(self.dropped);
        // Live slots in output order, so equal states give equal bytes.
        let mut slots: Vec<u32> = (0..self.slots.live.len() as u32)
            .filter(|&s| self.slots.live[s as usize])
            .collect();
        let meta = &self.slots;
        slots.sort_unstable_by(|&a, &b| {
            let (a, b) = (a as usize, b as usize);
            meta.start[a]
                .cmp(&meta.start[b])
                .then_with(|| self.keys.cmp(meta.gid[a], meta.gid[b]))
                .then_with(|| meta.end[a].cmp(&meta.end[b]))
        });
        // Distinct keys, each written once.
        let mut key_index: HashMap<u32, u32, Hasher> = HashMap::with_hasher(Hasher::default());
        let mut key_ids = Vec::new();
        for &s in &slots {
            let gid = meta.gid[s as usize];
            key_index.entry(gid).or_insert_with(|| {
                key_ids.push(gid);
                (key_ids.len() - 1) as u32
            });
        }
        e.len(key_ids.len());
        self.keys.encode(&key_ids, &mut e)?;
        let closing: std::collections::HashSet<u32> = self.closing.iter().copied().collect();
        e.len(slots.len());
        for &s in &slots {
            let i = s as usize;
            e.u32(key_index[&meta.gid[i]]);
            e.i64(meta.start[i]);
            e.i64(meta.end[i]);
            e.bool(meta.dirty[i]);
            e.bool(closing.contains(&s));
            for agg in &self.aggs {
                agg.encode_slot(s, &mut e);
            }
        }
        Ok(e.buf)
    }

    fn restore(&mut self, state: &[u8]) -> Result<()> {
        let mut fresh = WindowAggregate::new(
            self.input_schema.clone(),
            &self.group_by,
            self.window_spec.as_ref(),
            &self.aggregate_specs,
            self.mode,
        )?;
        if state.is_empty() {
            *self = fresh;
            return Ok(());
        }
        let mut d = Dec::new(state);
        let magic = [d.u8()?, d.u8()?, d.u8()?, d.u8()?];
        if &magic != MAGIC {
            return Err(EngineError::State("not a window aggregate snapshot".into()));
        }
        let version = d.u8()?;
        if version != VERSION {
            return Err(EngineError::State(format!(
                "unsupported window state version {version}"
            )));
        }
        if d.bytes()? != fresh.fingerprint().as_bytes() {
            return Err(EngineError::State(
                "window state was written by a query with another schema, window, mode or aggregates".into(),
            ));
        }
        fresh.watermark = d.opt_i64()?;
        fresh.dropped = d.u64()?;
        let num_keys = d.len(1)?;
        let gids = fresh.keys.decode(&mut d, num_keys)?;
        let num_slots = d.len(18)?;
        for _ in 0..num_slots {
            let key = d.u32()? as usize;
            let gid = *gids.get(key).ok_or_else(|| {
                EngineError::State("window state references an unknown key".into())
            })?;
            let (start, end) = (d.i64()?, d.i64()?);
            let (dirty, closing) = (d.bool()?, d.bool()?);
            let slot = fresh.slots.alloc(&mut fresh.aggs, gid, start, end);
            fresh.keys.acquire(gid);
            for agg in &mut fresh.aggs {
                agg.decode_slot(slot, &mut d)?;
            }
            if dirty {
                fresh.mark_dirty(slot);
            }
            if closing {
                fresh.closing.push(slot);
                continue;
            }
            match fresh.assigner {
                Assigner::Session { .. } => {
                    fresh
                        .sessions
                        .by_group
                        .entry(gid)
                        .or_default()
                        .insert(start, slot);
                    fresh.sessions.by_end.insert((end, slot));
                }
                _ => {
                    fresh.fixed.insert((gid, start), slot);
                    if fresh.assigner.is_windowed() {
                        fresh.fixed_by_end.entry(end).or_default().push(slot);
                    }
                }
            }
        }
        fresh.keys.end_batch();
        if !d.is_empty() {
            return Err(EngineError::State(
                "trailing bytes after window state".into(),
            ));
        }
        *self = fresh;
        Ok(())
    }
}
