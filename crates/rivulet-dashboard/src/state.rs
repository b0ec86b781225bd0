//! What the dashboard knows, and the JSON it serves: the query's results and progress (pushed
//! by the runtime through [`QueryObserver`]), samples of the counters (generator, embedded
//! broker, engine, process memory; taken by [`crate::sampler`] every second) and the cluster's
//! topics and groups (read through the admin client). Every buffer is bounded.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use arrow::record_batch::RecordBatch;
use parking_lot::Mutex;
use rivulet_broker::state::BrokerStats;
use rivulet_client::admin::{GroupOverview, TopicOverview};
use rivulet_engine::plan::{OutputMode, Plan, TriggerSpec, WindowSpec};
use rivulet_gen::GenStats;
use rivulet_runtime::connectors;
use rivulet_runtime::progress::{GroupEvent, QueryProgress};
use rivulet_runtime::rows::rfc3339_ms;
use rivulet_runtime::QueryObserver;
use serde::Serialize;
use serde_json::Value;

use crate::results::{KeyWeight, ResultShape, ResultStore, WindowRow};

/// Progress records kept (`/api/queries/<name>/progress`).
pub const PROGRESS_HISTORY: usize = 600;
/// Group events kept (tasks assigned, revoked, …), for a query spread over processes.
pub const GROUP_EVENT_HISTORY: usize = 50;
/// Counter samples kept, one per second (the throughput chart's span).
pub const SAMPLE_HISTORY: usize = 300;
/// Rates are averaged over this many samples (seconds), so one-second triggers do not make
/// them jump between 0 and twice the real rate.
const RATE_SPAN: usize = 5;

/// How the dashboard is set up; see [`crate::Dashboard::new`].
pub struct DashboardConfig {
    /// Bootstrap servers of the cluster whose topics and groups are shown (what the API
    /// shows: no client properties).
    pub brokers: String,
    /// How to connect to it: the servers and client properties (TLS, SASL).
    pub connection: rivulet_client::KafkaConnection,
    /// The running query, if any.
    pub plan: Option<Plan>,
    /// The embedded broker's counters (None against an external cluster: the broker's input
    /// rate then comes from the topics' end offsets).
    pub broker: Option<Arc<BrokerStats>>,
    /// The generator's live counters, when `rivulet up` runs one.
    pub generator: Option<Arc<GenStats>>,
    /// Windows kept per key.
    pub max_windows: usize,
    /// Keys kept.
    pub max_keys: usize,
    /// Who may see it (`--dashboard-token`); open when it has no token.
    pub access: crate::access::Access,
    /// HTTPS (`--dashboard-tls-cert/--dashboard-tls-key`); plain HTTP when `None`.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl DashboardConfig {
    pub fn new(brokers: impl Into<String>) -> DashboardConfig {
        let brokers = brokers.into();
        DashboardConfig {
            connection: rivulet_client::KafkaConnection::new(brokers.as_str()),
            brokers,
            plan: None,
            broker: None,
            generator: None,
            max_windows: 60,
            max_keys: 10_000,
            access: crate::access::Access::default(),
            tls: None,
        }
    }
}

/// The running query as `/api/queries` describes it.
#[derive(Debug, Clone, Serialize)]
pub struct QueryInfo {
    pub name: String,
    pub topics: Vec<String>,
    pub group_id: String,
    pub group_by: Vec<String>,
    pub aggregates: Vec<crate::results::AggregateColumn>,
    /// `tumbling 10s`, `hopping 10s every 5s`, `session gap 30s`, or null.
    pub window: Option<String>,
    pub window_size_ms: Option<i64>,
    pub allowed_lateness_ms: i64,
    pub output_mode: String,
    /// `1s`, or `on arrival`.
    pub trigger: String,
    pub trigger_ms: Option<i64>,
    pub sinks: Vec<String>,
    pub filter: Option<String>,
    /// Stable query id and this run's id, once the first epoch reported them.
    pub id: Option<String>,
    pub run_id: Option<String>,
}

impl QueryInfo {
    fn of(plan: &Plan) -> QueryInfo {
        let shape = ResultShape::of(plan);
        let (window, window_size_ms) = match &plan.window {
            None => (None, None),
            Some(WindowSpec::Tumbling { size }) => {
                (Some(format!("tumbling {}", fmt_ms(size.0))), Some(size.0))
            }
            Some(WindowSpec::Hopping { size, slide }) => (
                Some(format!(
                    "hopping {} every {}",
                    fmt_ms(size.0),
                    fmt_ms(slide.0)
                )),
                Some(size.0),
            ),
            Some(WindowSpec::Session { gap }) => {
                (Some(format!("session gap {}", fmt_ms(gap.0))), Some(gap.0))
            }
        };
        let (trigger, trigger_ms) = match plan.output.trigger {
            TriggerSpec::ProcessingTime(d) => (fmt_ms(d.0), Some(d.0)),
            TriggerSpec::OnArrival => ("on arrival".to_string(), None),
        };
        let source = connectors::kafka::SourceOptions::of(&plan.source).ok();
        QueryInfo {
            name: plan.name.clone(),
            topics: source
                .as_ref()
                .map(|s| s.topics.clone())
                .unwrap_or_default(),
            group_id: source.as_ref().map_or_else(
                || format!("rivulet-{}", plan.name),
                |s| s.group_id(&plan.name),
            ),
            group_by: shape.group_by,
            aggregates: shape.aggregates,
            window,
            window_size_ms,
            allowed_lateness_ms: plan.event_time.allowed_lateness.0,
            output_mode: match plan.output.mode {
                OutputMode::Append => "append",
                OutputMode::Update => "update",
            }
            .to_string(),
            trigger,
            trigger_ms,
            // The connectors' own descriptions: never a password or key.
            sinks: connectors::describe_sinks(plan).unwrap_or_default(),
            filter: plan.filter.clone(),
            id: None,
            run_id: None,
        }
    }
}

