//! A query spread over processes (`checkpoint.store = "kafka"`), Kafka Streams style: every
//! process running the query is a member of the consumer group `rivulet-<name>` (or the
//! source's `group.id`), subscribed to the source topic with the cooperative-sticky assignor.
//! The unit of work is a *task* per input partition number: task `p` reads partition `p` of
//! the source's topics and keeps its checkpoint in partition `p` of `<name>-changelog`, with
//! its own transactional ids (`rivulet-<name>:<p>`, `rivulet-<name>:<p>-<role>` for its Kafka
//! writers), so it can run on any member.
//!
//! The group decides who runs what: when the group assigns partition `p` to this process, task
//! `p` starts here (a [`Query`](crate::query) on its own thread: it restores its state from its
//! changelog partition, re-runs a pending epoch, goes on); when `p` is revoked, the task
//! finishes its current epoch and stops *before* the process rejoins, so the next owner starts
//! from a committed epoch. Under the cooperative protocol a rebalance revokes only partitions
//! that move; the others' tasks keep running through it. A process that lost its partitions
//! without knowing (paused past its session timeout, cut off) is a zombie: the new owner's task
//! initialised the same transactional ids, so the zombie's next write fails as fenced and
//! nothing it writes becomes visible; the task is dropped and the process rejoins the group.
//!
//! The group's consumer only holds the membership: its partitions are paused, and the tasks
//! read through their own sources at the offsets their checkpoints hold. It commits each
//! task's committed offsets to the group, for lag tools (`rivulet groups describe`) only.
//!
//! The source's topics must have the same partition count (tasks are partition numbers).

use std::collections::BTreeMap;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use rivulet_engine::job::Job;
use tokio_util::sync::CancellationToken;

use crate::connectors::{self, kafka::SourceOptions};
use crate::error::RuntimeError;
use crate::progress::{GroupEvent, GroupEventKind, ProgressWriter};
use crate::query::{run_task, QuerySummary, RunOptions, TaskSpec};
use crate::sinks::kafka::topic_partitions;
use crate::source::TopicPartition;
use crate::Result;

/// How long the group waits for a silent member before moving its tasks, unless the source's
/// properties set `session.timeout.ms`: shorter than librdkafka's 45 s, since a dead process's
/// tasks stall until then.
const SESSION_TIMEOUT_MS: &str = "10000";
const HEARTBEAT_MS: &str = "1000";

