//! Event-time watermarks.
//!
//! A watermark is the engine's statement "no more rows with event time below W are expected"
//! (Spark's `withWatermark`, Flink's `WatermarkStrategy.forBoundedOutOfOrderness`). It is what
//! lets windowed aggregations in append mode emit final results and drop their state.
//!
//! [`WatermarkTracker`] derives it from the data, per source partition:
//!
//! * **per partition**: `max event time seen − allowed lateness` (bounded out-of-orderness);
//! * **combined**: the *minimum* over partitions, so a slow partition holds the watermark back
//!   instead of having its rows dropped as late (Flink's per-split watermarks; Spark instead takes
//!   one global max, which drops more data when partitions are skewed);
//! * **idleness**: a partition without data for `idle_timeout` stops holding the watermark back
//!   (Flink's `withIdleness`). When *every* partition is idle the maximum over partitions is used,
//!   so the last windows still close when the stream pauses;
//! * **known but silent partitions hold it back**: a source registers every partition it reads
//!   ([`WatermarkTracker::register`]) before data arrives, and there is no watermark until each
//!   one has had data or gone idle (Flink's behaviour). Otherwise the partition polled first
//!   would push the watermark past data the others have not delivered yet, and their rows would
//!   be dropped as late;
//! * **monotonic**: the combined watermark never moves back, even when a new partition appears
//!   with older data or an idle partition wakes up.
//!
//! Idleness is measured in processing time (`now_ms`, supplied by the caller so tests are
//! deterministic). An `idle_timeout_ms <= 0` disables idleness.
//!
//! [`split_late`] separates the rows of a batch that are behind the watermark
//! (`_event_time < watermark`, Spark's rule), e.g. to route them to a late-data topic.

use std::collections::BTreeMap;

use arrow::array::{Array, BooleanArray, Int32Array, Int64Array};
use arrow::compute::filter_record_batch;
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};
use crate::plan::columns;

/// What the tracker knows about one source partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionWatermark {
    /// Largest event time (ms) seen on the partition; [`NO_DATA`] while it has had none.
    pub max_event_time_ms: i64,
    /// Processing time (ms) of the last batch that had rows for the partition.
    pub last_seen_ms: i64,
}

/// `max_event_time_ms` of a registered partition that has not delivered data yet.
pub const NO_DATA: i64 = i64::MIN;

/// The tracker's checkpointable state (see [`WatermarkTracker::snapshot`]).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WatermarkState {
    pub partitions: BTreeMap<i32, PartitionWatermark>,
    /// The combined watermark last returned by `advance` (None before the first).
    pub current: Option<i64>,
}

/// Per-partition bounded-out-of-orderness watermarks with idleness; see the module docs.
#[derive(Debug, Clone)]
pub struct WatermarkTracker {
    allowed_lateness_ms: i64,
    idle_timeout_ms: i64,
    state: WatermarkState,
}

impl WatermarkTracker {
    pub fn new(allowed_lateness_ms: i64, idle_timeout_ms: i64) -> Self {
        Self {
            allowed_lateness_ms: allowed_lateness_ms.max(0),
            idle_timeout_ms,
            state: WatermarkState::default(),
        }
    }

    /// Makes `partition` known before it has data, so it holds the watermark back until it
    /// delivers rows or goes idle. Partitions already known are left as they are.
    pub fn register(&mut self, partition: i32, now_ms: i64) {
        self.state
            .partitions
            .entry(partition)
            .or_insert(PartitionWatermark {
                max_event_time_ms: NO_DATA,
                last_seen_ms: now_ms,
            });
    }

    /// Records that a batch processed at `now_ms` had rows for `partition` with event times up to
    /// `max_event_time_ms`.
    pub fn observe(&mut self, partition: i32, max_event_time_ms: i64, now_ms: i64) {
        let p = self
            .state
            .partitions
            .entry(partition)
            .or_insert(PartitionWatermark {
                max_event_time_ms,
                last_seen_ms: now_ms,
            });
        p.max_event_time_ms = p.max_event_time_ms.max(max_event_time_ms);
        p.last_seen_ms = p.last_seen_ms.max(now_ms);
    }

