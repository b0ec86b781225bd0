//! Repartitioning: a query spread over processes whose GROUP BY is not the input's key.
//!
//! Task `p` of a query checkpointed in Kafka reads partition `p` of its source
//! ([`crate::group`]). That aggregates correctly only when every record of a group is in one
//! partition: the producer keyed the records by fields the GROUP BY includes (the source's
//! `key_fields`, Flink's `key.fields`; `rivulet gen` keys by `id`). Otherwise the query runs
//! in two stages, as Kafka Streams inserts a repartition topic after a key-changing `groupBy`:
//!
//! 1. **Shuffle** (stateless, consumer group `<group>-shuffle`, changelog
//!    `<name>-shuffle-changelog`): task `p` reads partition `p` of the source, decodes, drops
//!    dead letters to the dead-letter topic, applies the WHERE clause and the derived columns
//!    to find each record's group key, and forwards the record's original value, keyed by the
//!    JSON of its group key, to [`topic`] `<name>-repartition` (murmur2 of the key, so a group
//!    lands in one partition). Each epoch's records go out in one transaction per task
//!    ([`EpochProducer`], idempotent per (task, epoch) and fenced; only the last record of
//!    each partition carries the writer's headers, [`Writer::tagging_last_only`]), and with
//!    them a *watermark record* in every partition: key [`WATERMARK_KEY`], value
//!    `{"task":p,"of":P,"watermark":ms}`, the task's event-time watermark.
//! 2. **Aggregate** (the query itself: consumer group, changelog and sinks as without a
//!    shuffle): task `q` reads partition `q` of the repartition topic under read_committed,
//!    decodes the forwarded values again, and takes its watermark from the watermark records:
//!    the minimum over the upstream tasks, each of which holds it back until it has reported
//!    or gone idle (Flink's watermarks across a Kafka shuffle). Lateness is judged here, not in
//!    the shuffle, against that minimum: the same rule as one process reading every partition.
//!
//! Both stages run in every process of the query. The shuffle writes the original value, not
//! the decoded row, so the aggregating stage is the unchanged query over another topic (its
//! WHERE and derived columns run once more, on values that passed them). What a record's
//! Kafka metadata would say changes across the topic, so a query whose WHERE or derived
//! columns read `_key`, `_partition`, `_offset` or `_timestamp` is refused.

use std::collections::BTreeMap;

use arrow::array::{Array, Int64Array};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use rivulet_engine::job::Job;
use rivulet_engine::operators::{Filter, Project};
use rivulet_engine::plan::{columns, CheckpointStoreKind, Plan};
use rivulet_engine::Operator;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::connectors::kafka::{self as kafka_conn, SourceOptions, StartingOffsets};
use crate::error::RuntimeError;
use crate::query::{QuerySummary, RunOptions};
use crate::rows::row_json_columns;
use crate::sinks::kafka::{EpochProducer, OutRecord, Writer};
use crate::source::SourceRecord;
use crate::Result;

/// The key of a watermark record in a repartition topic. Data records are keyed by a JSON
/// object, so they never carry it.
pub const WATERMARK_KEY: &[u8] = b"rivulet.watermark";

/// The columns whose meaning a repartition topic changes (see the module docs).
const KAFKA_COLUMNS: [&str; 4] = [
    columns::KEY,
    columns::PARTITION,
    columns::OFFSET,
    columns::KAFKA_TIMESTAMP,
];

/// The repartition topic of query `name`.
pub fn topic(name: &str) -> String {
    format!("{name}-repartition")
}

/// The shuffle stage's query name (its changelog, transactional ids and log lines).
pub fn shuffle_name(name: &str) -> String {
    format!("{name}-shuffle")
}

/// How a query runs in two stages (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repartition {
    /// `<name>-repartition`.
    pub topic: String,
    /// The GROUP BY columns the records are keyed by in the topic.
    pub key_columns: Vec<String>,
    /// The consumer groups of the shuffle and of the aggregating stage.
    pub shuffle_group: String,
    pub group: String,
}

