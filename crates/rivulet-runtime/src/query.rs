//! The driver: runs a [`Job`] (one [`Plan`], or several branch plans sharing one source) as a
//! sequence of micro-batches (*epochs*), Spark Structured Streaming style.
//!
//! **Fan-out.** Every record is read and decoded once; the decoded, on-time batch is handed to
//! each branch's operator chain (filter, derived columns, window aggregate, HAVING, SELECT list: `build_branch`)
//! under one watermark tracker, and each branch's result goes to its own sinks. One checkpoint
//! directory holds the source offsets, every branch's operator state (in `state/<epoch>`,
//! operator names prefixed `<branch>/` when there are several branches) and one commit marker
//! per epoch, so every branch's sinks follow the same per-epoch commit protocol. A job of one
//! branch is exactly the single query of a pipeline file (same checkpoint files, progress
//! records and consumer group).
//!
//! One trigger (every processing-time interval, or as soon as data arrives) is one epoch:
//!
//! 1. poll up to the source's record limit per micro-batch (getBatch);
//! 2. write `offsets/<epoch>`: ranges, the watermark in force, the batch timestamp (walCommit);
//! 3. per topic-partition, in a fixed order (topic, partition), records in offset order:
//!    decode (dead letters → DLQ), split rows behind the watermark off (late → late topic or
//!    only counted), observe event times in the watermark tracker, run the operators
//!    (`process_batch`);
//! 4. advance the watermark → `on_watermark`, then `on_trigger`, cascading down the operators;
//! 5. per branch, sort the result rows canonically and hand them to the branch's sinks
//!    (addBatch);
//! 6. write `state/<epoch>`, then `commits/<epoch>`, then commit the end offsets to the
//!    consumer group (visibility only), then report progress.
//!
//! The output of an epoch is a deterministic function of the restored state and the epoch's
//! recorded input (ranges, watermark and batch timestamp), so re-running a pending epoch after
//! a crash reproduces it exactly, and the idempotent sinks make the replay invisible.
//!
//! A trigger without data runs no epoch unless the watermark would move (idle partitions);
//! then an empty epoch runs so windows can close (Spark's no-data batches).
//!
//! All librdkafka calls block, so the whole loop runs on a blocking thread
//! ([`tokio::task::spawn_blocking`]); cancellation is checked between steps. On cancel the
//! current epoch is finished and committed, then sinks are closed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, ArrayRef, Int64Array, UInt32Array};
use arrow::compute::{concat_batches, lexsort_to_indices, take_record_batch, SortColumn};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use rivulet_engine::chain::{Chain, Emitted};
use rivulet_engine::job::Job;
use rivulet_engine::operator::{Message, Operator};
use rivulet_engine::plan::{columns, CheckpointStoreKind, OutputMode, Plan, TriggerSpec};
use rivulet_engine::watermark::{split_late, WatermarkState, WatermarkTracker};
use tokio_util::sync::CancellationToken;

use crate::checkpoint::kafka::Changelog;
use crate::checkpoint::{now_ms, Checkpoint, EpochOffsets, EpochState, KafkaStore, OffsetRange};
use crate::connectors::{self, kafka::SourceOptions};
use crate::decode_pool::DecodePool;
use crate::dlq::{DeadLetters, DeadRecord, WriterScope};
use crate::error::RuntimeError;
use crate::progress::{
    self, BranchState, EpochReport, EventTimeStats, ProgressCounts, ProgressWriter, QueryStatus,
};
use crate::repartition::{Shuffle, Stage};
use crate::rows::rfc3339_ms;
use crate::sinks::{Sink, SinkContext};
use crate::source::{Source, SourceBatch, TopicPartition};
use crate::Result;

pub use crate::connectors::kafka::DEFAULT_MAX_RECORDS;

/// Where a test makes the driver "crash" (return an error at once, leaving the checkpoint
/// exactly as a killed process would).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailPoint {
    /// After `offsets/<epoch>` is written, before any output.
    AfterOffsets(u64),
    /// After the epoch's dead letters and late rows were sent, before the sinks write.
    AfterDeadLetters(u64),
    /// After the sinks wrote the epoch, before `state/<epoch>`.
    AfterSinks(u64),
    /// After the sinks of branch `.1` (index in the job) wrote epoch `.0`, before the next
    /// branch's sinks write it.
    AfterBranchSinks(u64, usize),
    /// After `state/<epoch>`, before `commits/<epoch>`.
    AfterState(u64),
}

