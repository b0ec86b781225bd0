//! `rivulet bench scale`: one query spread over processes (`--checkpoint-store kafka`), in
//! three parts. The query is the default one (examples/pipeline.toml: 10 s tumbling windows
//! per id, count/avg/min/max, 5 s lateness, update mode) given as `rivulet run` flags, with a
//! JSON-lines file sink per process. The processes are real `rivulet run` children from the
//! [`Launcher`]; progress is read from outside, as the offsets the query's consumer group
//! commits after each task's epochs (OffsetFetch every 100 ms).
//!
//! - `throughput`: per entry of `--processes` (e.g. 1 and 2), a fresh topic of `--partitions`
//!   partitions pre-filled (untimed) with `--count` generator events, each id in partition
//!   `id % partitions`; then that many processes, pinned to cores 0, 1, … with `taskset` under
//!   `--pin`, run until the group has committed every record. events/s = count / wall time
//!   from the processes' start (join, restore and all); `..._after_first_commit` leaves the
//!   start-up out. With `--repartition` the same runs follow with the query *not* declared
//!   keyed by id, so it goes through a shuffle stage and `<name>-repartition`; done when the
//!   shuffle group committed every input record and the query's group committed up to the
//!   repartition topic's end.
//! - `restore`: per entry of `--state-keys` (K), a one-partition topic with 2·K events over K
//!   ids in one 24 h window, run to the end in this process (the query's one task keeps ~0.86·K
//!   accumulators); then the time to open the task's checkpoint — initialise its
//!   transactional id, read its changelog partition under read_committed — and read its last
//!   state, with the state's size; and the wall time of a whole restart that finds nothing new
//!   (group join included).
//! - `failover`: `--failover-processes` (2) processes, throttled (`--failover-records-per-trigger` per task epoch,
//!   trigger `--failover-trigger`, 200 ms) over a pre-filled topic; one is killed with SIGKILL; per partition the
//!   longest gap between two advances of its committed offset around the kill (the moved
//!   partitions wait for the session timeout, then restore; the others should not stop), and
//!   the same when another process joins (cooperative rebalancing moves some partitions).
//!   With many partitions and processes (`--partitions 64 --failover-processes 16`) this is
//!   the simulation of a large group docs/SCALING.md reports.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use rivulet_client::KafkaConnection;
use rivulet_runtime::checkpoint::kafka::Changelog;
use rivulet_runtime::checkpoint::{Checkpoint, KafkaStore};
use tokio_util::sync::CancellationToken;

use crate::broker::BenchBroker;
use crate::kafka::{blocking, client_config, ensure_topic};
use crate::raw;
use crate::report::{round2, Report};
use crate::{BenchError, Launcher};

const SAMPLE: Duration = Duration::from_millis(100);

/// What `bench scale` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScalePart {
    /// events/s with 1, 2, … processes.
    Throughput,
    /// Time to restore a task's state against its size.
    Restore,
    /// The pause when a process dies and when one joins.
    Failover,
}

/// `rivulet bench scale` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct ScaleArgs {
    /// Bootstrap servers; without it the bench starts its own broker on 127.0.0.1.
    #[arg(long)]
    pub brokers: Option<String>,
    /// Parts to run, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "throughput,restore,failover"
    )]
    pub parts: Vec<ScalePart>,
    /// Partitions of the input topic (the query's tasks).
    #[arg(long, default_value_t = 4)]
    pub partitions: i32,
    /// (throughput, failover) events pre-filled.
    #[arg(long, default_value_t = 2_000_000)]
    pub count: u64,
    /// (throughput, failover) distinct ids.
    #[arg(long, default_value_t = 1000)]
    pub keys: u64,
    /// (throughput) process counts to compare, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    pub processes: Vec<usize>,
    /// (throughput) pin process i to core i (`taskset -c i`).
    #[arg(long)]
    pub pin: bool,
    /// (throughput) also run the query through a repartition topic: the same query without
    /// declaring that the topic is keyed by id, so a shuffle stage sends every record through
    /// `<name>-repartition` (`rivulet_runtime::repartition`).
    #[arg(long)]
    pub repartition: bool,
    /// (throughput) `--max-records-per-trigger` of the query.
    #[arg(long, default_value_t = 100_000)]
    pub max_records_per_trigger: u64,
    /// (restore) state sizes in distinct ids, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10000,100000,1000000")]
    pub state_keys: Vec<u64>,
    /// (failover) records per task epoch (every 200 ms), so the run outlasts the failover.
    #[arg(long, default_value_t = 2000)]
    pub failover_records_per_trigger: u64,
    /// (failover) processes running before one is killed (then one joins). With many
    /// partitions and records throttled, a simulation of a large group on one machine.
    #[arg(long, default_value_t = 2)]
    pub failover_processes: usize,
    /// (failover) the query's trigger interval.
    #[arg(long, default_value = "200ms")]
    pub failover_trigger: String,
    /// Generator seed.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// --fsync of the broker the bench starts.
    #[arg(long, default_value = "always")]
    pub fsync: String,
    /// Give up on each phase after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout_secs: u64,
    /// Keep the processes' working directories (their logs, sinks) and print where.
    #[arg(long)]
    pub keep: bool,
}

