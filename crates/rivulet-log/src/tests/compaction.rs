//! The cleaner on one partition: the latest value of every key survives at its offset (every
//! codec), tombstones and ended transactions' markers go after `delete.retention.ms`, aborted
//! records go, an interrupted pass is finished or discarded at the next open; and a proptest of
//! random writes, transactions, passes and restarts against a model of what a read_committed
//! consumer must see as each key's latest value.

use std::collections::{BTreeMap, HashSet, VecDeque};

use bytes::Bytes;
use kafka_protocol::records::{Compression, RecordBatchDecoder};
use proptest::prelude::*;

use super::*;
use crate::encode::{encode_batch, BatchSpec, NewRecord};

/// A compacted topic with 1 KiB segments and tombstones kept `delete_retention_ms`.
fn compacted(delete_retention_ms: i64) -> LogConfig {
    LogConfig {
        cleanup_policy: "compact".into(),
        delete_retention_ms,
        ..tiny_config()
    }
}

fn kv(key: &str, value: Option<&str>) -> NewRecord {
    NewRecord {
        key: Some(Bytes::from(key.to_string())),
        value: value.map(|v| Bytes::from(v.to_string())),
        timestamp: 1_000,
    }
}

fn put(log: &mut PartitionLog, records: Vec<NewRecord>, spec: &BatchSpec) {
    log.append(&encode_batch(records, spec).unwrap(), 1)
        .unwrap();
}

/// One record as read back: offset, key, value (None: tombstone), control.
type Read = (i64, Option<String>, Option<String>, bool, i64);

/// Every record of the log, with its producer id, in offset order.
fn read_all(log: &PartitionLog) -> Vec<Read> {
    let mut out = Vec::new();
    let mut next = log.log_start_offset();
    let end = log.log_end_offset();
    while next < end {
        let chunk = log.read(next, 1 << 30, end).unwrap();
        if chunk.is_empty() {
            break;
        }
        let mut bytes = chunk.clone();
        while !bytes.is_empty() {
            let set = RecordBatchDecoder::decode(&mut bytes).unwrap();
            for r in set.records {
                let s =
                    |b: &Option<Bytes>| b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
                out.push((r.offset, s(&r.key), s(&r.value), r.control, r.producer_id));
            }
        }
        next = batch_headers(&chunk).last().unwrap().last_offset() + 1;
    }
    let offsets: Vec<i64> = out.iter().map(|r| r.0).collect();
    assert!(
        offsets.windows(2).all(|w| w[0] < w[1]),
        "offsets not increasing: {offsets:?}"
    );
    out
}

/// The headers of stored batches (a cleaned batch holds fewer records than its offset range,
/// which `validate_batches`, made for produce payloads, refuses).
fn batch_headers(mut bytes: &[u8]) -> Vec<crate::BatchHeader> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let h = crate::BatchHeader::parse(bytes).unwrap();
        bytes = &bytes[h.total_size()..];
        out.push(h);
    }
    out
}

/// One cleaner pass at `now`: plan, execute, commit. Whether it ran.
fn clean(log: &mut PartitionLog, now: i64) -> bool {
    let Some(plan) = log.clean_plan(now) else {
        return false;
    };
    let out = crate::cleaner::execute(plan, &|| false).unwrap();
    log.commit_clean(out).unwrap()
}

#[test]
fn the_latest_value_of_every_key_stays_at_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), compacted(i64::MAX / 2), Recovery::Clean);
    let codecs = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
    let mut latest: BTreeMap<String, (i64, String)> = BTreeMap::new();
    let mut offset = 0;
    for round in 0..40 {
        let records: Vec<NewRecord> = (0..5)
            .map(|i| {
                kv(
                    &format!("k{}", (round * 5 + i) % 12),
                    Some(&format!("v{round}-{i}")),
                )
            })
            .collect();
        for r in &records {
            let k = String::from_utf8_lossy(r.key.as_ref().unwrap()).into_owned();
            let v = String::from_utf8_lossy(r.value.as_ref().unwrap()).into_owned();
            latest.insert(k, (offset, v));
            offset += 1;
        }
        put(&mut log, records, &BatchSpec::compressed(codecs[round % 5]));
    }
    let before = read_all(&log).len();
    assert!(log.segment_count() > 3);
    assert!(clean(&mut log, 2));
    let after = read_all(&log);
    assert!(after.len() < before / 2, "{} of {before} left", after.len());
    // Each key's latest value, at the offset it was written at.
    let mut seen: BTreeMap<String, (i64, String)> = BTreeMap::new();
    for (o, k, v, _, _) in &after {
        seen.insert(k.clone().unwrap(), (*o, v.clone().unwrap()));
    }
    assert_eq!(seen, latest);
    // Nothing left to do; and the same after a restart, clean or after a crash.
    assert!(!clean(&mut log, 3));
    log.close().unwrap();
    drop(log);
    let log = open(dir.path(), compacted(i64::MAX / 2), Recovery::Clean);
    assert_eq!(read_all(&log), after);
    drop(log);
    let mut log = open(dir.path(), compacted(i64::MAX / 2), Recovery::From(0));
    assert_eq!(read_all(&log), after);
    // Appends go on at the same offsets.
    put(&mut log, vec![kv("k0", Some("new"))], &BatchSpec::default());
    assert_eq!(log.log_end_offset(), offset + 1);
}