fn fmt_ms(ms: i64) -> String {
    if ms % 60_000 == 0 && ms > 0 {
        format!("{}m", ms / 60_000)
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Running totals of the query, from its progress records.
#[derive(Debug, Clone, Default, Serialize)]
struct EngineTotals {
    epochs: u64,
    last_epoch: Option<u64>,
    input_rows: u64,
    output_rows: u64,
    late_rows: u64,
    dead_letters: u64,
    watermark_ms: Option<i64>,
    /// Wall time the last epoch was committed (its progress arrived).
    last_commit_ms: Option<i64>,
    state_rows: u64,
    state_bytes: u64,
    partitions: Vec<PartitionLag>,
}

/// How far the query is behind one partition's end, as of its last epoch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    /// Where the query's last epoch ended.
    pub offset: i64,
    /// The partition's end offset when the epoch finished.
    pub latest_offset: i64,
    pub lag: i64,
}

/// One task of a query spread over processes, as its last progress record said.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskView {
    pub task: i32,
    /// None until the task's first epoch here.
    pub last_epoch: Option<u64>,
    pub watermark_ms: Option<i64>,
    pub lag: i64,
    pub state_rows: u64,
    pub state_memory_bytes: u64,
    /// Wall time its last epoch was committed.
    pub last_commit_ms: Option<i64>,
    #[serde(skip)]
    partitions: Vec<PartitionLag>,
}

impl TaskView {
    fn new(task: i32) -> TaskView {
        TaskView {
            task,
            last_epoch: None,
            watermark_ms: None,
            lag: 0,
            state_rows: 0,
            state_memory_bytes: 0,
            last_commit_ms: None,
            partitions: Vec::new(),
        }
    }
}

/// This process's share of a query spread over processes (`checkpoint.store = "kafka"`).
#[derive(Debug, Clone, Default)]
struct Instance {
    group: String,
    owner: String,
    /// The query's task count.
    of: i32,
    /// The tasks running here, by number.
    tasks: BTreeMap<i32, TaskView>,
    events: VecDeque<GroupEvent>,
}

/// One reading of the counters.
#[derive(Debug, Clone, Copy, Default, Serialize)]
struct Sample {
    t_ms: i64,
    gen_sent: Option<u64>,
    gen_errors: Option<u64>,
    broker_records_in: Option<u64>,
    broker_bytes_out: Option<u64>,
    /// Sum of the source topics' end offsets (from the last cluster refresh).
    topic_end_offsets: Option<i64>,
    engine_in: u64,
    engine_out: u64,
    rss: Option<u64>,
}

/// The cluster's topics and groups as last read.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClusterView {
    pub brokers: String,
    /// When the last successful refresh finished (ms since the epoch).
    pub refreshed_ms: Option<i64>,
    /// The last refresh's error, if it failed.
    pub error: Option<String>,
    pub topics: Vec<TopicOverview>,
    pub groups: Vec<GroupOverview>,
}

pub(crate) struct State {
    query: Option<QueryInfo>,
    results: Option<ResultStore>,
    progress: VecDeque<QueryProgress>,
    engine: EngineTotals,
    samples: VecDeque<Sample>,
    cluster: ClusterView,
    /// Set once the query runs as tasks of a group.
    instance: Option<Instance>,
}

/// Shared by the server, the sampler and the observer.
pub(crate) struct Shared {
    pub(crate) server_id: String,
    pub(crate) started_ms: i64,
    started: Instant,
    pub(crate) brokers: String,
    pub(crate) connection: rivulet_client::KafkaConnection,
    broker: Option<Arc<BrokerStats>>,
    generator: Option<Arc<GenStats>>,
    pub(crate) max_windows: usize,
    pub(crate) access: crate::access::Access,
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
    pub(crate) state: Mutex<State>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard")
            .field("server_id", &self.server_id)
            .field("brokers", &self.brokers)
            .finish_non_exhaustive()
    }
}

pub(crate) use rivulet_gen::time::now_ms;

impl Shared {
    pub(crate) fn new(config: DashboardConfig) -> Shared {
        let query = config.plan.as_ref().map(QueryInfo::of);
        let results = config
            .plan
            .as_ref()
            .map(|p| ResultStore::new(ResultShape::of(p), config.max_windows, config.max_keys));
        Shared {
            server_id: uuid::Uuid::new_v4().to_string(),
            started_ms: now_ms(),
            started: Instant::now(),
            brokers: config.brokers.clone(),
            connection: config.connection,
            broker: config.broker,
            generator: config.generator,
            max_windows: config.max_windows.max(1),
            access: config.access.clone(),
            tls: config.tls.clone(),
            state: Mutex::new(State {
                query,
                results,
                progress: VecDeque::new(),
                engine: EngineTotals::default(),
                samples: VecDeque::new(),
                cluster: ClusterView {
                    brokers: config.brokers,
                    ..ClusterView::default()
                },
                instance: None,
            }),
        }
    }

    /// Reads the counters once (every second, from the sampler).
    pub(crate) fn sample(&self) {
        let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        let rss = crate::sampler::resident_memory_bytes();
        let mut st = self.state.lock();
        let topics: Vec<String> = st
            .query
            .as_ref()
            .map(|q| q.topics.clone())
            .unwrap_or_default();
        let topic_end_offsets = st.cluster.refreshed_ms.map(|_| {
            st.cluster
                .topics
                .iter()
                .filter(|t| topics.is_empty() || topics.contains(&t.name))
                .filter(|t| !t.internal)
                .flat_map(|t| t.partitions.iter().map(|p| p.high_watermark))
                .sum()
        });
        let s = Sample {
            t_ms: now_ms(),
            gen_sent: self.generator.as_ref().map(|g| load(&g.sent)),
            gen_errors: self.generator.as_ref().map(|g| load(&g.errors)),
            broker_records_in: self.broker.as_ref().map(|b| load(&b.records_in)),
            broker_bytes_out: self.broker.as_ref().map(|b| load(&b.bytes_out)),
            topic_end_offsets,
            engine_in: st.engine.input_rows,
            engine_out: st.engine.output_rows,
            rss,
        };
        st.samples.push_back(s);
        while st.samples.len() > SAMPLE_HISTORY {
            st.samples.pop_front();
        }
    }

    pub(crate) fn set_cluster(
        &self,
        result: Result<(Vec<TopicOverview>, Vec<GroupOverview>), String>,
    ) {
        let mut st = self.state.lock();
        match result {
            Ok((topics, groups)) => {
                st.cluster.topics = topics;
                st.cluster.groups = groups;
                st.cluster.refreshed_ms = Some(now_ms());
                st.cluster.error = None;
            }
            Err(e) => st.cluster.error = Some(e),
        }
    }

