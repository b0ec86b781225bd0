//! Progress reports with Spark's `StreamingQueryProgress` field names, one per epoch: a
//! one-line summary in the log, and with `--progress-json FILE` one JSON object per line.
//!
//! Rivulet adds `numDeadLetters` (records that failed decoding) and `numLateRows` (rows behind
//! the watermark, not aggregated).
//!
//! A job of several branches (a SQL file with several INSERTs over one source) still writes
//! one record per micro-batch: the source's input rows are counted once (`numInputRows`,
//! `sources`), `stateOperators` lists every branch's operators each with its `branch`, `sink`
//! sums the output rows of all sinks, and `branches` holds one entry per branch with its name
//! and its own `sink` (description and output rows). A single query's record has neither
//! `branch` nor `branches`, as in Spark. A trigger that finds no data produces no epoch; the query's
//! [`QueryStatus`] then says "Waiting for data to arrive", and the log says so once.
//!
//! A query spread over processes (`checkpoint.store = "kafka"`) writes one record per task
//! epoch, with a `task` object (its number, the task count, the owning process, the group);
//! the group member writes [`GroupEvent`]s (tasks assigned, revoked, …) to the same file, as
//! lines with an `event` field, which progress records never have.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use rivulet_engine::operator::Operator;
use rivulet_engine::plan::TriggerSpec;

use crate::checkpoint::EpochOffsets;
use crate::error::RuntimeError;
use crate::rows::rfc3339_ms;
use crate::source::TopicPartition;
use crate::Result;

/// Spark's `StreamingQueryProgress`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryProgress {
    /// Stable query id (from the checkpoint's metadata).
    pub id: String,
    /// Id of this run (new at every start).
    pub run_id: String,
    pub name: String,
    /// The epoch.
    pub batch_id: u64,
    /// When the trigger started, RFC 3339.
    pub timestamp: String,
    pub num_input_rows: u64,
    pub input_rows_per_second: f64,
    pub processed_rows_per_second: f64,
    /// Phase durations: addBatch, getBatch, walCommit, queryPlanning, commitOffsets,
    /// triggerExecution, latestOffset.
    pub duration_ms: BTreeMap<String, u64>,
    /// min / max / avg event time of the epoch's rows and the watermark, RFC 3339.
    pub event_time: BTreeMap<String, String>,
    pub state_operators: Vec<StateOperatorProgress>,
    pub sources: Vec<SourceProgress>,
    pub sink: SinkProgress,
    /// Per branch of a job with several (empty, and left out, for a single query).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub branches: Vec<BranchProgress>,
    pub num_dead_letters: u64,
    pub num_late_rows: u64,
    /// The task the record is about, in a query spread over processes (left out otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskProgress>,
}

/// Which task of a query spread over processes (`checkpoint.store = "kafka"`) a progress
/// record is about, and which process runs it. The task's lag, watermark and state size are
/// the record's `sources[].metrics.lag`, `eventTime.watermark` and `stateOperators`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskProgress {
    /// The task: its input partition number.
    pub id: i32,
    /// The query's task count.
    pub of: i32,
    /// The process running it: `<host>:<pid>`, also the start of its group member's client id.
    pub owner: String,
    /// The consumer group the processes share.
    pub group: String,
}