/// Whether `job` needs a repartition topic with `store`, and which. `None`: it does not (the
/// checkpoint is local, so one process reads every partition; the query keeps no groups; or
/// the source's `key_fields` are among the GROUP BY columns). Several branches with groups
/// that are not co-partitioned are not split (each would need its own topic); the group
/// warns about them.
pub fn plan(job: &Job, store: CheckpointStoreKind) -> Result<Option<Repartition>> {
    if store.is_dir() {
        return Ok(None);
    }
    let Some(p) = job.as_single() else {
        return Ok(None);
    };
    if !needs_shuffle(p)? {
        return Ok(None);
    }
    for sql in p.filter.iter().chain(p.columns.iter().map(|c| &c.expr)) {
        if let Some(c) = KAFKA_COLUMNS.iter().find(|c| mentions(sql, c)) {
            return Err(RuntimeError::Plan(format!(
                "query `{}` groups by columns other than the input's key (source.key_fields), \
                 so with the checkpoint in Kafka its records go through the repartition topic \
                 `{}`; `{sql}` reads `{c}`, which would then name that topic's record. Compute \
                 it in the producer, or set source.key_fields if the records are keyed by the \
                 GROUP BY columns",
                job.name,
                topic(&job.name)
            )));
        }
    }
    let group = SourceOptions::of(&p.source)?.group_id(&job.name);
    Ok(Some(Repartition {
        topic: topic(&job.name),
        key_columns: p.group_by.clone(),
        shuffle_group: format!("{group}-shuffle"),
        group,
    }))
}

/// A plan with groups whose records may be spread over the source's partitions.
pub(crate) fn needs_shuffle(p: &Plan) -> Result<bool> {
    if p.aggregates.is_empty() && p.group_by.is_empty() {
        return Ok(false);
    }
    let keys = SourceOptions::of(&p.source)?.key_fields;
    // A derived column is a key of the repartition topic the shuffle writes.
    let known = |k: &String| {
        p.schema.iter().any(|f| &f.name == k) || p.columns.iter().any(|c| &c.name == k)
    };
    if let Some(k) = keys.iter().find(|k| !known(k)) {
        return Err(RuntimeError::Plan(format!(
            "source.key_fields: `{k}` is not a field of the schema"
        )));
    }
    Ok(keys.is_empty() || !keys.iter().all(|k| p.group_by.contains(k)))
}

/// `sql` names the column `c` (as a word, not inside a longer name).
fn mentions(sql: &str, c: &str) -> bool {
    sql.match_indices(c).any(|(i, _)| {
        let word = |ch: char| ch.is_ascii_alphanumeric() || ch == '_';
        let before = sql[..i].chars().next_back().is_some_and(word);
        let after = sql[i + c.len()..].chars().next().is_some_and(word);
        !before && !after
    })
}

/// The two stages' jobs: the shuffle (no sinks, its own group) and the query over the
/// repartition topic (read_committed, co-partitioned by construction).
pub fn stages(job: &Job, r: &Repartition) -> Result<(Job, Job)> {
    let p = job
        .as_single()
        .ok_or_else(|| RuntimeError::Plan("a repartitioned job has one branch".into()))?;
    let name = shuffle_name(&job.name);
    let mut shuffle = p.clone();
    shuffle.name = name.clone();
    shuffle.sinks = Vec::new();
    // Its tasks' local files beside, not among, the aggregating tasks'.
    if let Some(d) = &p.checkpoint.dir {
        shuffle.checkpoint.dir = Some(d.join(&name));
    }
    kafka_conn::set_group_id(&mut shuffle.source, &r.shuffle_group);
    let mut aggregate = p.clone();
    let input = SourceOptions::of(&p.source)?;
    let src = &mut aggregate.source;
    // A record that fails to decode there (it decoded in the shuffle, so only if the schema
    // changed between the stages) is the input's dead letter.
    let dlq = input.dlq_topic_for(input.topics.first().map_or("", String::as_str));
    kafka_conn::set_dlq_topic(src, &dlq);
    kafka_conn::set_topics(src, std::slice::from_ref(&r.topic));
    kafka_conn::set_group_id(src, &r.group);
    kafka_conn::set_starting_offsets(src, StartingOffsets::Earliest);
    kafka_conn::set_key_fields(src, &r.key_columns);
    // A shuffle epoch that was aborted (its task crashed or was fenced) is never aggregated.
    kafka_conn::set_properties(
        src,
        &BTreeMap::from([("isolation.level".to_string(), "read_committed".to_string())]),
    );
    Ok((
        Job {
            name,
            branches: vec![shuffle],
        },
        Job {
            name: job.name.clone(),
            branches: vec![aggregate],
        },
    ))
}

/// What a stage of a repartitioned query does in a task ([`RunOptions::stage`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Stage {
    /// The whole query (no repartition topic).
    #[default]
    Whole,
    /// Forward the records to this repartition topic, keyed by the group keys.
    Shuffle(Repartition),
    /// Read a repartition topic written by this many upstream tasks; the watermark comes
    /// from their watermark records.
    Aggregate { upstream: i32 },
}