/// How [`run_query`] runs.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Append every progress record as a JSON line to this file.
    pub progress_json: Option<PathBuf>,
    /// Stop after this many epochs (replayed ones included) in this run.
    pub max_epochs: Option<u64>,
    /// Stop once a trigger finds no data, the watermark cannot move and the source has caught
    /// up with the latest offsets (bounded runs, tests).
    pub stop_when_caught_up: bool,
    /// Committed epochs kept in the checkpoint (default [`crate::checkpoint::DEFAULT_RETAIN`]).
    pub retain_epochs: Option<usize>,
    /// Override of the plan's checkpoint directory.
    pub checkpoint_dir: Option<PathBuf>,
    /// Override of the plan's `checkpoint.store`.
    pub checkpoint_store: Option<CheckpointStoreKind>,
    /// Told every committed epoch's results and progress (the live dashboard).
    pub observer: Option<Arc<dyn crate::observer::QueryObserver>>,
    /// Run as one task of a query spread over processes (set by [`crate::group`]).
    pub task: Option<TaskSpec>,
    /// Which stage of a repartitioned query this runs (set by [`crate::repartition`]).
    pub stage: Stage,
    #[doc(hidden)]
    pub fail_point: Option<FailPoint>,
}

/// One task of a query spread over processes: the input partitions numbered `task` of its
/// topics, its checkpoint in changelog partition `task` (see [`crate::group`]).
#[derive(Debug, Clone)]
pub struct TaskSpec {
    pub task: i32,
    /// The query's task count (the changelog's partitions when Rivulet creates it).
    pub tasks: i32,
    /// Where each committed epoch's end offsets go (the group coordinator commits them).
    pub committed: std::sync::mpsc::Sender<BTreeMap<TopicPartition, i64>>,
    /// The process running it (`<host>:<pid>`) and the group it is a member of, for the
    /// progress records.
    pub owner: String,
    pub group: String,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QuerySummary {
    pub id: String,
    pub run_id: String,
    /// Epochs run (including a replayed one).
    pub epochs: u64,
    /// The epoch re-run at start, if one was pending.
    pub replayed_epoch: Option<u64>,
    /// The last committed epoch.
    pub last_committed: Option<u64>,
    pub input_rows: u64,
    pub output_rows: u64,
    /// Output rows per branch (name, rows), in the job's branch order.
    pub branch_output_rows: Vec<(String, u64)>,
    pub dead_letters: u64,
    pub late_rows: u64,
    /// The watermark after the last epoch.
    pub watermark: Option<i64>,
}

/// Runs `plan` until `cancel` (or the options' limits); see the module docs.
pub async fn run_query(
    plan: Plan,
    opts: RunOptions,
    cancel: CancellationToken,
) -> Result<QuerySummary, RuntimeError> {
    run_job(Job::single(plan), opts, cancel).await
}

/// Runs every branch of `job` over one read of its source until `cancel` (or the options'
/// limits); see the module docs.
pub async fn run_job(
    job: Job,
    opts: RunOptions,
    cancel: CancellationToken,
) -> Result<QuerySummary, RuntimeError> {
    let store = opts.checkpoint_store.unwrap_or(
        job.primary()
            .map_or(CheckpointStoreKind::Dir, |p| p.checkpoint.store),
    );
    tokio::task::spawn_blocking(move || {
        if !store.is_dir() && opts.task.is_none() {
            // A checkpoint in Kafka: this process is one member of the query's group (of
            // both stages' groups when its groups are spread over the partitions).
            if opts.stage == Stage::Whole {
                if let Some(r) = crate::repartition::plan(&job, store)? {
                    return crate::repartition::run(job, r, opts, cancel);
                }
            }
            return crate::group::run(job, opts, cancel);
        }
        run_task(job, opts, cancel)
    })
    .await
    .map_err(|e| RuntimeError::Thread(e.to_string()))?
}

/// Runs `job` (or one task of it, [`RunOptions::task`]) on this thread.
pub(crate) fn run_task(
    job: Job,
    opts: RunOptions,
    cancel: CancellationToken,
) -> Result<QuerySummary, RuntimeError> {
    let mut q = Query::open(job, opts, cancel)?;
    q.run()
}

/// The shared decode and watermark tracker, and one operator chain per branch.
struct Pipeline {
    decoders: DecodePool,
    chains: Vec<Chain>,
    /// Per chain, the prefix of its operators' names in `state/<epoch>`: empty for a single
    /// branch (the checkpoint stays the one a single query always wrote), `<branch>/` else.
    prefixes: Vec<String>,
    tracker: WatermarkTracker,
}

impl Pipeline {
    fn build(job: &Job, shared: &Plan) -> Result<Pipeline> {
        let decoders = DecodePool::new(shared)?;
        let mut chains = Vec::with_capacity(job.branches.len());
        let mut prefixes = Vec::with_capacity(job.branches.len());
        for plan in &job.branches {
            chains.push(Chain::build(plan, decoders.schema())?);
            prefixes.push(if job.branches.len() > 1 {
                format!("{}/", plan.name)
            } else {
                String::new()
            });
        }
        Ok(Pipeline {
            decoders,
            chains,
            prefixes,
            tracker: WatermarkTracker::new(
                shared.event_time.allowed_lateness.0,
                shared.event_time.idle_timeout.0,
            ),
        })
    }

