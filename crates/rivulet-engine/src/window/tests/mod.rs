//! Ground-truth tests: a seeded random stream with out-of-order and late events is fed to the
//! operator in random-sized batches, with watermarks from [`WatermarkTracker`], and every
//! emitted row is compared with an independent naive computation (plain loops over the events,
//! same lateness rule).

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int32Array, Int64Array, StringArray,
    TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::WindowAggregate;
use crate::operator::Operator;
use crate::plan::{
    columns, AggregateFunction as F, AggregateSpec, DurationMs, OutputMode, WindowSpec,
};
use crate::watermark::WatermarkTracker;

#[derive(Debug, Clone, Copy)]
struct Event {
    id: i64,
    value: Option<f64>,
    n: Option<i64>,
    t: i64,
    partition: i32,
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("value", DataType::Float64, true),
        Field::new("n", DataType::Int64, true),
        Field::new(columns::PARTITION, DataType::Int32, false),
        Field::new(columns::EVENT_TIME, DataType::Int64, false),
    ]))
}

fn to_batch(events: &[Event]) -> RecordBatch {
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(events.iter().map(|e| e.id))),
            Arc::new(events.iter().map(|e| e.value).collect::<Float64Array>()),
            Arc::new(events.iter().map(|e| e.n).collect::<Int64Array>()),
            Arc::new(Int32Array::from_iter_values(
                events.iter().map(|e| e.partition),
            )),
            Arc::new(Int64Array::from_iter_values(events.iter().map(|e| e.t))),
        ],
    )
    .unwrap()
}

/// Event time advances ~25 ms per event; most events are a little out of order, 4% are
/// seconds behind (late for a 500 ms lateness), 3% of values are NULL.
fn gen_events(seed: u64, count: usize) -> Vec<Event> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut clock = 1_700_000_000_000i64;
    (0..count)
        .map(|_| {
            clock += rng.gen_range(0..50);
            let behind = if rng.gen_bool(0.04) {
                rng.gen_range(1_000..8_000)
            } else {
                rng.gen_range(0..300)
            };
            Event {
                id: rng.gen_range(0..10),
                value: (!rng.gen_bool(0.03)).then(|| rng.gen_range(-100.0..100.0)),
                n: (!rng.gen_bool(0.03)).then(|| rng.gen_range(-1_000..1_000)),
                t: clock - behind,
                partition: rng.gen_range(0..3),
            }
        })
        .collect()
}

fn spec(function: F, column: Option<&str>, alias: Option<&str>) -> AggregateSpec {
    AggregateSpec {
        function,
        column: column.map(str::to_string),
        percentile: None,
        alias: alias.map(str::to_string),
    }
}

fn standard_aggs() -> Vec<AggregateSpec> {
    vec![
        spec(F::Count, None, None),
        spec(F::Sum, Some("value"), None),
        spec(F::Avg, Some("value"), None),
        spec(F::Min, Some("value"), None),
        spec(F::Max, Some("value"), None),
        spec(F::Stddev, Some("value"), None),
        spec(F::Sum, Some("n"), None),
        spec(F::Min, Some("n"), None),
        spec(F::Avg, Some("n"), None),
    ]
}

fn operator(window: Option<WindowSpec>, mode: OutputMode) -> WindowAggregate {
    WindowAggregate::new(
        schema(),
        &["id".to_string()],
        window.as_ref(),
        &standard_aggs(),
        mode,
    )
    .unwrap()
}

/// One output row of [`standard_aggs`].
#[derive(Debug, Clone, PartialEq)]
struct Row {
    id: i64,
    start: i64,
    end: i64,
    count: i64,
    sum: Option<f64>,
    avg: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
    stddev: Option<f64>,
    sum_n: Option<i64>,
    min_n: Option<i64>,
    avg_n: Option<f64>,
}

