//! Shared helpers for the runtime's end-to-end tests against an in-process broker: start a
//! broker, produce hand-made or `rivulet_gen` events, read topics and file sinks back, and
//! compute ground truths with plain loops. Every wait is bounded.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use rivulet_gen::{Event, EventKind, EventStream, GenArgs};
use rivulet_runtime::rows::rfc3339_ms;
use tokio_util::sync::CancellationToken;

pub mod storage;

pub const START: &str = "2026-11-24T10:00:00Z";
pub const START_MS: i64 = 1_795_514_400_000;

pub struct Broker {
    _dir: tempfile::TempDir,
    handle: Option<rivulet_broker::BrokerHandle>,
    pub addr: String,
}

impl Broker {
    /// A broker whose auto-created topics have `partitions` partitions.
    pub async fn start(partitions: i32) -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let mut cfg = rivulet_broker::BrokerConfig::new(dir.path(), "127.0.0.1", port);
        cfg.default_partitions = partitions;
        let h = rivulet_broker::start(cfg, vec![l]).await.unwrap();
        Broker {
            _dir: dir,
            handle: Some(h),
            addr: format!("127.0.0.1:{port}"),
        }
    }

    pub async fn stop(mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown().await.unwrap();
        }
    }
}

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
    pub fn payload(&self) -> String {
        format!(
            r#"{{"id":{},"value":{},"timestamp":"{}"}}"#,
            self.id,
            self.value,
            rfc3339_ms(self.ts)
        )
    }
}

/// Produces `events` in order, each to its partition, keyed by its id. Blocking, bounded.
pub fn produce(brokers: &str, topic: &str, events: &[Ev]) {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "60000")
        .create()
        .unwrap();
    for e in events {
        let key = e.id.to_string();
        let payload = e.payload();
        let mut rec = BaseRecord::to(topic).key(&key).payload(&payload);
        if e.partition >= 0 {
            rec = rec.partition(e.partition);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut rec = Some(rec);
        while let Some(r) = rec.take() {
            if let Err((err, r)) = p.send(r) {
                assert!(Instant::now() < deadline, "produce: {err}");
                p.poll(Duration::from_millis(50));
                rec = Some(r);
            }
        }
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(60)).unwrap();
    assert_eq!(p.in_flight_count(), 0);
}

/// `rivulet gen` arguments: 1 ms apart from [`START`], `keys` ids, as fast as possible.
pub fn gen_args(
    brokers: &str,
    topic: &str,
    seed: u64,
    count: u64,
    keys: u64,
    extra: &[&str],
) -> GenArgs {
    let mut argv: Vec<String> = [
        "gen",
        "--brokers",
        brokers,
        "--topic",
        topic,
        "--rate",
        "0",
        "--quiet",
        "--start-time",
        START,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    argv.extend(["--keys".to_string(), keys.to_string()]);
    argv.extend(["--seed".to_string(), seed.to_string()]);
    argv.extend(["--count".to_string(), count.to_string()]);
    argv.extend(extra.iter().map(|s| s.to_string()));
    GenArgs::try_parse_from(&argv).unwrap()
}

/// Every event (bad ones included) `rivulet gen` produces with these arguments, computed
/// independently from `rivulet_gen::EventStream` (without producing them).
pub fn gen_events(seed: u64, count: u64, keys: u64, extra: &[&str]) -> Vec<Event> {
    let args = gen_args("unused:9092", "events", seed, count, keys, extra);
    EventStream::new(args.stream_config(seed, START_MS))
        .unwrap()
        .take(count as usize)
        .collect()
}

/// Produces with `rivulet_gen::run` and returns every event produced (see [`gen_events`]).
pub async fn produce_gen_events(
    brokers: &str,
    topic: &str,
    seed: u64,
    count: u64,
    keys: u64,
    extra: &[&str],
) -> Vec<Event> {
    let args = gen_args(brokers, topic, seed, count, keys, extra);
    let summary = rivulet_gen::run(args, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(summary.acknowledged, count, "{summary:?}");
    gen_events(seed, count, keys, extra)
}

/// The well-formed events of `events` (the bad ones are dead letters), as [`Ev`]s.
pub fn well_formed(events: &[Event]) -> Vec<Ev> {
    events
        .iter()
        .filter(|e| e.kind != EventKind::Bad)
        .map(|e| Ev {
            partition: -1,
            id: e.id as i64,
            ts: e.timestamp_ms,
            value: e.value,
        })
        .collect()
}

/// Produces with `rivulet_gen::run` and returns the well-formed events.
pub async fn produce_gen(
    brokers: &str,
    topic: &str,
    seed: u64,
    count: u64,
    keys: u64,
    extra: &[&str],
) -> Vec<Ev> {
    well_formed(&produce_gen_events(brokers, topic, seed, count, keys, extra).await)
}

/// Creates a topic with `partitions` partitions.
pub async fn create_topic(brokers: &str, name: &str, partitions: i32) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(20)));
    let res = tokio::time::timeout(
        Duration::from_secs(60),
        admin.create_topics(
            [&NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
            &opts,
        ),
    )
    .await
    .expect("create_topics timed out")
    .unwrap();
    for r in res {
        r.unwrap_or_else(|(t, e)| panic!("create topic {t}: {e:?}"));
    }
}

/// A consumer for reading topics back (no group subscription, no commits).
fn reader(brokers: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "test-reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap()
}

/// How many partitions `topic` has.
fn partition_count(c: &BaseConsumer, topic: &str) -> i32 {
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    md.topics()[0].partitions().len() as i32
}