/// A watermark record's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatermarkMark {
    /// The upstream (shuffle) task.
    pub task: i32,
    /// The upstream task count.
    pub of: i32,
    /// Its event-time watermark, ms since the epoch.
    pub watermark: i64,
}

/// Splits a repartition topic's records into watermark marks and data. A record keyed
/// [`WATERMARK_KEY`] that does not parse is data (it then fails decoding as a dead letter,
/// with its reason).
pub fn split_marks(records: &[SourceRecord]) -> (Vec<WatermarkMark>, Vec<SourceRecord>) {
    let mut marks = Vec::new();
    let mut data = Vec::with_capacity(records.len());
    for r in records {
        if r.key.as_deref() == Some(WATERMARK_KEY) {
            if let Some(m) = r
                .value
                .as_deref()
                .and_then(|v| serde_json::from_slice::<WatermarkMark>(v).ok())
            {
                marks.push(m);
                continue;
            }
        }
        data.push(r.clone());
    }
    (marks, data)
}

/// A shuffle task's writer: routes decoded rows to the repartition topic (see the module
/// docs).
pub(crate) struct Shuffle {
    ops: Vec<Box<dyn Operator>>,
    key_columns: Vec<String>,
    producer: EpochProducer,
    /// This epoch's records so far.
    out: Vec<OutRecord>,
    task: i32,
    tasks: i32,
}

impl Shuffle {
    /// The shuffle of `plan` (WHERE and derived columns over decoded rows of `schema`) into
    /// `r.topic` as `writer`.
    pub(crate) fn connect(
        plan: &Plan,
        schema: &SchemaRef,
        r: &Repartition,
        writer: Writer,
        task: (i32, i32),
    ) -> Result<Shuffle> {
        let mut ops: Vec<Box<dyn Operator>> = Vec::new();
        if let Some(sql) = &plan.filter {
            ops.push(Box::new(Filter::new(sql, schema)?));
        }
        if !plan.columns.is_empty() {
            ops.push(Box::new(Project::new(&plan.columns, schema)?));
        }
        let connection = SourceOptions::of(&plan.source)?.connection;
        Ok(Shuffle {
            ops,
            key_columns: r.key_columns.clone(),
            producer: EpochProducer::connect(&connection, &r.topic, writer)?,
            out: Vec::new(),
            task: task.0,
            tasks: task.1,
        })
    }

    pub(crate) fn description(&self) -> String {
        format!(
            "Repartition[{} by ({})]",
            self.producer.topic(),
            self.key_columns.join(", ")
        )
    }

    /// Adds the rows of `batch` (decoded from `records`, one partition's, by offset) that pass
    /// the WHERE clause: each record's original value under its group key.
    pub(crate) fn route(&mut self, records: &[SourceRecord], batch: RecordBatch) -> Result<()> {
        let mut batches = vec![batch];
        for op in &mut self.ops {
            let mut next = Vec::new();
            for b in batches {
                op.process_batch(b, &mut next)?;
            }
            batches = next;
        }
        for b in &batches {
            let offsets = b
                .column_by_name(columns::OFFSET)
                .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
                .ok_or_else(|| RuntimeError::Plan("decoded rows carry no offsets".into()))?;
            for i in 0..b.num_rows() {
                if !offsets.is_valid(i) {
                    continue;
                }
                let offset = offsets.value(i);
                let Ok(at) = records.binary_search_by_key(&offset, |r| r.offset) else {
                    continue;
                };
                self.out.push(OutRecord {
                    key: Some(row_json_columns(b, i, Some(&self.key_columns)).into_bytes()),
                    value: records[at].value.as_ref().map(|v| v.to_vec()),
                    ..OutRecord::default()
                });
            }
        }
        Ok(())
    }

    /// Sends the epoch's records and, when the task has a watermark, a watermark record to
    /// every partition, in one transaction; returns the data records routed.
    pub(crate) fn send_epoch(&mut self, epoch: u64, watermark: Option<i64>) -> Result<u64> {
        let data = self.out.len() as u64;
        if let Some(wm) = watermark {
            let mark = serde_json::to_vec(&WatermarkMark {
                task: self.task,
                of: self.tasks,
                watermark: wm,
            })
            .map_err(|e| RuntimeError::Plan(format!("encoding a watermark record: {e}")))?;
            for q in 0..self.producer.partitions() {
                self.out.push(OutRecord {
                    key: Some(WATERMARK_KEY.to_vec()),
                    value: Some(mark.clone()),
                    partition: Some(q),
                    ..OutRecord::default()
                });
            }
        }
        let out = std::mem::take(&mut self.out);
        self.producer.send_epoch(epoch, &out)?;
        Ok(data)
    }