/// What changed in a process's share of a query spread over processes; logged, handed to the
/// observer and written to `--progress-json` next to the progress records, as a line with an
/// `event` field (a progress record has none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupEvent {
    pub event: GroupEventKind,
    /// When it happened, RFC 3339.
    pub timestamp: String,
    pub name: String,
    pub group: String,
    pub owner: String,
    /// The tasks it is about.
    pub tasks: Vec<i32>,
    /// The tasks this process runs after it.
    pub running: Vec<i32>,
    /// The query's task count.
    pub of: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum GroupEventKind {
    /// The group gave this process the tasks; they restore and start.
    TasksAssigned,
    /// The group moved the tasks away; they finished their epoch and stopped.
    TasksRevoked,
    /// The group moved the tasks while this process was away (it may be a zombie).
    TasksLost,
    /// The process leaves the group (stopped, or a bounded run is done).
    TasksStopped,
    /// Another process took the task over and fenced this one's writes.
    TaskFenced,
    /// The task failed; the process stops.
    TaskFailed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateOperatorProgress {
    pub operator_name: String,
    /// The branch the operator belongs to, in a job of several branches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    pub num_rows_total: u64,
    pub num_rows_updated: u64,
    pub num_rows_dropped_by_watermark: u64,
    pub memory_used_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceProgress {
    pub description: String,
    /// `{"topic":{"0":start,…}}` like Spark's Kafka source.
    pub start_offset: serde_json::Value,
    pub end_offset: serde_json::Value,
    pub latest_offset: serde_json::Value,
    pub num_input_rows: u64,
    pub input_rows_per_second: f64,
    pub processed_rows_per_second: f64,
    /// `lag` (total records behind the latest offsets) and Spark's
    /// `minOffsetsBehindLatest` / `maxOffsetsBehindLatest` / `avgOffsetsBehindLatest`.
    pub metrics: BTreeMap<String, String>,
}

/// One branch of a job: its name and what its sinks got this micro-batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BranchProgress {
    pub name: String,
    pub sink: SinkProgress,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SinkProgress {
    pub description: String,
    pub num_output_rows: u64,
}

/// Spark's `StreamingQueryStatus`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryStatus {
    pub message: String,
    pub is_data_available: bool,
    pub is_trigger_active: bool,
}

impl QueryStatus {
    pub fn waiting() -> QueryStatus {
        QueryStatus {
            message: "Waiting for data to arrive".into(),
            is_data_available: false,
            is_trigger_active: false,
        }
    }

    pub fn processing() -> QueryStatus {
        QueryStatus {
            message: "Processing new data".into(),
            is_data_available: true,
            is_trigger_active: true,
        }
    }
}

/// Rows per second over `ms`, 0 when no time elapsed.
pub fn rate(rows: u64, ms: u64) -> f64 {
    if ms == 0 {
        0.0
    } else {
        rows as f64 * 1000.0 / ms as f64
    }
}

/// Event-time statistics of an epoch, in ms.
#[derive(Debug, Clone, Copy, Default)]
pub struct EventTimeStats {
    pub min: Option<i64>,
    pub max: Option<i64>,
    sum: i128,
    count: u64,
}

impl EventTimeStats {
    pub fn observe(&mut self, t: i64) {
        self.min = Some(self.min.map_or(t, |m| m.min(t)));
        self.max = Some(self.max.map_or(t, |m| m.max(t)));
        self.sum += i128::from(t);
        self.count += 1;
    }

    pub fn avg(&self) -> Option<i64> {
        (self.count > 0).then(|| (self.sum / i128::from(self.count)) as i64)
    }

    /// Spark's `eventTime` map.
    pub fn to_map(&self, watermark: Option<i64>) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        if let Some(v) = self.min {
            m.insert("min".into(), rfc3339_ms(v));
        }
        if let Some(v) = self.max {
            m.insert("max".into(), rfc3339_ms(v));
        }
        if let Some(v) = self.avg() {
            m.insert("avg".into(), rfc3339_ms(v));
        }
        m.insert("watermark".into(), rfc3339_ms(watermark.unwrap_or(0)));
        m
    }
}

impl QueryProgress {
    /// Total lag over all sources.
    pub fn lag(&self) -> u64 {
        self.sources
            .iter()
            .filter_map(|s| s.metrics.get("lag").and_then(|l| l.parse::<u64>().ok()))
            .sum()
    }

    /// The one-line log summary.
    pub fn summary_line(&self) -> String {
        format!(
            "query `{}` batch {}: {} rows in {} ms ({:.0} rows/s), {} output rows, watermark {}, lag {}, {} dead letters, {} late rows",
            self.name,
            self.batch_id,
            self.num_input_rows,
            self.duration_ms.get("triggerExecution").copied().unwrap_or(0),
            self.processed_rows_per_second,
            self.sink.num_output_rows,
            self.event_time.get("watermark").map_or("-", String::as_str),
            self.lag(),
            self.num_dead_letters,
            self.num_late_rows,
        )
    }
}

/// Appends progress records as JSON lines.
#[derive(Debug)]
pub struct ProgressWriter {
    path: PathBuf,
    file: File,
}