    /// Every branch's operators with their checkpoint names, in job order.
    fn named_ops(&self) -> impl Iterator<Item = (String, &dyn Operator)> + '_ {
        self.chains.iter().zip(&self.prefixes).flat_map(|(c, p)| {
            c.operators()
                .map(move |op| (format!("{p}{}", op.name()), op))
        })
    }

    /// The checkpoint barrier of `epoch` through every chain: their operators' snapshots,
    /// named as in `state/<epoch>`, and the watermark tracker's.
    fn snapshot(&mut self, epoch: u64) -> Result<EpochState> {
        let mut operators = Vec::new();
        for (chain, prefix) in self.chains.iter_mut().zip(&self.prefixes) {
            let mut emitted = Emitted::default();
            chain.process(Message::Barrier(epoch), &mut emitted)?;
            operators.extend(
                emitted
                    .snapshots
                    .into_iter()
                    .map(|(name, bytes)| (format!("{prefix}{name}"), bytes)),
            );
        }
        Ok(EpochState {
            epoch,
            watermark_tracker: serde_json::to_value(self.tracker.snapshot())?,
            operators,
        })
    }

    fn restore(&mut self, state: &EpochState) -> Result<()> {
        let names: Vec<String> = self.named_ops().map(|(n, _)| n).collect();
        if state.operators.len() != names.len() {
            return Err(RuntimeError::Checkpoint(format!(
                "state/{} has {} operators, the plan has {}: the plan changed incompatibly",
                state.epoch,
                state.operators.len(),
                names.len()
            )));
        }
        for (want, (name, _)) in names.iter().zip(&state.operators) {
            if want != name {
                return Err(RuntimeError::Checkpoint(format!(
                    "state/{} holds `{name}` where the plan has `{want}`",
                    state.epoch
                )));
            }
        }
        let mut blobs = state.operators.iter();
        for chain in &mut self.chains {
            for op in chain.operators_mut() {
                if let Some((_, bytes)) = blobs.next() {
                    op.restore(bytes)?;
                }
            }
        }
        let wm: WatermarkState = serde_json::from_value(state.watermark_tracker.clone())?;
        self.tracker.restore(wm);
        Ok(())
    }
}

/// Sorts result rows canonically (window start, then group keys, then emission order) so the
/// output of an epoch is byte-for-byte reproducible and reads well.
fn canonical_order(
    schema: &SchemaRef,
    batches: Vec<RecordBatch>,
    keys: &[String],
) -> Result<Vec<RecordBatch>> {
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    if rows == 0 {
        return Ok(Vec::new());
    }
    let all = concat_batches(schema, &batches)?;
    let mut sort: Vec<SortColumn> = Vec::new();
    let mut names: Vec<&str> = vec![columns::WINDOW_START];
    names.extend(keys.iter().map(String::as_str));
    for n in names {
        if let Some(c) = all.column_by_name(n) {
            if c.data_type().is_primitive()
                || matches!(
                    c.data_type(),
                    arrow::datatypes::DataType::Utf8 | arrow::datatypes::DataType::Boolean
                )
            {
                sort.push(SortColumn {
                    values: c.clone(),
                    options: None,
                });
            }
        }
    }
    let seq: ArrayRef = Arc::new(UInt32Array::from_iter_values(0..all.num_rows() as u32));
    sort.push(SortColumn {
        values: seq,
        options: None,
    });
    let idx = lexsort_to_indices(&sort, None)?;
    Ok(vec![take_record_batch(&all, &idx)?])
}

