//! The storage sinks end to end against an in-process broker: Parquet read back by pyarrow and
//! PostgreSQL on a real server (see `common/storage.rs`), exactly once across simulated
//! crashes (fail points: the run stops as a killed process would, sinks not closed), rolling
//! and compaction, update mode's latest-wins reading, a server outage mid-run, and the errors
//! a misconfigured PostgreSQL sink reports at start.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use rivulet_engine::plan::Plan;
use rivulet_gen::Event;
use rivulet_runtime::query::FailPoint;
use rivulet_runtime::{run_query, QuerySummary, RunOptions, RuntimeError};
use rivulet_testkit::storage::*;
use rivulet_testkit::*;
use tokio_util::sync::CancellationToken;

const WINDOW_MS: i64 = 200;
const KEYS: u64 = 5;

fn plan(name: &str, brokers: &str, dir: &Path, mode: &str, sinks: &str) -> String {
    let late = "late_topic = \"late\"";
    tumbling_plan(name, brokers, dir, WINDOW_MS, mode, late, sinks)
}

fn expected(events: &[Event], late: &[serde_json::Value]) -> Truth {
    truth_fixed(&on_time(&well_formed(events), late), tumbling(WINDOW_MS))
}

fn expected_ev(events: &[Ev]) -> Truth {
    truth_fixed(events, tumbling(WINDOW_MS))
}

/// Runs the plan through seeded crashes at every fail point (sinks never closed on a crash),
/// some clean stops after a few epochs, then a final run until caught up. Returns the final
/// run's summary and the number of crashes.
async fn run_with_crashes(text: &str, seed: u64) -> (QuerySummary, usize) {
    let mut rng = Rng::new(seed);
    let mut last: Option<u64> = None;
    let mut crashes = 0;
    for attempt in 0..14 {
        let plan = Plan::from_toml(text).unwrap();
        let base = last.map_or(0, |c| c + 1);
        let fail = (attempt < 10).then(|| {
            let e = base + rng.range(0, 3);
            match rng.range(0, 3) {
                0 => FailPoint::AfterOffsets(e),
                1 => FailPoint::AfterSinks(e),
                _ => FailPoint::AfterState(e),
            }
        });
        let opts = RunOptions {
            stop_when_caught_up: true,
            max_epochs: fail.map(|_| 1 + rng.range(0, 4)),
            fail_point: fail,
            ..RunOptions::default()
        };
        match run_query(plan, opts, CancellationToken::new()).await {
            Ok(s) => {
                last = s.last_committed;
                if fail.is_none() {
                    return (s, crashes);
                }
            }
            Err(RuntimeError::FailPoint(_)) => crashes += 1,
            Err(e) => panic!("attempt {attempt}: {e}"),
        }
    }
    panic!("no final run");
}

/// `rows` without the Hive partition columns pyarrow adds back.
fn without(rows: &[serde_json::Value], cols: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = rows
        .iter()
        .map(|r| {
            let mut r = r.clone();
            for c in cols {
                r.as_object_mut().unwrap().remove(*c);
            }
            r.to_string()
        })
        .collect();
    v.sort();
    v
}

