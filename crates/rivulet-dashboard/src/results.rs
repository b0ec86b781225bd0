//! The query's result rows as the dashboard keeps them: per group key, the latest value of
//! each of its last `max_windows` windows, for at most `max_keys` keys (the keys whose latest
//! window is oldest are forgotten first). Update mode re-emits a window each time it changes;
//! the newest emission replaces the older one, so what is kept is what the sinks hold last.

use std::collections::{BTreeMap, HashMap};

use arrow::array::{Array, ArrayRef, Int64Array, TimestampMillisecondArray};
use arrow::record_batch::RecordBatch;
use rivulet_engine::plan::{columns, AggregateFunction, DerivedColumn, Plan};
use rivulet_runtime::rows::json_value;
use serde::Serialize;
use serde_json::{Map, Value};

/// Key of the single group of a query without `group_by`.
pub const ALL_KEY: &str = "all";

/// One aggregate column of the results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AggregateColumn {
    /// The output column (`count`, `avg_value`, ...).
    pub name: String,
    pub function: String,
    pub column: Option<String>,
}

/// What the result rows look like, from the plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResultShape {
    pub group_by: Vec<String>,
    pub aggregates: Vec<AggregateColumn>,
    pub windowed: bool,
    /// The `count` aggregate, which ranks keys ("top-N by count").
    pub count_column: Option<String>,
}

impl ResultShape {
    pub fn of(plan: &Plan) -> ResultShape {
        let aggregate_columns: Vec<AggregateColumn> = plan
            .aggregates
            .iter()
            .map(|a| AggregateColumn {
                name: a.output_name(),
                function: a.function.name().to_string(),
                column: a.column.clone(),
            })
            .collect();
        let count = plan
            .aggregates
            .iter()
            .find(|a| a.function == AggregateFunction::Count)
            .map(|a| a.output_name());
        if plan.select.is_empty() {
            return ResultShape {
                group_by: plan.group_by.clone(),
                aggregates: aggregate_columns,
                windowed: plan.window.is_some(),
                count_column: count,
            };
        }
        // A SELECT list: its value columns are whatever is not a key or a window bound; a
        // column that is an aggregate under another name keeps the aggregate's description.
        let window = [columns::WINDOW_START, columns::WINDOW_END];
        let values = plan
            .select
            .iter()
            .filter(|c| !plan.group_by.contains(&c.name) && !window.contains(&c.name.as_str()));
        let source = |c: &DerivedColumn| aggregate_columns.iter().find(|a| a.name == c.expr.trim());
        ResultShape {
            group_by: plan.group_by.clone(),
            aggregates: values
                .clone()
                .map(|c| match source(c) {
                    Some(a) => AggregateColumn {
                        name: c.name.clone(),
                        ..a.clone()
                    },
                    None => AggregateColumn {
                        name: c.name.clone(),
                        function: "expr".to_string(),
                        column: Some(c.expr.clone()),
                    },
                })
                .collect(),
            windowed: plan.window.is_some(),
            count_column: values
                .filter(|c| count.as_deref() == Some(c.expr.trim()))
                .map(|c| c.name.clone())
                .next(),
        }
    }
}

/// One window of one key, at its latest emitted value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowRow {
    pub key: String,
    /// None for an unwindowed (running) aggregation.
    pub window_start_ms: Option<i64>,
    pub window_end_ms: Option<i64>,
    /// Aggregate output column → value (numbers, or null).
    pub values: Map<String, Value>,
    /// The epoch that emitted this value.
    pub epoch: u64,
}

#[derive(Debug)]
struct KeySeries {
    /// Group column → value, for the API.
    key_values: Map<String, Value>,
    /// Window start → row.
    windows: BTreeMap<i64, WindowRow>,
    /// Sum of the count column over the kept windows (or their number without one).
    weight: f64,
    /// Latest window end seen (eviction order).
    last_end: i64,
    /// The task that emitted it last, in a query spread over processes.
    task: Option<i32>,
}

/// A key and its rank weight, for the key selector.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyWeight {
    pub key: String,
    pub values: Map<String, Value>,
    /// Sum of `count` over the kept windows.
    pub count: f64,
    pub windows: usize,
}

/// The bounded store; see the module docs.
#[derive(Debug)]
pub struct ResultStore {
    shape: ResultShape,
    max_windows: usize,
    max_keys: usize,
    keys: HashMap<String, KeySeries>,
    rows_seen: u64,
}

impl ResultStore {
    pub fn new(shape: ResultShape, max_windows: usize, max_keys: usize) -> ResultStore {
        ResultStore {
            shape,
            max_windows: max_windows.max(1),
            max_keys: max_keys.max(1),
            keys: HashMap::new(),
            rows_seen: 0,
        }
    }

    pub fn shape(&self) -> &ResultShape {
        &self.shape
    }