    fn on_results(&self, task: Option<i32>, epoch: u64, rows: &[RecordBatch]) {
        let mut st = self.state.lock();
        if let Some(r) = st.results.as_mut() {
            r.ingest_from(task, epoch, rows);
        }
    }

    /// Tasks came or went: the instance keeps the running ones' figures only.
    fn on_group_event(&self, ev: &GroupEvent) {
        let mut st = self.state.lock();
        let i = st.instance(&ev.group, &ev.owner, ev.of);
        i.tasks.retain(|t, _| ev.running.contains(t));
        for t in &ev.running {
            i.tasks.entry(*t).or_insert_with(|| TaskView::new(*t));
        }
        i.events.push_back(ev.clone());
        while i.events.len() > GROUP_EVENT_HISTORY {
            i.events.pop_front();
        }
        if let Some(r) = st.results.as_mut() {
            r.forget_tasks(|t| ev.running.contains(&t));
        }
        st.merge_tasks();
    }

    fn on_progress(&self, p: &QueryProgress) {
        let mut st = self.state.lock();
        if let Some(q) = st.query.as_mut() {
            q.id = Some(p.id.clone());
            q.run_id = Some(p.run_id.clone());
        }
        let e = &mut st.engine;
        e.epochs += 1;
        e.last_epoch = Some(p.batch_id);
        e.input_rows += p.num_input_rows;
        e.output_rows += p.sink.num_output_rows;
        e.late_rows += p.num_late_rows;
        e.dead_letters += p.num_dead_letters;
        // The progress record says 1970-01-01 while there is no watermark yet.
        let watermark = p
            .event_time
            .get("watermark")
            .and_then(|w| rivulet_gen::time::parse_rfc3339(w).ok())
            .filter(|w| *w > 0);
        let committed = Some(now_ms());
        e.last_commit_ms = committed;
        let state_rows = p.state_operators.iter().map(|o| o.num_rows_total).sum();
        let state_bytes = p.state_operators.iter().map(|o| o.memory_used_bytes).sum();
        let partitions = partition_lags(p);
        match &p.task {
            None => {
                e.watermark_ms = watermark;
                e.state_rows = state_rows;
                e.state_bytes = state_bytes;
                e.partitions = partitions;
            }
            Some(t) => {
                // One task's record: the engine's figures are this process's tasks together.
                let i = st.instance(&t.group, &t.owner, t.of);
                let v = i.tasks.entry(t.id).or_insert_with(|| TaskView::new(t.id));
                v.last_epoch = Some(p.batch_id);
                v.watermark_ms = watermark;
                v.lag = partitions.iter().map(|l| l.lag).sum();
                v.state_rows = state_rows;
                v.state_memory_bytes = state_bytes;
                v.last_commit_ms = committed;
                v.partitions = partitions;
                st.merge_tasks();
            }
        }
        st.progress.push_back(p.clone());
        while st.progress.len() > PROGRESS_HISTORY {
            st.progress.pop_front();
        }
    }
}

impl State {
    /// This process's share of the query, named by a task's record or a group event (the
    /// first of them creates it).
    fn instance(&mut self, group: &str, owner: &str, of: i32) -> &mut Instance {
        let i = self.instance.get_or_insert_with(Instance::default);
        group.clone_into(&mut i.group);
        owner.clone_into(&mut i.owner);
        i.of = of;
        i
    }

    /// The engine's watermark, state and lag from the tasks running here: the smallest
    /// watermark (a window is final only when every task passed it), summed state, every
    /// task's partitions.
    fn merge_tasks(&mut self) {
        let Some(i) = &self.instance else { return };
        let e = &mut self.engine;
        e.watermark_ms = i.tasks.values().filter_map(|t| t.watermark_ms).min();
        e.state_rows = i.tasks.values().map(|t| t.state_rows).sum();
        e.state_bytes = i.tasks.values().map(|t| t.state_memory_bytes).sum();
        e.partitions = i
            .tasks
            .values()
            .flat_map(|t| t.partitions.iter().cloned())
            .collect();
        e.partitions
            .sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    }
}

/// Per-partition lag from a progress record's `endOffset` and `latestOffset` maps.
fn partition_lags(p: &QueryProgress) -> Vec<PartitionLag> {
    let mut out = Vec::new();
    for s in &p.sources {
        let Value::Object(ends) = &s.end_offset else {
            continue;
        };
        for (topic, parts) in ends {
            let Value::Object(parts) = parts else {
                continue;
            };
            for (part, end) in parts {
                let (Ok(partition), Some(end)) = (part.parse::<i32>(), end.as_i64()) else {
                    continue;
                };
                let latest = s
                    .latest_offset
                    .get(topic)
                    .and_then(|t| t.get(part))
                    .and_then(Value::as_i64)
                    .unwrap_or(end);
                out.push(PartitionLag {
                    topic: topic.clone(),
                    partition,
                    offset: end,
                    latest_offset: latest,
                    lag: (latest - end).max(0),
                });
            }
        }
    }
    out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    out
}

/// The [`QueryObserver`] handed to the runtime: it copies results and progress into the
/// dashboard's buffers under a short lock.
#[derive(Debug, Clone)]
pub struct DashboardObserver(pub(crate) Arc<Shared>);

impl QueryObserver for DashboardObserver {
    fn on_results(&self, epoch: u64, rows: &[RecordBatch]) {
        self.0.on_results(None, epoch, rows);
    }

    fn on_task_results(&self, task: i32, epoch: u64, rows: &[RecordBatch]) {
        self.0.on_results(Some(task), epoch, rows);
    }

    fn on_progress(&self, progress: &QueryProgress) {
        self.0.on_progress(progress);
    }

    fn on_group_event(&self, event: &GroupEvent) {
        self.0.on_group_event(event);
    }
}

// ---- views served as JSON -------------------------------------------------------------------

/// `/api/health`: rates, engine figures, process, and the verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    pub server_id: String,
    pub now_ms: i64,
    pub uptime_seconds: f64,
    /// `healthy`, `starting`, `degraded` or `down`.
    pub status: String,
    /// Why the status is not `healthy`.
    pub reasons: Vec<String>,
    pub generator: Option<GeneratorHealth>,
    pub broker: BrokerHealth,
    pub engine: Option<EngineHealth>,
    /// For a query spread over processes: what share of it this dashboard shows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<InstanceHealth>,
    pub process: ProcessHealth,
}