struct Query {
    job: Job,
    /// The declarations every branch shares (source, schema, event time, trigger,
    /// checkpoint), named after the job: the first branch's plan under the job's name.
    plan: Plan,
    opts: RunOptions,
    cancel: CancellationToken,
    checkpoint: Checkpoint,
    pipeline: Pipeline,
    source: Box<dyn Source>,
    source_options: SourceOptions,
    /// Per branch, its sinks.
    sinks: Vec<Vec<Box<dyn Sink>>>,
    /// The shuffle stage's writer to its repartition topic, instead of the chains and sinks.
    shuffle: Option<Shuffle>,
    dead: DeadLetters,
    /// Each epoch's offsets are committed on their own before its output, because some
    /// writer needs a re-run epoch to read exactly the same input ([`Sink::replays_epochs`]).
    /// Otherwise (every writer in the task's transaction, checkpoint in Kafka) offsets, output,
    /// state and commit marker are one transaction.
    offsets_apart: bool,
    progress: Option<ProgressWriter>,
    /// Index of each partition in the fixed order (the watermark tracker's partition id).
    tp_index: BTreeMap<TopicPartition, i32>,
    next_epoch: u64,
    summary: QuerySummary,
    idle_logged: bool,
    status: QueryStatus,
}

impl Query {
    fn open(job: Job, opts: RunOptions, cancel: CancellationToken) -> Result<Query> {
        // Query, connectors, and branches that agree on what they read and write to distinct
        // places; problems are reported before anything is opened.
        connectors::check_job(&job)?;
        let mut plan = job.primary().cloned().ok_or_else(|| {
            rivulet_engine::EngineError::Plan("a job needs at least one branch".into())
        })?;
        plan.name = match &opts.task {
            Some(t) => crate::checkpoint::kafka::task_label(&job.name, t.task),
            None => job.name.clone(),
        };
        let dir = opts
            .checkpoint_dir
            .clone()
            .or_else(|| plan.checkpoint.dir.clone())
            .unwrap_or_else(|| PathBuf::from("checkpoints").join(&job.name));
        // A task's local files (its writers' floors) go in a directory of its own.
        let dir = match &opts.task {
            Some(t) => dir.join(format!("task-{}", t.task)),
            None => dir,
        };
        let source_options = SourceOptions::of(&plan.source)?;
        let store = opts.checkpoint_store.unwrap_or(plan.checkpoint.store);
        let mut checkpoint = match store {
            CheckpointStoreKind::Dir => Checkpoint::open(&dir, &plan.name)?,
            CheckpointStoreKind::Kafka => {
                let changelog = match &opts.task {
                    Some(t) => Changelog::task(&job.name, t.task, t.tasks),
                    None => Changelog::task(&job.name, 0, 1),
                };
                Checkpoint::with_store(
                    Box::new(KafkaStore::open(&source_options.connection, &changelog)?),
                    &plan.name,
                )?
            }
        };
        if let Some(n) = opts.retain_epochs {
            checkpoint = checkpoint.with_retain(n);
        } else if !store.is_dir() {
            checkpoint = checkpoint.with_retain(crate::checkpoint::kafka::DEFAULT_RETAIN);
        }
        let pipeline = Pipeline::build(&job, &plan)?;
        let mut source = connectors::open_source(&plan)?;
        if let Some(t) = &opts.task {
            source.retain_partitions(&std::collections::BTreeSet::from([t.task]));
        }
        let last_committed = checkpoint.latest_committed()?;
        let joint = checkpoint.producer();
        let writers = WriterScope {
            dir: dir.clone(),
            query_name: plan.name.clone(),
            checkpoint_id: checkpoint.metadata().id.clone(),
            // The recovery files live beside a directory checkpoint; with Kafka they are
            // only hints on this machine.
            fresh: store.is_dir() || checkpoint.latest_offsets()?.is_none(),
            transactional: !store.is_dir(),
            joint: joint.clone(),
        };
        let mut sinks = Vec::with_capacity(job.branches.len());
        for (branch, chain) in job.branches.iter().zip(&pipeline.chains) {
            sinks.push(connectors::open_sinks(&SinkContext {
                plan: branch,
                schema: &chain.output_schema(),
                checkpoint_dir: &dir,
                checkpoint_is_local: store == CheckpointStoreKind::Dir,
                query_name: &plan.name,
                query_id: &checkpoint.metadata().id,
                last_committed,
                writers: &writers,
            })?);
        }
        let shuffle = match &opts.stage {
            Stage::Shuffle(r) => Some(Shuffle::connect(
                &plan,
                &pipeline.decoders.schema(),
                r,
                writers
                    .writer(&format!("repartition/{}", r.topic))
                    .tagging_last_only(),
                opts.task.as_ref().map_or((0, 1), |t| (t.task, t.tasks)),
            )?),
            _ => None,
        };
        let dead = DeadLetters::connect(writers.clone(), &source_options)?;
        let offsets_apart = sinks.iter().flatten().any(|s| s.replays_epochs())
            || !dead.joins_epoch_transaction()
            || shuffle
                .as_ref()
                .is_some_and(|s| !s.joins_epoch_transaction());
        if joint.is_some() {
            tracing::info!(
                "query `{}`: one Kafka transaction per epoch for the checkpoint and the Kafka \
                 writers on its cluster{}",
                plan.name,
                if offsets_apart {
                    "; the epoch's input offsets are committed before it, since a sink needs \
                     a re-run epoch to read the same input"
                } else {
                    ", input offsets included"
                }
            );
        }
        let progress = match &opts.progress_json {
            Some(p) => Some(ProgressWriter::open(p)?),
            None => None,
        };
        let tp_index = source
            .partitions()
            .into_iter()
            .enumerate()
            .map(|(i, tp)| (tp, i as i32))
            .collect();
        let summary = QuerySummary {
            id: checkpoint.metadata().id.clone(),
            run_id: uuid::Uuid::new_v4().to_string(),
            branch_output_rows: job.branches.iter().map(|b| (b.name.clone(), 0)).collect(),
            ..QuerySummary::default()
        };
        Ok(Query {
            job,
            plan,
            opts,
            cancel,
            checkpoint,
            pipeline,
            source,
            source_options,
            sinks,
            shuffle,
            dead,
            offsets_apart,
            progress,
            tp_index,
            next_epoch: 0,
            summary,
            idle_logged: false,
            status: QueryStatus::waiting(),
        })
    }

