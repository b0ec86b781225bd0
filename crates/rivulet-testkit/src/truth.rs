//! Input events as the tests see them, ground truths of windowed aggregates computed with
//! plain loops, and the checks of a query's output rows against them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

pub use rivulet_time::rfc3339_ms;

use crate::kafka::produce_records;

/// One input event as the tests see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Ev {
    /// The partition it was produced to (-1: chosen by the key hash).
    pub partition: i32,
    pub id: i64,
    pub ts: i64,
    pub value: f64,
}

impl Ev {
    /// `{"id":…,"value":…,"timestamp":"<RFC 3339>"}`.
    pub fn payload(&self) -> String {
        format!(
            r#"{{"id":{},"value":{},"timestamp":"{}"}}"#,
            self.id,
            self.value,
            rfc3339_ms(self.ts)
        )
    }
}

/// `count` events in time order, 5 ms apart from `start_ms`, ids in `[0, ids)` and values
/// drawn from `seed`, each id in partition `id % partitions` (keyed by id, as the generator
/// does, so each group of a query grouping by id lives in one partition).
pub fn keyed_events(seed: u64, count: usize, ids: i64, partitions: i32, start_ms: i64) -> Vec<Ev> {
    let mut rng = crate::Rng::new(seed);
    (0..count)
        .map(|i| {
            let id = rng.range(0, ids as u64) as i64;
            Ev {
                partition: (id % i64::from(partitions)) as i32,
                id,
                ts: start_ms + i as i64 * 5,
                value: rng.value(),
            }
        })
        .collect()
}

/// Produces `events` in order, each to its partition, keyed by its id. Blocking, bounded.
pub fn produce(brokers: &str, topic: &str, events: &[Ev]) {
    let records: Vec<(Option<i32>, Option<String>, String)> = events
        .iter()
        .map(|e| {
            let partition = (e.partition >= 0).then_some(e.partition);
            (partition, Some(e.id.to_string()), e.payload())
        })
        .collect();
    produce_records(
        brokers,
        topic,
        records
            .iter()
            .map(|(p, k, v)| (*p, k.as_deref(), v.as_str())),
    );
}

/// `events` minus the rows the query reported late, matched by id, event time **and value**.
///
/// Two events can share id and timestamp (a late event is stamped onto the millisecond of an
/// earlier event of the same id), and which rows are late depends on the watermark in force
/// for the micro-batch that read them, so the query can drop the later event and aggregate the
/// earlier one; matching on (id, timestamp) alone would then remove the wrong event. Events
/// equal in all three contribute identically. Every late row must be one of the events.
pub fn on_time(events: &[Ev], late: &[serde_json::Value]) -> Vec<Ev> {
    let mut late_values: HashMap<(i64, String), Vec<f64>> = HashMap::new();
    for l in late {
        late_values
            .entry((
                l["id"].as_i64().unwrap(),
                l["timestamp"].as_str().unwrap().to_string(),
            ))
            .or_default()
            .push(l["value"].as_f64().unwrap());
    }
    let same = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(1.0);
    let mut out = Vec::new();
    for e in events {
        if let Some(vs) = late_values.get_mut(&(e.id, rfc3339_ms(e.ts))) {
            if let Some(i) = vs.iter().position(|v| same(*v, e.value)) {
                vs.swap_remove(i);
                continue;
            }
        }
        out.push(e.clone());
    }
    assert!(
        late_values.values().all(Vec::is_empty),
        "late rows not in the input (or reported twice): {late_values:?}"
    );
    out
}

/// Count, sum, min and max of a window's values.
#[derive(Debug, Clone, PartialEq)]
pub struct Agg {
    pub count: i64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
}

impl Default for Agg {
    fn default() -> Agg {
        Agg::new()
    }
}