pub(crate) async fn run(args: ScaleArgs, launcher: Arc<dyn Launcher>) -> Result<(), BenchError> {
    if args.partitions < 1 || args.count == 0 || args.keys == 0 || args.processes.contains(&0) {
        return Err(BenchError::InvalidArgument(
            "--partitions, --count, --keys and --processes must be at least 1".into(),
        ));
    }
    let own = match &args.brokers {
        None => Some(BenchBroker::start(launcher.clone(), &args.fsync).await?),
        Some(_) => None,
    };
    let brokers = match (&args.brokers, &own) {
        (Some(b), _) => b.clone(),
        (None, Some(o)) => o.addr().to_string(),
        (None, None) => String::new(),
    };
    let mut report = Report::new("scale");
    report.add("broker", brokers.clone());
    report.add("partitions", args.partitions);
    report.add(
        "cores",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    let work = tempfile::Builder::new()
        .prefix("rivulet-bench-scale-")
        .tempdir()
        .map_err(BenchError::io("creating a temporary directory"))?;
    let mut result = Ok(());
    for part in args.parts.clone() {
        let r = match part {
            ScalePart::Throughput => {
                let pid = own.as_ref().map(BenchBroker::pid);
                throughput(&brokers, pid, &args, &launcher, work.path(), &mut report).await
            }
            ScalePart::Restore => restore(&brokers, &args, work.path(), &mut report).await,
            ScalePart::Failover => {
                failover(&brokers, &args, &launcher, work.path(), &mut report).await
            }
        };
        if let Err(e) = r {
            result = Err(e);
            break;
        }
    }
    if let Some(b) = own {
        b.stop();
    }
    if args.keep {
        report.add("kept", work.keep().display().to_string());
    }
    report.print();
    result
}

/// Pre-fills `topic` (created with `partitions` partitions) with `count` generator events over
/// `keys` ids, id `i` in partition `i % partitions`.
async fn prefill(
    brokers: &str,
    topic: &str,
    partitions: i32,
    count: u64,
    keys: u64,
    seed: u64,
    timeout: Duration,
) -> Result<(), BenchError> {
    ensure_topic(&KafkaConnection::new(brokers), topic, partitions).await?;
    // Event time from a minute ago: a fixed date in the past would let the broker's
    // time-based retention (7 days) delete the topic's segments under a long run.
    let start_ms = rivulet_time::now_ms() - 60_000;
    for p in 0..partitions {
        let n = u64::try_from(partitions).unwrap_or(1);
        let events = crate::pipeline::bench_stream(seed, start_ms, keys)?
            .take(usize::try_from(count).unwrap_or(usize::MAX))
            .filter(move |e| e.id % n == u64::try_from(p).unwrap_or(0));
        let batches = crate::pipeline::raw_batches(events);
        raw::produce_batches(
            brokers,
            topic,
            p,
            1,
            crate::pipeline::PREFILL_IN_FLIGHT,
            timeout,
            batches,
        )
        .await?;
    }
    Ok(())
}

/// The default query as `rivulet run` flags, named `name`, over `topic`, checkpointed in
/// Kafka, its file sink under `dir`; declared keyed by id (no repartition topic) unless
/// `repartition`.
fn query_flags(
    brokers: &str,
    topic: &str,
    name: &str,
    dir: &Path,
    records: u64,
    repartition: bool,
) -> Vec<String> {
    let mut f: Vec<String> = [
        "run",
        "--brokers",
        brokers,
        "--topic",
        topic,
        "--name",
        name,
        "--checkpoint-store",
        "kafka",
        "--schema",
        "id:bigint,value:double,timestamp:timestamp",
        "--event-time",
        "timestamp",
        "--lateness",
        "5s",
        "--window",
        "tumbling:10s",
        "--group-by",
        "id",
        "--agg",
        "count",
        "--agg",
        "avg:value",
        "--agg",
        "min:value",
        "--agg",
        "max:value",
        "--mode",
        "update",
        "--starting-offsets",
        "earliest",
        "--max-records-per-trigger",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    f.push(records.to_string());
    if !repartition {
        // Keyed by id (as `rivulet gen` keys), so grouped where read: no repartition topic.
        f.push("--key-field".into());
        f.push("id".into());
    }
    f.push("--sink".into());
    f.push(format!("file:{}", dir.join("out").display()));
    f
}

/// A `rivulet run` child; killed when dropped.
struct Member {
    child: Child,
    log: PathBuf,
}

impl Member {
    fn start(
        launcher: &Arc<dyn Launcher>,
        dir: &Path,
        flags: &[String],
        cpu: Option<usize>,
    ) -> Result<Member, BenchError> {
        std::fs::create_dir_all(dir)
            .map_err(BenchError::io(format!("creating {}", dir.display())))?;
        let log = dir.join("run.log");
        let stderr = std::fs::File::create(&log)
            .map_err(BenchError::io(format!("creating {}", log.display())))?;
        let base = launcher.run(flags);
        let mut cmd = match cpu {
            Some(c) => {
                let mut t = Command::new("taskset");
                t.arg("-c").arg(c.to_string()).arg(base.get_program());
                t.args(base.get_args());
                t
            }
            None => base,
        };
        let child = cmd
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr))
            .spawn()
            .map_err(BenchError::io("starting `rivulet run`"))?;
        Ok(Member { child, log })
    }

    /// SIGINT, then (bounded) wait; SIGKILL if it does not stop.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-INT")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn check_alive(&mut self) -> Result<(), BenchError> {
        if let Ok(Some(st)) = self.child.try_wait() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: String = log
                .chars()
                .rev()
                .take(2000)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            return Err(BenchError::Worker(format!(
                "`rivulet run` exited ({st}):\n{tail}"
            )));
        }
        Ok(())
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads the offsets a group committed, per partition (0 where none).
struct GroupOffsets {
    consumer: BaseConsumer,
    topic: String,
    partitions: i32,
}