fn parquet_sink(path: &Path, extra: &str) -> String {
    format!(
        "[[sinks]]\ntype = \"parquet\"\npath = \"{}\"\n{extra}",
        path.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_append_exactly_once_across_crashes_with_rolling_and_compaction() {
    let mut broker = TestBroker::with_partitions(3).await;
    let dir = tempfile::tempdir().unwrap();
    let events = produce_gen_events(
        &broker.bootstrap(),
        "events",
        31,
        4000,
        KEYS,
        Mix::late(0.05, 1000),
    )
    .await;
    let out = dir.path().join("out");
    let pq = dir.path().join("parquet");
    let sinks = format!(
        "{}\n{}",
        file_sink(&out),
        parquet_sink(&pq, "roll_interval = \"100ms\"\ncompact_min_files = 3")
    );
    let text = plan("pq-eo", &broker.bootstrap(), dir.path(), "append", &sinks);
    let (summary, crashes) = run_with_crashes(&text, 7).await;
    assert!(crashes > 0);

    let late = topic_rows(&broker.bootstrap(), "late");
    let truth = expected(&events, &late);
    let read = read_parquet(&pq);
    check_append(&read.rows, &truth, summary.watermark.unwrap());
    // The same rows as the JSON file sink, each once.
    assert_eq!(
        without(&read.rows, &["date", "hour"]),
        without(&file_rows(&out), &[])
    );
    // Typed columns, the default codec, Hive date/hour directories.
    assert_eq!(read.schema["window_start"], "timestamp[ms, tz=UTC]");
    assert_eq!(read.schema["count"], "int64");
    assert!(
        read.parquet_schema.contains("isAdjustedToUTC=true")
            && read.parquet_schema.contains("milliseconds"),
        "{}",
        read.parquet_schema
    );
    assert_eq!(read.compression, ["ZSTD"]);
    let files = visible_parquet_files(&pq);
    let mut per_dir: BTreeMap<String, usize> = BTreeMap::new();
    for f in &files {
        let d = f.parent().unwrap().strip_prefix(&pq).unwrap();
        *per_dir.entry(d.to_str().unwrap().to_string()).or_default() += 1;
    }
    // Late events reach back before 10:00 (the first window starts at 10:00:00).
    assert!(
        per_dir.contains_key("date=2026-11-24/hour=10"),
        "{per_dir:?}"
    );
    assert!(
        per_dir
            .keys()
            .all(|d| d == "date=2026-11-24/hour=10" || d == "date=2026-11-24/hour=09"),
        "{per_dir:?}"
    );
    assert_eq!(
        files.len(),
        read.files.len(),
        "pyarrow reads every part file"
    );
    assert!(inprogress_files(&pq).is_empty());
    // Compaction leaves fewer small files than its threshold per partition (the run rolled
    // a file every 100 ms).
    assert!(per_dir.values().all(|n| *n < 3), "{per_dir:?}");
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_update_mode_latest_epoch_wins_and_files_roll_by_size() {
    let mut broker = TestBroker::with_partitions(3).await;
    let dir = tempfile::tempdir().unwrap();
    let events = produce_gen_events(&broker.bootstrap(), "events", 41, 3000, KEYS, Mix::NONE).await;
    let pq = dir.path().join("parquet");
    // Only size rolls files during the run (the interval is an hour).
    let sinks = parquet_sink(
        &pq,
        "partition_by = [\"id\"]\ncompression = \"snappy\"\nroll_size = \"2KiB\"\n\
         roll_interval = \"1h\"",
    );
    let text = plan(
        "pq-update",
        &broker.bootstrap(),
        dir.path(),
        "update",
        &sinks,
    );
    let (summary, _) = run_with_crashes(&text, 9).await;
    assert!(summary.last_committed.is_some());
    let late = topic_rows(&broker.bootstrap(), "late");
    let truth = expected(&events, &late);
    let mut read = read_parquet(&pq);
    assert_eq!(read.schema["_epoch"], "int64");
    assert_eq!(read.compression, ["SNAPPY"]);
    // The documented reading: per (id, window_start) the row with the largest `_epoch`.
    read.rows
        .sort_by_key(|r| r["_epoch"].as_i64().expect("every row has an epoch"));
    let mut per_key: BTreeMap<(i64, String, i64), usize> = BTreeMap::new();
    for r in &read.rows {
        *per_key
            .entry((
                r["id"].as_i64().unwrap(),
                r["window_start"].as_str().unwrap().to_string(),
                r["_epoch"].as_i64().unwrap(),
            ))
            .or_default() += 1;
    }
    assert!(
        per_key.values().all(|n| *n == 1),
        "a (key, window) twice in one epoch"
    );
    check_update(&read.rows, &truth);
    let files = visible_parquet_files(&pq);
    let mut per_dir: BTreeMap<String, usize> = BTreeMap::new();
    for f in &files {
        let d = f.parent().unwrap().file_name().unwrap().to_str().unwrap();
        assert!(d.starts_with("id="), "{}", f.display());
        *per_dir.entry(d.to_string()).or_default() += 1;
    }
    assert_eq!(per_dir.len(), KEYS as usize, "{per_dir:?}");
    assert!(
        per_dir.values().any(|n| *n >= 2),
        "no size roll: {per_dir:?}"
    );
    assert!(inprogress_files(&pq).is_empty());
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_rows_become_visible_within_the_roll_interval_while_idle() {
    let mut broker = TestBroker::with_partitions(2).await;
    create_topic(&broker.bootstrap(), "events", 2, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let pq = dir.path().join("parquet");
    let text = plan(
        "pq-idle",
        &broker.bootstrap(),
        dir.path(),
        "update",
        &parquet_sink(&pq, "roll_interval = \"500ms\""),
    );
    let mut rng = Rng::new(3);
    let events = made_events(&mut rng, START_MS, 1000);
    produce(&broker.bootstrap(), "events", &events);
    let cancel = CancellationToken::new();
    let query = tokio::spawn(run_query(
        Plan::from_toml(&text).unwrap(),
        RunOptions::default(),
        cancel.clone(),
    ));
    // No more input: no epoch commits once these are consumed, yet the timer rolls the open
    // files, so every window shows up without stopping the query.
    let truth = expected_ev(&events);
    let ok = |rows: &[serde_json::Value]| {
        let keys: std::collections::BTreeSet<(i64, String)> = rows
            .iter()
            .map(|r| {
                (
                    r["id"].as_i64().unwrap(),
                    r["window_start"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        keys.len() == truth.len()
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if !visible_parquet_files(&pq).is_empty() && ok(&read_parquet(&pq).rows) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rows not visible while the query idles"
        );
        assert!(!query.is_finished());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut rows = read_parquet(&pq).rows;
    rows.sort_by_key(|r| r["_epoch"].as_i64().unwrap());
    check_update(&rows, &truth);
    cancel.cancel();
    query.await.unwrap().unwrap();
    broker.shutdown().await;
}

fn postgres_sink(url: &str, table: &str) -> String {
    format!("[[sinks]]\ntype = \"postgres\"\nurl = \"{url}\"\ntable = \"{table}\"")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_append_exactly_once_across_crashes() {
    let pg = PgServer::start();
    let mut broker = TestBroker::with_partitions(3).await;
    let dir = tempfile::tempdir().unwrap();
    let events = produce_gen_events(
        &broker.bootstrap(),
        "events",
        53,
        4000,
        KEYS,
        Mix::late(0.05, 1000),
    )
    .await;
    let out = dir.path().join("out");
    let sinks = format!(
        "{}\n{}",
        file_sink(&out),
        postgres_sink(&pg.url(), "stats_eo")
    );
    let text = plan("pg-eo", &broker.bootstrap(), dir.path(), "append", &sinks);
    let (summary, crashes) = run_with_crashes(&text, 11).await;
    assert!(crashes > 0);
    let late = topic_rows(&broker.bootstrap(), "late");
    let truth = expected(&events, &late);
    let rows = pg.rows("stats_eo");
    check_append(&rows, &truth, summary.watermark.unwrap());
    assert_eq!(rows.len(), file_rows(&out).len());
    // The epoch bookkeeping reached the last committed epoch.
    let (e, cols, pk) = pg.with_client(|c| {
        let e: i64 = c
            .query_one(
                "SELECT epoch FROM rivulet_sink_epochs WHERE sink_table = 'stats_eo'",
                &[],
            )
            .unwrap()
            .get(0);
        let cols: Vec<(String, String)> = c
            .query(
                "SELECT column_name::text, data_type::text FROM information_schema.columns \
                 WHERE table_name = 'stats_eo' ORDER BY ordinal_position",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let pk: String = c
            .query_one(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint \
                 WHERE conrelid = 'stats_eo'::regclass AND contype = 'p'",
                &[],
            )
            .unwrap()
            .get(0);
        (e, cols, pk)
    });
    assert!(e as u64 <= summary.last_committed.unwrap());
    // Column types and key of the created table.
    let want: Vec<(String, String)> = [
        ("id", "bigint"),
        ("window_start", "timestamp with time zone"),
        ("window_end", "timestamp with time zone"),
        ("count", "bigint"),
        ("avg_value", "double precision"),
        ("min_value", "double precision"),
        ("max_value", "double precision"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(cols, want);
    assert_eq!(pk, "PRIMARY KEY (id, window_start)");
    broker.shutdown().await;
}

/// Hand-made events: `n` rows from `from_ms`, 2 ms apart, ids round robin.
fn made_events(rng: &mut Rng, from_ms: i64, n: i64) -> Vec<Ev> {
    (0..n)
        .map(|i| Ev {
            partition: -1,
            id: i % KEYS as i64,
            ts: from_ms + 2 * i,
            value: rng.value(),
        })
        .collect()
}

/// Waits (bounded) until `cond`, polling every 100 ms.
async fn wait_for(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn spooled(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "arrow"))
            })
            .count()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_server_outage_mid_run_loses_and_doubles_nothing() {
    let mut pg = PgServer::start();
    let mut broker = TestBroker::with_partitions(2).await;
    create_topic(&broker.bootstrap(), "events", 2, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let table = "stats_outage";
    let text = plan(
        "pg-outage",
        &broker.bootstrap(),
        dir.path(),
        "update",
        &postgres_sink(&pg.url(), table),
    );
    let mut rng = Rng::new(5);
    let phase1 = made_events(&mut rng, START_MS, 2000);
    let phase2 = made_events(&mut rng, START_MS + 4000, 2000);
    produce(&broker.bootstrap(), "events", &phase1);
    let cancel = CancellationToken::new();
    let query = tokio::spawn(run_query(
        Plan::from_toml(&text).unwrap(),
        RunOptions::default(),
        cancel.clone(),
    ));
    let truth1 = expected_ev(&phase1);
    // Phase 1 lands (every window of phase 1 but the still-open last ones is in the table).
    wait_for("phase 1 in the table", Duration::from_secs(120), || {
        pg.rows(table).len() >= truth1.len()
    })
    .await;
    pg.stop("immediate");
    produce(&broker.bootstrap(), "events", &phase2);
    // The query goes on while the server is away: epochs are committed and held in the spool.
    let spool = dir
        .path()
        .join("checkpoint/sinks")
        .join(format!("postgres-{table}"));
    wait_for("epochs held in the spool", Duration::from_secs(120), || {
        spooled(&spool) >= 3
    })
    .await;
    assert!(!query.is_finished(), "the query must survive the outage");
    tokio::time::sleep(Duration::from_secs(1)).await;
    pg.start_again();
    let all: Vec<Ev> = phase1.iter().chain(&phase2).cloned().collect();
    let truth = expected_ev(&all);
    wait_for(
        "every window in the table",
        Duration::from_secs(120),
        || spooled(&spool) == 0 && pg.rows(table).len() == truth.len(),
    )
    .await;
    cancel.cancel();
    let summary = query.await.unwrap().unwrap();
    assert_eq!(summary.input_rows, 4000);
    let rows = pg.rows(table);
    check_update(&rows, &truth);
    assert_eq!(rows.len(), truth.len());
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sink_errors_are_clear_at_start() {
    let pg = PgServer::start();
    let mut broker = TestBroker::with_partitions(1).await;
    create_topic(&broker.bootstrap(), "events", 1, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let start = |url: String, table: &str| {
        let text = plan(
            "pg-errors",
            &broker.bootstrap(),
            dir.path(),
            "update",
            &postgres_sink(&url, table),
        );
        let opts = RunOptions {
            stop_when_caught_up: true,
            ..RunOptions::default()
        };
        run_query(
            Plan::from_toml(&text).unwrap(),
            opts,
            CancellationToken::new(),
        )
    };
    let wrong = pg.url().replace(PG_PASSWORD, "not-the-password");
    let e = start(wrong, "t1").await.unwrap_err().to_string();
    assert!(e.contains("password authentication failed"), "{e}");
    assert!(
        !e.contains("not-the-password"),
        "password in the message: {e}"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = start(format!("postgres://u:p@127.0.0.1:{port}/db"), "t1")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot connect") && e.contains("refused"), "{e}");
    let sql = |q: &'static str| pg.with_client(|c| c.batch_execute(q).unwrap());
    sql(
        "CREATE TABLE bad_types (id bigint, window_start timestamptz, window_end timestamptz, \
         count text, avg_value double precision, min_value double precision, \
         max_value double precision, PRIMARY KEY (id, window_start))",
    );
    let e = start(pg.url(), "bad_types").await.unwrap_err().to_string();
    assert!(
        e.contains("incompatible schema") && e.contains("column `count` is text"),
        "{e}"
    );
    sql(
        "CREATE TABLE no_key (id bigint, window_start timestamptz, window_end timestamptz, \
         count bigint, avg_value double precision, min_value double precision, \
         max_value double precision, note text NOT NULL)",
    );
    let e = start(pg.url(), "no_key").await.unwrap_err().to_string();
    assert!(
        e.contains("no primary key or unique index on exactly (id, window_start)")
            && e.contains("column `note` is NOT NULL without a default"),
        "{e}"
    );
    // A compatible existing table (wider integer types, an extra nullable column) is used.
    sql(
        "CREATE TABLE fits (id numeric, window_start timestamptz, window_end timestamptz, \
         count numeric, avg_value double precision, min_value double precision, \
         max_value double precision, note text, PRIMARY KEY (window_start, id))",
    );
    start(pg.url(), "fits").await.unwrap();
    broker.shutdown().await;
}

/// Regression (issue 16): several writers preparing one new table at once, as the tasks of a
/// query spread over processes do, all succeed. PostgreSQL's CREATE TABLE IF NOT EXISTS fails
/// when another session creates the same name concurrently; the sink prepares under an
/// advisory lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sinks_prepare_one_new_table_at_once() {
    let pg = PgServer::start();
    let mut broker = TestBroker::with_partitions(1).await;
    create_topic(&broker.bootstrap(), "events", 1, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let runs: Vec<_> = (0..8)
        .map(|i| {
            let text = plan(
                &format!("pg-race-{i}"),
                &broker.bootstrap(),
                &dir.path().join(i.to_string()),
                "update",
                &postgres_sink(&pg.url(), "raced"),
            );
            let opts = RunOptions {
                stop_when_caught_up: true,
                ..RunOptions::default()
            };
            tokio::spawn(run_query(
                Plan::from_toml(&text).unwrap(),
                opts,
                CancellationToken::new(),
            ))
        })
        .collect();
    for r in runs {
        r.await.unwrap().unwrap();
    }
    assert!(pg.rows("raced").is_empty());
    broker.shutdown().await;
}

/// Counts the rows of `table` over TLS (the server takes TLS connections only).
fn tls_row_count(url: &str, table: &str) -> i64 {
    let (url, tls) = rivulet_runtime::sinks::pg_tls::split_tls(url).unwrap();
    let tls = tls.build().unwrap();
    let mut config: postgres::Config = url.parse().unwrap();
    config.ssl_mode(tls.ssl_mode);
    let connector = tls.connector.unwrap();
    let q = format!("SELECT count(*) FROM {table}");
    // The blocking client runs its own runtime: not on a thread of the test's.
    std::thread::scope(|s| {
        s.spawn(move || {
            let mut c = config.connect(connector).unwrap();
            c.query_one(q.as_str(), &[]).unwrap().get::<_, i64>(0)
        })
        .join()
        .unwrap()
    })
}

/// Issue 15: `sslmode` and `sslrootcert` in the sink's URL, as libpq users write them, against
/// a server that accepts TLS connections only: verify-full with the right CA writes every row;
/// require encrypts without a CA; plaintext (`disable`) and a CA that did not sign the server's
/// certificate are refused at start with a clear error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sink_over_tls_as_libpq_users_write_it() {
    let pki = TestPki::new();
    let pg = PgServer::start_with_tls(&pki.cert("server"), &pki.key("server"));
    let mut broker = TestBroker::with_partitions(1).await;
    let dir = tempfile::tempdir().unwrap();
    produce_gen_events(
        &broker.bootstrap(),
        "events",
        7,
        600,
        KEYS,
        Mix::late(0.0, 0),
    )
    .await;
    let ca = pki.cert("ca").display().to_string();
    let run = |name: &str, query: String, table: &str, out: Option<&Path>| {
        let url = format!("{}?{query}", pg.url());
        let sinks = match out {
            Some(o) => format!("{}\n{}", file_sink(o), postgres_sink(&url, table)),
            None => postgres_sink(&url, table),
        };
        // Each query its own checkpoint, so each reads the topic from the start.
        let ckpt = dir.path().join(name);
        let text = plan(name, &broker.bootstrap(), &ckpt, "append", &sinks);
        let opts = RunOptions {
            stop_when_caught_up: true,
            ..RunOptions::default()
        };
        run_query(
            Plan::from_toml(&text).unwrap(),
            opts,
            CancellationToken::new(),
        )
    };
    let out = dir.path().join("out");
    run(
        "pg-tls-full",
        format!("sslmode=verify-full&sslrootcert={ca}"),
        "tls_full",
        Some(&out),
    )
    .await
    .unwrap();
    let n = tls_row_count(&format!("{}?sslmode=require", pg.url()), "tls_full");
    assert!(n > 0);
    assert_eq!(n as usize, file_rows(&out).len());
    run(
        "pg-tls-require",
        "sslmode=require".into(),
        "tls_require",
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        tls_row_count(&format!("{}?sslmode=require", pg.url()), "tls_require"),
        n
    );

    let e = run("pg-tls-off", "sslmode=disable".into(), "t_off", None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cannot connect") && e.contains("no encryption"),
        "{e}"
    );
    assert!(!e.contains(PG_PASSWORD), "{e}");
    // A root that did not sign the server's certificate.
    let wrong = pki.cert("alice").display().to_string();
    let e = run(
        "pg-tls-wrong",
        format!("sslmode=verify-ca&sslrootcert={wrong}"),
        "t_wrong",
        None,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("cannot connect") && e.contains("certificate"),
        "{e}"
    );
    let e = run("pg-tls-bad", "sslmode=verify".into(), "t_bad", None)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("sslmode"), "{e}");
    broker.shutdown().await;
}