impl Agg {
    pub fn new() -> Agg {
        Agg {
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }

    pub fn add(&mut self, v: f64) {
        self.count += 1;
        self.sum += v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }
}

/// (id, window start, window end) → aggregate.
pub type Truth = BTreeMap<(i64, i64, i64), Agg>;

/// Ground truth for fixed windows: `windows(t)` lists the (start, end) of the windows holding t.
pub fn truth_fixed(events: &[Ev], windows: impl Fn(i64) -> Vec<(i64, i64)>) -> Truth {
    let mut m = Truth::new();
    for e in events {
        for (s, w) in windows(e.ts) {
            m.entry((e.id, s, w)).or_default().add(e.value);
        }
    }
    m
}

/// The tumbling window of `size_ms` holding `t`, as `windows` for [`truth_fixed`].
pub fn tumbling(size_ms: i64) -> impl Fn(i64) -> Vec<(i64, i64)> {
    move |t| {
        let start = t.div_euclid(size_ms) * size_ms;
        vec![(start, start + size_ms)]
    }
}

/// The output rows keyed like a [`Truth`] (window bounds as RFC 3339 text matched back).
fn row_key(r: &serde_json::Value, truth: &Truth) -> (i64, i64, i64) {
    let id = r["id"].as_i64().unwrap();
    let ws = r["window_start"].as_str().unwrap();
    let we = r["window_end"].as_str().unwrap();
    *truth
        .keys()
        .find(|(i, s, w)| *i == id && rfc3339_ms(*s) == ws && rfc3339_ms(*w) == we)
        .unwrap_or_else(|| panic!("row for a window not in the ground truth: {r}"))
}

/// A row's `count`, `avg_value`, `min_value`, `max_value` (and `sum_value` where the query has
/// it) equal `want`.
fn check_agg(r: &serde_json::Value, want: &Agg) {
    assert_eq!(r["count"].as_i64().unwrap(), want.count, "{r} vs {want:?}");
    if let Some(sum) = r.get("sum_value") {
        let sum = sum.as_f64().unwrap();
        assert!(
            (sum - want.sum).abs() < 1e-6 * want.sum.abs().max(1.0),
            "{r} vs {want:?}"
        );
    }
    let avg = r["avg_value"].as_f64().unwrap();
    assert!(
        (avg - want.sum / want.count as f64).abs() < 1e-6,
        "{r} vs {want:?}"
    );
    assert_eq!(
        r["min_value"].as_f64().unwrap(),
        want.min,
        "{r} vs {want:?}"
    );
    assert_eq!(
        r["max_value"].as_f64().unwrap(),
        want.max,
        "{r} vs {want:?}"
    );
}

/// Append mode: every row matches the truth and is emitted once; every window whose end is at
/// or below `watermark` was emitted, none beyond it.
pub fn check_append(rows: &[serde_json::Value], truth: &Truth, watermark: i64) {
    let mut seen = BTreeSet::new();
    for r in rows {
        let k = row_key(r, truth);
        assert!(seen.insert(k), "window emitted twice: {r}");
        assert!(k.2 <= watermark, "window emitted before it closed: {r}");
        check_agg(r, &truth[&k]);
    }
    let missing: Vec<_> = truth
        .keys()
        .filter(|k| k.2 <= watermark && !seen.contains(k))
        .map(|(id, s, e)| format!("({id}, {}, {})", rfc3339_ms(*s), rfc3339_ms(*e)))
        .collect();
    assert!(
        missing.is_empty(),
        "{} windows missing: {missing:?}",
        missing.len()
    );
}

/// Update mode: the last row emitted for each window equals the truth, for every window.
pub fn check_update(rows: &[serde_json::Value], truth: &Truth) {
    let mut last = BTreeMap::new();
    for r in rows {
        last.insert(row_key(r, truth), r);
    }
    for (k, r) in &last {
        check_agg(r, &truth[k]);
    }
    let missing: Vec<_> = truth.keys().filter(|k| !last.contains_key(k)).collect();
    assert!(missing.is_empty(), "windows never emitted: {missing:?}");
}

/// All rows of a file sink directory (`*.jsonl`, in name order, which is epoch order); none
/// while the directory does not exist.
pub fn file_rows(dir: &Path) -> Vec<serde_json::Value> {
    let mut rows = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return rows;
    };
    let mut names: Vec<_> = rd.map(|e| e.unwrap().path()).collect();
    names.sort();
    for p in names {
        if p.extension().is_some_and(|x| x == "jsonl") {
            for l in std::fs::read_to_string(&p).unwrap().lines() {
                rows.push(serde_json::from_str(l).unwrap());
            }
        }
    }
    rows
}

/// [`check_append`] for a query run as one task per input partition (a checkpoint in Kafka,
/// `rivulet_runtime::group`): event time is tracked per task, so each partition's windows are
/// closed up to its own largest event time. Every id must live in one partition (`events`
/// carry their partitions).
pub fn check_append_per_partition(
    rows: &[serde_json::Value],
    events: &[Ev],
    windows: impl Fn(i64) -> Vec<(i64, i64)>,
) {
    let mut by_partition: BTreeMap<i32, Vec<Ev>> = BTreeMap::new();
    let mut home: HashMap<i64, i32> = HashMap::new();
    for e in events {
        let p = *home.entry(e.id).or_insert(e.partition);
        assert_eq!(
            p, e.partition,
            "id {} is in partitions {p} and {}",
            e.id, e.partition
        );
        by_partition.entry(p).or_default().push(e.clone());
    }
    let mut checked = 0;
    for (p, evs) in by_partition {
        let watermark = evs.iter().map(|e| e.ts).max().unwrap_or(i64::MIN);
        let part: Vec<serde_json::Value> = rows
            .iter()
            .filter(|r| home.get(&r["id"].as_i64().unwrap_or(-1)) == Some(&p))
            .cloned()
            .collect();
        checked += part.len();
        check_append(&part, &truth_fixed(&evs, &windows), watermark);
    }
    assert_eq!(checked, rows.len(), "rows for ids that are in no partition");
}