/// End offsets of every partition of `topic`.
pub fn end_offsets(brokers: &str, topic: &str) -> Vec<i64> {
    let c = reader(brokers);
    (0..partition_count(&c, topic))
        .map(|p| {
            c.fetch_watermarks(topic, p, Duration::from_secs(10))
                .unwrap()
                .1
        })
        .collect()
}

/// A record's value and headers.
pub type Record = (Vec<u8>, Vec<(String, String)>);

/// Every record of `topic`, from the beginning up to the current end.
pub fn read_records(brokers: &str, topic: &str) -> Vec<Record> {
    let c = reader(brokers);
    let mut tpl = TopicPartitionList::new();
    let mut want = HashMap::new();
    for p in 0..partition_count(&c, topic) {
        let (lo, hi) = c
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .unwrap();
        if hi > lo {
            tpl.add_partition_offset(topic, p, Offset::Offset(lo))
                .unwrap();
            want.insert(p, hi);
        }
    }
    let mut out = Vec::new();
    if want.is_empty() {
        return out;
    }
    c.assign(&tpl).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !want.is_empty() {
        assert!(Instant::now() < deadline, "timed out reading {topic}");
        if let Some(m) = c.poll(Duration::from_millis(200)) {
            let m = m.unwrap();
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|x| {
                            (
                                x.key.to_string(),
                                String::from_utf8_lossy(x.value.unwrap_or_default()).to_string(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push((m.payload().unwrap_or_default().to_vec(), headers));
            if want
                .get(&m.partition())
                .is_some_and(|hi| m.offset() + 1 >= *hi)
            {
                want.remove(&m.partition());
            }
        }
    }
    out
}

/// Every record value of `topic`, from the beginning up to the current end.
pub fn read_topic(brokers: &str, topic: &str) -> Vec<Vec<u8>> {
    read_records(brokers, topic)
        .into_iter()
        .map(|(v, _)| v)
        .collect()
}

/// The rows of the late-data topic.
pub fn late_rows(brokers: &str, topic: &str) -> Vec<serde_json::Value> {
    read_topic(brokers, topic)
        .into_iter()
        .map(|v| serde_json::from_slice(&v).unwrap())
        .collect()
}

/// All rows of a file sink directory, in epoch order.
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

/// `events` minus the rows the query reported late, matched by id, event time and value (two
/// events can share id and timestamp; see pipeline.rs `expected()`).
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
        "late rows not in the input: {late_values:?}"
    );
    out
}

#[derive(Debug, Clone, PartialEq)]
pub struct Agg {
    pub count: i64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
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
            m.entry((e.id, s, w)).or_insert_with(Agg::new).add(e.value);
        }
    }
    m
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

fn check_agg(r: &serde_json::Value, want: &Agg) {
    assert_eq!(r["count"].as_i64().unwrap(), want.count, "{r} vs {want:?}");
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
    let mut seen = std::collections::BTreeSet::new();
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
    assert!(missing.is_empty(), "windows missing: {missing:?}");
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

/// The parts of a test plan that vary; the rest is fixed: topic `events` from the earliest
/// offset with `id`/`value`/`timestamp`, grouped by id, count/avg/min/max of value, a checkpoint
/// in `<dir>/checkpoint`.
pub struct PlanParts<'a> {
    pub name: &'a str,
    pub brokers: &'a str,
    pub dir: &'a Path,
    /// Extra `[source]` lines, e.g. `late_topic = "late"`.
    pub source_extra: &'a str,
    /// Extra `[event_time]` lines, e.g. `allowed_lateness = "20ms"`.
    pub event_time_extra: &'a str,
    /// The `[window]` lines.
    pub window: &'a str,
    pub mode: &'a str,
    pub trigger: &'a str,
    /// The `[[sinks]]` tables (may be empty).
    pub sinks: &'a str,
}

pub fn plan_toml(p: &PlanParts) -> String {
    format!(
        r#"
name = "{}"
group_by = ["id"]
[source]
brokers = "{}"
topics = ["events"]
starting_offsets = "earliest"
max_records_per_trigger = 400
{}
[[schema]]
name = "id"
type = "bigint"
[[schema]]
name = "value"
type = "double"
[[schema]]
name = "timestamp"
type = "timestamp"
[event_time]
field = "timestamp"
{}
[window]
{}
[[aggregates]]
function = "count"
[[aggregates]]
function = "avg"
column = "value"
[[aggregates]]
function = "min"
column = "value"
[[aggregates]]
function = "max"
column = "value"
[output]
mode = "{}"
trigger = "{}"
{}
[checkpoint]
dir = "{}"
"#,
        p.name,
        p.brokers,
        p.source_extra,
        p.event_time_extra,
        p.window,
        p.mode,
        p.trigger,
        p.sinks,
        p.dir.join("checkpoint").display()
    )
}

/// A `[[sinks]]` table for a file sink writing to `path`.
pub fn file_sink(path: &Path) -> String {
    format!("[[sinks]]\ntype = \"file\"\npath = \"{}\"", path.display())
}

/// A plan (see [`PlanParts`]) with a file sink in `<dir>/out` and late rows to topic `late`.
pub fn plan_text(
    name: &str,
    brokers: &str,
    dir: &Path,
    window: &str,
    event_time_extra: &str,
    mode: &str,
    trigger: &str,
) -> String {
    plan_toml(&PlanParts {
        name,
        brokers,
        dir,
        source_extra: "late_topic = \"late\"",
        event_time_extra,
        window,
        mode,
        trigger,
        sinks: &file_sink(&dir.join("out")),
    })
}

/// Tiny deterministic PRNG (xorshift64*).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// In lo..hi.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo).max(1)
    }
    /// A value with two decimals in [0, 100).
    pub fn value(&mut self) -> f64 {
        self.range(0, 10_000) as f64 / 100.0
    }
}
