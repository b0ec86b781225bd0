//! One query spread over several `rivulet run` processes (`--checkpoint-store kafka`, issue
//! 16): they form the consumer group `rivulet-<name>` and share its tasks, one per input
//! partition. Three processes over a 6-partition topic; one is killed with -9 midway and a
//! fourth joins; the survivors take the dead one's tasks from their changelog partitions.
//! The Kafka sink must hold every window exactly once and the dead-letter topic every bad
//! record once, under read_committed, and the Parquet dataset the members share and the
//! PostgreSQL table the same windows, each once. Real broker process, real processes, each in its own
//! working directory (as on its own machine). Each member's dashboard says which tasks it runs
//! and that it shows one instance of three; each member's progress file names the owner of
//! every task record and holds the group events (the dead member's tasks assigned elsewhere).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use rdkafka::message::Message;
use rivulet_testkit::*;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_rivulet");
const PARTITIONS: i32 = 6;
const EVENTS: usize = 6000;
const IDS: i64 = 24;
const WAIT: Duration = Duration::from_secs(150);
const DASHBOARD_AT: &str = "rivulet dashboard at http://";

/// The query every member runs: a Kafka sink, a Parquet dataset at `lake` that the members
/// share (as on a shared filesystem), whose spool a task's next owner finishes, and the
/// PostgreSQL table `windows` at `pg`.
fn query_flags(brokers: &str, lake: &Path, pg: &str) -> Vec<String> {
    // Small epochs, so the processes are still busy when one dies and one joins.
    let mut flags = kafka_checkpointed_query_flags(brokers, "ev", "s", "200ms", 60);
    flags.extend(
        [
            "--sink",
            &format!("parquet:{}", lake.display()),
            "--sink",
            &format!("{pg}?table=windows"),
            "--progress-json",
            "progress.jsonl",
            "--dashboard",
            "--dashboard-listen",
            "127.0.0.1:0",
        ]
        .map(String::from),
    );
    flags
}

/// The address of the dashboard a member started (it prints it on stdout).
fn dashboard_of(dir: &Path) -> String {
    let out = dir.join("stdout.log");
    assert!(
        wait_for_log(&out, &[DASHBOARD_AT], WAIT).is_some(),
        "no dashboard address:\n{}",
        log_tail(&dir.join("run.log"))
    );
    let text = std::fs::read_to_string(&out).unwrap();
    let addr = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix(DASHBOARD_AT));
    addr.unwrap().trim().to_string()
}