    /// Result rows received so far (all emissions, replaced ones included).
    pub fn rows_seen(&self) -> u64 {
        self.rows_seen
    }

    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// Takes in one epoch's result rows. Columns are found by name; a batch without the
    /// expected columns (a plan the dashboard does not understand) adds nothing.
    pub fn ingest(&mut self, epoch: u64, batches: &[RecordBatch]) {
        self.ingest_from(None, epoch, batches);
    }

    /// [`Self::ingest`] of task `task`'s epoch, in a query spread over processes.
    pub fn ingest_from(&mut self, task: Option<i32>, epoch: u64, batches: &[RecordBatch]) {
        for batch in batches {
            self.ingest_batch(task, epoch, batch);
        }
        if self.keys.len() > self.max_keys {
            self.evict_keys();
        }
    }

    /// Forgets the keys last emitted by a task that `keep` refuses (it moved to another
    /// process, whose dashboard shows its rows from now on; here they would stay frozen).
    pub fn forget_tasks(&mut self, keep: impl Fn(i32) -> bool) {
        self.keys.retain(|_, s| s.task.is_none_or(&keep));
    }

    fn ingest_batch(&mut self, task: Option<i32>, epoch: u64, batch: &RecordBatch) {
        let col = |name: &str| batch.column_by_name(name).cloned();
        let key_cols: Option<Vec<(String, ArrayRef)>> = self
            .shape
            .group_by
            .iter()
            .map(|k| col(k).map(|c| (k.clone(), c)))
            .collect();
        let Some(key_cols) = key_cols else { return };
        let start = col(columns::WINDOW_START);
        let end = col(columns::WINDOW_END);
        let aggs: Vec<(String, ArrayRef)> = self
            .shape
            .aggregates
            .iter()
            .filter_map(|a| col(&a.name).map(|c| (a.name.clone(), c)))
            .collect();
        for i in 0..batch.num_rows() {
            let mut key_values = Map::new();
            let mut parts = Vec::with_capacity(key_cols.len());
            for (name, c) in &key_cols {
                let v = json_value(c, i);
                parts.push(match &v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                });
                key_values.insert(name.clone(), v);
            }
            let key = if parts.is_empty() {
                ALL_KEY.to_string()
            } else {
                parts.join(" / ")
            };
            let mut values = Map::new();
            for (name, c) in &aggs {
                values.insert(name.clone(), json_value(c, i));
            }
            let row = WindowRow {
                key: key.clone(),
                window_start_ms: start.as_ref().and_then(|c| ts_ms(c, i)),
                window_end_ms: end.as_ref().and_then(|c| ts_ms(c, i)),
                values,
                epoch,
            };
            self.rows_seen += 1;
            self.upsert(key, key_values, row, task);
        }
    }

    fn weight_of(&self, row: &WindowRow) -> f64 {
        match &self.shape.count_column {
            Some(c) => row.values.get(c).and_then(Value::as_f64).unwrap_or(0.0),
            None => 1.0,
        }
    }

    fn upsert(
        &mut self,
        key: String,
        key_values: Map<String, Value>,
        row: WindowRow,
        task: Option<i32>,
    ) {
        let w = self.weight_of(&row);
        let slot = row.window_start_ms.unwrap_or(i64::MIN);
        let end = row.window_end_ms.unwrap_or(i64::MIN);
        let max_windows = self.max_windows;
        let count_col = self.shape.count_column.clone();
        let weight = |r: &WindowRow| match &count_col {
            Some(c) => r.values.get(c).and_then(Value::as_f64).unwrap_or(0.0),
            None => 1.0,
        };
        let series = self.keys.entry(key).or_insert_with(|| KeySeries {
            key_values,
            windows: BTreeMap::new(),
            weight: 0.0,
            last_end: i64::MIN,
            task,
        });
        series.task = task;
        if let Some(old) = series.windows.insert(slot, row) {
            series.weight -= weight(&old);
        }
        series.weight += w;
        series.last_end = series.last_end.max(end);
        while series.windows.len() > max_windows {
            if let Some((_, old)) = series.windows.pop_first() {
                series.weight -= weight(&old);
            }
        }
    }

    /// Forgets the keys whose latest window is oldest, down to 90% of `max_keys` (so this
    /// runs once per many new keys, not for every one).
    fn evict_keys(&mut self) {
        let keep = self.max_keys - self.max_keys / 10;
        let mut by_age: Vec<(i64, String)> = self
            .keys
            .iter()
            .map(|(k, s)| (s.last_end, k.clone()))
            .collect();
        by_age.sort();
        let drop = self.keys.len().saturating_sub(keep);
        for (_, k) in by_age.into_iter().take(drop) {
            self.keys.remove(&k);
        }
    }

    /// The `n` keys with the largest count over their kept windows (ties by key order).
    pub fn top_keys(&self, n: usize) -> Vec<KeyWeight> {
        let mut all: Vec<KeyWeight> = self
            .keys
            .iter()
            .map(|(k, s)| KeyWeight {
                key: k.clone(),
                values: s.key_values.clone(),
                count: s.weight,
                windows: s.windows.len(),
            })
            .collect();
        all.sort_by(|a, b| {
            b.count
                .total_cmp(&a.count)
                .then_with(|| natural_cmp(&a.key, &b.key))
        });
        all.truncate(n);
        all
    }

    /// Whether `key` is known.
    pub fn has_key(&self, key: &str) -> bool {
        self.keys.contains_key(key)
    }

    /// The last `windows` windows of each of `keys` (unknown keys are skipped), ordered by
    /// window end, then key.
    pub fn windows(&self, keys: &[String], windows: usize) -> Vec<WindowRow> {
        let mut out = Vec::new();
        for k in keys {
            if let Some(s) = self.keys.get(k) {
                let skip = s.windows.len().saturating_sub(windows);
                out.extend(s.windows.values().skip(skip).cloned());
            }
        }
        out.sort_by(|a, b| {
            a.window_end_ms
                .cmp(&b.window_end_ms)
                .then_with(|| natural_cmp(&a.key, &b.key))
        });
        out
    }
}