/// This process's share of a query spread over processes. The engine figures above are its
/// tasks' only.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceHealth {
    pub group: String,
    /// This process, `<host>:<pid>` (its member's client id in the group).
    pub owner: String,
    /// The query's task count (input partitions).
    pub tasks_total: i32,
    /// The tasks running here, with their figures.
    pub tasks: Vec<TaskView>,
    /// The group's members at the last cluster refresh (None before it, or when the group
    /// was not found).
    pub members: Option<usize>,
    /// Whether this dashboard shows the whole query (one process runs every task).
    pub whole_query: bool,
    /// The same, in words for the page.
    pub scope: String,
    /// The latest group events, oldest first.
    pub events: Vec<GroupEvent>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GeneratorHealth {
    pub events_sent_total: u64,
    pub events_acknowledged_total: u64,
    pub delivery_errors_total: u64,
    pub bad_events_total: u64,
    pub late_events_total: u64,
    pub events_per_second: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BrokerHealth {
    /// Whether this process runs the broker (else: figures from the topics' offsets).
    pub embedded: bool,
    pub brokers: String,
    /// Records appended by produce requests (embedded broker only).
    pub records_in_total: Option<u64>,
    /// Records in per second: the embedded broker's counter, else the source topics' end
    /// offsets over time.
    pub records_in_per_second: Option<f64>,
    /// Bytes sent to clients (fetch responses and all other answers; embedded broker only).
    pub bytes_out_total: Option<u64>,
    pub bytes_out_per_second: Option<f64>,
    /// Transactions (embedded broker only): open now, committed and aborted since start.
    pub transactions_open: Option<u64>,
    pub transactions_committed_total: Option<u64>,
    pub transactions_aborted_total: Option<u64>,
    /// Authentication (embedded broker only): SASL logins that succeeded and failed, failed
    /// TLS handshakes, connections closed for a request before authenticating.
    pub authentications_total: Option<u64>,
    pub authentication_failures_total: Option<u64>,
    pub tls_handshake_failures_total: Option<u64>,
    pub unauthenticated_requests_total: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EngineHealth {
    pub query: String,
    /// `not started`, `processing` or `waiting for data`.
    pub state: String,
    pub epochs_total: u64,
    pub last_epoch: Option<u64>,
    pub input_rows_total: u64,
    pub output_rows_total: u64,
    pub input_rows_per_second: f64,
    pub output_rows_per_second: f64,
    pub late_rows_total: u64,
    pub dead_letters_total: u64,
    pub watermark_ms: Option<i64>,
    pub watermark: Option<String>,
    /// Wall clock minus watermark.
    pub watermark_delay_seconds: Option<f64>,
    /// Time since the last committed epoch.
    pub checkpoint_age_seconds: Option<f64>,
    pub state_rows: u64,
    pub state_memory_bytes: u64,
    pub lag_total: i64,
    pub lag: Vec<PartitionLag>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProcessHealth {
    pub resident_memory_bytes: Option<u64>,
    pub start_time_ms: i64,
}

/// One point of the throughput chart.
#[derive(Debug, Clone, Serialize)]
pub struct RatePoint {
    pub t_ms: i64,
    pub generator: Option<f64>,
    pub broker_in: Option<f64>,
    pub engine_in: f64,
    pub engine_out: f64,
}

/// `/api/queries/<name>/results`.
#[derive(Debug, Clone, Serialize)]
pub struct ResultsView {
    pub query: String,
    pub group_by: Vec<String>,
    pub aggregates: Vec<String>,
    pub windowed: bool,
    /// The keys shown: the asked ones that are known, else the top-N by count.
    pub keys: Vec<String>,
    /// Whether `keys` is the default top-N selection.
    pub top: bool,
    /// The most counted keys (for the selector), at most 50.
    pub top_keys: Vec<KeyWeight>,
    pub key_count: usize,
    pub watermark_ms: Option<i64>,
    pub windows: Vec<WindowView>,
}

/// A window row with its bounds in RFC 3339 and whether it can still change.
#[derive(Debug, Clone, Serialize)]
pub struct WindowView {
    #[serde(flatten)]
    pub row: WindowRow,
    pub window_start: Option<String>,
    pub window_end: Option<String>,
    /// The watermark passed the window's end: no later row can change it.
    #[serde(rename = "final")]
    pub is_final: bool,
}

/// Which result rows to show.
#[derive(Debug, Clone)]
pub struct ResultsQuery {
    /// None: the top `top` keys by count.
    pub keys: Option<Vec<String>>,
    pub top: usize,
    pub windows: usize,
}

impl Default for ResultsQuery {
    fn default() -> Self {
        ResultsQuery {
            keys: None,
            top: 10,
            windows: 30,
        }
    }
}

/// Everything pushed to the page once a second.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub health: Health,
    pub query: Option<QueryInfo>,
    pub results: Option<ResultsView>,
    pub rates: Vec<RatePoint>,
    pub cluster: ClusterView,
}

fn rate_between(a: Option<f64>, b: Option<f64>, secs: f64) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if secs > 0.0 => Some(((b - a) / secs).max(0.0)),
        _ => None,
    }
}

impl State {
    /// Rates at sample `i` over the [`RATE_SPAN`] samples before it.
    fn rates_at(&self, i: usize) -> Option<RatePoint> {
        let b = self.samples.get(i)?;
        let a = self.samples.get(i.saturating_sub(RATE_SPAN))?;
        let secs = (b.t_ms - a.t_ms) as f64 / 1000.0;
        let f = |x: Option<u64>| x.map(|v| v as f64);
        let broker_in =
            rate_between(f(a.broker_records_in), f(b.broker_records_in), secs).or_else(|| {
                rate_between(
                    a.topic_end_offsets.map(|v| v as f64),
                    b.topic_end_offsets.map(|v| v as f64),
                    secs,
                )
            });
        Some(RatePoint {
            t_ms: b.t_ms,
            generator: rate_between(f(a.gen_sent), f(b.gen_sent), secs),
            broker_in,
            engine_in: rate_between(Some(a.engine_in as f64), Some(b.engine_in as f64), secs)
                .unwrap_or(0.0),
            engine_out: rate_between(Some(a.engine_out as f64), Some(b.engine_out as f64), secs)
                .unwrap_or(0.0),
        })
    }