    /// The epoch is committed in the checkpoint.
    pub(crate) fn commit(&mut self) -> Result<()> {
        self.producer.commit()
    }

    /// Whether the forwarded records commit with the task's checkpoint ([`crate::producer`]).
    pub(crate) fn joins_epoch_transaction(&self) -> bool {
        self.producer.is_joint()
    }
}

/// Runs this process's share of both stages of `job` (see the module docs): the shuffle's
/// and the aggregating stage's group members side by side; a bounded run shuffles until it
/// has caught up, then aggregates until it has. The summary is the aggregating stage's, with
/// the input, and dead letters, counted where they are read.
pub(crate) fn run(
    job: Job,
    r: Repartition,
    opts: RunOptions,
    cancel: CancellationToken,
) -> Result<QuerySummary> {
    let (shuffle, aggregate) = stages(&job, &r)?;
    let source = SourceOptions::of(
        &job.primary()
            .ok_or_else(|| RuntimeError::Plan("a job needs at least one branch".into()))?
            .source,
    )?;
    let partitions = source_partitions(&source)?;
    ensure_topic(&source, &r.topic, partitions)?;
    tracing::info!(
        "query `{}` groups by ({}) across partitions: its records go through `{}` ({partitions} \
         partitions), shuffled by group `{}`, aggregated by group `{}`",
        job.name,
        r.key_columns.join(", "),
        r.topic,
        r.shuffle_group,
        r.group
    );
    // Its progress records and group events go to the same file, named `<name>-shuffle:<p>`
    // (the input's lag is theirs); the dashboard watches the query's results.
    let shuffle_opts = RunOptions {
        observer: None,
        checkpoint_dir: opts
            .checkpoint_dir
            .as_ref()
            .map(|d| d.join(shuffle_name(&job.name))),
        stage: Stage::Shuffle(r.clone()),
        ..opts.clone()
    };
    let aggregate_opts = RunOptions {
        stage: Stage::Aggregate {
            upstream: partitions,
        },
        ..opts.clone()
    };
    let (first, second) = if opts.stop_when_caught_up {
        let first = crate::group::run(shuffle, shuffle_opts, cancel.clone())?;
        (first, crate::group::run(aggregate, aggregate_opts, cancel))
    } else {
        // Either stage failing stops the other: the process leaves both groups.
        let stop = cancel.child_token();
        let both = stop.clone();
        let shuffling = std::thread::Builder::new()
            .name(format!("{}-shuffle", job.name))
            .spawn(move || {
                let r = crate::group::run(shuffle, shuffle_opts, both.clone());
                both.cancel();
                r
            })
            .map_err(|e| RuntimeError::Thread(e.to_string()))?;
        let second = crate::group::run(aggregate, aggregate_opts, stop.clone());
        stop.cancel();
        let first = shuffling
            .join()
            .map_err(|_| RuntimeError::Thread("the shuffle stage panicked".into()))??;
        (first, second)
    };
    let mut summary = second?;
    summary.input_rows = first.input_rows;
    summary.dead_letters += first.dead_letters;
    Ok(summary)
}

/// The partition count of the source's first topic (the group checks that the others match).
fn source_partitions(source: &SourceOptions) -> Result<i32> {
    let first = source.topics.first().cloned().unwrap_or_default();
    use rdkafka::consumer::Consumer as _;
    let consumer: rdkafka::consumer::BaseConsumer = source
        .connection
        .client_config()
        .create()
        .map_err(|e| RuntimeError::kafka("creating a metadata client", e))?;
    crate::sinks::kafka::topic_partitions(consumer.client(), &first)
}