/// Milliseconds of a window bound (the engine's timestamps are ms; Int64 is accepted too).
fn ts_ms(col: &ArrayRef, i: usize) -> Option<i64> {
    if col.is_null(i) {
        return None;
    }
    if let Some(a) = col.as_any().downcast_ref::<TimestampMillisecondArray>() {
        return Some(a.value(i));
    }
    col.as_any()
        .downcast_ref::<Int64Array>()
        .map(|a| a.value(i))
}

/// Numeric keys in numeric order (`2` before `10`), others as text.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x.total_cmp(&y).then_with(|| a.cmp(b)),
        (Ok(_), Err(_)) => std::cmp::Ordering::Less,
        (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Float64Array, Int64Array, TimestampMillisecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

    use super::*;

    fn shape() -> ResultShape {
        let text = rivulet_testkit::small_plan_with(&[(
            "function = \"count\"",
            "function = \"count\"\n[[aggregates]]\nfunction = \"avg\"\ncolumn = \"value\"",
        )]);
        let plan = rivulet_engine::Plan::from_toml(&text).unwrap();
        ResultShape::of(&plan)
    }

    fn batch(rows: &[(i64, i64, i64, f64)]) -> RecordBatch {
        let ts = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("window_start", ts.clone(), false),
            Field::new("window_end", ts, false),
            Field::new("count", DataType::Int64, false),
            Field::new("avg_value", DataType::Float64, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(
                    TimestampMillisecondArray::from_iter_values(rows.iter().map(|r| r.1))
                        .with_timezone("UTC"),
                ),
                Arc::new(
                    TimestampMillisecondArray::from_iter_values(rows.iter().map(|r| r.1 + 10_000))
                        .with_timezone("UTC"),
                ),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
                Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.3))),
            ],
        )
        .unwrap()
    }

    #[test]
    fn shape_names_the_output_columns() {
        let s = shape();
        assert_eq!(s.group_by, vec!["id"]);
        let names: Vec<&str> = s.aggregates.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["count", "avg_value"]);
        assert_eq!(s.count_column.as_deref(), Some("count"));
        assert!(s.windowed);
    }

    #[test]
    fn updates_replace_and_rank_by_count() {
        let mut st = ResultStore::new(shape(), 3, 100);
        st.ingest(0, &[batch(&[(1, 0, 5, 1.0), (2, 0, 9, 2.0)])]);
        // Update mode: window 0 of key 1 again, now with 20 rows; key 10 ranks numerically.
        st.ingest(1, &[batch(&[(1, 0, 20, 1.5), (10, 0, 1, 3.0)])]);
        let top = st.top_keys(10);
        let keys: Vec<&str> = top.iter().map(|k| k.key.as_str()).collect();
        assert_eq!(keys, ["1", "2", "10"]);
        assert_eq!(top[0].count, 20.0);
        assert_eq!(top[0].values["id"], 1);
        let w = st.windows(&["1".into()], 10);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].epoch, 1);
        assert_eq!(w[0].values["avg_value"], 1.5);
        assert_eq!(w[0].window_end_ms, Some(10_000));
        assert_eq!(st.rows_seen(), 4);
    }

    #[test]
    fn keeps_the_last_windows_and_bounded_keys() {
        let mut st = ResultStore::new(shape(), 2, 10);
        for w in 0..5 {
            st.ingest(w as u64, &[batch(&[(1, w * 10_000, 1, 1.0)])]);
        }
        let w = st.windows(&["1".into(), "missing".into()], 10);
        let starts: Vec<i64> = w.iter().filter_map(|r| r.window_start_ms).collect();
        assert_eq!(starts, [30_000, 40_000]);
        assert_eq!(
            st.top_keys(1)[0].count,
            2.0,
            "weight follows evicted windows"
        );
        assert_eq!(st.windows(&["1".into()], 1).len(), 1);
        // 20 keys, each with a later window than the one before: the oldest are forgotten.
        for k in 100..120 {
            st.ingest(9, &[batch(&[(k, k * 10_000, 1, 1.0)])]);
        }
        assert!(st.key_count() <= 10);
        assert!(st.has_key("119"));
        assert!(!st.has_key("100"));
    }
}
