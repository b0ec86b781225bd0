//! Transactions across kill -9 of the real broker binary, with librdkafka clients:
//! - a transaction open when the broker dies is aborted at restart, and the partition's last
//!   stable offset moves on (read_committed is not stuck behind it);
//! - a transaction whose commit was stored but whose markers were not (the broker died between
//!   the two) is completed at restart, and one whose abort was stored is aborted;
//! - a consume-transform-produce loop with exactly-once (offsets sent to each transaction)
//!   through a kill -9 in the middle of a transaction: the output is the input, once;
//! - `rivulet transactions list|describe` against the broker.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use rivulet_testkit::*;

const BIN: &str = env!("CARGO_BIN_EXE_rivulet");
const T: Duration = TXN_TIMEOUT;

fn start_broker(dir: &std::path::Path) -> BrokerProcess {
    BrokerProcess::start(BIN, &dir.join("data"), &dir.join("broker.log"), "always")
}

/// Sets the stored state of `transactional_id` in the broker's `transactions.json` (the
/// broker is not running), as a crash right after that state was stored would leave it.
fn set_stored_state(data: &std::path::Path, transactional_id: &str, state: &str) {
    let path = data.join("transactions.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(
        v["transactions"][transactional_id]["state"], "Ongoing",
        "{v}"
    );
    v["transactions"][transactional_id]["state"] = serde_json::Value::String(state.to_string());
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_and_prepared_transactions_are_ended_after_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = start_broker(dir.path());
    let b = broker.bootstrap();
    create_topic(&b, "ct", 2, &[]).await;
    let data = dir.path().join("data");
    tokio::task::spawn_blocking(move || {
        let targets = [("ct", 0), ("ct", 1)];
        let topics = [("ct", 2)];
        let p = transactional_producer(&b, "crash-open");
        p.init_transactions(T).unwrap();
        p.begin_transaction().unwrap();
        send_values(&p, &targets, &values("done", 10));
        p.commit_transaction(T).unwrap();
        p.begin_transaction().unwrap();
        send_values(&p, &targets, &values("open", 10));

        // Killed with a transaction open: aborted at restart.
        broker.kill9();
        drop(p);
        broker.restart();
        assert_eq!(
            read_values(&b, &topics, "read_committed"),
            values("done", 10)
        );
        let plain: BaseProducer = producer_config(&b).create().unwrap();
        send_values(&plain, &targets, &values("after", 4));
        assert_eq!(
            read_values(&b, &topics, "read_committed"),
            sorted([values("after", 4), values("done", 10)].concat())
        );
        assert_eq!(read_values(&b, &topics, "read_uncommitted").len(), 24);

        // Killed after the commit (or abort) was stored, before the markers: completed.
        for (id, state, prefix) in [
            ("crash-commit", "PrepareCommit", "prepared"),
            ("crash-abort", "PrepareAbort", "dropped"),
        ] {
            let p = transactional_producer(&b, id);
            p.init_transactions(T).unwrap();
            p.begin_transaction().unwrap();
            send_values(&p, &targets, &values(prefix, 6));
            broker.kill9();
            drop(p);
            set_stored_state(&data, id, state);
            broker.restart();
        }
        assert_eq!(
            read_values(&b, &topics, "read_committed"),
            sorted(
                [
                    values("after", 4),
                    values("done", 10),
                    values("prepared", 6)
                ]
                .concat()
            )
        );
        // And the broker keeps serving transactions on the same ids.
        let p = transactional_producer(&b, "crash-commit");
        p.init_transactions(T).unwrap();
        p.begin_transaction().unwrap();
        send_values(&p, &targets, &values("again", 2));
        p.commit_transaction(T).unwrap();
        assert_eq!(read_values(&b, &topics, "read_committed").len(), 22);
    })
    .await
    .unwrap();
}

const INPUT: usize = 200;