fn f64_col(b: &RecordBatch, name: &str) -> Vec<Option<f64>> {
    b.column_by_name(name)
        .unwrap()
        .as_primitive::<Float64Type>()
        .iter()
        .collect()
}
fn i64_col(b: &RecordBatch, name: &str) -> Vec<Option<i64>> {
    b.column_by_name(name)
        .unwrap()
        .as_primitive::<Int64Type>()
        .iter()
        .collect()
}
fn ts_col(b: &RecordBatch, name: &str) -> Vec<i64> {
    let a = b.column_by_name(name).unwrap();
    assert_eq!(
        a.data_type(),
        &DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
    );
    let a = a
        .as_any()
        .downcast_ref::<TimestampMillisecondArray>()
        .unwrap();
    assert_eq!(a.null_count(), 0);
    a.values().to_vec()
}

fn rows_of(b: &RecordBatch) -> Vec<Row> {
    let (id, count) = (i64_col(b, "id"), i64_col(b, "count"));
    let (start, end) = (ts_col(b, "window_start"), ts_col(b, "window_end"));
    let (sum, avg, min, max, sd) = (
        f64_col(b, "sum_value"),
        f64_col(b, "avg_value"),
        f64_col(b, "min_value"),
        f64_col(b, "max_value"),
        f64_col(b, "stddev_value"),
    );
    let (sum_n, min_n, avg_n) = (
        i64_col(b, "sum_n"),
        i64_col(b, "min_n"),
        f64_col(b, "avg_n"),
    );
    (0..b.num_rows())
        .map(|i| Row {
            id: id[i].unwrap(),
            start: start[i],
            end: end[i],
            count: count[i].unwrap(),
            sum: sum[i],
            avg: avg[i],
            min: min[i],
            max: max[i],
            stddev: sd[i],
            sum_n: sum_n[i],
            min_n: min_n[i],
            avg_n: avg_n[i],
        })
        .collect()
}

/// Naive aggregates over a window's accepted events (two-pass stddev, independent of Welford).
fn naive_row(id: i64, start: i64, end: i64, events: &[Event]) -> Row {
    let values: Vec<f64> = events.iter().filter_map(|e| e.value).collect();
    let ns: Vec<i64> = events.iter().filter_map(|e| e.n).collect();
    let sum = (!values.is_empty()).then(|| values.iter().sum::<f64>());
    let mean = sum.map(|s| s / values.len() as f64);
    let stddev = (values.len() >= 2).then(|| {
        let m = mean.unwrap();
        (values.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (values.len() - 1) as f64).sqrt()
    });
    Row {
        id,
        start,
        end,
        count: events.len() as i64,
        sum,
        avg: mean,
        min: values.iter().copied().reduce(f64::min),
        max: values.iter().copied().reduce(f64::max),
        stddev,
        sum_n: (!ns.is_empty()).then(|| ns.iter().sum()),
        min_n: ns.iter().copied().min(),
        avg_n: (!ns.is_empty()).then(|| ns.iter().sum::<i64>() as f64 / ns.len() as f64),
    }
}