impl ProgressWriter {
    pub fn open(path: &Path) -> Result<ProgressWriter> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| RuntimeError::io("opening", path, e))?;
        Ok(ProgressWriter {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Appends one record (a [`QueryProgress`] or a [`GroupEvent`]) as one line, in one write:
    /// a query's tasks share the file.
    pub fn write<T: Serialize>(&mut self, p: &T) -> Result<()> {
        let mut line = serde_json::to_vec(p)?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .and_then(|()| self.file.flush())
            .map_err(|e| RuntimeError::io("writing", &self.path, e))
    }
}

/// What an epoch's [`QueryProgress`] is made of, as the driver has it.
pub(crate) struct EpochReport<'a, P> {
    pub id: &'a str,
    pub run_id: &'a str,
    pub name: &'a str,
    pub trigger: TriggerSpec,
    pub offsets: &'a EpochOffsets,
    /// The next offset to read per partition after the epoch.
    pub ends: &'a BTreeMap<TopicPartition, i64>,
    /// The partitions' latest offsets, and how long asking for them took.
    pub latest: &'a BTreeMap<TopicPartition, i64>,
    pub latest_ms: u64,
    /// Every partition the source reads, in order.
    pub partitions: P,
    pub source: String,
    pub watermark: Option<i64>,
    /// Per branch, in job order.
    pub branches: Vec<BranchState<'a>>,
    pub counts: ProgressCounts,
    pub task: Option<TaskProgress>,
}

/// A branch as the progress record shows it.
pub(crate) struct BranchState<'a> {
    pub name: &'a str,
    pub operators: Vec<&'a dyn Operator>,
    /// Its sinks' descriptions.
    pub sinks: Vec<String>,
}

/// The counters and timings of an epoch.
pub(crate) struct ProgressCounts {
    pub num_input: u64,
    pub num_output: u64,
    /// Per branch, in job order.
    pub num_outputs: Vec<u64>,
    pub num_dead: u64,
    pub num_late: u64,
    pub et: EventTimeStats,
    pub get_batch_ms: u64,
    pub wal_ms: u64,
    pub add_ms: u64,
    pub commit_ms: u64,
    pub total_ms: u64,
}