impl GroupOffsets {
    fn new(brokers: &str, group: &str, topic: &str, partitions: i32) -> Result<Self, BenchError> {
        let consumer: BaseConsumer = client_config(&KafkaConnection::new(brokers))
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .map_err(BenchError::kafka("creating the offset reader"))?;
        Ok(GroupOffsets {
            consumer,
            topic: topic.to_string(),
            partitions,
        })
    }

    /// The topic's end offsets (0 where unknown yet).
    fn ends(&self) -> Vec<i64> {
        (0..self.partitions)
            .map(|p| {
                self.consumer
                    .fetch_watermarks(&self.topic, p, Duration::from_secs(10))
                    .map_or(0, |(_, high)| high)
            })
            .collect()
    }

    fn read(&self) -> Vec<i64> {
        let mut tpl = TopicPartitionList::new();
        for p in 0..self.partitions {
            tpl.add_partition(&self.topic, p);
        }
        let got = self
            .consumer
            .committed_offsets(tpl, Duration::from_secs(10))
            .ok();
        (0..self.partitions)
            .map(|p| {
                got.as_ref()
                    .and_then(|t| t.find_partition(&self.topic, p))
                    .and_then(|e| match e.offset() {
                        Offset::Offset(o) => Some(o),
                        _ => None,
                    })
                    .unwrap_or(0)
            })
            .collect()
    }
}