/// Runs this process's share of `job` until `cancel` (or, for bounded runs, until every task
/// it was given has stopped by itself); see the module docs.
pub(crate) fn run(job: Job, opts: RunOptions, cancel: CancellationToken) -> Result<QuerySummary> {
    connectors::check_job(&job)?;
    let plan = job.primary().ok_or_else(|| {
        rivulet_engine::EngineError::Plan("a job needs at least one branch".into())
    })?;
    let source = SourceOptions::of(&plan.source)?;
    let group = source.group_id(&job.name);
    let mut config = source.connection.client_config();
    for (key, value) in [
        ("session.timeout.ms", SESSION_TIMEOUT_MS),
        ("heartbeat.interval.ms", HEARTBEAT_MS),
    ] {
        if config.get(key).is_none() {
            config.set(key, value);
        }
    }
    let owner = owner();
    if config.get("client.id").is_none() {
        // `rivulet groups describe` then names each member as its progress records do.
        config.set("client.id", &owner);
    }
    let progress = match &opts.progress_json {
        Some(p) => Some(ProgressWriter::open(p)?),
        None => None,
    };
    let (committed_tx, committed_rx) = channel();
    let tasks = Arc::new(Mutex::new(Tasks {
        group: group.clone(),
        owner,
        progress,
        job: job.clone(),
        opts,
        cancel: cancel.clone(),
        tasks: 0,
        committed: committed_tx,
        running: BTreeMap::new(),
        total: QuerySummary {
            id: group.clone(),
            run_id: uuid::Uuid::new_v4().to_string(),
            branch_output_rows: job.branches.iter().map(|b| (b.name.clone(), 0)).collect(),
            ..QuerySummary::default()
        },
        watermarks: Vec::new(),
        failed: None,
        assigned_once: false,
    }));
    let consumer: BaseConsumer<Membership> = config
        .set("group.id", &group)
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .create_with_context(Membership {
            tasks: tasks.clone(),
        })
        .map_err(|e| RuntimeError::kafka("creating the group member", e))?;
    let counts = source
        .topics
        .iter()
        .map(|t| topic_partitions(consumer.client(), t))
        .collect::<Result<Vec<i32>>>()?;
    let n = counts.first().copied().unwrap_or(0);
    if counts.iter().any(|c| *c != n) {
        return Err(RuntimeError::Plan(format!(
            "a query checkpointed in Kafka runs one task per partition number, so its topics \
             need the same partition count: {} have {counts:?}",
            source.topics.join(", ")
        )));
    }
    lock(&tasks).tasks = n;
    let spread = job
        .branches
        .iter()
        .map(crate::repartition::needs_shuffle)
        .collect::<Result<Vec<bool>>>()?;
    if n > 1 && job.branches.len() > 1 && spread.contains(&true) {
        // A job of several branches gets no repartition topic (crate::repartition): a group
        // whose records are spread over partitions is aggregated in pieces by several tasks.
        tracing::warn!(
            "query `{}` runs as {n} tasks, each aggregating its own partition: results are \
             exact when all records of a group are in one partition (the topic keyed by the \
             GROUP BY key and source.key_fields naming it, as `rivulet gen` keys by id)",
            job.name
        );
    }
    // Membership follows the first topic's partitions; task p reads partition p of every topic.
    let first = source.topics.first().cloned().unwrap_or_default();
    consumer
        .subscribe(&[first.as_str()])
        .map_err(|e| RuntimeError::kafka(format!("joining group `{group}`"), e))?;
    tracing::info!(
        "query `{}`: joined group `{group}` over {n} task(s) (partitions of `{first}`)",
        job.name
    );
    let result = member_loop(&consumer, &tasks, &committed_rx, &cancel);
    lock(&tasks).stop_all();
    // Leaving the group hands this process's partitions over at once.
    consumer.unsubscribe();
    drop(consumer);
    result?;
    let mut t = lock(&tasks);
    if let Some(e) = t.failed.take() {
        return Err(e);
    }
    t.total.watermark = t.watermarks.iter().copied().min();
    Ok(t.total.clone())
}

fn member_loop(
    consumer: &BaseConsumer<Membership>,
    tasks: &Mutex<Tasks>,
    committed: &Receiver<BTreeMap<TopicPartition, i64>>,
    cancel: &CancellationToken,
) -> Result<()> {
    let bounded = {
        let t = lock(tasks);
        t.opts.stop_when_caught_up || t.opts.max_epochs.is_some()
    };
    while !cancel.is_cancelled() {
        // Serves heartbeats' results and rebalances (the callbacks below run in here). The
        // partitions are paused; a record fetched before the pause is simply not used.
        if let Some(Err(e)) = consumer.poll(Duration::from_millis(100)) {
            tracing::debug!("group member: {e}");
        }
        let mut offsets = BTreeMap::new();
        while let Ok(ends) = committed.try_recv() {
            offsets.extend(ends);
        }
        if !offsets.is_empty() {
            commit(consumer, &offsets);
        }
        let mut t = lock(tasks);
        t.reap();
        if t.failed.is_some() || bounded && t.assigned_once && t.running.is_empty() {
            break;
        }
    }
    Ok(())
}

/// Commits the tasks' committed offsets to the group (visibility only: a rebalance in flight
/// may refuse it, and the next epoch's commit follows anyway).
fn commit(consumer: &BaseConsumer<Membership>, offsets: &BTreeMap<TopicPartition, i64>) {
    let mut tpl = TopicPartitionList::new();
    for (tp, off) in offsets {
        if tpl
            .add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*off))
            .is_err()
        {
            return;
        }
    }
    if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
        tracing::debug!("committing task offsets to the group: {e}");
    }
}