    fn fail_at(&self, fp: FailPoint) -> Result<()> {
        if self.opts.fail_point == Some(fp) {
            return Err(RuntimeError::FailPoint(format!("{fp:?}")));
        }
        Ok(())
    }

    fn epochs_exhausted(&self) -> bool {
        self.opts
            .max_epochs
            .is_some_and(|m| self.summary.epochs >= m)
    }

    /// Restores the latest committed state and re-runs a pending epoch.
    fn recover(&mut self) -> Result<()> {
        let committed = self.checkpoint.latest_committed()?;
        if let Some(c) = committed {
            let state = self.checkpoint.read_state(c)?;
            self.pipeline.restore(&state)?;
            let offsets = self.checkpoint.read_offsets(c)?;
            let positions = offsets
                .ranges
                .iter()
                .map(|r| {
                    (
                        TopicPartition {
                            topic: r.topic.clone(),
                            partition: r.partition,
                        },
                        r.end,
                    )
                })
                .collect();
            self.source.start_at(&positions)?;
            self.next_epoch = c + 1;
            self.summary.last_committed = Some(c);
            self.summary.watermark = self.pipeline.tracker.current();
            tracing::info!(
                "query `{}` resumes after epoch {c} (watermark {})",
                self.plan.name,
                self.summary.watermark.map_or("-".to_string(), rfc3339_ms)
            );
        }
        let pending = self.checkpoint.pending()?;
        // Every assigned partition holds the watermark back until it delivers data or goes idle,
        // so the partition polled first cannot make the others' rows late. A replay registers
        // at the epoch's recorded time, so its idleness decisions match the original run.
        let registered_at = pending
            .as_ref()
            .map_or_else(now_ms, |p| p.batch_timestamp_ms);
        match self.opts.stage {
            // Behind a repartition topic the inputs are the upstream tasks, which send their
            // watermarks in-band.
            Stage::Aggregate { upstream } => {
                for u in 0..upstream {
                    self.pipeline.tracker.register(u, registered_at);
                }
            }
            _ => {
                for idx in self.tp_index.values() {
                    self.pipeline.tracker.register(*idx, registered_at);
                }
            }
        }
        match pending {
            Some(pending) => {
                tracing::info!(
                    "query `{}`: re-running epoch {} with its recorded offsets",
                    self.plan.name,
                    pending.epoch
                );
                let records = self.source.read_ranges(&pending.ranges)?;
                self.summary.replayed_epoch = Some(pending.epoch);
                let getbatch = Instant::now();
                self.run_epoch(&pending, records, getbatch, 0)?;
                self.next_epoch = pending.epoch + 1;
            }
            None if committed.is_none() => {
                self.source
                    .start_fresh(self.source_options.starting_offsets)?;
            }
            None => {}
        }
        Ok(())
    }