    /// Records that `input` (an upstream task behind a repartition topic, which sent its own
    /// watermark in-band) is at `watermark_ms`: as if it had delivered rows up to the
    /// watermark plus the allowed lateness, so the combined watermark is the minimum over the
    /// inputs (Flink's watermark alignment over a shuffle), with the same idleness rules.
    pub fn observe_watermark(&mut self, input: i32, watermark_ms: i64, now_ms: i64) {
        self.observe(
            input,
            watermark_ms.saturating_add(self.allowed_lateness_ms),
            now_ms,
        );
    }

    /// Observes every partition of a decoded batch (its `_partition` and `_event_time` columns).
    /// Rows with a null partition or event time are ignored.
    pub fn observe_batch(&mut self, batch: &RecordBatch, now_ms: i64) -> Result<()> {
        let times = event_time_column(batch)?;
        let parts = batch.column_by_name(columns::PARTITION).ok_or_else(|| {
            EngineError::Other(format!("batch has no `{}` column", columns::PARTITION))
        })?;
        let parts = parts.as_any().downcast_ref::<Int32Array>().ok_or_else(|| {
            EngineError::Other(format!(
                "`{}` must be Int32, found {}",
                columns::PARTITION,
                parts.data_type()
            ))
        })?;
        // Batches normally hold one partition (or a few): accumulate maxima with a tiny linear map.
        let mut maxima: Vec<(i32, i64)> = Vec::new();
        for i in 0..batch.num_rows() {
            if times.is_null(i) || parts.is_null(i) {
                continue;
            }
            let (p, t) = (parts.value(i), times.value(i));
            match maxima.iter_mut().find(|(q, _)| *q == p) {
                Some((_, m)) => *m = (*m).max(t),
                None => maxima.push((p, t)),
            }
        }
        for (p, t) in maxima {
            self.observe(p, t, now_ms);
        }
        Ok(())
    }

    /// Recomputes the combined watermark at processing time `now_ms`; returns it when it moved
    /// forward (the first value counts as a move).
    pub fn advance(&mut self, now_ms: i64) -> Option<i64> {
        let lateness = self.allowed_lateness_ms;
        let per_partition = |p: &PartitionWatermark| p.max_event_time_ms.saturating_sub(lateness);
        let active: Vec<&PartitionWatermark> = self
            .state
            .partitions
            .values()
            .filter(|p| !self.is_idle(p, now_ms))
            .collect();
        // A live partition that has not delivered anything yet: no watermark can be trusted.
        if active.iter().any(|p| p.max_event_time_ms == NO_DATA) {
            return None;
        }
        let candidate = match active.iter().map(|p| per_partition(p)).min() {
            Some(wm) => wm,
            // Every partition is idle (or none exists): let the furthest one drive time so the
            // remaining windows close.
            None => self
                .state
                .partitions
                .values()
                .filter(|p| p.max_event_time_ms != NO_DATA)
                .map(per_partition)
                .max()?,
        };
        match self.state.current {
            Some(cur) if candidate <= cur => None,
            _ => {
                self.state.current = Some(candidate);
                Some(candidate)
            }
        }
    }

    fn is_idle(&self, p: &PartitionWatermark, now_ms: i64) -> bool {
        self.idle_timeout_ms > 0 && now_ms.saturating_sub(p.last_seen_ms) >= self.idle_timeout_ms
    }

    /// The combined watermark last returned by [`advance`](Self::advance).
    pub fn current(&self) -> Option<i64> {
        self.state.current
    }

    pub fn allowed_lateness_ms(&self) -> i64 {
        self.allowed_lateness_ms
    }

    pub fn idle_timeout_ms(&self) -> i64 {
        self.idle_timeout_ms
    }

    /// State for a checkpoint.
    pub fn snapshot(&self) -> WatermarkState {
        self.state.clone()
    }