fn lock(tasks: &Mutex<Tasks>) -> MutexGuard<'_, Tasks> {
    tasks.lock().unwrap_or_else(PoisonError::into_inner)
}

/// This process as the progress records and group events name it: `<host>:<pid>`.
fn owner() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string());
    format!("{host}:{}", std::process::id())
}

/// The tasks this process runs, and what the stopped ones did.
struct Tasks {
    group: String,
    owner: String,
    /// `--progress-json`: the group events go there too.
    progress: Option<ProgressWriter>,
    job: Job,
    opts: RunOptions,
    cancel: CancellationToken,
    /// The query's task count (the source's partitions).
    tasks: i32,
    committed: Sender<BTreeMap<TopicPartition, i64>>,
    running: BTreeMap<i32, Running>,
    /// The stopped tasks' work, added up.
    total: QuerySummary,
    /// The stopped tasks' watermarks: the query's is the smallest.
    watermarks: Vec<i64>,
    /// A task's error other than being fenced: the process stops with it.
    failed: Option<RuntimeError>,
    assigned_once: bool,
}

struct Running {
    cancel: CancellationToken,
    handle: JoinHandle<Result<QuerySummary>>,
}

impl Tasks {
    /// Tells the log's readers, the observer and the progress file what changed.
    fn event(&mut self, event: GroupEventKind, tasks: Vec<i32>) {
        if tasks.is_empty() {
            return;
        }
        let e = GroupEvent {
            event,
            timestamp: rivulet_time::rfc3339_ms(rivulet_time::now_ms()),
            name: self.job.name.clone(),
            group: self.group.clone(),
            owner: self.owner.clone(),
            tasks,
            running: self.running.keys().copied().collect(),
            of: self.tasks,
        };
        tracing::info!(
            "query `{}` on {}: {:?} {:?}, running {:?} of {}",
            e.name,
            e.owner,
            e.event,
            e.tasks,
            e.running,
            e.of
        );
        if let Some(o) = &self.opts.observer {
            o.on_group_event(&e);
        }
        if let Some(w) = self.progress.as_mut() {
            if let Err(err) = w.write(&e) {
                tracing::warn!("progress file: {err}");
            }
        }
    }

    fn start(&mut self, partitions: Vec<i32>) {
        self.assigned_once = true;
        let mut started = Vec::new();
        for p in partitions {
            if self.running.contains_key(&p) || self.failed.is_some() {
                continue;
            }
            let cancel = self.cancel.child_token();
            let opts = RunOptions {
                task: Some(TaskSpec {
                    task: p,
                    tasks: self.tasks,
                    committed: self.committed.clone(),
                    owner: self.owner.clone(),
                    group: self.group.clone(),
                }),
                ..self.opts.clone()
            };
            let (job, token) = (self.job.clone(), cancel.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("task-{p}"))
                .spawn(move || run_task(job, opts, token));
            match spawned {
                Ok(handle) => {
                    tracing::info!("query `{}`: task {p} starts here", self.job.name);
                    self.running.insert(p, Running { cancel, handle });
                    started.push(p);
                }
                Err(e) => {
                    self.failed = Some(RuntimeError::Thread(format!("starting task {p}: {e}")));
                }
            }
        }
        self.event(GroupEventKind::TasksAssigned, started);
    }

    /// Stops the tasks of `partitions` and waits for them: `why` is revoked (they move),
    /// lost (the group moved them while this process was away, so they may already be running
    /// elsewhere) or stopped (the process leaves).
    fn stop(&mut self, partitions: Vec<i32>, why: GroupEventKind) {
        let mut stopped = Vec::new();
        for p in partitions {
            if let Some(r) = self.running.remove(&p) {
                stopped.push(p);
                tracing::info!(
                    "query `{}`: task {p} {} here",
                    self.job.name,
                    match why {
                        GroupEventKind::TasksLost =>
                            "was lost (the group moved it while this process was away); it stops",
                        GroupEventKind::TasksRevoked => "moves; it stops",
                        _ => "stops",
                    }
                );
                r.cancel.cancel();
                self.finished(p, r.handle.join());
            }
        }
        self.event(why, stopped);
    }