    fn run(&mut self) -> Result<QuerySummary> {
        self.recover()?;
        let max_records = usize::try_from(self.source_options.max_records()).unwrap_or(usize::MAX);
        let interval = match self.plan.output.trigger {
            TriggerSpec::ProcessingTime(d) => {
                Some(Duration::from_millis(u64::try_from(d.0).unwrap_or(0)))
            }
            TriggerSpec::OnArrival => None,
        };
        let mut next_trigger = Instant::now();
        while !self.cancel.is_cancelled() && !self.epochs_exhausted() {
            // Wait for the trigger, in slices so cancellation is seen promptly.
            if let Some(iv) = interval {
                while Instant::now() < next_trigger && !self.cancel.is_cancelled() {
                    let left = next_trigger.saturating_duration_since(Instant::now());
                    std::thread::sleep(left.min(Duration::from_millis(50)));
                }
                if self.cancel.is_cancelled() {
                    break;
                }
                next_trigger = (next_trigger + iv).max(Instant::now());
            }
            let started = Instant::now();
            let before = self.source.positions().clone();
            let wait = match interval {
                Some(iv) => iv.min(Duration::from_millis(200)),
                // A bounded run checks whether it has caught up after each empty poll; a long
                // wait would only delay its end.
                None if self.opts.stop_when_caught_up => Duration::from_millis(50),
                None => Duration::from_millis(500),
            };
            let records = self.source.poll_batch(max_records, wait)?;
            let now = now_ms();
            if records.is_empty() {
                // Spark's no-data batch: only when the watermark would move.
                let mut probe = self.pipeline.tracker.clone();
                if probe.advance(now).is_none() {
                    if !self.idle_logged {
                        self.status = QueryStatus::waiting();
                        tracing::info!("query `{}`: idle, waiting for data", self.plan.name);
                        self.idle_logged = true;
                    }
                    if self.opts.stop_when_caught_up && self.caught_up()? {
                        break;
                    }
                    continue;
                }
            }
            self.idle_logged = false;
            self.status = QueryStatus::processing();
            let after = self.source.positions();
            let ranges = after
                .iter()
                .map(|(tp, end)| OffsetRange {
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                    start: before.get(tp).copied().unwrap_or(*end),
                    end: *end,
                })
                .collect();
            let offsets = EpochOffsets {
                epoch: self.next_epoch,
                batch_timestamp_ms: now,
                watermark_ms: self.pipeline.tracker.current(),
                ranges,
            };
            let wal = Instant::now();
            if !self.offsets_apart {
                self.checkpoint.begin_epoch()?;
            }
            self.checkpoint.write_offsets(&offsets)?;
            let wal_ms = wal.elapsed().as_millis() as u64;
            self.fail_at(FailPoint::AfterOffsets(offsets.epoch))?;
            self.run_epoch(&offsets, records, started, wal_ms)?;
            self.next_epoch += 1;
        }
        for s in self.sinks.iter_mut().flatten() {
            s.close()?;
        }
        self.summary.watermark = self.pipeline.tracker.current();
        Ok(self.summary.clone())
    }

    fn caught_up(&self) -> Result<bool> {
        let latest = self.source.latest_offsets()?;
        Ok(latest
            .iter()
            .all(|(tp, high)| self.source.positions().get(tp).is_some_and(|p| p >= high)))
    }