/// The Spark-style progress record of an epoch (see the module docs).
pub(crate) fn assemble<'a, P>(r: &EpochReport<'a, P>) -> QueryProgress
where
    P: Iterator<Item = &'a TopicPartition> + Clone,
{
    let c = &r.counts;
    let by_topic = |f: &dyn Fn(&TopicPartition) -> Option<i64>| {
        let mut m = serde_json::Map::new();
        for tp in r.partitions.clone() {
            if let Some(v) = f(tp) {
                let e = m
                    .entry(tp.topic.clone())
                    .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
                if let serde_json::Value::Object(o) = e {
                    o.insert(tp.partition.to_string(), v.into());
                }
            }
        }
        serde_json::Value::Object(m)
    };
    let starts: BTreeMap<TopicPartition, i64> = r
        .offsets
        .ranges
        .iter()
        .map(|x| {
            (
                TopicPartition {
                    topic: x.topic.clone(),
                    partition: x.partition,
                },
                x.start,
            )
        })
        .collect();
    let behind: Vec<i64> = r
        .ends
        .iter()
        .filter_map(|(tp, end)| r.latest.get(tp).map(|l| (l - end).max(0)))
        .collect();
    let lag: i64 = behind.iter().sum();
    let mut metrics = BTreeMap::new();
    metrics.insert("lag".to_string(), lag.to_string());
    if !behind.is_empty() {
        metrics.insert(
            "minOffsetsBehindLatest".into(),
            behind.iter().min().copied().unwrap_or(0).to_string(),
        );
        metrics.insert(
            "maxOffsetsBehindLatest".into(),
            behind.iter().max().copied().unwrap_or(0).to_string(),
        );
        metrics.insert(
            "avgOffsetsBehindLatest".into(),
            format!("{:.1}", lag as f64 / behind.len() as f64),
        );
    }
    let trigger_ms = c.total_ms;
    let mut duration_ms = BTreeMap::new();
    duration_ms.insert("getBatch".to_string(), c.get_batch_ms);
    duration_ms.insert("walCommit".to_string(), c.wal_ms);
    duration_ms.insert("addBatch".to_string(), c.add_ms);
    duration_ms.insert("commitOffsets".to_string(), c.commit_ms);
    duration_ms.insert("latestOffset".to_string(), r.latest_ms);
    duration_ms.insert("triggerExecution".to_string(), trigger_ms);
    let input_rate = match r.trigger {
        TriggerSpec::ProcessingTime(d) => rate(c.num_input, u64::try_from(d.0).unwrap_or(0)),
        TriggerSpec::OnArrival => rate(c.num_input, trigger_ms),
    };
    let processed_rate = rate(c.num_input, trigger_ms);
    let multi = r.branches.len() > 1;
    let mut state_operators = Vec::new();
    for b in &r.branches {
        state_operators.extend(
            b.operators
                .iter()
                .filter(|op| op.name() == "window_aggregate" || op.metrics().num_rows_total > 0)
                .map(|op| {
                    let m = op.metrics();
                    StateOperatorProgress {
                        operator_name: op.name().to_string(),
                        branch: multi.then(|| b.name.to_string()),
                        num_rows_total: m.num_rows_total,
                        num_rows_updated: m.num_rows_updated,
                        num_rows_dropped_by_watermark: m.num_rows_dropped_by_watermark,
                        memory_used_bytes: m.memory_used_bytes,
                    }
                }),
        );
    }
    // A single query's record stays exactly Spark's; several branches add one entry each.
    let branches = if multi {
        r.branches
            .iter()
            .zip(&c.num_outputs)
            .map(|(b, n)| BranchProgress {
                name: b.name.to_string(),
                sink: SinkProgress {
                    description: b.sinks.join(", "),
                    num_output_rows: *n,
                },
            })
            .collect()
    } else {
        Vec::new()
    };
    QueryProgress {
        id: r.id.to_string(),
        run_id: r.run_id.to_string(),
        name: r.name.to_string(),
        batch_id: r.offsets.epoch,
        timestamp: rfc3339_ms(r.offsets.batch_timestamp_ms),
        num_input_rows: c.num_input,
        input_rows_per_second: input_rate,
        processed_rows_per_second: processed_rate,
        duration_ms,
        event_time: c.et.to_map(r.watermark),
        state_operators,
        sources: vec![SourceProgress {
            description: r.source.clone(),
            start_offset: by_topic(&|tp| starts.get(tp).copied()),
            end_offset: by_topic(&|tp| r.ends.get(tp).copied()),
            latest_offset: by_topic(&|tp| r.latest.get(tp).copied()),
            num_input_rows: c.num_input,
            input_rows_per_second: input_rate,
            processed_rows_per_second: processed_rate,
            metrics,
        }],
        sink: SinkProgress {
            description: r
                .branches
                .iter()
                .map(|b| b.sinks.join(", "))
                .filter(|d| !d.is_empty())
                .collect::<Vec<_>>()
                .join(", "),
            num_output_rows: c.num_output,
        },
        branches,
        num_dead_letters: c.num_dead,
        num_late_rows: c.num_late,
        task: r.task.clone(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample() -> QueryProgress {
        let mut et = EventTimeStats::default();
        et.observe(1_795_514_400_000);
        et.observe(1_795_514_410_000);
        QueryProgress {
            id: "id".into(),
            run_id: "run".into(),
            name: "stats".into(),
            batch_id: 3,
            timestamp: rfc3339_ms(1_795_514_400_000),
            num_input_rows: 10,
            input_rows_per_second: 10.0,
            processed_rows_per_second: 100.0,
            duration_ms: [
                ("addBatch".to_string(), 5),
                ("triggerExecution".to_string(), 100),
            ]
            .into_iter()
            .collect(),
            event_time: et.to_map(Some(1_795_514_405_000)),
            state_operators: vec![StateOperatorProgress {
                operator_name: "window".into(),
                branch: None,
                num_rows_total: 4,
                num_rows_updated: 2,
                num_rows_dropped_by_watermark: 0,
                memory_used_bytes: 100,
            }],
            sources: vec![SourceProgress {
                description: "KafkaSource[events]".into(),
                start_offset: serde_json::json!({"events": {"0": 0}}),
                end_offset: serde_json::json!({"events": {"0": 10}}),
                latest_offset: serde_json::json!({"events": {"0": 15}}),
                num_input_rows: 10,
                input_rows_per_second: 10.0,
                processed_rows_per_second: 100.0,
                metrics: [("lag".to_string(), "5".to_string())].into_iter().collect(),
            }],
            sink: SinkProgress {
                description: "FileSink".into(),
                num_output_rows: 2,
            },
            branches: Vec::new(),
            num_dead_letters: 1,
            num_late_rows: 0,
            task: None,
        }
    }

    #[test]
    fn a_task_record_names_its_task_and_owner_and_events_are_told_apart() {
        let plain = serde_json::to_value(sample()).unwrap();
        assert!(plain.get("task").is_none(), "{plain}");
        let mut p = sample();
        p.task = Some(TaskProgress {
            id: 2,
            of: 6,
            owner: "host-a:41".into(),
            group: "rivulet-stats".into(),
        });
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(
            v["task"],
            serde_json::json!({"id": 2, "of": 6, "owner": "host-a:41", "group": "rivulet-stats"})
        );
        assert_eq!(serde_json::from_value::<QueryProgress>(v).unwrap(), p);
        let e = GroupEvent {
            event: GroupEventKind::TasksRevoked,
            timestamp: rfc3339_ms(1_795_514_400_000),
            name: "stats".into(),
            group: "rivulet-stats".into(),
            owner: "host-a:41".into(),
            tasks: vec![1],
            running: vec![0, 2],
            of: 3,
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["event"], "tasksRevoked");
        assert_eq!(v["running"], serde_json::json!([0, 2]));
        // A reader of the progress file tells the two kinds of line apart by `event`.
        assert!(serde_json::to_value(&p).unwrap().get("event").is_none());
        assert_eq!(serde_json::from_value::<GroupEvent>(v).unwrap(), e);
    }

    #[test]
    fn spark_field_names() {
        let v = serde_json::to_value(sample()).unwrap();
        for k in [
            "id",
            "runId",
            "name",
            "batchId",
            "timestamp",
            "numInputRows",
            "inputRowsPerSecond",
            "processedRowsPerSecond",
            "durationMs",
            "eventTime",
            "stateOperators",
            "sources",
            "sink",
            "numDeadLetters",
            "numLateRows",
        ] {
            assert!(v.get(k).is_some(), "missing {k}");
        }
        assert_eq!(v["durationMs"]["addBatch"], 5);
        assert_eq!(v["eventTime"]["min"], "2026-11-24T10:00:00.000Z");
        assert_eq!(v["eventTime"]["avg"], "2026-11-24T10:00:05.000Z");
        assert_eq!(v["eventTime"]["watermark"], "2026-11-24T10:00:05.000Z");
        let op = &v["stateOperators"][0];
        for k in [
            "operatorName",
            "numRowsTotal",
            "numRowsUpdated",
            "numRowsDroppedByWatermark",
            "memoryUsedBytes",
        ] {
            assert!(op.get(k).is_some(), "missing stateOperators.{k}");
        }
        let s = &v["sources"][0];
        for k in [
            "description",
            "startOffset",
            "endOffset",
            "latestOffset",
            "numInputRows",
            "inputRowsPerSecond",
            "processedRowsPerSecond",
            "metrics",
        ] {
            assert!(s.get(k).is_some(), "missing sources.{k}");
        }
        assert_eq!(s["metrics"]["lag"], "5");
        assert_eq!(v["sink"]["numOutputRows"], 2);
        let back: QueryProgress = serde_json::from_value(v).unwrap();
        assert_eq!(back, sample());
    }

    #[test]
    fn writer_appends_json_lines() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("progress.jsonl");
        let mut w = ProgressWriter::open(&p).unwrap();
        w.write(&sample()).unwrap();
        w.write(&sample()).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text.lines().count(), 2);
        for l in text.lines() {
            let _: QueryProgress = serde_json::from_str(l).unwrap();
        }
        assert!(sample().summary_line().contains("batch 3: 10 rows"));
        assert_eq!(
            serde_json::to_value(QueryStatus::waiting()).unwrap()["isDataAvailable"],
            false
        );
    }
}