/// The committed offsets of group `ctp` on `in`, or `None` while the broker is unreachable.
fn committed(c: &BaseConsumer) -> Option<Vec<i64>> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition("in", 0);
    tpl.add_partition("in", 1);
    let got = c.committed_offsets(tpl, Duration::from_secs(5)).ok()?;
    Some(
        (0..2)
            .map(|p| match got.find_partition("in", p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o,
                _ => 0,
            })
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_transform_produce_is_exactly_once_across_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = start_broker(dir.path());
    let b = broker.bootstrap();
    create_topic(&b, "in", 2, &[]).await;
    create_topic(&b, "out", 2, &[]).await;
    tokio::task::spawn_blocking(move || {
        let plain: BaseProducer = producer_config(&b).create().unwrap();
        send_values(&plain, &[("in", 0), ("in", 1)], &values("v", INPUT));
        drop(plain);
        let deadline = Instant::now() + Duration::from_secs(240);
        let (mut transactions, mut restarts, mut killed) = (0usize, 0usize, false);
        'instance: loop {
            assert!(Instant::now() < deadline, "the loop did not finish");
            assert!(restarts < 20, "too many restarts");
            // A fresh producer and consumer: the producer's init aborts whatever the last
            // instance left open, the consumer resumes from the committed offsets.
            restarts += 1;
            let p = transactional_producer(&b, "ctp");
            if p.init_transactions(T).is_err() {
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            let c: BaseConsumer = plain_consumer_config(&b)
                .set("group.id", "ctp")
                .set("isolation.level", "read_committed")
                .create()
                .unwrap();
            let Some(mut positions) = committed(&c) else {
                continue;
            };
            let mut tpl = TopicPartitionList::new();
            for (p, o) in positions.iter().enumerate() {
                tpl.add_partition_offset("in", p as i32, Offset::Offset(*o))
                    .unwrap();
            }
            c.assign(&tpl).unwrap();
            let meta = c.group_metadata().unwrap();
            loop {
                assert!(Instant::now() < deadline, "the loop did not finish");
                if positions.iter().sum::<i64>() == INPUT as i64 {
                    break 'instance;
                }
                let mut batch = Vec::new();
                let until = Instant::now() + Duration::from_millis(500);
                while batch.len() < 15 && Instant::now() < until {
                    if let Some(Ok(m)) = c.poll(Duration::from_millis(50)) {
                        let v = String::from_utf8_lossy(m.payload().unwrap()).into_owned();
                        batch.push((m.partition(), m.offset(), v));
                    }
                }
                if batch.is_empty() {
                    continue;
                }
                if p.begin_transaction().is_err() {
                    continue 'instance;
                }
                let mut next = positions.clone();
                for (partition, offset, v) in &batch {
                    let out = format!("out-{v}");
                    let rec = rdkafka::producer::BaseRecord::<str, str>::to("out")
                        .payload(&out)
                        .partition(*partition);
                    if p.send(rec).is_err() {
                        continue 'instance;
                    }
                    next[*partition as usize] = offset + 1;
                }
                let mut offsets = TopicPartitionList::new();
                for (partition, o) in next.iter().enumerate() {
                    offsets
                        .add_partition_offset("in", partition as i32, Offset::Offset(*o))
                        .unwrap();
                }
                if p.send_offsets_to_transaction(&offsets, &meta, T).is_err() {
                    continue 'instance;
                }
                if transactions == 3 && !killed {
                    // Mid-transaction: records and offsets sent, not committed.
                    killed = true;
                    broker.kill9();
                    broker.restart();
                }
                if p.commit_transaction(T).is_err() {
                    continue 'instance;
                }
                transactions += 1;
                positions = next;
            }
        }
        assert!(killed, "the broker was never killed");
        let want = sorted(
            values("v", INPUT)
                .into_iter()
                .map(|v| format!("out-{v}"))
                .collect(),
        );
        assert_eq!(read_values(&b, &[("out", 2)], "read_committed"), want);
        println!("{transactions} transactions, {restarts} producer instances");
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_cli_lists_and_describes() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path());
    let b = broker.bootstrap();
    create_topic(&b, "tcli", 2, &[]).await;
    tokio::task::spawn_blocking(move || {
        let done = transactional_producer(&b, "cli-done");
        done.init_transactions(T).unwrap();
        done.begin_transaction().unwrap();
        send_values(&done, &[("tcli", 0)], &values("d", 2));
        done.commit_transaction(T).unwrap();
        let open = transactional_producer(&b, "cli-open");
        open.init_transactions(T).unwrap();
        open.begin_transaction().unwrap();
        send_values(&open, &[("tcli", 0), ("tcli", 1)], &values("o", 2));

        let text = |args: &[&str]| {
            let mut all = vec!["transactions", "--brokers", b.as_str()];
            all.extend_from_slice(args);
            let out = run_cli(BIN, &all);
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        };
        let (ok, list, err) = text(&["list"]);
        assert!(ok, "{err}");
        let row = |id: &str| list.lines().find(|l| l.starts_with(id)).map(str::to_string);
        assert!(
            row("cli-done").unwrap().contains("CompleteCommit"),
            "{list}"
        );
        assert!(row("cli-open").unwrap().contains("Ongoing"), "{list}");
        let (ok, ongoing, err) = text(&["list", "--state", "Ongoing"]);
        assert!(ok, "{err}");
        assert!(
            ongoing.contains("cli-open") && !ongoing.contains("cli-done"),
            "{ongoing}"
        );

        let (ok, described, err) = text(&["describe", "cli-open"]);
        assert!(ok, "{err}");
        assert!(
            described.contains("state:            Ongoing"),
            "{described}"
        );
        assert!(described.contains("tcli-0, tcli-1"), "{described}");
        let (ok, _, err) = text(&["describe", "nobody"]);
        assert!(!ok && err.contains("not found"), "{err}");
        let (ok, _, err) = text(&["list", "--state", "Sleeping"]);
        assert!(!ok && err.contains("unknown transaction state"), "{err}");
        open.commit_transaction(T).unwrap();
    })
    .await
    .unwrap();
}