    /// Runs one epoch whose `offsets/<epoch>` is already durable.
    fn run_epoch(
        &mut self,
        offsets: &EpochOffsets,
        records: SourceBatch,
        started: Instant,
        wal_ms: u64,
    ) -> Result<()> {
        let epoch = offsets.epoch;
        let now = offsets.batch_timestamp_ms;
        // Everything the epoch writes to the checkpoint's cluster from here on commits in one
        // transaction with its commit marker (nothing, with the checkpoint in a directory).
        self.checkpoint.begin_epoch()?;
        let get_batch_ms =
            started.elapsed().as_millis() as u64 - wal_ms.min(started.elapsed().as_millis() as u64);
        let add = Instant::now();
        // Fixed order: topic, partition, offset (a SourceBatch is in that order).
        let num_input: u64 = records.iter().map(|p| p.records.len() as u64).sum();
        let mut dead: Vec<DeadRecord> = Vec::new();
        let mut late: Vec<RecordBatch> = Vec::new();
        let mut num_late = 0u64;
        let mut outs: Vec<Emitted> = (0..self.pipeline.chains.len())
            .map(|_| Emitted::default())
            .collect();
        let mut et = EventTimeStats::default();
        let upstream = matches!(self.opts.stage, Stage::Aggregate { .. });
        for part in &records {
            let topic = &part.topic;
            let partition = part.tp.partition;
            let data = if upstream {
                let (marks, data) = crate::repartition::split_marks(&part.records);
                for m in marks {
                    self.pipeline
                        .tracker
                        .observe_watermark(m.task, m.watermark, now);
                }
                std::borrow::Cow::Owned(data)
            } else {
                std::borrow::Cow::Borrowed(&part.records)
            };
            for decoded in self.pipeline.decoders.decode(&data, partition)? {
                dead.extend(decoded.dead_letters.into_iter().map(|d| DeadRecord {
                    topic: topic.to_string(),
                    partition: d.partition,
                    offset: d.offset,
                    key: d.key,
                    value: d.value,
                    reason: d.reason,
                }));
                let batch = decoded.batch;
                if batch.num_rows() == 0 {
                    continue;
                }
                if let Some(times) = batch
                    .column_by_name(columns::EVENT_TIME)
                    .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
                {
                    let mut max: Option<i64> = None;
                    for k in 0..times.len() {
                        if times.is_valid(k) {
                            let t = times.value(k);
                            et.observe(t);
                            max = Some(max.map_or(t, |m: i64| m.max(t)));
                        }
                    }
                    if let (Some(m), Some(idx), false) =
                        (max, self.tp_index.get(&part.tp), upstream)
                    {
                        self.pipeline.tracker.observe(*idx, m, now);
                    }
                }
                if let Some(shuffle) = self.shuffle.as_mut() {
                    // Lateness is judged where the groups are aggregated, against every
                    // upstream task's watermark.
                    shuffle.route(&data, batch)?;
                    continue;
                }
                let (on_time, late_rows) = split_late(&batch, offsets.watermark_ms)?;
                if let Some(l) = late_rows {
                    num_late += l.num_rows() as u64;
                    late.push(l);
                }
                if on_time.num_rows() > 0 {
                    // The fan-out: each branch gets the same decoded rows (Arc'd columns, no
                    // copy).
                    for (chain, out) in self.pipeline.chains.iter_mut().zip(&mut outs) {
                        chain.process(Message::Batch(on_time.clone()), out)?;
                    }
                }
            }
        }
        let wm = self.pipeline.tracker.advance(now);
        if let Some(shuffle) = self.shuffle.as_mut() {
            shuffle.send_epoch(epoch, self.pipeline.tracker.current())?;
        }
        let mut results = Vec::with_capacity(outs.len());
        for ((chain, mut out), plan) in self
            .pipeline
            .chains
            .iter_mut()
            .zip(outs)
            .zip(&self.job.branches)
        {
            if let Some(wm) = wm {
                chain.process(Message::Watermark(wm), &mut out)?;
            }
            chain.process(Message::Trigger, &mut out)?;
            results.push(canonical_order(
                &chain.output_schema(),
                out.batches,
                &plan.group_by,
            )?);
        }
        let num_outputs: Vec<u64> = results
            .iter()
            .map(|r| r.iter().map(|b| b.num_rows() as u64).sum())
            .collect();
        let num_output: u64 = num_outputs.iter().sum();
        self.dead.send_dead_letters(epoch, &dead)?;
        self.dead.send_late(epoch, &late)?;
        self.fail_at(FailPoint::AfterDeadLetters(epoch))?;
        for (i, (sinks, result)) in self.sinks.iter_mut().zip(&results).enumerate() {
            for s in sinks.iter_mut() {
                s.write_epoch(epoch, result)?;
            }
            if self.opts.fail_point == Some(FailPoint::AfterBranchSinks(epoch, i)) {
                return Err(RuntimeError::FailPoint(format!(
                    "{:?}",
                    FailPoint::AfterBranchSinks(epoch, i)
                )));
            }
        }
        let add_ms = add.elapsed().as_millis() as u64;
        self.fail_at(FailPoint::AfterSinks(epoch))?;
        let commit = Instant::now();
        let state = self.pipeline.snapshot(epoch)?;
        self.checkpoint.write_state(&state)?;
        self.fail_at(FailPoint::AfterState(epoch))?;
        self.checkpoint.write_commit(epoch)?;
        self.checkpoint.commit_epoch()?;
        for s in self.sinks.iter_mut().flatten() {
            s.commit(epoch)?;
        }
        if let Some(shuffle) = self.shuffle.as_mut() {
            shuffle.commit()?;
        }
        self.dead.commit()?;
        // After the commit: an observer only ever sees results a restart will not take back.
        if let Some(o) = &self.opts.observer {
            for (plan, result) in self.job.branches.iter().zip(&results) {
                o.on_branch_results(&plan.name, epoch, result);
            }
            if let Some(first) = results.first() {
                match &self.opts.task {
                    Some(t) => o.on_task_results(t.task, epoch, first),
                    None => o.on_results(epoch, first),
                }
            }
        }
        let ends: BTreeMap<TopicPartition, i64> = offsets
            .ranges
            .iter()
            .map(|r| {
                (
                    TopicPartition {
                        topic: r.topic.clone(),
                        partition: r.partition,
                    },
                    r.end,
                )
            })
            .collect();
        if let Some(task) = &self.opts.task {
            // The group's members are the processes; their coordinator commits for the task.
            let _ = task.committed.send(ends.clone());
        } else if let Err(e) = self.source.commit_to_group(&ends) {
            tracing::warn!(
                "committing offsets to group `{}`: {e}",
                self.source.group_id()
            );
        }
        let commit_ms = commit.elapsed().as_millis() as u64;
        self.summary.epochs += 1;
        self.summary.last_committed = Some(epoch);
        self.summary.input_rows += num_input;
        self.summary.output_rows += num_output;
        for ((_, total), n) in self.summary.branch_output_rows.iter_mut().zip(&num_outputs) {
            *total += n;
        }
        self.summary.dead_letters += dead.len() as u64;
        self.summary.late_rows += num_late;
        self.summary.watermark = self.pipeline.tracker.current();
        self.report(
            offsets,
            &ends,
            ProgressCounts {
                num_input,
                num_output,
                num_outputs,
                num_dead: dead.len() as u64,
                num_late,
                et,
                get_batch_ms,
                wal_ms,
                add_ms,
                commit_ms,
                total_ms: started.elapsed().as_millis() as u64,
            },
        );
        Ok(())
    }