    fn stop_all(&mut self) {
        let all: Vec<i32> = self.running.keys().copied().collect();
        for r in self.running.values() {
            r.cancel.cancel();
        }
        self.stop(all, GroupEventKind::TasksStopped);
    }

    /// Takes in the tasks that ended by themselves (bounded runs, the process's cancellation,
    /// errors).
    fn reap(&mut self) {
        let done: Vec<i32> = self
            .running
            .iter()
            .filter(|(_, r)| r.handle.is_finished())
            .map(|(p, _)| *p)
            .collect();
        let mut stopped = Vec::new();
        for p in done {
            if let Some(r) = self.running.remove(&p) {
                if self.finished(p, r.handle.join()) {
                    stopped.push(p);
                }
            }
        }
        self.event(GroupEventKind::TasksStopped, stopped);
    }

    /// Takes in a task's end; whether it ended well (its events are the caller's to tell,
    /// a fenced or failed task's are told here).
    fn finished(&mut self, p: i32, joined: std::thread::Result<Result<QuerySummary>>) -> bool {
        match joined {
            Ok(Ok(s)) => {
                self.add(s);
                return true;
            }
            Ok(Err(RuntimeError::Fenced(what))) => {
                // A zombie's task: another process owns it now and wrote past it.
                tracing::warn!(
                    "query `{}`: task {p} was fenced ({what}); it stops here and the group \
                     decides who runs it",
                    self.job.name
                );
                self.event(GroupEventKind::TaskFenced, vec![p]);
            }
            Ok(Err(e)) => {
                tracing::error!("query `{}`: task {p} failed: {e}", self.job.name);
                self.cancel.cancel();
                self.failed.get_or_insert(e);
                self.event(GroupEventKind::TaskFailed, vec![p]);
            }
            Err(_) => {
                self.cancel.cancel();
                self.failed
                    .get_or_insert(RuntimeError::Thread(format!("task {p} panicked")));
                self.event(GroupEventKind::TaskFailed, vec![p]);
            }
        }
        false
    }

    fn add(&mut self, s: QuerySummary) {
        let t = &mut self.total;
        t.epochs += s.epochs;
        t.input_rows += s.input_rows;
        t.output_rows += s.output_rows;
        t.dead_letters += s.dead_letters;
        t.late_rows += s.late_rows;
        t.replayed_epoch = t.replayed_epoch.or(s.replayed_epoch);
        t.last_committed = t.last_committed.max(s.last_committed);
        for ((_, total), (_, rows)) in t.branch_output_rows.iter_mut().zip(&s.branch_output_rows) {
            *total += rows;
        }
        self.watermarks.extend(s.watermark);
    }
}

/// The group member's callbacks: tasks follow the assignment.
struct Membership {
    tasks: Arc<Mutex<Tasks>>,
}

fn numbers(tpl: &TopicPartitionList) -> Vec<i32> {
    tpl.elements().iter().map(|e| e.partition()).collect()
}

impl ClientContext for Membership {}

impl ConsumerContext for Membership {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            // Before the process rejoins: the next owner starts from a committed epoch.
            let why = if consumer.assignment_lost() {
                GroupEventKind::TasksLost
            } else {
                GroupEventKind::TasksRevoked
            };
            lock(&self.tasks).stop(numbers(tpl), why);
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                if let Err(e) = consumer.pause(tpl) {
                    tracing::debug!("pausing the group member's partitions: {e}");
                }
                lock(&self.tasks).start(numbers(tpl));
            }
            Rebalance::Error(e) => tracing::warn!("group rebalance: {e}"),
            Rebalance::Revoke(_) => {}
        }
    }
}