#[test]
fn tombstones_go_after_delete_retention() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), compacted(1_000), Recovery::Clean);
    for i in 0..30 {
        put(
            &mut log,
            vec![
                kv("gone", Some(&format!("v{i}"))),
                kv("kept", Some(&format!("w{i}"))),
            ],
            &BatchSpec::default(),
        );
    }
    put(&mut log, vec![kv("gone", None)], &BatchSpec::default());
    for i in 0..30 {
        put(
            &mut log,
            vec![kv("other", Some(&format!("x{i}")))],
            &BatchSpec::default(),
        );
    }
    assert!(clean(&mut log, 10_000));
    let tombstone = |rs: &[Read]| {
        rs.iter()
            .any(|r| r.1.as_deref() == Some("gone") && r.2.is_none())
    };
    let after = read_all(&log);
    assert!(
        tombstone(&after),
        "the tombstone went before delete.retention.ms"
    );
    assert!(!after
        .iter()
        .any(|r| r.1.as_deref() == Some("gone") && r.2.is_some()));
    // Not yet: the horizon has not moved.
    assert!(!clean(&mut log, 10_500));
    // delete.retention.ms after the pass that cleaned it: the tombstone goes too.
    assert!(clean(&mut log, 11_001));
    let last = read_all(&log);
    assert!(!tombstone(&last));
    assert!(last
        .iter()
        .any(|r| r.1.as_deref() == Some("kept") && r.2.as_deref() == Some("w29")));
    let status = log.cleaner_status(11_002);
    assert_eq!(status.last_clean_ms, Some(11_001));
    assert!(status.cleaned_up_to > 60);
}

#[test]
fn aborted_records_and_ended_markers_are_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), compacted(1_000), Recovery::Clean);
    let txn = |pid: i64, seq: i32| BatchSpec {
        producer: Some((pid, 0, seq)),
        transactional: true,
        ..BatchSpec::default()
    };
    put(&mut log, vec![kv("a", Some("committed"))], &txn(7, 0));
    put(&mut log, vec![kv("b", Some("aborted"))], &txn(8, 0));
    log.append_marker(7, 0, true, 0, 1).unwrap().unwrap();
    log.append_marker(8, 0, false, 0, 1).unwrap().unwrap();
    // A committed transaction whose record is overwritten later: its marker can go.
    put(&mut log, vec![kv("c", Some("old"))], &txn(7, 1));
    log.append_marker(7, 0, true, 0, 1).unwrap().unwrap();
    for i in 0..40 {
        put(
            &mut log,
            vec![kv("c", Some(&format!("new{i}")))],
            &BatchSpec::default(),
        );
    }
    assert!(clean(&mut log, 10_000));
    let after = read_all(&log);
    assert!(!after.iter().any(|r| r.2.as_deref() == Some("aborted")));
    assert!(!after.iter().any(|r| r.2.as_deref() == Some("old")));
    assert_eq!(
        after.iter().filter(|r| r.3).count(),
        3,
        "markers stay until the horizon"
    );
    assert!(clean(&mut log, 11_001));
    let last = read_all(&log);
    // The ABORT marker and the marker of the emptied transaction went; the one whose record
    // stays is kept.
    let markers: Vec<i64> = last.iter().filter(|r| r.3).map(|r| r.4).collect();
    assert_eq!(markers, vec![7]);
    assert!(last.iter().any(|r| r.2.as_deref() == Some("committed")));
    // read_committed still sees "a" (its marker kept) and the LSO is the log end after a
    // restart that rebuilds producer state from the log.
    drop(log);
    std::fs::remove_file(dir.path().join(crate::producer::SNAPSHOT_FILE)).ok();
    let log = open(dir.path(), compacted(1_000), Recovery::From(0));
    assert_eq!(log.last_stable_offset(), log.log_end_offset());
}