    fn report(
        &mut self,
        offsets: &EpochOffsets,
        ends: &BTreeMap<TopicPartition, i64>,
        c: ProgressCounts,
    ) {
        let latest_t = Instant::now();
        let latest = self.source.recent_latest_offsets().unwrap_or_default();
        let latest_ms = latest_t.elapsed().as_millis() as u64;
        let mut branches: Vec<BranchState<'_>> = self
            .pipeline
            .chains
            .iter()
            .zip(&self.job.branches)
            .zip(&self.sinks)
            .map(|((chain, plan), sinks)| BranchState {
                name: &plan.name,
                operators: chain.operators().collect(),
                sinks: sinks.iter().map(|s| s.description()).collect(),
            })
            .collect();
        if let (Some(shuffle), Some(b)) = (&self.shuffle, branches.first_mut()) {
            b.sinks.push(shuffle.description());
        }
        let p = progress::assemble(&EpochReport {
            id: &self.summary.id,
            run_id: &self.summary.run_id,
            name: &self.plan.name,
            trigger: self.plan.output.trigger,
            offsets,
            ends,
            latest: &latest,
            latest_ms,
            partitions: self.tp_index.keys(),
            source: self.source.description(),
            watermark: self.pipeline.tracker.current(),
            branches,
            counts: c,
            task: self.opts.task.as_ref().map(|t| progress::TaskProgress {
                id: t.task,
                of: t.tasks,
                owner: t.owner.clone(),
                group: t.group.clone(),
            }),
        });
        tracing::info!("{}", p.summary_line());
        if let Some(o) = &self.opts.observer {
            o.on_progress(&p);
        }
        if let Some(w) = self.progress.as_mut() {
            if let Err(e) = w.write(&p) {
                tracing::warn!("progress file: {e}");
            }
        }
    }
}

/// Whether the plan's aggregation emits final rows only (append mode).
pub fn is_append(plan: &Plan) -> bool {
    plan.output.mode == OutputMode::Append
}