fn close(a: Option<f64>, b: Option<f64>, what: &str, row: &Row) {
    match (a, b) {
        (None, None) => {}
        (Some(x), Some(y)) => assert!(
            (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
            "{what}: operator {x} vs naive {y} in {row:?}"
        ),
        _ => panic!("{what}: operator {a:?} vs naive {b:?} in {row:?}"),
    }
}

fn assert_row_matches(got: &Row, want: &Row) {
    assert_eq!(
        (got.id, got.start, got.end),
        (want.id, want.start, want.end)
    );
    assert_eq!(got.count, want.count, "count of {got:?}");
    assert_eq!(got.sum_n, want.sum_n, "sum_n of {got:?}");
    assert_eq!(got.min_n, want.min_n, "min_n of {got:?}");
    assert_eq!(got.min, want.min, "min of {got:?}");
    assert_eq!(got.max, want.max, "max of {got:?}");
    close(got.sum, want.sum, "sum", got);
    close(got.avg, want.avg, "avg", got);
    close(got.avg_n, want.avg_n, "avg_n", got);
    close(got.stddev, want.stddev, "stddev", got);
}

/// What the operator emitted, and when.
#[derive(Debug, Clone, PartialEq)]
enum Cause {
    Watermark(i64),
    Trigger(usize),
    Close,
}

const LATENESS: i64 = 500;

/// Feeds events in seeded random-sized batches, with watermarks from a tracker (processing
/// time = 10 ms per batch) and, in update mode, a trigger every `trigger_every` batches.
struct Driver {
    op: WindowAggregate,
    tracker: WatermarkTracker,
    batches: Vec<std::ops::Range<usize>>,
    trigger_every: usize,
    next: usize,
    triggers: usize,
    log: Vec<(Cause, RecordBatch)>,
    /// Operator watermark in force when each event was processed.
    wm_at: Vec<Option<i64>>,
}

impl Driver {
    fn new(op: WindowAggregate, n: usize, seed: u64, trigger_every: usize) -> Self {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
        let mut batches = Vec::new();
        let mut i = 0;
        while i < n {
            let len = if rng.gen_bool(0.1) {
                1
            } else {
                rng.gen_range(1..400)
            };
            batches.push(i..(i + len).min(n));
            i += len;
        }
        Self {
            op,
            tracker: WatermarkTracker::new(LATENESS, 30_000),
            batches,
            trigger_every,
            next: 0,
            triggers: 0,
            log: Vec::new(),
            wm_at: vec![None; n],
        }
    }

    fn step(&mut self, events: &[Event]) {
        let i = self.next;
        self.next += 1;
        let range = self.batches[i].clone();
        for j in range.clone() {
            self.wm_at[j] = self.op.watermark();
        }
        let batch = to_batch(&events[range]);
        let mut out = Vec::new();
        self.op.process_batch(batch.clone(), &mut out).unwrap();
        assert!(out.is_empty(), "process_batch emits nothing");
        let now = i as i64 * 10;
        self.tracker.observe_batch(&batch, now).unwrap();
        if let Some(wm) = self.tracker.advance(now) {
            self.op.on_watermark(wm, &mut out).unwrap();
            self.log
                .extend(out.drain(..).map(|b| (Cause::Watermark(wm), b)));
        }
        if i % self.trigger_every == self.trigger_every - 1 {
            self.op.on_trigger(&mut out).unwrap();
            self.log
                .extend(out.drain(..).map(|b| (Cause::Trigger(self.triggers), b)));
            self.triggers += 1;
        }
    }

    fn run_to_end(&mut self, events: &[Event]) {
        while self.next < self.batches.len() {
            self.step(events);
        }
        let mut out = Vec::new();
        self.op.on_close(&mut out).unwrap();
        self.log.extend(out.drain(..).map(|b| (Cause::Close, b)));
    }

    fn rows(&self) -> Vec<(Cause, Row)> {
        self.log
            .iter()
            .flat_map(|(c, b)| rows_of(b).into_iter().map(move |r| (c.clone(), r)))
            .collect()
    }
}

fn fixed_windows(t: i64, size: i64, slide: i64) -> Vec<(i64, i64)> {
    // Brute force over every slide-aligned start near t.
    let k = t.div_euclid(slide);
    (k - size / slide - 2..=k + 1)
        .map(|k| k * slide)
        .filter(|&s| s <= t && t < s + size)
        .map(|s| (s, s + size))
        .collect()
}

/// Ground truth for tumbling (slide = size) and hopping windows: (start, id) → accepted events,
/// and the number of events that reached no window.
fn naive_fixed(
    events: &[Event],
    wm_at: &[Option<i64>],
    size: i64,
    slide: i64,
) -> (BTreeMap<(i64, i64), Vec<Event>>, u64) {
    let mut windows: BTreeMap<(i64, i64), Vec<Event>> = BTreeMap::new();
    let mut late = 0;
    for (e, wm) in events.iter().zip(wm_at) {
        let mut accepted = false;
        for (s, end) in fixed_windows(e.t, size, slide) {
            if wm.is_none_or(|w| end > w) {
                windows.entry((s, e.id)).or_default().push(*e);
                accepted = true;
            }
        }
        late += u64::from(!accepted);
    }
    (windows, late)
}

fn check_append_fixed(size: i64, slide: i64, seed: u64) {
    let events = gen_events(seed, 30_000);
    let window = if size == slide {
        WindowSpec::Tumbling {
            size: DurationMs(size),
        }
    } else {
        WindowSpec::Hopping {
            size: DurationMs(size),
            slide: DurationMs(slide),
        }
    };
    let mut d = Driver::new(
        operator(Some(window), OutputMode::Append),
        events.len(),
        seed,
        7,
    );
    d.run_to_end(&events);
    let (expected, late) = naive_fixed(&events, &d.wm_at, size, slide);
    assert!(
        late > 100,
        "the stream must contain late events (got {late})"
    );
    assert_eq!(d.op.metrics().num_rows_dropped_by_watermark, late);
    assert_eq!(
        d.op.metrics().num_rows_total,
        0,
        "append mode drops emitted windows"
    );

    let rows = d.rows();
    let mut seen = BTreeSet::new();
    let mut last_wm = None;
    let mut last_order = None;
    for (cause, row) in &rows {
        assert!(
            seen.insert((row.start, row.id)),
            "window emitted twice: {row:?}"
        );
        match cause {
            Cause::Watermark(wm) => {
                assert!(
                    row.end <= *wm,
                    "emitted before the watermark passed its end: {row:?}"
                );
                // Emitted at the first watermark that closed it.
                assert!(last_wm.is_none_or(|w| row.end > w) || Some(*wm) == last_wm);
                if last_wm != Some(*wm) {
                    last_order = None;
                }
                last_wm = Some(*wm);
            }
            Cause::Close => assert!(last_wm.is_none_or(|w| row.end > w)),
            Cause::Trigger(_) => panic!("append mode emitted at a trigger"),
        }
        // Within one emission: sorted by window start, then key.
        let order = (row.start, row.id);
        assert!(
            last_order.is_none_or(|o| o < order),
            "unsorted output at {row:?}"
        );
        last_order = Some(order);
        let want = &expected[&(row.start, row.id)];
        assert_row_matches(row, &naive_row(row.id, row.start, row.start + size, want));
    }
    assert_eq!(
        seen.len(),
        expected.len(),
        "every window with accepted events is emitted"
    );
}

#[test]
fn tumbling_append_matches_ground_truth() {
    for seed in [1, 2, 3] {
        check_append_fixed(1_000, 1_000, seed);
    }
}

#[test]
fn hopping_append_matches_ground_truth() {
    check_append_fixed(3_000, 1_000, 4);
    check_append_fixed(2_500, 1_000, 5);
}

#[test]
fn tumbling_update_matches_ground_truth() {
    let seed = 6;
    let size = 2_000;
    let events = gen_events(seed, 30_000);
    let window = WindowSpec::Tumbling {
        size: DurationMs(size),
    };
    let mut d = Driver::new(
        operator(Some(window), OutputMode::Update),
        events.len(),
        seed,
        5,
    );
    // Step manually to check every trigger against the events processed since the previous one.
    let mut acc: BTreeMap<(i64, i64), Vec<Event>> = BTreeMap::new();
    let mut touched: BTreeSet<(i64, i64)> = BTreeSet::new();
    let mut checked_rows = 0;
    while d.next < d.batches.len() {
        let range = d.batches[d.next].clone();
        let log_len = d.log.len();
        d.step(&events);
        for j in range {
            let e = events[j];
            let start = e.t.div_euclid(size) * size;
            if d.wm_at[j].is_none_or(|w| start + size > w) {
                acc.entry((start, e.id)).or_default().push(e);
                touched.insert((start, e.id));
            }
        }
        let new: Vec<(Cause, RecordBatch)> = d.log[log_len..].to_vec();
        if new.iter().any(|(c, _)| matches!(c, Cause::Trigger(_))) {
            let emitted: Vec<Row> = new.iter().flat_map(|(_, b)| rows_of(b)).collect();
            let keys: BTreeSet<(i64, i64)> = emitted.iter().map(|r| (r.start, r.id)).collect();
            assert_eq!(
                keys.len(),
                emitted.len(),
                "a row emitted twice in one trigger"
            );
            assert_eq!(
                keys, touched,
                "a trigger emits exactly the rows changed since the last one"
            );
            for r in &emitted {
                assert_row_matches(
                    r,
                    &naive_row(r.id, r.start, r.start + size, &acc[&(r.start, r.id)]),
                );
            }
            checked_rows += emitted.len();
            touched.clear();
        } else {
            assert!(new.is_empty(), "update mode emits only at triggers");
        }
        // State holds exactly the windows still open (or awaiting their last emission).
        let wm = d.op.watermark();
        let open = acc
            .keys()
            .filter(|(s, _)| wm.is_none_or(|w| s + size > w))
            .count();
        let pending = touched
            .iter()
            .filter(|(s, _)| wm.is_some_and(|w| s + size <= w))
            .count();
        assert_eq!(d.op.metrics().num_rows_total as usize, open + pending);
        assert_eq!(d.op.metrics().num_rows_updated as usize, touched.len());
    }
    assert!(checked_rows > 1_000);
    let (_, late) = naive_fixed(&events, &d.wm_at, size, size);
    assert_eq!(d.op.metrics().num_rows_dropped_by_watermark, late);
    // Closing flushes the pending changes.
    let mut out = Vec::new();
    d.op.on_close(&mut out).unwrap();
    let emitted: BTreeSet<(i64, i64)> = out
        .iter()
        .flat_map(rows_of)
        .map(|r| (r.start, r.id))
        .collect();
    assert_eq!(emitted, touched);
}

/// Ground truth for sessions: per key, the on-time events (`t ≥ watermark`) sorted by time,
/// split where the next event is `gap` or more after the previous one.
fn naive_sessions(events: &[Event], wm_at: &[Option<i64>], gap: i64) -> (Vec<Row>, u64) {
    let mut per_key: BTreeMap<i64, Vec<Event>> = BTreeMap::new();
    let mut late = 0;
    for (e, wm) in events.iter().zip(wm_at) {
        if wm.is_none_or(|w| e.t >= w) {
            per_key.entry(e.id).or_default().push(*e);
        } else {
            late += 1;
        }
    }
    let mut rows = Vec::new();
    for (id, mut evs) in per_key {
        evs.sort_by_key(|e| e.t);
        let mut current: Vec<Event> = Vec::new();
        for e in evs {
            if let Some(last) = current.last() {
                if e.t - last.t >= gap {
                    let (s, l) = (current[0].t, last.t);
                    rows.push(naive_row(id, s, l + gap, &current));
                    current.clear();
                }
            }
            current.push(e);
        }
        let (s, l) = (current[0].t, current[current.len() - 1].t);
        rows.push(naive_row(id, s, l + gap, &current));
    }
    (rows, late)
}

fn check_sessions(seed: u64, gap: i64, sparse: bool) {
    let mut events = gen_events(seed, 20_000);
    if sparse {
        // Stretch time so sessions end often and out-of-order events bridge them.
        for e in &mut events {
            e.t = 1_700_000_000_000 + (e.t - 1_700_000_000_000) * 8;
        }
    }
    let window = WindowSpec::Session {
        gap: DurationMs(gap),
    };
    let mut d = Driver::new(
        operator(Some(window), OutputMode::Append),
        events.len(),
        seed,
        3,
    );
    d.run_to_end(&events);
    let (expected, late) = naive_sessions(&events, &d.wm_at, gap);
    assert!(late > 100);
    assert_eq!(d.op.metrics().num_rows_dropped_by_watermark, late);
    let mut got: Vec<(Cause, Row)> = d.rows();
    for (cause, row) in &got {
        if let Cause::Watermark(wm) = cause {
            assert!(
                row.end <= *wm,
                "session emitted before it was final: {row:?}"
            );
        }
    }
    got.sort_by_key(|(_, r)| (r.id, r.start));
    assert_eq!(got.len(), expected.len(), "number of sessions");
    for ((_, g), w) in got.iter().zip(&expected) {
        assert_row_matches(g, w);
    }
    assert!(
        expected.len() > 200,
        "the stream must have many sessions ({})",
        expected.len()
    );
}

#[test]
fn session_append_matches_ground_truth() {
    check_sessions(7, 400, true);
    check_sessions(8, 1_000, true);
    check_sessions(9, 150, false);
}

#[test]
fn session_merges_when_an_event_bridges_two_sessions() {
    let window = WindowSpec::Session {
        gap: DurationMs(10),
    };
    let mut op = operator(Some(window), OutputMode::Update);
    let ev = |id, t| Event {
        id,
        value: Some(t as f64),
        n: Some(1),
        t,
        partition: 0,
    };
    let mut out = Vec::new();
    op.process_batch(to_batch(&[ev(1, 0), ev(1, 16), ev(2, 5)]), &mut out)
        .unwrap();
    assert_eq!(op.metrics().num_rows_total, 3);
    op.on_trigger(&mut out).unwrap();
    let rows = rows_of(&out[0]);
    assert_eq!(
        rows.iter()
            .map(|r| (r.id, r.start, r.end, r.count))
            .collect::<Vec<_>>(),
        [(1, 0, 10, 1), (2, 5, 15, 1), (1, 16, 26, 1)]
    );
    // 8 is within the gap of both 0 and 16: the two sessions of key 1 become one.
    out.clear();
    op.process_batch(to_batch(&[ev(1, 8)]), &mut out).unwrap();
    assert_eq!(op.metrics().num_rows_total, 2);
    op.on_trigger(&mut out).unwrap();
    let rows = rows_of(&out[0]);
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].start, rows[0].end, rows[0].count, rows[0].sum),
        (0, 26, 3, Some(24.0))
    );
    // Exactly `gap` after the last event: a new session.
    out.clear();
    op.process_batch(to_batch(&[ev(1, 26), ev(1, -10)]), &mut out)
        .unwrap();
    assert_eq!(op.metrics().num_rows_total, 4);
    op.on_watermark(26, &mut out).unwrap();
    assert!(out.is_empty());
    op.on_trigger(&mut out).unwrap();
    let rows = rows_of(&out[0]);
    assert_eq!(
        rows.iter()
            .map(|r| (r.id, r.start, r.end, r.count))
            .collect::<Vec<_>>(),
        [(1, -10, 0, 1), (1, 26, 36, 1)]
    );
    // Closed sessions were dropped after their last update; key 1's open session remains.
    assert_eq!(op.metrics().num_rows_total, 1);
    // Below the watermark: late.
    op.process_batch(to_batch(&[ev(3, 25)]), &mut out).unwrap();
    assert_eq!(op.metrics().num_rows_dropped_by_watermark, 1);
}