#[test]
fn an_interrupted_pass_is_finished_or_discarded_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let config = compacted(i64::MAX / 2);
    let mut log = open(dir.path(), config.clone(), Recovery::Clean);
    for i in 0..60 {
        put(
            &mut log,
            vec![kv(&format!("k{}", i % 4), Some(&format!("v{i}")))],
            &BatchSpec::default(),
        );
    }
    let original = read_all(&log);
    // Killed after writing the new segments, before the commit point: discarded.
    let out = crate::cleaner::execute(log.clean_plan(5).unwrap(), &|| false).unwrap();
    assert!(dir.path().join(crate::cleaner::CLEANER_DIR).exists());
    drop(out);
    drop(log);
    let log = open(dir.path(), config.clone(), Recovery::From(0));
    assert!(!dir.path().join(crate::cleaner::CLEANER_DIR).exists());
    assert_eq!(read_all(&log), original);
    // Killed right after the commit point: the swap is finished at open.
    let out = crate::cleaner::execute(log.clean_plan(5).unwrap(), &|| false).unwrap();
    crate::cleaner::commit_point(dir.path(), &out.groups).unwrap();
    drop(log);
    let log = open(dir.path(), config.clone(), Recovery::From(0));
    assert!(!dir.path().join(crate::cleaner::CLEANER_DIR).exists());
    let cleaned = read_all(&log);
    assert!(cleaned.len() < original.len());
    let last: BTreeMap<_, _> = original
        .iter()
        .map(|r| (r.1.clone(), r.2.clone()))
        .collect();
    let kept: BTreeMap<_, _> = cleaned.iter().map(|r| (r.1.clone(), r.2.clone())).collect();
    assert_eq!(kept, last);
}

// ---------------------------------------------------------------- proptest

#[derive(Debug, Clone)]
enum Op {
    /// Key, value (None: tombstone), producer (None: plain; Some(p): transactional p).
    Put(u8, Option<u8>, Option<usize>),
    End(usize, bool),
    Clean(i64),
    Restart(bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..6, proptest::option::weighted(0.8, 0u8..50), proptest::option::of(0usize..2))
            .prop_map(|(k, v, p)| Op::Put(k, v, p)),
        2 => (0usize..2, any::<bool>()).prop_map(|(p, c)| Op::End(p, c)),
        2 => (0i64..3_000).prop_map(Op::Clean),
        1 => any::<bool>().prop_map(Op::Restart),
    ]
}

/// A read_committed consumer's view: records below the LSO, aborted ones dropped, markers
/// skipped; each key's last value (a tombstone: absent).
fn committed_view(log: &PartitionLog) -> BTreeMap<String, String> {
    let lso = log.last_stable_offset();
    let mut aborted: VecDeque<_> = {
        let mut a = log.aborted_transactions(i64::MIN, lso);
        a.sort_by_key(|a| a.first_offset);
        a.into()
    };
    let mut skipping = HashSet::new();
    let mut view = BTreeMap::new();
    for (offset, key, value, control, pid) in read_all(log) {
        if offset >= lso {
            break;
        }
        while aborted.front().is_some_and(|a| a.first_offset <= offset) {
            if let Some(a) = aborted.pop_front() {
                skipping.insert(a.producer_id);
            }
        }
        if control {
            // Whatever the marker says, the producer's transaction ended here.
            skipping.remove(&pid);
            continue;
        }
        if pid >= 0 && skipping.contains(&pid) {
            continue;
        }
        match (key, value) {
            (Some(k), Some(v)) => {
                view.insert(k, v);
            }
            (Some(k), None) => {
                view.remove(&k);
            }
            _ => {}
        }
    }
    view
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn cleaning_never_changes_what_read_committed_sees(ops in proptest::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig { segment_bytes: 300, ..compacted(1_000) };
        let mut log = open(dir.path(), config.clone(), Recovery::Clean);
        let mut seqs = [0i32; 2];
        let mut now = 10_000;
        for op in ops {
            match op {
                Op::Put(k, v, p) => {
                    let value = v.map(|v| format!("v{v}"));
                    let record = kv(&format!("k{k}"), value.as_deref());
                    let spec = match p {
                        None => BatchSpec::default(),
                        Some(p) => {
                            seqs[p] += 1;
                            BatchSpec {
                                producer: Some((100 + p as i64, 0, seqs[p] - 1)),
                                transactional: true,
                                ..BatchSpec::default()
                            }
                        }
                    };
                    put(&mut log, vec![record], &spec);
                }
                Op::End(p, commit) => {
                    log.append_marker(100 + p as i64, 0, commit, 0, 1).unwrap();
                }
                Op::Clean(dt) => {
                    let before = committed_view(&log);
                    now += dt;
                    clean(&mut log, now);
                    prop_assert_eq!(committed_view(&log), before);
                }
                Op::Restart(crash) => {
                    let before = committed_view(&log);
                    if !crash {
                        log.close().unwrap();
                    }
                    drop(log);
                    log = open(
                        dir.path(),
                        config.clone(),
                        if crash { Recovery::From(0) } else { Recovery::Clean },
                    );
                    prop_assert_eq!(committed_view(&log), before);
                }
            }
        }
    }
}
