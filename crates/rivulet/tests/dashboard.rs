//! The dashboard against a running pipeline: `rivulet up` on free ports (broker, generator,
//! default query, dashboard), then the page and its assets, the JSON API (cross-checked with
//! the query's own console output), `/metrics` in the Prometheus text format and the
//! Server-Sent Events feed; and `rivulet run --dashboard` against a broker in another process.
//! HTTP is spoken by hand over `std::net` (GET only), so the test needs no HTTP client crate.
//! Every wait is bounded.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rivulet_testkit::{
    get, get_for, get_json, lines_of, request, stop_child, BROKER_LISTENING, UP_ON_FREE_PORTS,
};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_rivulet");
const DASHBOARD_AT: &str = "rivulet dashboard at http://";
/// Bound on waiting for results (a loaded 2-core machine; windows are 10 s).
const RESULTS_WAIT: Duration = Duration::from_secs(150);

/// A spawned `rivulet` whose stdout lines are collected on a thread.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Proc {
    fn spawn(args: &[&str]) -> Proc {
        Proc::of(
            Command::new(BIN)
                .args(args)
                .env("RUST_LOG", "info")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    }

    /// A child spawned with a piped stdout.
    fn of(mut child: Child) -> Proc {
        let lines = lines_of(child.stdout.take().unwrap());
        Proc {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    fn drain(&mut self) {
        self.seen.extend(self.lines.try_iter());
    }

    /// The rest of the first stdout line starting with `prefix` (bounded wait).
    fn wait_line(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(l) = self.seen.iter().find(|l| l.starts_with(prefix)) {
                return l[prefix.len()..].trim().to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no `{prefix}` line; stdout so far:\n{}",
                self.seen.join("\n")
            );
            if let Ok(l) = self.lines.recv_timeout(Duration::from_millis(100)) {
                self.seen.push(l);
            }
            if let Ok(Some(s)) = self.child.try_wait() {
                self.drain();
                panic!(
                    "rivulet exited ({s}) early; stdout:\n{}",
                    self.seen.join("\n")
                );
            }
        }
    }

    /// SIGINT and a bounded wait for a successful exit.
    fn stop(&mut self) {
        let status = stop_child(&mut self.child, "INT", Duration::from_secs(60))
            .expect("rivulet did not stop after SIGINT");
        self.drain();
        assert!(status.success(), "exit {status:?}");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `f` every 500 ms until it returns Some, at most `within`.
fn wait_for<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// `/metrics` parsed: (name, labels) → value, after checking the text format's rules.
fn parse_metrics(text: &str) -> BTreeMap<(String, String), f64> {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut helps: BTreeSet<String> = BTreeSet::new();
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split_whitespace().next().unwrap();
            assert!(helps.insert(name.to_string()), "HELP twice for {name}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split_whitespace();
            let (name, kind) = (it.next().unwrap(), it.next().unwrap());
            assert!(["counter", "gauge"].contains(&kind), "{line}");
            assert!(helps.contains(name), "TYPE before HELP for {name}");
            assert!(
                types.insert(name.to_string(), kind.to_string()).is_none(),
                "TYPE twice for {name}"
            );
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.trim().is_empty(),
            "{line:?}"
        );
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, l.trim_end_matches('}').to_string()),
            None => (series, String::new()),
        };
        assert!(
            name.starts_with("rivulet_")
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "metric name {name}"
        );
        let kind = types
            .get(name)
            .unwrap_or_else(|| panic!("sample of {name} without a TYPE line before it"));
        assert_eq!(
            kind == "counter",
            name.ends_with("_total"),
            "counters (and only they) end in _total: {name} is a {kind}"
        );
        let v: f64 = value.parse().unwrap_or_else(|_| panic!("value in {line}"));
        out.insert((name.to_string(), labels), v);
    }
    out
}

fn metric(m: &BTreeMap<(String, String), f64>, name: &str, labels: &str) -> f64 {
    *m.get(&(name.to_string(), labels.to_string()))
        .unwrap_or_else(|| panic!("no {name}{{{labels}}} in /metrics: {m:?}"))
}