    /// Replaces the state with one from [`snapshot`](Self::snapshot). `last_seen_ms` values are
    /// processing times of the previous run; a restarted query should call `observe` as data
    /// arrives, and partitions that stay silent become idle after the timeout as usual.
    pub fn restore(&mut self, state: WatermarkState) {
        self.state = state;
    }
}

fn event_time_column(batch: &RecordBatch) -> Result<&Int64Array> {
    let col = batch.column_by_name(columns::EVENT_TIME).ok_or_else(|| {
        EngineError::Other(format!("batch has no `{}` column", columns::EVENT_TIME))
    })?;
    col.as_any().downcast_ref::<Int64Array>().ok_or_else(|| {
        EngineError::Other(format!(
            "`{}` must be Int64, found {}",
            columns::EVENT_TIME,
            col.data_type()
        ))
    })
}

/// Splits `batch` into (on-time rows, late rows): a row is late when `_event_time < watermark`.
/// With no watermark yet nothing is late. Rows with a null event time are kept on time (they
/// cannot be compared; the decoder normally refuses them). Returns `None` for the late part when
/// no row is late, without copying the batch.
pub fn split_late(
    batch: &RecordBatch,
    watermark: Option<i64>,
) -> Result<(RecordBatch, Option<RecordBatch>)> {
    let Some(wm) = watermark else {
        return Ok((batch.clone(), None));
    };
    let times = event_time_column(batch)?;
    let late: BooleanArray = (0..times.len())
        .map(|i| Some(times.is_valid(i) && times.value(i) < wm))
        .collect();
    let num_late = late.true_count();
    if num_late == 0 {
        return Ok((batch.clone(), None));
    }
    let on_time = arrow::compute::not(&late)?;
    Ok((
        filter_record_batch(batch, &on_time)?,
        Some(filter_record_batch(batch, &late)?),
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use arrow::array::StringArray;
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn min_over_partitions() {
        let mut t = WatermarkTracker::new(1_000, 0);
        assert_eq!(t.advance(0), None);
        t.observe(0, 10_000, 0);
        t.observe(1, 5_000, 0);
        assert_eq!(t.advance(0), Some(4_000));
        t.observe(1, 20_000, 1);
        // Partition 0 is now the slowest.
        assert_eq!(t.advance(1), Some(9_000));
        assert_eq!(t.advance(2), None);
        assert_eq!(t.current(), Some(9_000));
    }

    #[test]
    fn registered_partition_without_data_holds_the_watermark_until_idle() {
        let mut t = WatermarkTracker::new(1_000, 10_000);
        t.register(0, 0);
        t.register(1, 0);
        t.observe(0, 50_000, 100);
        // Partition 1 is known but silent: rows it has not delivered yet must not become late.
        assert_eq!(t.advance(100), None);
        assert_eq!(t.current(), None);
        t.observe(1, 20_000, 200);
        assert_eq!(t.advance(200), Some(19_000));
        // Registering again does not reset what a partition has seen.
        t.register(1, 300);
        assert_eq!(t.advance(300), None);
        assert_eq!(t.current(), Some(19_000));
        // A registered partition that never delivers stops holding back once idle.
        let mut u = WatermarkTracker::new(1_000, 10_000);
        u.register(0, 0);
        u.register(1, 0);
        u.observe(0, 50_000, 100);
        assert_eq!(u.advance(5_000), None);
        u.observe(0, 60_000, 10_500);
        assert_eq!(u.advance(10_500), Some(59_000));
        // And the all-idle fallback ignores partitions that never had data.
        assert_eq!(u.advance(100_000), None);
        assert_eq!(u.current(), Some(59_000));
    }

    #[test]
    fn idle_partition_stops_holding_back() {
        let mut t = WatermarkTracker::new(0, 5_000);
        t.observe(0, 1_000, 0);
        t.observe(1, 50_000, 0);
        assert_eq!(t.advance(0), Some(1_000));
        // Partition 1 keeps producing, partition 0 goes silent.
        t.observe(1, 60_000, 4_000);
        assert_eq!(t.advance(4_999), None);
        assert_eq!(t.advance(5_000), Some(60_000));
        // Partition 0 wakes up with old data: the watermark does not go back.
        t.observe(0, 2_000, 6_000);
        assert_eq!(t.advance(6_000), None);
        assert_eq!(t.current(), Some(60_000));
        // ...and it holds the watermark until it catches up.
        t.observe(1, 70_000, 7_000);
        assert_eq!(t.advance(7_000), None);
        t.observe(0, 65_000, 8_000);
        assert_eq!(t.advance(8_000), Some(65_000));
    }

    #[test]
    fn all_idle_uses_max() {
        let mut t = WatermarkTracker::new(500, 1_000);
        t.observe(0, 3_000, 0);
        t.observe(1, 9_000, 0);
        t.observe(2, 7_000, 0);
        assert_eq!(t.advance(0), Some(2_500));
        assert_eq!(t.advance(999), None);
        assert_eq!(t.advance(1_000), Some(8_500));
    }

    #[test]
    fn monotonic() {
        let mut t = WatermarkTracker::new(0, 0);
        t.observe(0, 10_000, 0);
        assert_eq!(t.advance(0), Some(10_000));
        // A new partition behind the watermark must not pull it back.
        t.observe(1, 1_000, 1);
        assert_eq!(t.advance(1), None);
        assert_eq!(t.current(), Some(10_000));
        t.observe(1, 12_000, 2);
        t.observe(0, 11_000, 2);
        assert_eq!(t.advance(2), Some(11_000));
    }

    #[test]
    fn snapshot_restore() {
        let mut t = WatermarkTracker::new(100, 1_000);
        t.observe(0, 5_000, 0);
        t.observe(3, 7_000, 0);
        assert_eq!(t.advance(0), Some(4_900));
        let json = serde_json::to_string(&t.snapshot()).unwrap();
        let mut r = WatermarkTracker::new(100, 1_000);
        r.restore(serde_json::from_str(&json).unwrap());
        assert_eq!(r.current(), Some(4_900));
        for tracker in [&mut t, &mut r] {
            tracker.observe(0, 8_000, 10);
            assert_eq!(tracker.advance(10), Some(6_900));
        }
        assert_eq!(t.snapshot(), r.snapshot());
    }

    fn batch(times: &[Option<i64>], parts: &[i32]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("s", DataType::Utf8, false),
            Field::new(columns::EVENT_TIME, DataType::Int64, true),
            Field::new(columns::PARTITION, DataType::Int32, false),
        ]));
        let s: StringArray = (0..times.len()).map(|i| Some(format!("r{i}"))).collect();
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(s),
                Arc::new(Int64Array::from(times.to_vec())),
                Arc::new(Int32Array::from(parts.to_vec())),
            ],
        )
        .unwrap()
    }

    #[test]
    fn split_late_rows() {
        let b = batch(
            &[Some(10), Some(5), None, Some(9), Some(20)],
            &[0, 0, 0, 1, 1],
        );
        let (on, late) = split_late(&b, None).unwrap();
        assert_eq!((on.num_rows(), late.is_none()), (5, true));
        let (on, late) = split_late(&b, Some(5)).unwrap();
        assert_eq!((on.num_rows(), late.is_none()), (5, true));
        let (on, late) = split_late(&b, Some(10)).unwrap();
        let late = late.unwrap();
        let names = |b: &RecordBatch| -> Vec<String> {
            let a = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
            a.iter().map(|s| s.unwrap().to_string()).collect()
        };
        assert_eq!(names(&on), ["r0", "r2", "r4"]);
        assert_eq!(names(&late), ["r1", "r3"]);
    }

    #[test]
    fn observe_batch_per_partition() {
        let mut t = WatermarkTracker::new(0, 0);
        t.observe_batch(
            &batch(
                &[Some(10), Some(50), None, Some(9), Some(20)],
                &[0, 0, 0, 1, 1],
            ),
            0,
        )
        .unwrap();
        assert_eq!(t.advance(0), Some(20));
        assert_eq!(t.snapshot().partitions[&0].max_event_time_ms, 50);
    }
}
