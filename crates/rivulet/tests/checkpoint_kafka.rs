//! A query whose checkpoint lives in Kafka (`--checkpoint-store kafka`) moves between
//! processes: a second `rivulet run` of the same `--name`, started in another working
//! directory (as on another machine), takes the query over from the changelog topic and fences
//! the first (the query has one task: the topic has one partition). The first, paused with
//! SIGSTOP meanwhile (a zombie: a long GC-like pause, a network partition), is resumed with
//! SIGCONT: its task must stop as fenced (or lost) and none of its late writes may appear —
//! the sink topic and the dead-letter topic hold every result and
//! dead letter exactly once under read_committed, and the PostgreSQL table every window once
//! (the zombie's late apply of an epoch is the epoch the new owner applied, skipped). The
//! zombie's progress file tells that its task was fenced or lost. Real broker process, real
//! processes, real PostgreSQL server.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use rdkafka::message::Message;
use rdkafka::Offset;
use rivulet_gen::EventKind;
use rivulet_testkit::*;

const BIN: &str = env!("CARGO_BIN_EXE_rivulet");
const COUNT: i64 = 2000;
const WAIT: Duration = Duration::from_secs(120);

fn query_flags(brokers: &str, pg: &str) -> Vec<String> {
    // Many small epochs, so the first process is paused in the middle of the topic.
    let mut flags = kafka_checkpointed_query_flags(brokers, "r", "z", "300ms", 100);
    flags.extend([
        "--sink".to_string(),
        format!("{pg}?table=zombie_windows"),
        "--progress-json".to_string(),
        "progress.jsonl".to_string(),
    ]);
    flags
}

fn spawn(dir: &Path, args: &[String]) -> Child {
    spawn_in(BIN, dir, args)
}

/// The offset of `r` the query's consumer group holds (committed after each epoch).
fn group_offset(brokers: &str) -> i64 {
    match committed_offsets(brokers, "rivulet-z", "r", 1)[0] {
        Offset::Offset(o) => o,
        _ => 0,
    }
}

fn wait_for_offset(brokers: &str, child: &mut Child, dir: &Path, at_least: i64) {
    let deadline = Instant::now() + WAIT;
    while group_offset(brokers) < at_least {
        if let Some(st) = child.try_wait().unwrap() {
            panic!("query exited ({st}):\n{}", log_tail(&dir.join("run.log")));
        }
        assert!(
            Instant::now() < deadline,
            "offset {at_least} not committed in time:\n{}",
            log_tail(&dir.join("run.log"))
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_paused_process_is_fenced_when_another_takes_its_task_over() {
    let tmp = tempfile::tempdir().unwrap();
    let mut broker = broker_with_report_events(BIN, tmp.path());
    let b = broker.bootstrap();
    let pg = rivulet_testkit::storage::PgServer::start();
    let flags = query_flags(&b, &pg.url());
    let (dir_a, dir_b) = (tmp.path().join("a"), tmp.path().join("b"));

    let mut a = spawn(&dir_a, &flags);
    wait_for_offset(&b, &mut a, &dir_a, 1);
    send_signal(a.id(), "STOP");
    let first_stop = group_offset(&b);
    assert!(
        first_stop < COUNT,
        "the first process read everything before its pause"
    );

    let mut second = spawn(&dir_b, &flags);
    wait_for_offset(&b, &mut second, &dir_b, COUNT);
    send_signal(a.id(), "CONT");
    // The zombie goes on with its next epoch and finds its task fenced (or hears from the
    // group first that the task moved): the task stops there, writing nothing, and the process
    // stays a member of the group.
    let seen = wait_for_log(&dir_a.join("run.log"), &["was fenced", "was lost"], WAIT);
    assert!(seen.is_some(), "{}", log_tail(&dir_a.join("run.log")));
    for (p, d) in [(&mut a, &dir_a), (&mut second, &dir_b)] {
        let st = stop_child(p, "INT", WAIT).expect("a member stops on SIGINT");
        assert!(st.success(), "{}", log_tail(&d.join("run.log")));
    }
    // Neither working directory holds a checkpoint: it is in the cluster.
    for d in [&dir_a, &dir_b] {
        assert!(!d.join("checkpoints/z/commits").exists());
        assert!(!d.join("checkpoints/z/offsets").exists());
    }
    assert!(partition_count(&b, "z-changelog") == Some(1));

    let events = expected_events(&quick_config(&b, "r", 5, COUNT as u64, 5, Mix::bad(0.05)));
    let good = well_formed(&events);
    let truth = truth_fixed(&good, tumbling(1000));
    let watermark = good.iter().map(|e| e.ts).max().unwrap();
    let rows: Vec<serde_json::Value> = read_messages(&b, "out")
        .iter()
        .map(|m| serde_json::from_slice(m.payload().unwrap()).unwrap())
        .collect();
    check_append(&rows, &truth, watermark);
    check_append(&pg.rows("zombie_windows"), &truth, watermark);
    // The zombie's progress file: its task was fenced, or lost to the group.
    let progress = std::fs::read_to_string(dir_a.join("progress.jsonl")).unwrap();
    let group_events: Vec<serde_json::Value> = progress
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v.get("event").is_some())
        .collect();
    assert!(
        group_events
            .iter()
            .any(|e| e["event"] == "taskFenced" || e["event"] == "tasksLost"),
        "{group_events:?}"
    );
    // Every dead letter once: the bad events' payloads, nothing doubled by the takeover.
    let mut want: Vec<Vec<u8>> = events
        .iter()
        .filter(|e| e.kind == EventKind::Bad)
        .map(|e| e.payload.clone())
        .collect();
    let mut got: Vec<Vec<u8>> = read_messages(&b, "r.dlq")
        .iter()
        .map(|m| m.payload().unwrap_or_default().to_vec())
        .collect();
    want.sort();
    got.sort();
    assert_eq!(got.len(), want.len());
    assert!(got == want, "the dead letters differ");
    broker.stop_with("TERM");
}