async fn throughput(
    brokers: &str,
    broker_pid: Option<u32>,
    args: &ScaleArgs,
    launcher: &Arc<dyn Launcher>,
    work: &Path,
    report: &mut Report,
) -> Result<(), BenchError> {
    let timeout = Duration::from_secs(args.timeout_secs);
    report.add("throughput_events", args.count);
    report.add("throughput_pinned", args.pin);
    let shapes = if args.repartition {
        vec![false, true]
    } else {
        vec![false]
    };
    for (repartition, &n) in shapes
        .iter()
        .flat_map(|r| args.processes.iter().map(move |n| (*r, n)))
    {
        let tag = if repartition { "r" } else { "" };
        let topic = format!("bench-scale-{n}p{tag}");
        prefill(
            brokers,
            &topic,
            args.partitions,
            args.count,
            args.keys,
            args.seed,
            timeout,
        )
        .await?;
        let (b, a, w) = (brokers.to_string(), args.clone(), work.to_path_buf());
        let l = launcher.clone();
        let broker_cpu = crate::pipeline::cpu_secs(broker_pid);
        let (wall, first, cpu) = blocking(move || {
            let name = format!("scale{n}p{tag}");
            // Done when the group that reads the input committed all of it and, behind a
            // repartition topic, the aggregating group committed up to that topic's end.
            let group = if repartition {
                format!("rivulet-{name}-shuffle")
            } else {
                format!("rivulet-{name}")
            };
            let offsets = GroupOffsets::new(&b, &group, &topic, a.partitions)?;
            let shuffled = GroupOffsets::new(
                &b,
                &format!("rivulet-{name}"),
                &format!("{name}-repartition"),
                a.partitions,
            )?;
            let t = Instant::now();
            let mut members = (0..n)
                .map(|i| {
                    let dir = w.join(format!("{name}-{i}"));
                    let flags = query_flags(
                        &b,
                        &topic,
                        &name,
                        &dir,
                        a.max_records_per_trigger,
                        repartition,
                    );
                    Member::start(&l, &dir, &flags, a.pin.then_some(i))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let mut first = None;
            let total = i64::try_from(a.count).unwrap_or(i64::MAX);
            loop {
                let done: i64 = offsets.read().iter().sum();
                if done > 0 && first.is_none() {
                    first = Some(t.elapsed());
                }
                if done >= total
                    && (!repartition || {
                        let ends: i64 = shuffled.ends().iter().sum();
                        ends > 0 && shuffled.read().iter().sum::<i64>() >= ends
                    })
                {
                    break;
                }
                for m in &mut members {
                    m.check_alive()?;
                }
                if t.elapsed() > timeout {
                    return Err(BenchError::Timeout(format!(
                        "{n} process(es): {done} of {total} records committed"
                    )));
                }
                std::thread::sleep(SAMPLE);
            }
            let wall = t.elapsed();
            let cpu: f64 = members
                .iter()
                .map(|m| crate::pipeline::cpu_secs(Some(m.child.id())))
                .sum();
            for m in members {
                m.stop();
            }
            Ok((wall, first.unwrap_or(wall), cpu))
        })
        .await?;
        let secs = wall.as_secs_f64().max(1e-9);
        let key = if repartition {
            format!("throughput_repartition_{n}_processes")
        } else {
            format!("throughput_{n}_processes")
        };
        // CPU per million events: whether splitting the query costs work (with more cores,
        // throughput grows as far as this stays flat and the broker keeps up).
        let per_m = 1e6 / args.count as f64;
        report.add(
            format!("{key}_query_cpu_secs_per_million"),
            round2(cpu * per_m),
        );
        if broker_pid.is_some() {
            report.add(
                format!("{key}_broker_cpu_secs_per_million"),
                round2((crate::pipeline::cpu_secs(broker_pid) - broker_cpu) * per_m),
            );
        }
        report.add(format!("{key}_wall_secs"), round2(secs));
        report.add(
            format!("{key}_first_commit_secs"),
            round2(first.as_secs_f64()),
        );
        report.add(
            format!("{key}_events_per_sec"),
            (args.count as f64 / secs).round() as u64,
        );
        report.add(
            format!("{key}_events_per_sec_after_first_commit"),
            (args.count as f64 / (secs - first.as_secs_f64()).max(1e-9)).round() as u64,
        );
    }
    Ok(())
}

/// The restore part's window: longer than its pre-fill's event times at any K.
const RESTORE_WINDOW_MS: i64 = 24 * 3_600_000;

async fn restore(
    brokers: &str,
    args: &ScaleArgs,
    work: &Path,
    report: &mut Report,
) -> Result<(), BenchError> {
    let timeout = Duration::from_secs(args.timeout_secs);
    for &k in &args.state_keys {
        let topic = format!("bench-restore-{k}");
        let name = format!("restore{k}");
        prefill(brokers, &topic, 1, 2 * k, k, args.seed, timeout).await?;
        let dir = work.join(&name);
        let plan_for = || {
            let mut plan = crate::pipeline::default_plan(brokers, &topic, &name, &dir)?;
            // One window longer than the pre-fill's event times, so the state holds every id:
            // the restore is measured against K keys of state (with the default 10 s windows
            // it would hold the last window's ids only, whatever K is).
            plan.window = Some(rivulet_engine::plan::WindowSpec::Tumbling {
                size: rivulet_engine::plan::DurationMs(RESTORE_WINDOW_MS),
            });
            Ok::<_, BenchError>(plan)
        };
        let opts = rivulet_runtime::RunOptions {
            stop_when_caught_up: true,
            ..rivulet_runtime::RunOptions::default()
        };
        rivulet_runtime::run_query(plan_for()?, opts.clone(), CancellationToken::new())
            .await
            .map_err(|e| BenchError::Worker(format!("query: {e}")))?;
        let connection = KafkaConnection::new(brokers);
        let n = name.clone();
        let (open_secs, bytes) = blocking(move || {
            let t = Instant::now();
            let store = KafkaStore::open(&connection, &Changelog::task(&n, 0, 1))
                .map_err(|e| BenchError::Worker(format!("opening the checkpoint: {e}")))?;
            let cp = Checkpoint::with_store(Box::new(store), &n)
                .map_err(|e| BenchError::Worker(e.to_string()))?;
            let epoch = cp
                .latest_committed()
                .map_err(|e| BenchError::Worker(e.to_string()))?
                .ok_or_else(|| BenchError::Worker("no committed epoch".into()))?;
            let state = cp
                .read_state(epoch)
                .map_err(|e| BenchError::Worker(e.to_string()))?;
            let bytes: usize = state.operators.iter().map(|(_, b)| b.len()).sum();
            Ok((t.elapsed().as_secs_f64(), bytes))
        })
        .await?;
        let t = Instant::now();
        rivulet_runtime::run_query(plan_for()?, opts, CancellationToken::new())
            .await
            .map_err(|e| BenchError::Worker(format!("query: {e}")))?;
        let restart = t.elapsed().as_secs_f64();
        let key = format!("restore_{k}_keys");
        report.add(
            format!("{key}_state_mib"),
            round2(bytes as f64 / 1_048_576.0),
        );
        report.add(format!("{key}_open_and_read_secs"), round2(open_secs));
        report.add(format!("{key}_restart_secs"), round2(restart));
    }
    Ok(())
}

/// Per partition, the longest time between two advances of its committed offset while
/// sampling for `span` (its last advance before the start counts as the start).
fn longest_gaps(
    offsets: &GroupOffsets,
    span: Duration,
    members: &mut [Member],
) -> Result<Vec<f64>, BenchError> {
    let start = Instant::now();
    let mut last = offsets.read();
    let mut since: Vec<Instant> = vec![start; last.len()];
    let mut gaps = vec![0.0f64; last.len()];
    while start.elapsed() < span {
        std::thread::sleep(SAMPLE);
        for m in members.iter_mut() {
            m.check_alive()?;
        }
        let now = offsets.read();
        for (p, (o, l)) in now.iter().zip(last.iter_mut()).enumerate() {
            if *o > *l {
                gaps[p] = gaps[p].max(since[p].elapsed().as_secs_f64());
                since[p] = Instant::now();
                *l = *o;
            }
        }
    }
    for (p, s) in since.iter().enumerate() {
        gaps[p] = gaps[p].max(s.elapsed().as_secs_f64());
    }
    Ok(gaps)
}

fn gap_list(gaps: &[f64]) -> String {
    gaps.iter()
        .enumerate()
        .map(|(p, g)| format!("p{p}={g:.1}s"))
        .collect::<Vec<_>>()
        .join(" ")
}

async fn failover(
    brokers: &str,
    args: &ScaleArgs,
    launcher: &Arc<dyn Launcher>,
    work: &Path,
    report: &mut Report,
) -> Result<(), BenchError> {
    let timeout = Duration::from_secs(args.timeout_secs);
    let topic = "bench-failover".to_string();
    prefill(
        brokers,
        &topic,
        args.partitions,
        args.count,
        args.keys,
        args.seed,
        timeout,
    )
    .await?;
    let (b, a, w, l) = (
        brokers.to_string(),
        args.clone(),
        work.to_path_buf(),
        launcher.clone(),
    );
    let (kill, join) = blocking(move || {
        let name = "failover";
        let offsets = GroupOffsets::new(&b, "rivulet-failover", &topic, a.partitions)?;
        let start = |i: usize| {
            let dir = w.join(format!("{name}-{i}"));
            let mut flags = query_flags(
                &b,
                &topic,
                name,
                &dir,
                a.failover_records_per_trigger,
                false,
            );
            flags.extend(["--trigger".to_string(), a.failover_trigger.clone()]);
            Member::start(&l, &dir, &flags, None)
        };
        let mut members = (0..a.failover_processes.max(2))
            .map(start)
            .collect::<Result<Vec<_>, _>>()?;
        // Every task running somewhere before the kill.
        let t = Instant::now();
        while offsets.read().contains(&0) {
            for m in &mut members {
                m.check_alive()?;
            }
            if t.elapsed() > timeout {
                return Err(BenchError::Timeout("tasks did not all start".into()));
            }
            std::thread::sleep(SAMPLE);
        }
        std::thread::sleep(Duration::from_secs(3));
        let victim = members.remove(1);
        drop(victim); // SIGKILL
        let kill = longest_gaps(&offsets, Duration::from_secs(30), &mut members)?;
        members.push(start(a.failover_processes.max(2))?);
        let join = longest_gaps(&offsets, Duration::from_secs(20), &mut members)?;
        let total: i64 = offsets.read().iter().sum();
        if total >= i64::try_from(a.count).unwrap_or(i64::MAX) {
            return Err(BenchError::InvalidArgument(
                "the topic was read to its end during the failover: raise --count or lower \
                 --failover-records-per-trigger"
                    .into(),
            ));
        }
        for m in members {
            m.stop();
        }
        Ok((kill, join))
    })
    .await?;
    let max = |g: &[f64]| g.iter().copied().fold(0.0, f64::max);
    let min = |g: &[f64]| g.iter().copied().fold(f64::INFINITY, f64::min);
    report.add(
        "failover_records_per_trigger",
        args.failover_records_per_trigger,
    );
    report.add("failover_trigger", args.failover_trigger.clone());
    report.add("failover_processes", args.failover_processes.max(2));
    let stalled = |g: &[f64]| g.iter().filter(|x| **x > 2.0).count();
    report.add("failover_kill_partitions_paused_over_2s", stalled(&kill));
    report.add("failover_join_partitions_paused_over_2s", stalled(&join));
    report.add("failover_kill_gaps", gap_list(&kill));
    report.add("failover_kill_longest_pause_secs", round2(max(&kill)));
    report.add("failover_kill_shortest_pause_secs", round2(min(&kill)));
    report.add("failover_join_gaps", gap_list(&join));
    report.add("failover_join_longest_pause_secs", round2(max(&join)));
    report.add("failover_join_shortest_pause_secs", round2(min(&join)));
    Ok(())
}