/// Runs the same stream twice, once with a snapshot/restore into a fresh operator (and
/// tracker) halfway; outputs must be identical, bit for bit.
fn check_snapshot_restore(window: Option<WindowSpec>, mode: OutputMode, seed: u64) {
    let events = gen_events(seed, 20_000);
    let make = || {
        let aggs = {
            let mut a = standard_aggs();
            a.push(AggregateSpec {
                function: F::ApproxPercentile,
                column: Some("value".into()),
                percentile: Some(0.9),
                alias: Some("p90".into()),
            });
            a
        };
        WindowAggregate::new(schema(), &["id".to_string()], window.as_ref(), &aggs, mode).unwrap()
    };
    let mut full = Driver::new(make(), events.len(), seed, 4);
    full.run_to_end(&events);

    let mut first = Driver::new(make(), events.len(), seed, 4);
    let half = first.batches.len() / 2 + 1;
    while first.next < half {
        first.step(&events);
    }
    let state = first.op.snapshot().unwrap();
    let wm_state = serde_json::to_string(&first.tracker.snapshot()).unwrap();
    assert_eq!(
        state,
        first.op.snapshot().unwrap(),
        "snapshots are deterministic"
    );
    let mut second = Driver::new(make(), events.len(), seed, 4);
    second.op.restore(&state).unwrap();
    second
        .tracker
        .restore(serde_json::from_str(&wm_state).unwrap());
    assert_eq!(
        second.op.snapshot().unwrap(),
        state,
        "restore then snapshot is the identity"
    );
    assert_eq!(
        second.op.metrics().num_rows_total,
        first.op.metrics().num_rows_total
    );
    assert_eq!(
        second.op.metrics().num_rows_updated,
        first.op.metrics().num_rows_updated
    );
    (second.next, second.triggers) = (first.next, first.triggers);
    second.run_to_end(&events);

    let mut resumed = first.log.clone();
    resumed.extend(second.log.iter().cloned());
    assert!(!full.log.is_empty());
    assert_eq!(resumed.len(), full.log.len());
    for ((c1, b1), (c2, b2)) in resumed.iter().zip(&full.log) {
        assert_eq!(c1, c2);
        assert_eq!(b1, b2);
    }
    let counters = |m: crate::operator::OperatorMetrics| {
        (
            m.num_rows_total,
            m.num_rows_updated,
            m.num_rows_dropped_by_watermark,
        )
    };
    assert_eq!(counters(second.op.metrics()), counters(full.op.metrics()));
}