/// Each member's dashboard shows its own tasks, together all six once, and says that it shows
/// one instance of three; returns the members' owner names.
fn dashboards_show_one_instance_of_three(dirs: &[&Path]) -> Vec<String> {
    let addrs: Vec<String> = dirs.iter().map(|d| dashboard_of(d)).collect();
    let deadline = Instant::now() + WAIT;
    loop {
        let hs: Vec<Value> = addrs.iter().map(|a| get_json(a, "/api/health")).collect();
        let mut tasks: Vec<i64> = hs
            .iter()
            .filter_map(|h| h["instance"]["tasks"].as_array())
            .flatten()
            .filter_map(|t| t["task"].as_i64())
            .collect();
        tasks.sort_unstable();
        let settled = hs.iter().all(|h| {
            let i = &h["instance"];
            i["members"] == 3 && i["tasks_total"] == PARTITIONS && i["whole_query"] == false
        }) && tasks == (0..i64::from(PARTITIONS)).collect::<Vec<_>>();
        if settled {
            for h in &hs {
                let i = &h["instance"];
                let scope = i["scope"].as_str().unwrap();
                assert!(
                    scope.starts_with("This dashboard shows one instance of 3")
                        && scope.contains(i["owner"].as_str().unwrap()),
                    "{scope}"
                );
                assert_eq!(i["group"], "rivulet-s");
                // The engine's lag table holds this instance's partitions only.
                let mine: Vec<i64> = i["tasks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|t| t["task"].as_i64())
                    .collect();
                for l in h["engine"]["lag"].as_array().unwrap() {
                    assert!(mine.contains(&l["partition"].as_i64().unwrap()), "{h}");
                }
            }
            return hs
                .iter()
                .map(|h| h["instance"]["owner"].as_str().unwrap().to_string())
                .collect();
        }
        assert!(
            Instant::now() < deadline,
            "the dashboards never showed the three members' tasks: {:?}",
            hs.iter().map(|h| &h["instance"]).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A member's progress file: its progress records and its group events.
fn progress_of(dir: &Path) -> (Vec<Value>, Vec<Value>) {
    let text = std::fs::read_to_string(dir.join("progress.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .partition(|v| v.get("event").is_none())
}

/// Records the group holds as done (the tasks' committed offsets, summed over partitions).
fn committed(brokers: &str) -> i64 {
    committed_total(brokers, "rivulet-s", "ev", PARTITIONS)
}

fn wait_for_committed(brokers: &str, procs: &mut [(Child, PathBuf)], at_least: i64) {
    let deadline = Instant::now() + WAIT;
    while committed(brokers) < at_least {
        for (child, dir) in procs.iter_mut() {
            if let Some(st) = child.try_wait().unwrap() {
                panic!(
                    "a member exited ({st}):\n{}",
                    log_tail(&dir.join("run.log"))
                );
            }
        }
        assert!(
            Instant::now() < deadline,
            "{at_least} records not committed in time (have {}):\n{}",
            committed(brokers),
            log_tail(&procs[0].1.join("run.log"))
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Well-formed events in time order, each id in partition `id % 6` (keyed by id, as the
/// generator does), and every 97th record a malformed one.
fn events() -> (Vec<Ev>, Vec<(i32, String)>) {
    let good = keyed_events(16, EVENTS, IDS, PARTITIONS, START_MS);
    let bad: Vec<(i32, String)> = (0..EVENTS / 97)
        .map(|i| {
            (
                (i as i32) % PARTITIONS,
                format!("{{\"id\": {i}, \"value\": oops"),
            )
        })
        .collect();
    (good, bad)
}

fn spawn(root: &Path, name: &str, flags: &[String]) -> (Child, PathBuf) {
    let dir = root.join(name);
    (spawn_in(BIN, &dir, flags), dir)
}

#[test]
fn three_processes_share_a_query_through_a_kill_and_a_join() {
    let tmp = tempfile::tempdir().unwrap();
    let mut broker = broker_with_topic(BIN, tmp.path(), "ev", PARTITIONS);
    let b = broker.bootstrap();
    let (good, bad) = events();
    produce(&b, "ev", &good);
    produce_records(
        &b,
        "ev",
        bad.iter().map(|(p, v)| (Some(*p), None, v.as_str())),
    );
    let total = end_offsets(&b, "ev").iter().sum::<i64>();
    assert_eq!(total, (good.len() + bad.len()) as i64);

    let lake = tmp.path().join("lake");
    let pg = rivulet_testkit::storage::PgServer::start();
    let flags = query_flags(&b, &lake, &pg.url());
    let mut procs: Vec<(Child, PathBuf)> = ["a", "b", "c"]
        .iter()
        .map(|n| spawn(tmp.path(), n, &flags))
        .collect();
    wait_for_committed(&b, &mut procs, total / 5);
    // `rivulet groups describe` shows the three members, each with the partitions (tasks) it
    // runs, assigned cooperatively.
    let deadline = Instant::now() + WAIT;
    loop {
        let out = run_cli_ok(BIN, &["groups", "--brokers", &b, "describe", "rivulet-s"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let assigned: usize = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("assignment: ev["))
            .map(|l| l.trim_end_matches(']').split(',').count())
            .sum();
        if text.contains("members: 3") && assigned == PARTITIONS as usize {
            assert!(text.contains("protocol: cooperative-sticky"), "{text}");
            break;
        }
        assert!(Instant::now() < deadline, "{text}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let dirs: Vec<&Path> = procs.iter().map(|(_, d)| d.as_path()).collect();
    let owners = dashboards_show_one_instance_of_three(&dirs);
    // The group names each member by its owner, as the progress records and dashboards do.
    let out = run_cli_ok(BIN, &["groups", "--brokers", &b, "describe", "rivulet-s"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    for o in &owners {
        assert!(text.contains(&format!("client-id: {o}")), "{o}: {text}");
    }
    // kill -9 of one member in the middle of its epochs: its tasks stall until its session
    // times out, then move, restored from their changelog partitions.
    let (mut killed, killed_dir) = procs.remove(1);
    killed.kill().unwrap();
    killed.wait().unwrap();
    assert!(
        committed(&b) < total,
        "everything was read before the kill: the test proves nothing"
    );
    procs.push(spawn(tmp.path(), "d", &flags));
    wait_for_committed(&b, &mut procs, total);
    for (child, dir) in procs.iter_mut() {
        let st = stop_child(child, "INT", WAIT).expect("a member stops on SIGINT");
        assert!(st.success(), "{}", log_tail(&dir.join("run.log")));
    }
    // Every member ran tasks, and the newcomer took some over.
    for d in ["a", "c", "d"] {
        let log = std::fs::read_to_string(tmp.path().join(d).join("run.log")).unwrap();
        assert!(log.contains("starts here"), "{d} ran no task:\n{log}");
    }
    let killed_log = std::fs::read_to_string(killed_dir.join("run.log")).unwrap();
    assert!(killed_log.contains("starts here"), "{killed_log}");
    assert_eq!(
        partition_count(&b, "s-changelog"),
        Some(PARTITIONS as usize)
    );

    let rows: Vec<serde_json::Value> = read_messages(&b, "out")
        .iter()
        .map(|m| serde_json::from_slice(m.payload().unwrap()).unwrap())
        .collect();
    check_append_per_partition(&rows, &good, tumbling(1000));
    // The Parquet dataset holds the same windows, each once: the killed member's spooled
    // epochs were finished by the task's next owner.
    let finished_spool = ["a", "c", "d"].iter().any(|d| {
        std::fs::read_to_string(tmp.path().join(d).join("run.log"))
            .unwrap()
            .contains("finishing the committed epochs a previous run left in its spool")
    });
    assert!(
        finished_spool,
        "no member finished the killed member's spool: the test proves nothing"
    );
    let read = rivulet_testkit::storage::read_parquet(&lake);
    check_append_per_partition(&read.rows, &good, tumbling(1000));
    let key = |r: &Value| {
        (
            r["id"].to_string(),
            r["window_start"].to_string(),
            r["count"].to_string(),
        )
    };
    let mut in_kafka: Vec<_> = rows.iter().map(key).collect();
    let mut in_parquet: Vec<_> = read.rows.iter().map(key).collect();
    in_kafka.sort();
    in_parquet.sort();
    assert_eq!(
        in_parquet, in_kafka,
        "the Parquet dataset and the Kafka sink differ"
    );
    // PostgreSQL: each task applies its epochs itself (no local spool with the checkpoint in
    // Kafka), and a re-run epoch is a no-op through the epochs table.
    let table = pg.rows("windows");
    check_append_per_partition(&table, &good, tumbling(1000));
    let mut in_pg: Vec<_> = table.iter().map(key).collect();
    in_pg.sort();
    assert_eq!(
        in_pg, in_kafka,
        "the PostgreSQL table and the Kafka sink differ"
    );
    let mut got: Vec<String> = read_messages(&b, "ev.dlq")
        .iter()
        .map(|m| String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned())
        .collect();
    let mut want: Vec<String> = bad.iter().map(|(_, v)| v.clone()).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want, "every dead letter exactly once");

    // The progress files: every task record names its task and owner; the events say which
    // tasks each member ran, and the dead member's tasks were assigned elsewhere after it.
    let mut ran = std::collections::BTreeSet::new();
    let (_, dead_events) = progress_of(&killed_dir);
    let dead_last = dead_events
        .last()
        .expect("the killed member's events")
        .clone();
    let mut taken_over = std::collections::BTreeSet::new();
    for d in ["a", "c", "d"] {
        let (records, events) = progress_of(&tmp.path().join(d));
        let owner = events[0]["owner"].as_str().unwrap().to_string();
        assert!(!records.is_empty(), "{d} wrote no progress record");
        for r in &records {
            let t = &r["task"];
            assert_eq!(
                (&t["owner"], &t["of"], &t["group"]),
                (
                    &Value::from(owner.clone()),
                    &Value::from(PARTITIONS),
                    &Value::from("rivulet-s")
                ),
                "{r}"
            );
            assert!(r["eventTime"].get("watermark").is_some(), "{r}");
            assert!(r["sources"][0]["metrics"].get("lag").is_some(), "{r}");
            ran.insert(t["id"].as_i64().unwrap());
        }
        for e in &events {
            assert_eq!(e["owner"], owner.as_str(), "{e}");
            if e["event"] == "tasksAssigned"
                && e["timestamp"].as_str() > dead_last["timestamp"].as_str()
            {
                taken_over.extend(
                    e["tasks"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter_map(Value::as_i64),
                );
            }
        }
        // Stopped with SIGINT: by its last event the member runs no task any more (it
        // stopped them, or a rebalance moved them away before).
        let last = events.last().unwrap();
        assert!(
            ["tasksStopped", "tasksRevoked"].contains(&last["event"].as_str().unwrap()),
            "{d}: {last}\n{}",
            log_tail(&tmp.path().join(d).join("run.log"))
        );
        assert_eq!(last["running"], serde_json::json!([]), "{d}: {last}");
    }
    assert_eq!(
        ran.len(),
        PARTITIONS as usize,
        "tasks with records: {ran:?}"
    );
    for t in dead_last["running"].as_array().unwrap() {
        let t = t.as_i64().unwrap();
        assert!(
            taken_over.contains(&t),
            "the killed member's task {t} was not assigned elsewhere after it: {taken_over:?}"
        );
    }
    assert!(
        !dead_last["running"].as_array().unwrap().is_empty(),
        "{dead_last}"
    );
    broker.stop_with("TERM");
}