/// Console rows of the default query: (id, window start) → (count, avg), last print wins.
fn console_rows(lines: &[String]) -> BTreeMap<(String, String), (u64, f64)> {
    let mut out = BTreeMap::new();
    for line in lines {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // `|  3|2026-11-24 10:00:00|2026-11-24 10:00:10|  97| avg| min| max|`
        if cells.len() == 9 && cells[1].parse::<u64>().is_ok() {
            if let (Ok(c), Ok(a)) = (cells[4].parse::<u64>(), cells[5].parse::<f64>()) {
                out.insert((cells[1].to_string(), cells[2].to_string()), (c, a));
            }
        }
    }
    out
}

#[test]
fn up_serves_the_page_the_api_metrics_and_live_updates() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let mut args = UP_ON_FREE_PORTS.to_vec();
    args.extend(["--data-dir", data]);
    let mut up = Proc::spawn(&args);
    let addr = up.wait_line(DASHBOARD_AT);
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    assert!(!addr.ends_with(":0"), "the real port is printed: {addr}");
    up.wait_line(BROKER_LISTENING);

    // The page and its assets, all from this server.
    let page = get(&addr, "/");
    assert_eq!(page.status, 200);
    assert!(page.headers["content-type"].starts_with("text/html"));
    assert!(page.headers["content-security-policy"].contains("default-src 'self'"));
    assert!(page.body.contains("<title>Rivulet"));
    for (path, ctype) in [
        ("/assets/app.js", "text/javascript"),
        ("/assets/app.css", "text/css"),
        ("/favicon.svg", "image/svg+xml"),
    ] {
        let r = get(&addr, path);
        assert_eq!(r.status, 200, "{path}");
        assert!(r.headers["content-type"].starts_with(ctype), "{path}");
        assert!(!r.body.is_empty());
        // Offline: nothing is loaded from another host (the SVG namespace is only a name).
        let outside = r
            .body
            .replace("http://www.w3.org/2000/svg", "")
            .contains("://");
        assert!(!outside, "{path} refers to another host");
    }
    assert!(
        !page.body.contains("://"),
        "the page refers to another host"
    );
    assert_eq!(get(&addr, "/nope").status, 404);

    // The query.
    let queries = get_json(&addr, "/api/queries");
    let q = &queries[0];
    assert_eq!(q["name"], "stats");
    assert_eq!(q["group_by"], serde_json::json!(["id"]));
    let aggs: Vec<&str> = q["aggregates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(aggs, ["count", "avg_value", "min_value", "max_value"]);
    assert_eq!(q["window"], "tumbling 10s");
    assert_eq!(get_json(&addr, "/api/queries/stats")["name"], "stats");
    assert_eq!(get(&addr, "/api/queries/other/results").status, 404);
    assert_eq!(get(&addr, "/api/queries/stats/results?top=x").status, 400);

    // Results: wait until some key has a final window and a later one.
    let results = wait_for("two windows, one final", RESULTS_WAIT, || {
        let r = get_json(&addr, "/api/queries/stats/results?windows=60");
        let w = r["windows"].as_array()?;
        let finals = w.iter().filter(|w| w["final"] == true).count();
        let ends: BTreeSet<i64> = w
            .iter()
            .filter_map(|w| w["window_end_ms"].as_i64())
            .collect();
        (finals > 0 && ends.len() >= 2).then_some(r)
    });
    assert_eq!(results["top"], true);
    let keys: Vec<String> = results["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    assert!(!keys.is_empty() && keys.len() <= 10, "{keys:?}");
    let top: Vec<f64> = results["top_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["count"].as_f64().unwrap())
        .collect();
    assert!(
        top.windows(2).all(|w| w[0] >= w[1]),
        "top keys by count: {top:?}"
    );
    let windows = results["windows"].as_array().unwrap();
    for w in windows {
        let v = &w["values"];
        let (count, avg) = (
            v["count"].as_u64().unwrap(),
            v["avg_value"].as_f64().unwrap(),
        );
        let (min, max) = (
            v["min_value"].as_f64().unwrap(),
            v["max_value"].as_f64().unwrap(),
        );
        assert!(count > 0 && min <= avg && avg <= max, "{w}");
        let (s, e) = (
            w["window_start_ms"].as_i64().unwrap(),
            w["window_end_ms"].as_i64().unwrap(),
        );
        assert_eq!(e - s, 10_000, "{w}");
        assert!(keys.contains(&w["key"].as_str().unwrap().to_string()));
    }
    // The same final windows as the console sink printed (its last print of each).
    up.drain();
    let console = console_rows(&up.seen);
    let mut compared = 0;
    for w in windows.iter().filter(|w| w["final"] == true) {
        let start = w["window_start"].as_str().unwrap().replace('T', " ");
        let start = start.trim_end_matches(".000Z").to_string();
        let id = w["key"].as_str().unwrap().to_string();
        if let Some((count, avg)) = console.get(&(id, start)) {
            assert_eq!(w["values"]["count"].as_u64().unwrap(), *count, "{w}");
            assert!(
                (w["values"]["avg_value"].as_f64().unwrap() - avg).abs() < 1e-3,
                "{w}"
            );
            compared += 1;
        }
    }
    assert!(compared > 0, "no final window found in the console output");
    // Explicit keys and window limits.
    let one = get_json(
        &addr,
        &format!("/api/queries/stats/results?keys={}&windows=1", keys[0]),
    );
    assert_eq!(one["top"], false);
    assert_eq!(one["keys"], serde_json::json!([keys[0]]));
    let w1 = one["windows"].as_array().unwrap();
    assert_eq!(w1.len(), 1);
    assert_eq!(w1[0]["key"], keys[0].as_str());

    // Progress history: Spark-named records in epoch order.
    let progress = get_json(&addr, "/api/queries/stats/progress?limit=5");
    let p = progress.as_array().unwrap();
    assert!(!p.is_empty() && p.len() <= 5);
    let ids: Vec<u64> = p.iter().map(|r| r["batchId"].as_u64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert!(p[0]["numInputRows"].is_u64() && p[0]["sources"][0]["description"].is_string());

    // Health.
    let h = get_json(&addr, "/api/health");
    assert!(
        ["healthy", "degraded", "starting", "down"].contains(&h["status"].as_str().unwrap()),
        "{h}"
    );
    let g = &h["generator"];
    assert!(g["events_sent_total"].as_u64().unwrap() > 0);
    assert!(g["events_per_second"].as_f64().unwrap() > 0.0, "{h}");
    assert_eq!(h["broker"]["embedded"], true);
    assert!(h["broker"]["records_in_total"].as_u64().unwrap() > 0);
    let e = &h["engine"];
    assert_eq!(e["query"], "stats");
    assert!(e["input_rows_total"].as_u64().unwrap() > 0);
    assert!(e["epochs_total"].as_u64().unwrap() > 0);
    assert!(e["watermark_ms"].as_i64().unwrap() > 0);
    assert!(e["watermark_delay_seconds"].as_f64().unwrap() > 0.0, "{e}");
    assert!(e["checkpoint_age_seconds"].as_f64().unwrap() >= 0.0);
    assert!(e["state_rows"].as_u64().unwrap() > 0);
    let lag = e["lag"].as_array().unwrap();
    assert_eq!(lag.len(), 1);
    assert_eq!(
        (lag[0]["topic"].as_str(), lag[0]["partition"].as_i64()),
        (Some("events"), Some(0))
    );
    assert!(lag[0]["lag"].as_i64().unwrap() >= 0);
    #[cfg(target_os = "linux")]
    assert!(h["process"]["resident_memory_bytes"].as_u64().unwrap() > 0);

    // Topics and groups through the admin client.
    let topics = get_json(&addr, "/api/topics");
    let events = topics["topics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "events")
        .unwrap_or_else(|| panic!("no events topic: {topics}"))
        .clone();
    let parts = events["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 1);
    let high = parts[0]["high_watermark"].as_i64().unwrap();
    assert!(high > 0);
    assert_eq!(
        parts[0]["records"].as_i64().unwrap(),
        high - parts[0]["log_start_offset"].as_i64().unwrap()
    );
    let group = wait_for(
        "the query's group with a commit",
        Duration::from_secs(30),
        || {
            let gs = get_json(&addr, "/api/groups");
            gs["groups"]
                .as_array()?
                .iter()
                .find(|g| {
                    g["group"] == "rivulet-stats" && g["offsets"][0]["committed"].as_i64() > Some(0)
                })
                .cloned()
        },
    );
    assert_eq!(group["offsets"][0]["topic"], "events");
    assert!(group["offsets"][0]["lag"].as_i64().unwrap() >= 0);

    // /metrics: the text format, conventional names, and figures that move.
    let m1 = get(&addr, "/metrics");
    assert_eq!(m1.status, 200);
    assert!(
        m1.headers["content-type"].starts_with("text/plain; version=0.0.4"),
        "{:?}",
        m1.headers
    );
    let first = parse_metrics(&m1.body);
    let q = "query=\"stats\"";
    let input1 = metric(&first, "rivulet_engine_input_rows_total", q);
    assert!(input1 > 0.0);
    for name in [
        "rivulet_engine_output_rows_total",
        "rivulet_engine_late_rows_total",
        "rivulet_engine_dead_letter_rows_total",
        "rivulet_engine_epochs_total",
        "rivulet_engine_watermark_delay_seconds",
        "rivulet_engine_watermark_timestamp_seconds",
        "rivulet_engine_state_rows",
        "rivulet_checkpoint_age_seconds",
    ] {
        metric(&first, name, q);
    }
    assert!(metric(&first, "rivulet_generator_events_sent_total", "") > 0.0);
    assert!(metric(&first, "rivulet_broker_records_in_total", "") > 0.0);
    metric(
        &first,
        "rivulet_consumer_lag_records",
        "query=\"stats\",topic=\"events\",partition=\"0\"",
    );
    assert!(
        metric(
            &first,
            "rivulet_topic_partition_end_offset",
            "topic=\"events\",partition=\"0\""
        ) > 0.0
    );
    #[cfg(target_os = "linux")]
    assert!(metric(&first, "rivulet_process_resident_memory_bytes", "") > 0.0);
    // The API says the same (its counters can only have grown since the scrape).
    let h2 = get_json(&addr, "/api/health");
    assert!(h2["engine"]["input_rows_total"].as_f64().unwrap() >= input1);
    let input2 = wait_for("input rows to grow", Duration::from_secs(30), || {
        let m = parse_metrics(&get(&addr, "/metrics").body);
        let v = metric(&m, "rivulet_engine_input_rows_total", q);
        (v > input1).then_some(v)
    });
    assert!(input2 > input1);

    // Live updates: a snapshot at once (with a retry hint), then about one a second.
    let sse = get_for(&addr, "/api/events?top=3", Duration::from_millis(4500));
    assert_eq!(sse.status, 200);
    assert!(sse.headers["content-type"].starts_with("text/event-stream"));
    assert!(sse.body.contains("retry: 1000") || sse.body.contains("retry:1000"));
    let snaps: Vec<Value> = sse
        .body
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| serde_json::from_str(d.trim()).unwrap())
        .collect();
    assert!(snaps.len() >= 3, "{} snapshots in 4.5 s", snaps.len());
    for s in &snaps {
        assert_eq!(s["health"]["server_id"], h["server_id"]);
        assert!(s["results"]["keys"].as_array().unwrap().len() <= 3);
        assert_eq!(s["query"]["name"], "stats");
    }
    assert!(snaps[1]["health"]["now_ms"].as_i64() > snaps[0]["health"]["now_ms"].as_i64());

    up.stop();
    // The dashboard is gone with the process.
    assert!(
        TcpStream::connect(&addr).is_err(),
        "dashboard still listening"
    );
}

#[test]
fn run_with_dashboard_describes_an_external_broker() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // A broker and generator without dashboard (`up --no-dashboard --no-query`).
    let mut up = Proc::spawn(&[
        "up",
        "--no-dashboard",
        "--no-query",
        "--listen",
        "127.0.0.1:0",
        "--rate",
        "500",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    let brokers = up.wait_line(BROKER_LISTENING);
    let pipeline = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/pipeline.toml");
    let checkpoints = dir.path().join("checkpoints");
    let mut run = Proc::spawn(&[
        "run",
        "--pipeline",
        pipeline,
        "--brokers",
        &brokers,
        "--checkpoint-dir",
        checkpoints.to_str().unwrap(),
        "--dashboard",
        "--dashboard-listen",
        "127.0.0.1:0",
    ]);
    let addr = run.wait_line(DASHBOARD_AT);
    wait_for("results", RESULTS_WAIT, || {
        let r = get_json(&addr, "/api/queries/stats/results");
        (!r["windows"].as_array()?.is_empty()).then_some(())
    });
    // No generator here; the broker's input rate comes from the topic's end offsets.
    let h = wait_for(
        "a broker rate from offsets",
        Duration::from_secs(60),
        || {
            let h = get_json(&addr, "/api/health");
            (h["broker"]["records_in_per_second"].as_f64()? > 0.0).then_some(h)
        },
    );
    assert!(h["generator"].is_null(), "{h}");
    assert_eq!(h["broker"]["embedded"], false);
    assert!(h["broker"]["records_in_total"].is_null());
    assert_eq!(h["broker"]["brokers"], brokers.as_str());
    let topics = get_json(&addr, "/api/topics");
    assert!(
        topics["topics"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "events"),
        "{topics}"
    );
    run.stop();
    up.drain();
    assert!(
        !up.seen.iter().any(|l| l.starts_with(DASHBOARD_AT)),
        "--no-dashboard still printed a dashboard address"
    );
    up.stop();
}

/// Issue 15: beyond loopback the dashboard refuses to start without a token; with one, every
/// page, API, event-stream and metrics request needs the bearer token or the session cookie of
/// the token prompt; `/api/health` tells only its status; the token is in no output.
#[test]
fn a_dashboard_token_guards_every_page_and_api_request() {
    const TOKEN: &str = "tok-8c1f0a9e57d2b3";
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let base = [
        "up",
        "--no-query",
        "--no-generator",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
    ];
    let refused = Command::new(BIN)
        .args(base)
        .args(["--dashboard-listen", "0.0.0.0:0"])
        .env_remove("RIVULET_DASHBOARD_TOKEN")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("without authentication"), "{err}");
    let short = Command::new(BIN)
        .args(base)
        .args(["--dashboard-listen", "127.0.0.1:0"])
        .env("RIVULET_DASHBOARD_TOKEN", "short")
        .output()
        .unwrap();
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 12"));

    let log = dir.path().join("up.log");
    let child = Command::new(BIN)
        .args(base)
        .args(["--dashboard-listen", "127.0.0.1:0"])
        .env("RIVULET_DASHBOARD_TOKEN", TOKEN)
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut p = Proc::of(child);
    let addr = p.wait_line(DASHBOARD_AT);
    let t = Duration::from_secs(10);
    for path in [
        "/api/queries",
        "/api/topics",
        "/metrics",
        "/api/events",
        "/assets/app.js",
    ] {
        let r = request(&addr, "GET", path, &[], "", t);
        assert_eq!(r.status, 401, "{path}: {}", r.body);
        assert!(!r.body.contains(TOKEN));
    }
    let r = get(&addr, "/api/queries");
    assert_eq!(r.headers["www-authenticate"], "Bearer realm=\"rivulet\"");
    let page = get(&addr, "/");
    assert_eq!(page.status, 401);
    assert!(page.body.contains("name=\"token\""), "{}", page.body);
    // Health checks learn the status and nothing else.
    let h: Value = serde_json::from_str(&get(&addr, "/api/health").body).unwrap();
    assert_eq!(
        h.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["status"]
    );
    assert_eq!(get(&addr, "/assets/app.css").status, 200);

    let bearer = format!("Authorization: Bearer {TOKEN}");
    let r = request(&addr, "GET", "/api/queries", &[&bearer], "", t);
    assert_eq!(r.status, 200, "{}", r.body);
    let h = request(&addr, "GET", "/api/health", &[&bearer], "", t);
    assert!(h.body.contains("\"broker\""), "{}", h.body);
    let wrong = request(
        &addr,
        "GET",
        "/api/queries",
        &["Authorization: Bearer tok-8c1f0a9e57d2b4"],
        "",
        t,
    );
    assert_eq!(wrong.status, 401);

    // The prompt: a wrong token again shows it, the right one sets the session cookie.
    let form = "Content-Type: application/x-www-form-urlencoded";
    let r = request(&addr, "POST", "/login", &[form], "token=nope-nope-nope", t);
    assert_eq!(r.status, 401);
    assert!(r.body.contains("login-error"));
    let r = request(
        &addr,
        "POST",
        "/login",
        &[form],
        &format!("token={TOKEN}"),
        t,
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let cookie = r.headers["set-cookie"].clone();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(!cookie.contains(TOKEN), "{cookie}");
    let session = cookie.split(';').next().unwrap().to_string();
    let r = request(&addr, "GET", "/", &[&format!("Cookie: {session}")], "", t);
    assert_eq!(r.status, 200);
    assert!(!r.body.contains("name=\"token\""));
    let r = request(
        &addr,
        "GET",
        "/metrics",
        &[&format!("Cookie: {session}")],
        "",
        t,
    );
    assert_eq!(r.status, 200);

    p.stop();
    let mut outputs = p.seen.join("\n");
    outputs.push_str(&std::fs::read_to_string(&log).unwrap());
    assert!(
        !outputs.contains(TOKEN),
        "the token was printed:\n{outputs}"
    );
    assert!(outputs.contains("wrong token"), "{outputs}");
}

/// One HTTPS request (the test kit's CA trusted), read to the end; status and text.
fn https_request(addr: &str, ca: &std::path::Path, head: &str, body: &str) -> (u16, String) {
    let config = rivulet_auth::tls::client_config(Some(ca), None).unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(config, name).unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    write!(
        tls,
        "{head}\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    let _ = tls.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// Issue 15: `--dashboard-tls-cert/--dashboard-tls-key` serve the dashboard over HTTPS, with the
/// token; the session cookie is then `Secure`; plain HTTP on that port gets no page.
#[test]
fn the_dashboard_over_https() {
    const TOKEN: &str = "tok-https-5d1c9b0e2a";
    let pki = rivulet_testkit::TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(BIN)
        .args([
            "up",
            "--no-query",
            "--no-generator",
            "--listen",
            "127.0.0.1:0",
            "--dashboard-listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--dashboard-tls-cert")
        .arg(pki.cert("server"))
        .arg("--dashboard-tls-key")
        .arg(pki.key("server"))
        .env("RIVULET_DASHBOARD_TOKEN", TOKEN)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut p = Proc::of(child);
    let addr = p.wait_line("rivulet dashboard at https://");
    let ca = pki.cert("ca");
    let (status, _) = https_request(&addr, &ca, "GET /api/queries HTTP/1.1", "");
    assert_eq!(status, 401);
    let (status, text) = https_request(
        &addr,
        &ca,
        &format!("GET /api/queries HTTP/1.1\r\nAuthorization: Bearer {TOKEN}"),
        "",
    );
    assert_eq!(status, 200, "{text}");
    let (status, text) = https_request(
        &addr,
        &ca,
        "POST /login HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded",
        &format!("token={TOKEN}"),
    );
    assert_eq!(status, 303, "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("samesite=strict; secure"),
        "{text}"
    );
    // Plain HTTP on the HTTPS port: no page.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(!String::from_utf8_lossy(&buf).contains("HTTP/1.1 200"));
    p.stop();
}