    fn latest_rates(&self) -> Option<RatePoint> {
        self.rates_at(self.samples.len().checked_sub(1)?)
    }

    pub(crate) fn rate_history(&self) -> Vec<RatePoint> {
        (1..self.samples.len())
            .filter_map(|i| self.rates_at(i))
            .collect()
    }

    pub(crate) fn progress(&self, limit: usize) -> Vec<QueryProgress> {
        let skip = self.progress.len().saturating_sub(limit);
        self.progress.iter().skip(skip).cloned().collect()
    }

    pub(crate) fn query(&self) -> Option<&QueryInfo> {
        self.query.as_ref()
    }

    pub(crate) fn cluster(&self) -> &ClusterView {
        &self.cluster
    }

    pub(crate) fn results(&self, q: &ResultsQuery) -> Option<ResultsView> {
        let store = self.results.as_ref()?;
        let query = self.query.as_ref()?;
        let top_keys = store.top_keys(q.top.max(50));
        let (keys, top) = match &q.keys {
            Some(ks) => (
                ks.iter().filter(|k| store.has_key(k)).cloned().collect(),
                false,
            ),
            None => (
                top_keys.iter().take(q.top).map(|k| k.key.clone()).collect(),
                true,
            ),
        };
        let keys: Vec<String> = keys;
        let wm = self.engine.watermark_ms;
        let windows = store
            .windows(&keys, q.windows)
            .into_iter()
            .map(|row| WindowView {
                window_start: row.window_start_ms.map(rfc3339_ms),
                window_end: row.window_end_ms.map(rfc3339_ms),
                is_final: match (row.window_end_ms, wm) {
                    (Some(end), Some(wm)) => end <= wm,
                    _ => false,
                },
                row,
            })
            .collect();
        Some(ResultsView {
            query: query.name.clone(),
            group_by: store.shape().group_by.clone(),
            aggregates: store
                .shape()
                .aggregates
                .iter()
                .map(|a| a.name.clone())
                .collect(),
            windowed: store.shape().windowed,
            keys,
            top,
            top_keys: top_keys.into_iter().take(50).collect(),
            key_count: store.key_count(),
            watermark_ms: wm,
            windows,
        })
    }
}

impl Shared {
    pub(crate) fn health(&self, st: &State) -> Health {
        let now = now_ms();
        let rates = st.latest_rates();
        let last = st.samples.back().copied().unwrap_or_default();
        let generator = self.generator.as_ref().map(|g| GeneratorHealth {
            events_sent_total: g.sent.load(Ordering::Relaxed),
            events_acknowledged_total: g.acknowledged.load(Ordering::Relaxed),
            delivery_errors_total: g.errors.load(Ordering::Relaxed),
            bad_events_total: g.bad.load(Ordering::Relaxed),
            late_events_total: g.late.load(Ordering::Relaxed),
            events_per_second: rates.as_ref().and_then(|r| r.generator).unwrap_or(0.0),
        });
        let broker = BrokerHealth {
            embedded: self.broker.is_some(),
            brokers: self.brokers.clone(),
            records_in_total: self
                .broker
                .as_ref()
                .map(|b| b.records_in.load(Ordering::Relaxed)),
            records_in_per_second: rates.as_ref().and_then(|r| r.broker_in),
            transactions_open: self
                .broker
                .as_ref()
                .map(|b| b.transactions_open.load(Ordering::Relaxed)),
            transactions_committed_total: self
                .broker
                .as_ref()
                .map(|b| b.transactions_committed.load(Ordering::Relaxed)),
            transactions_aborted_total: self
                .broker
                .as_ref()
                .map(|b| b.transactions_aborted.load(Ordering::Relaxed)),
            authentications_total: self
                .broker
                .as_ref()
                .map(|b| b.authentications.load(Ordering::Relaxed)),
            authentication_failures_total: self
                .broker
                .as_ref()
                .map(|b| b.authentication_failures.load(Ordering::Relaxed)),
            tls_handshake_failures_total: self
                .broker
                .as_ref()
                .map(|b| b.tls_handshake_failures.load(Ordering::Relaxed)),
            unauthenticated_requests_total: self
                .broker
                .as_ref()
                .map(|b| b.unauthenticated_requests.load(Ordering::Relaxed)),
            bytes_out_total: self
                .broker
                .as_ref()
                .map(|b| b.bytes_out.load(Ordering::Relaxed)),
            bytes_out_per_second: {
                let a = st
                    .samples
                    .get(st.samples.len().saturating_sub(RATE_SPAN + 1));
                match (a, st.samples.back()) {
                    (Some(a), Some(b)) => rate_between(
                        a.broker_bytes_out.map(|v| v as f64),
                        b.broker_bytes_out.map(|v| v as f64),
                        (b.t_ms - a.t_ms) as f64 / 1000.0,
                    ),
                    _ => None,
                }
            },
        };
        let engine = st.query.as_ref().map(|q| {
            let e = &st.engine;
            let checkpoint_age = e.last_commit_ms.map(|t| (now - t).max(0) as f64 / 1000.0);
            let waiting_after = q.trigger_ms.unwrap_or(1000).max(1000) as f64 * 3.0 / 1000.0;
            EngineHealth {
                query: q.name.clone(),
                state: match checkpoint_age {
                    None => "not started",
                    Some(a) if a <= waiting_after => "processing",
                    Some(_) => "waiting for data",
                }
                .to_string(),
                epochs_total: e.epochs,
                last_epoch: e.last_epoch,
                input_rows_total: e.input_rows,
                output_rows_total: e.output_rows,
                input_rows_per_second: rates.as_ref().map_or(0.0, |r| r.engine_in),
                output_rows_per_second: rates.as_ref().map_or(0.0, |r| r.engine_out),
                late_rows_total: e.late_rows,
                dead_letters_total: e.dead_letters,
                watermark_ms: e.watermark_ms,
                watermark: e.watermark_ms.map(rfc3339_ms),
                watermark_delay_seconds: e.watermark_ms.map(|w| (now - w) as f64 / 1000.0),
                checkpoint_age_seconds: checkpoint_age,
                state_rows: e.state_rows,
                state_memory_bytes: e.state_bytes,
                lag_total: e.partitions.iter().map(|p| p.lag).sum(),
                lag: e.partitions.clone(),
            }
        });
        let instance = st.instance.as_ref().map(|i| {
            let members = st
                .cluster
                .groups
                .iter()
                .find(|g| g.group == i.group)
                .map(|g| g.members.len());
            let running: Vec<String> = i.tasks.keys().map(ToString::to_string).collect();
            let whole_query = members == Some(1) && i.tasks.len() == i.of.max(0) as usize;
            let scope = if whole_query {
                format!(
                    "This dashboard shows the whole query: this process ({}) runs all {} tasks of group {}.",
                    i.owner, i.of, i.group
                )
            } else {
                format!(
                    "This dashboard shows one instance of {}: this process ({}) runs task{} {} of {}; \
                     the other tasks' figures are on the other instances' dashboards.",
                    members.map_or_else(|| "several".to_string(), |m| m.to_string()),
                    i.owner,
                    if running.len() == 1 { "" } else { "s" },
                    if running.is_empty() { "none".to_string() } else { running.join(", ") },
                    i.of
                )
            };
            InstanceHealth {
                group: i.group.clone(),
                owner: i.owner.clone(),
                tasks_total: i.of,
                tasks: i.tasks.values().cloned().collect(),
                members,
                whole_query,
                scope,
                events: i.events.iter().cloned().collect(),
            }
        });
        let mut h = Health {
            instance,
            server_id: self.server_id.clone(),
            now_ms: now,
            uptime_seconds: self.started.elapsed().as_secs_f64(),
            status: String::new(),
            reasons: Vec::new(),
            generator,
            broker,
            engine,
            process: ProcessHealth {
                resident_memory_bytes: last.rss,
                start_time_ms: self.started_ms,
            },
        };
        let (status, reasons) = assess(&h, st);
        h.status = status.to_string();
        h.reasons = reasons;
        h
    }

