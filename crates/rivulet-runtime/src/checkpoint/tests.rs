//! The checkpoint protocol's tests, written once and run on both stores: a directory, and a
//! changelog topic on a real broker (127.0.0.1:0).
#![allow(clippy::unwrap_used)]

use std::fs;

use super::kafka::Changelog;
use super::*;
use crate::connectors::kafka::KafkaConnection;

fn offsets(epoch: u64, start: i64, end: i64) -> EpochOffsets {
    EpochOffsets {
        epoch,
        batch_timestamp_ms: 1000 + epoch as i64,
        watermark_ms: Some(5),
        ranges: vec![OffsetRange {
            topic: "events".into(),
            partition: 0,
            start,
            end,
        }],
    }
}

fn empty_state(epoch: u64) -> EpochState {
    EpochState {
        epoch,
        watermark_tracker: serde_json::Value::Null,
        operators: vec![],
    }
}

/// Opens the checkpoint of one query again (a restart); each case gets a store of its own.
type Reopen<'a> = &'a dyn Fn() -> Checkpoint;

fn metadata_is_stable_across_opens(open: Reopen<'_>) {
    let a = open().metadata().clone();
    let b = open();
    assert_eq!(&a, b.metadata());
    assert_eq!(a.name, "q");
}

fn pending_epoch_detection(open: Reopen<'_>) {
    let c = open();
    assert_eq!(c.pending().unwrap(), None);
    assert_eq!(c.latest_committed().unwrap(), None);
    c.write_offsets(&offsets(0, 0, 10)).unwrap();
    assert_eq!(c.pending().unwrap(), Some(offsets(0, 0, 10)));
    c.write_commit(0).unwrap();
    assert_eq!(c.pending().unwrap(), None);
    assert_eq!(c.latest_committed().unwrap(), Some(0));
    c.write_offsets(&offsets(1, 10, 20)).unwrap();
    // A crash after the state but before the commit still leaves the epoch pending.
    c.write_state(&empty_state(1)).unwrap();
    drop(c);
    let c = open();
    assert_eq!(c.pending().unwrap(), Some(offsets(1, 10, 20)));
    assert_eq!(c.latest_committed().unwrap(), Some(0));
    // A gap is corruption, not silently skipped.
    c.write_offsets(&offsets(3, 30, 40)).unwrap();
    assert!(c.pending().is_err());
}

fn state_roundtrip_with_binary_blobs(open: Reopen<'_>) {
    let c = open();
    // Larger than a changelog record may be, with every byte value.
    let big: Vec<u8> = (0..(2 * kafka::CHUNK + 12_345))
        .map(|i| (i * 7 % 256) as u8)
        .collect();
    let s = EpochState {
        epoch: 4,
        watermark_tracker: serde_json::json!({"partitions": {"0": 12}}),
        operators: vec![
            ("filter".into(), vec![]),
            ("window".into(), vec![0, 10, 13, 255, b'\n', 0]),
            ("big".into(), big),
        ],
    };
    c.write_state(&s).unwrap();
    assert_eq!(c.read_state(4).unwrap(), s);
    drop(c);
    assert_eq!(open().read_state(4).unwrap(), s);
}

fn retention_keeps_last_n(open: Reopen<'_>) {
    let c = open().with_retain(2);
    for e in 0..5 {
        c.write_offsets(&offsets(e, e as i64 * 10, e as i64 * 10 + 10))
            .unwrap();
        c.write_state(&empty_state(e)).unwrap();
        c.write_commit(e).unwrap();
    }
    drop(c);
    let c = open();
    assert_eq!(c.epochs(OFFSETS).unwrap(), vec![3, 4]);
    assert_eq!(c.epochs(STATE).unwrap(), vec![3, 4]);
    assert_eq!(c.epochs(COMMITS).unwrap(), vec![3, 4]);
    assert_eq!(c.read_offsets(4).unwrap().ranges[0].end, 50);
    assert!(c.read_offsets(2).is_err());
}

/// Every case, each on a fresh store from `fresh`.
fn conformance(fresh: &mut dyn FnMut() -> Box<dyn Fn() -> Checkpoint>) {
    metadata_is_stable_across_opens(&*fresh());
    pending_epoch_detection(&*fresh());
    state_roundtrip_with_binary_blobs(&*fresh());
    retention_keeps_last_n(&*fresh());
}