/// Creates the repartition topic with `partitions` partitions unless it exists.
fn ensure_topic(source: &SourceOptions, topic: &str, partitions: i32) -> Result<()> {
    let configs: Vec<(String, String)> = BTreeMap::from([("cleanup.policy", "delete")])
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if crate::checkpoint::kafka::create_topic(&source.connection, topic, partitions, &configs)? {
        tracing::info!("created repartition topic `{topic}` with {partitions} partition(s)");
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn job(edits: &[(&str, &str)]) -> Job {
        let text = rivulet_testkit::small_plan_with(edits);
        Job::single(Plan::from_toml(&text).unwrap())
    }

    const KAFKA: CheckpointStoreKind = CheckpointStoreKind::Kafka;
    const BY_BUCKET: (&str, &str) = (
        "group_by = [\"id\"]",
        "columns = [{ name = \"bucket\", expr = \"id % 4\" }]\ngroup_by = [\"bucket\"]",
    );
    const KEYED_BY_ID: (&str, &str) = (
        "topics = [\"events\"]",
        "topics = [\"events\"]\nkey_fields = [\"id\"]",
    );

    #[test]
    fn only_groups_spread_over_partitions_are_repartitioned() {
        // One process reads every partition: never.
        assert_eq!(
            plan(&job(&[BY_BUCKET]), CheckpointStoreKind::Dir).unwrap(),
            None
        );
        // Keyed by what is grouped: no.
        assert_eq!(plan(&job(&[KEYED_BY_ID]), KAFKA).unwrap(), None);
        // Keyed by id, grouped by id % 4, or keyed by nothing said: yes.
        for j in [job(&[BY_BUCKET, KEYED_BY_ID]), job(&[])] {
            let r = plan(&j, KAFKA).unwrap().expect("repartitioned");
            assert_eq!(r.topic, "stats-repartition");
            assert_eq!(r.group, "rivulet-stats");
            assert_eq!(r.shuffle_group, "rivulet-stats-shuffle");
        }
        let r = plan(&job(&[BY_BUCKET]), KAFKA).unwrap().unwrap();
        assert_eq!(r.key_columns, vec!["bucket".to_string()]);
        // What the repartition topic would change the meaning of is refused, by name.
        let e = plan(
            &job(&[
                BY_BUCKET,
                ("[source]", "filter = \"_partition = 1\"\n[source]"),
            ]),
            KAFKA,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("`_partition`") && e.contains("stats-repartition"),
            "{e}"
        );
        let e = plan(
            &job(&[(
                "topics = [\"events\"]",
                "topics = [\"events\"]\nkey_fields = [\"nope\"]",
            )]),
            KAFKA,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("key_fields: `nope`"), "{e}");
    }

    #[test]
    fn the_stages_read_and_write_the_repartition_topic() {
        let j = job(&[BY_BUCKET, KEYED_BY_ID]);
        let r = plan(&j, KAFKA).unwrap().unwrap();
        let (shuffle, aggregate) = stages(&j, &r).unwrap();
        assert_eq!(shuffle.name, "stats-shuffle");
        let s = shuffle.as_single().unwrap();
        assert!(s.sinks.is_empty());
        let so = SourceOptions::of(&s.source).unwrap();
        assert_eq!(so.topics, vec!["events".to_string()]);
        assert_eq!(so.group_id("stats-shuffle"), "rivulet-stats-shuffle");
        assert_eq!(aggregate.name, "stats");
        let a = aggregate.as_single().unwrap();
        assert_eq!(a.sinks, j.as_single().unwrap().sinks);
        let ao = SourceOptions::of(&a.source).unwrap();
        assert_eq!(ao.topics, vec!["stats-repartition".to_string()]);
        assert_eq!(ao.group_id("stats"), "rivulet-stats");
        assert_eq!(ao.key_fields, vec!["bucket".to_string()]);
        assert_eq!(ao.dlq_topic(), Some("events.dlq"));
        assert_eq!(
            ao.connection
                .properties
                .get("isolation.level")
                .map(String::as_str),
            Some("read_committed")
        );
        // Co-partitioned by construction: the aggregating stage is not split again.
        assert_eq!(plan(&aggregate, KAFKA).unwrap(), None);
    }

    #[test]
    fn engine_columns_are_found_as_words_only() {
        assert!(mentions("_partition = 1", "_partition"));
        assert!(mentions("a + _offset", "_offset"));
        assert!(!mentions("my_partition = 1", "_partition"));
        assert!(!mentions("_partition_x", "_partition"));
    }

    #[test]
    fn watermark_records_are_told_from_data() {
        let mark = serde_json::to_vec(&WatermarkMark {
            task: 2,
            of: 6,
            watermark: 1_000,
        })
        .unwrap();
        let rec = |offset, key: &[u8], value: &[u8]| SourceRecord {
            offset,
            timestamp_ms: 0,
            key: Some(Bytes::copy_from_slice(key)),
            value: Some(Bytes::copy_from_slice(value)),
        };
        let records = vec![
            rec(0, br#"{"b":1}"#, br#"{"id":1}"#),
            rec(1, WATERMARK_KEY, &mark),
            // Keyed like a mark but not one: data, so it is decoded (and dead-lettered).
            rec(2, WATERMARK_KEY, b"nonsense"),
        ];
        let (marks, data) = split_marks(&records);
        assert_eq!(
            marks,
            vec![WatermarkMark {
                task: 2,
                of: 6,
                watermark: 1_000
            }]
        );
        assert_eq!(
            data.iter().map(|r| r.offset).collect::<Vec<_>>(),
            vec![0, 2]
        );
    }
}