#[test]
fn snapshot_restore_equivalence() {
    let tumbling = WindowSpec::Tumbling {
        size: DurationMs(1_000),
    };
    check_snapshot_restore(Some(tumbling.clone()), OutputMode::Append, 10);
    check_snapshot_restore(Some(tumbling), OutputMode::Update, 11);
    let hopping = WindowSpec::Hopping {
        size: DurationMs(3_000),
        slide: DurationMs(1_000),
    };
    check_snapshot_restore(Some(hopping), OutputMode::Update, 12);
    let session = WindowSpec::Session {
        gap: DurationMs(300),
    };
    check_snapshot_restore(Some(session.clone()), OutputMode::Append, 13);
    check_snapshot_restore(Some(session), OutputMode::Update, 14);
    check_snapshot_restore(None, OutputMode::Update, 15);
}

#[test]
fn restore_refuses_foreign_or_corrupt_state() {
    let tumbling = WindowSpec::Tumbling {
        size: DurationMs(1_000),
    };
    let mut op = operator(Some(tumbling), OutputMode::Append);
    let mut out = Vec::new();
    op.process_batch(to_batch(&gen_events(1, 100)), &mut out)
        .unwrap();
    let state = op.snapshot().unwrap();
    let mut other = operator(
        Some(WindowSpec::Tumbling {
            size: DurationMs(2_000),
        }),
        OutputMode::Append,
    );
    assert!(other.restore(&state).is_err());
    for cut in [0, 3, 10, state.len() / 2, state.len() - 1] {
        let mut fresh = operator(
            Some(WindowSpec::Tumbling {
                size: DurationMs(1_000),
            }),
            OutputMode::Append,
        );
        if cut > 0 {
            assert!(fresh.restore(&state[..cut]).is_err(), "truncated at {cut}");
        }
    }
    let mut fresh = operator(
        Some(WindowSpec::Tumbling {
            size: DurationMs(1_000),
        }),
        OutputMode::Append,
    );
    fresh.restore(&state).unwrap();
    assert_eq!(fresh.metrics(), op.metrics());
}

mod behaviour;