#[test]
fn directory_store_conformance() {
    let d = tempfile::tempdir().unwrap();
    let mut n = 0;
    conformance(&mut || {
        n += 1;
        let dir = d.path().join(n.to_string());
        Box::new(move || Checkpoint::open(&dir, "q").unwrap())
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_store_conformance() {
    let broker = rivulet_testkit::TestBroker::start().await;
    let connection = KafkaConnection::new(broker.bootstrap());
    tokio::task::spawn_blocking(move || {
        let mut n = 0;
        conformance(&mut || {
            n += 1;
            // Each case's query name gives it its own topic and transactional id; metadata
            // keeps the name `q` the cases check.
            let topic_name = format!("case{n}");
            let connection = connection.clone();
            Box::new(move || {
                let store =
                    KafkaStore::open(&connection, &Changelog::task(&topic_name, 0, 1)).unwrap();
                Checkpoint::with_store(Box::new(store), "q").unwrap()
            })
        });
    })
    .await
    .unwrap();
}

/// A second process of the query takes over: the first is fenced and writes nothing more,
/// and the second sees everything the first committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_store_fences_an_earlier_process() {
    let broker = rivulet_testkit::TestBroker::start().await;
    let connection = KafkaConnection::new(broker.bootstrap());
    tokio::task::spawn_blocking(move || {
        let open = || {
            let store = KafkaStore::open(&connection, &Changelog::task("z", 1, 3)).unwrap();
            Checkpoint::with_store(Box::new(store), "z").unwrap()
        };
        let first = open();
        first.write_offsets(&offsets(0, 0, 10)).unwrap();
        first.write_commit(0).unwrap();
        let second = open();
        let e = first
            .write_offsets(&offsets(1, 10, 20))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("another process took over this query's task"),
            "{e}"
        );
        assert!(e.contains("task `z:1`"), "{e}");
        assert_eq!(second.metadata(), first.metadata());
        assert_eq!(second.latest_committed().unwrap(), Some(0));
        assert_eq!(second.pending().unwrap(), None);
        second.write_offsets(&offsets(1, 10, 20)).unwrap();
        drop((first, second));
        assert_eq!(open().pending().unwrap(), Some(offsets(1, 10, 20)));
    })
    .await
    .unwrap();
}

/// Tasks of one query keep their checkpoints in their own changelog partitions: each reads
/// back only its own entries, and reopening one task fences that task only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_keep_their_checkpoints_apart() {
    let broker = rivulet_testkit::TestBroker::start().await;
    let connection = KafkaConnection::new(broker.bootstrap());
    let bootstrap = broker.bootstrap();
    tokio::task::spawn_blocking(move || {
        let open = |task| {
            let store = KafkaStore::open(&connection, &Changelog::task("t", task, 3)).unwrap();
            Checkpoint::with_store(Box::new(store), "t").unwrap()
        };
        let zero = open(0);
        let two = open(2);
        zero.write_offsets(&offsets(0, 0, 10)).unwrap();
        zero.write_commit(0).unwrap();
        two.write_offsets(&offsets(0, 0, 5)).unwrap();
        two.write_commit(0).unwrap();
        two.write_offsets(&offsets(1, 5, 7)).unwrap();
        assert_ne!(
            zero.metadata().id,
            two.metadata().id,
            "one checkpoint per task"
        );
        // Reopening task 2 fences the old task 2 only.
        let two_again = open(2);
        assert!(two.write_commit(1).is_err());
        zero.write_offsets(&offsets(1, 10, 12)).unwrap();
        assert_eq!(two_again.latest_committed().unwrap(), Some(0));
        assert_eq!(two_again.pending().unwrap(), Some(offsets(1, 5, 7)));
        drop((zero, two, two_again));
        let zero = open(0);
        assert_eq!(zero.latest_committed().unwrap(), Some(0));
        assert_eq!(zero.pending().unwrap(), Some(offsets(1, 10, 12)));
        assert_eq!(
            rivulet_testkit::partition_count(&bootstrap, "t-changelog"),
            Some(3)
        );
    })
    .await
    .unwrap();
}

#[test]
fn one_directory_open_at_a_time() {
    // Regression (issue 11): two runs on one checkpoint directory would write the same
    // epochs; the second is refused while the first holds the directory.
    let d = tempfile::tempdir().unwrap();
    let a = Checkpoint::open(d.path(), "q").unwrap();
    let e = Checkpoint::open(d.path(), "q").unwrap_err().to_string();
    assert!(e.contains("in use by another running query"), "{e}");
    drop(a);
    Checkpoint::open(d.path(), "q").unwrap();
    assert!(d.path().join("metadata").is_file());
}

#[test]
fn atomic_write_replaces_and_leaves_no_temp() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("f");
    write_atomic(&p, b"one").unwrap();
    write_atomic(&p, b"two").unwrap();
    assert_eq!(fs::read(&p).unwrap(), b"two");
    let names: Vec<_> = fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("f")]);
    // A leftover temp file from a crash is ignored by the epoch listing.
    let c = Checkpoint::open(d.path().join("cp"), "q").unwrap();
    fs::write(d.path().join("cp/offsets/.3.tmp"), b"{").unwrap();
    assert_eq!(c.latest_offsets().unwrap(), None);
}