    pub(crate) fn snapshot(&self, q: &ResultsQuery, with_history: bool) -> Snapshot {
        let st = self.state.lock();
        Snapshot {
            health: self.health(&st),
            query: st.query.clone(),
            results: st.results(q),
            rates: if with_history {
                st.rate_history()
            } else {
                st.latest_rates().into_iter().collect()
            },
            cluster: st.cluster.clone(),
        }
    }
}

/// The at-a-glance verdict: `down` when the query makes no progress although data waits,
/// `degraded` when it falls behind (lag, watermark) or a part reports errors.
fn assess(h: &Health, st: &State) -> (&'static str, Vec<String>) {
    let mut down = Vec::new();
    let mut degraded = Vec::new();
    if let Some(e) = &h.engine {
        let q = st.query.as_ref();
        let trigger_s = q.and_then(|q| q.trigger_ms).unwrap_or(1000) as f64 / 1000.0;
        match e.checkpoint_age_seconds {
            None if h.uptime_seconds < 60.0 => {
                return ("starting", vec!["no micro-batch completed yet".to_string()]);
            }
            None => down.push(format!(
                "no micro-batch completed in {:.0} s",
                h.uptime_seconds
            )),
            Some(age) if e.lag_total > 0 && age > (10.0 * trigger_s).max(30.0) => {
                down.push(format!(
                    "query stalled: no checkpoint for {age:.0} s while {} records wait",
                    e.lag_total
                ))
            }
            Some(_) => {}
        }
        let behind_limit = 1000f64.max(10.0 * e.input_rows_per_second);
        if e.lag_total as f64 > behind_limit {
            degraded.push(format!("consumer lag {} records", e.lag_total));
        }
        let window_s = q
            .map(|q| (q.window_size_ms.unwrap_or(0) + q.allowed_lateness_ms) as f64 / 1000.0)
            .unwrap_or(0.0);
        if let Some(d) = e.watermark_delay_seconds {
            let receiving = e.input_rows_per_second > 0.0 || e.lag_total > 0;
            if receiving && d > window_s + 60.0 {
                degraded.push(format!("watermark {d:.0} s behind the wall clock"));
            }
        }
    }
    if let Some(g) = &h.generator {
        let errors_before = st
            .samples
            .get(st.samples.len().saturating_sub(RATE_SPAN + 1))
            .and_then(|s| s.gen_errors);
        if errors_before.is_some_and(|b| g.delivery_errors_total > b) {
            degraded.push("generator delivery errors".to_string());
        }
    }
    if let Some(e) = &st.cluster.error {
        degraded.push(format!("cannot describe the cluster: {e}"));
    }
    if !down.is_empty() {
        down.extend(degraded);
        ("down", down)
    } else if !degraded.is_empty() {
        ("degraded", degraded)
    } else {
        ("healthy", Vec::new())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {

    use arrow::array::{Float64Array, Int64Array, TimestampMillisecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use rivulet_runtime::progress::{
        GroupEventKind, SinkProgress, SourceProgress, StateOperatorProgress,
    };

    use super::*;

    const PLAN: &str = include_str!("../../../examples/pipeline.toml");

    fn batch(id: i64, start: i64, count: i64, v: f64) -> RecordBatch {
        let ts = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("window_start", ts.clone(), false),
            Field::new("window_end", ts, false),
            Field::new("count", DataType::Int64, false),
            Field::new("avg_value", DataType::Float64, true),
            Field::new("min_value", DataType::Float64, true),
            Field::new("max_value", DataType::Float64, true),
        ]));
        let f = |x: f64| Arc::new(Float64Array::from(vec![x]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![id])),
                Arc::new(TimestampMillisecondArray::from(vec![start]).with_timezone("UTC")),
                Arc::new(
                    TimestampMillisecondArray::from(vec![start + 10_000]).with_timezone("UTC"),
                ),
                Arc::new(Int64Array::from(vec![count])),
                f(v),
                f(v),
                f(v),
            ],
        )
        .unwrap()
    }

    fn progress(epoch: u64, watermark_ms: i64, end: i64, latest: i64) -> QueryProgress {
        QueryProgress {
            id: "qid".into(),
            run_id: "run".into(),
            name: "stats".into(),
            batch_id: epoch,
            timestamp: rfc3339_ms(watermark_ms),
            num_input_rows: 100,
            input_rows_per_second: 100.0,
            processed_rows_per_second: 1000.0,
            duration_ms: BTreeMap::new(),
            event_time: [("watermark".to_string(), rfc3339_ms(watermark_ms))]
                .into_iter()
                .collect(),
            state_operators: vec![StateOperatorProgress {
                operator_name: "window_aggregate".into(),
                branch: None,
                num_rows_total: 4,
                num_rows_updated: 1,
                num_rows_dropped_by_watermark: 0,
                memory_used_bytes: 512,
            }],
            sources: vec![SourceProgress {
                description: "KafkaSource[events]".into(),
                start_offset: serde_json::json!({"events": {"0": 0, "1": 0}}),
                end_offset: serde_json::json!({"events": {"0": end, "1": 7}}),
                latest_offset: serde_json::json!({"events": {"0": latest, "1": 7}}),
                num_input_rows: 100,
                input_rows_per_second: 100.0,
                processed_rows_per_second: 1000.0,
                metrics: BTreeMap::new(),
            }],
            sink: SinkProgress {
                description: "console".into(),
                num_output_rows: 2,
            },
            branches: Vec::new(),
            num_dead_letters: 3,
            num_late_rows: 1,
            task: None,
        }
    }

    /// Task `task`'s record: it reads partition `task` of `events`, `lag` behind.
    fn task_progress(task: i32, epoch: u64, watermark_ms: i64, lag: i64) -> QueryProgress {
        let p = task.to_string();
        let mut r = progress(epoch, watermark_ms, 0, 0);
        r.sources[0].end_offset = serde_json::json!({"events": {p.clone(): 100}});
        r.sources[0].latest_offset = serde_json::json!({"events": {p: 100 + lag}});
        r.state_operators[0].memory_used_bytes = 1000 * (task as u64 + 1);
        r.task = Some(rivulet_runtime::progress::TaskProgress {
            id: task,
            of: 4,
            owner: "host-a:7".into(),
            group: "rivulet-stats".into(),
        });
        r
    }

    fn group_event(kind: GroupEventKind, tasks: Vec<i32>, running: Vec<i32>) -> GroupEvent {
        GroupEvent {
            event: kind,
            timestamp: rfc3339_ms(now_ms()),
            name: "stats".into(),
            group: "rivulet-stats".into(),
            owner: "host-a:7".into(),
            tasks,
            running,
            of: 4,
        }
    }

    fn members(n: usize) -> Vec<GroupOverview> {
        vec![GroupOverview {
            group: "rivulet-stats".into(),
            state: "Stable".into(),
            protocol_type: "consumer".into(),
            protocol: "cooperative-sticky".into(),
            members: (0..n)
                .map(|m| rivulet_client::admin::GroupMember {
                    member_id: format!("m{m}"),
                    client_id: format!("host-{m}:7"),
                    host: "/127.0.0.1".into(),
                    assignment: Vec::new(),
                    assignment_error: None,
                })
                .collect(),
            offsets: Vec::new(),
        }]
    }

    /// Issue 16: a process running some tasks of a query shows their figures together (the
    /// smallest watermark, summed state, each task's lag), drops a task's figures when it
    /// moves away, and says plainly that it shows one instance of N.
    #[test]
    fn an_instance_shows_its_tasks_and_says_it_is_one_of_n() {
        let mut config = DashboardConfig::new("127.0.0.1:9");
        config.plan = Some(Plan::from_toml(PLAN).unwrap());
        let shared = Arc::new(Shared::new(config));
        let obs = DashboardObserver(shared.clone());
        let b = now_ms() / 10_000 * 10_000 - 20_000;
        obs.on_group_event(&group_event(
            GroupEventKind::TasksAssigned,
            vec![0, 2, 3],
            vec![0, 2, 3],
        ));
        obs.on_task_results(0, 5, &[batch(10, b, 5, 2.0)]);
        obs.on_task_results(2, 9, &[batch(12, b, 9, 3.0)]);
        obs.on_progress(&task_progress(0, 5, b + 4_000, 10));
        obs.on_progress(&task_progress(2, 9, b + 2_000, 20));
        obs.on_progress(&task_progress(3, 1, b + 6_000, 30));
        shared.set_cluster(Ok((Vec::new(), members(3))));
        let h = shared.health(&shared.state.lock());
        let e = h.engine.as_ref().unwrap();
        assert_eq!(
            e.watermark_ms,
            Some(b + 2_000),
            "the smallest task watermark"
        );
        assert_eq!(e.state_memory_bytes, 1000 + 3000 + 4000);
        assert_eq!(e.lag_total, 60);
        let parts: Vec<i32> = e.lag.iter().map(|l| l.partition).collect();
        assert_eq!(parts, [0, 2, 3]);
        let i = h.instance.as_ref().unwrap();
        assert_eq!(
            (i.group.as_str(), i.owner.as_str()),
            ("rivulet-stats", "host-a:7")
        );
        assert_eq!(i.tasks_total, 4);
        assert_eq!(i.members, Some(3));
        assert!(!i.whole_query);
        assert_eq!(
            i.scope,
            "This dashboard shows one instance of 3: this process (host-a:7) runs tasks 0, 2, 3 \
             of 4; the other tasks' figures are on the other instances' dashboards."
        );
        let text = crate::metrics::render(&h, &shared.state.lock().cluster);
        for line in [
            "rivulet_task_lag_records{query=\"stats\",task=\"2\"} 20",
            "rivulet_task_state_memory_bytes{query=\"stats\",task=\"3\"} 4000",
            "rivulet_task_last_epoch{query=\"stats\",task=\"0\"} 5",
            "rivulet_query_group_members{query=\"stats\",group=\"rivulet-stats\"} 3",
            "rivulet_query_tasks{query=\"stats\",group=\"rivulet-stats\",where=\"here\"} 3",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        let t2 = i.tasks.iter().find(|t| t.task == 2).unwrap();
        assert_eq!(
            (
                t2.last_epoch,
                t2.lag,
                t2.watermark_ms,
                t2.state_memory_bytes
            ),
            (Some(9), 20, Some(b + 2_000), 3000)
        );

        let keys = |shared: &Shared| -> Vec<String> {
            let st = shared.state.lock();
            let mut k: Vec<String> = st
                .results(&ResultsQuery::default())
                .unwrap()
                .top_keys
                .into_iter()
                .map(|k| k.key)
                .collect();
            k.sort();
            k
        };
        assert_eq!(keys(&shared), ["10", "12"]);

        // Task 2 moves away: its watermark no longer holds the instance's back, and its keys'
        // rows, which the new owner's dashboard shows from now on, are not kept frozen here.
        obs.on_group_event(&group_event(
            GroupEventKind::TasksRevoked,
            vec![2],
            vec![0, 3],
        ));
        assert_eq!(keys(&shared), ["10"]);
        let h = shared.health(&shared.state.lock());
        let e = h.engine.as_ref().unwrap();
        assert_eq!(e.watermark_ms, Some(b + 4_000));
        assert_eq!(e.state_memory_bytes, 1000 + 4000);
        let i = h.instance.unwrap();
        assert_eq!(i.tasks.iter().map(|t| t.task).collect::<Vec<_>>(), [0, 3]);
        let kinds: Vec<GroupEventKind> = i.events.iter().map(|e| e.event).collect();
        assert_eq!(
            kinds,
            [GroupEventKind::TasksAssigned, GroupEventKind::TasksRevoked]
        );
        assert!(i.scope.contains("runs tasks 0, 3 of 4"), "{}", i.scope);

        // Alone in the group with every task: the whole query.
        obs.on_group_event(&group_event(
            GroupEventKind::TasksAssigned,
            vec![1, 2],
            vec![0, 1, 2, 3],
        ));
        shared.set_cluster(Ok((Vec::new(), members(1))));
        let i = shared.health(&shared.state.lock()).instance.unwrap();
        assert!(i.whole_query);
        assert!(
            i.scope.starts_with("This dashboard shows the whole query"),
            "{}",
            i.scope
        );
        let json = serde_json::to_value(shared.health(&shared.state.lock())).unwrap();
        assert_eq!(json["instance"]["tasks"][1]["task"], 1);
        assert!(
            json["instance"]["tasks"][1]["last_epoch"].is_null(),
            "{json}"
        );
    }

    #[test]
    fn observer_feeds_results_health_and_the_verdict() {
        let mut config = DashboardConfig::new("127.0.0.1:9");
        config.plan = Some(Plan::from_toml(PLAN).unwrap());
        let shared = Arc::new(Shared::new(config));
        let obs = DashboardObserver(shared.clone());
        // Windows of 20 and 10 seconds ago.
        let b = now_ms() / 10_000 * 10_000 - 20_000;
        obs.on_results(0, &[batch(1, b, 5, 2.0), batch(2, b, 9, 3.0)]);
        obs.on_results(1, &[batch(1, b + 10_000, 4, 1.0)]);
        // The watermark at the first window's end: it is final, the second is not.
        obs.on_progress(&progress(1, b + 10_000, 40, 50));
        shared.sample();

        let snap = shared.snapshot(&ResultsQuery::default(), true);
        let q = snap.query.as_ref().unwrap();
        assert_eq!(
            (q.id.as_deref(), q.run_id.as_deref()),
            (Some("qid"), Some("run"))
        );
        assert_eq!(q.window.as_deref(), Some("tumbling 10s"));
        assert_eq!(q.group_id, "rivulet-stats");
        let r = snap.results.unwrap();
        assert_eq!(
            r.keys,
            ["1", "2"],
            "key 1 has 9 events over two windows, key 2 has 9"
        );
        let finals: Vec<(String, i64, bool)> = r
            .windows
            .iter()
            .map(|w| {
                (
                    w.row.key.clone(),
                    w.row.window_end_ms.unwrap() - b,
                    w.is_final,
                )
            })
            .collect();
        assert_eq!(
            finals,
            [
                ("1".to_string(), 10_000, true),
                ("2".to_string(), 10_000, true),
                ("1".to_string(), 20_000, false)
            ]
        );
        let e = snap.health.engine.as_ref().unwrap();
        assert_eq!(e.epochs_total, 1);
        assert_eq!(e.dead_letters_total, 3);
        assert_eq!(e.late_rows_total, 1);
        assert_eq!(e.watermark_ms, Some(b + 10_000));
        assert_eq!(e.state_rows, 4);
        assert_eq!(e.state_memory_bytes, 512);
        assert_eq!(e.lag_total, 10);
        assert_eq!(
            e.lag[0],
            PartitionLag {
                topic: "events".into(),
                partition: 0,
                offset: 40,
                latest_offset: 50,
                lag: 10
            }
        );
        assert_eq!(e.lag[1].lag, 0);
        assert_eq!(snap.health.status, "healthy", "{:?}", snap.health.reasons);
        assert!(snap.health.generator.is_none());
        assert!(!snap.health.broker.embedded);

        // A cluster that cannot be described makes the verdict `degraded`, saying why.
        shared.set_cluster(Err("all brokers down".into()));
        let h = shared.snapshot(&ResultsQuery::default(), false).health;
        assert_eq!(h.status, "degraded");
        assert!(
            h.reasons.iter().any(|r| r.contains("all brokers down")),
            "{h:?}"
        );

        // Explicit keys: unknown ones are dropped; `windows` limits per key.
        let only = shared.state.lock().results(&ResultsQuery {
            keys: Some(vec!["1".into(), "nope".into()]),
            top: 10,
            windows: 1,
        });
        let only = only.unwrap();
        assert_eq!(only.keys, ["1"]);
        assert!(!only.top);
        assert_eq!(only.windows.len(), 1);
        assert_eq!(only.windows[0].row.window_end_ms, Some(b + 20_000));

        // A watermark far behind the wall clock while data waits: `degraded`, saying so.
        shared.set_cluster(Ok((Vec::new(), Vec::new())));
        obs.on_progress(&progress(2, b - 3_600_000, 40, 50));
        let h = shared.snapshot(&ResultsQuery::default(), false).health;
        assert_eq!(h.status, "degraded");
        assert!(
            h.reasons
                .iter()
                .any(|r| r.contains("behind the wall clock")),
            "{h:?}"
        );
    }

    #[test]
    fn a_query_without_epochs_is_starting_then_down() {
        let mut config = DashboardConfig::new("127.0.0.1:9");
        config.plan = Some(Plan::from_toml(PLAN).unwrap());
        let shared = Shared::new(config);
        let st = shared.state.lock();
        let mut h = shared.health(&st);
        assert_eq!(h.status, "starting");
        h.uptime_seconds = 120.0;
        let (status, reasons) = assess(&h, &st);
        assert_eq!(status, "down", "{reasons:?}");
    }
}
