//! Transactions in one partition: markers, the last stable offset, the aborted transactions a
//! read_committed fetch returns, all of it rebuilt after a clean restart or a crash; and a
//! proptest of random produce/commit/abort/restart sequences against a model of what
//! read_committed must return.

use std::collections::{BTreeMap, HashSet, VecDeque};

use proptest::prelude::*;

use super::*;
use crate::encode::{encode_batch, encode_marker, BatchSpec, NewRecord};

/// `n` records of a transactional producer.
fn tbatch(n: usize, pid: i64, epoch: i16, seq: i32) -> Vec<u8> {
    let records =
        (0..n).map(|i| NewRecord::new(None, format!("p{pid}-{seq}-{i}"), 1_000 + i as i64));
    let spec = BatchSpec {
        producer: Some((pid, epoch, seq)),
        transactional: true,
        ..BatchSpec::default()
    };
    encode_batch(records, &spec).unwrap().to_vec()
}

/// What a read_committed Kafka consumer gets from the log, by its own algorithm: batches below
/// the LSO; control batches dropped; a producer's transactional records skipped from the first
/// offset of one of its aborted transactions up to its ABORT marker.
fn read_committed(log: &PartitionLog) -> Vec<i64> {
    let lso = log.last_stable_offset();
    let start = log.log_start_offset();
    // A read stops at a segment's end: read on until the LSO.
    let mut bytes = Vec::new();
    let mut next = start;
    while next < lso {
        let chunk = log.read(next, 1 << 30, lso).unwrap();
        next = headers(&chunk).last().unwrap().last_offset() + 1;
        bytes.extend_from_slice(&chunk);
    }
    let mut aborted = log.aborted_transactions(start, lso);
    aborted.sort_by_key(|a| a.first_offset);
    let mut aborted = VecDeque::from(aborted);
    let mut skipping = HashSet::new();
    let mut out = Vec::new();
    let mut pos = 0;
    for h in headers(&bytes) {
        let size = h.total_size();
        while let Some(a) = aborted.front() {
            if a.first_offset > h.last_offset() {
                break;
            }
            skipping.insert(a.producer_id);
            aborted.pop_front();
        }
        if h.is_control() {
            if crate::batch::control_marker(&bytes[pos..pos + size]) == Some(false) {
                skipping.remove(&h.producer_id);
            }
        } else if !(h.is_transactional() && skipping.contains(&h.producer_id)) {
            out.extend(h.base_offset..=h.last_offset());
        }
        pos += size;
    }
    out
}

#[test]
fn commit_and_abort_markers_move_the_lso_and_list_aborted_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default(), Recovery::Clean);
    log.append(&batch(2, 1_000), 1).unwrap(); // 0..=1 plain
    log.append(&tbatch(3, 7, 0, 0), 1).unwrap(); // 2..=4 txn of 7
    log.append(&tbatch(2, 8, 0, 0), 1).unwrap(); // 5..=6 txn of 8
    assert_eq!(log.last_stable_offset(), 2);
    assert_eq!(log.open_transactions(), vec![(7, 2), (8, 5)]);
    assert_eq!(read_committed(&log), vec![0, 1]);

    assert_eq!(log.append_marker(7, 0, false, 0, 2).unwrap(), Some(7)); // abort 7
    assert_eq!(log.last_stable_offset(), 5);
    let a = log.aborted_transactions(0, 100);
    assert_eq!(
        (
            a.len(),
            a[0].producer_id,
            a[0].first_offset,
            a[0].last_offset
        ),
        (1, 7, 2, 7)
    );
    assert!(log.aborted_transactions(8, 100).is_empty());
    // A second marker for a closed transaction writes nothing.
    assert_eq!(log.append_marker(7, 0, false, 0, 2).unwrap(), None);

    assert_eq!(log.append_marker(8, 0, true, 0, 3).unwrap(), Some(8)); // commit 8
    assert_eq!(log.last_stable_offset(), log.log_end_offset());
    assert_eq!(read_committed(&log), vec![0, 1, 5, 6]);

    // Restarted cleanly and after a crash (producer state rebuilt from the log), the same.
    log.close().unwrap();
    drop(log);
    let log = open(dir.path(), LogConfig::default(), Recovery::Clean);
    assert_eq!(read_committed(&log), vec![0, 1, 5, 6]);
    drop(log);
    std::fs::remove_file(dir.path().join(crate::producer::SNAPSHOT_FILE)).unwrap();
    let log = open(dir.path(), LogConfig::default(), Recovery::From(0));
    assert_eq!(read_committed(&log), vec![0, 1, 5, 6]);
    assert_eq!(log.aborted_transactions(0, 100).len(), 1);
}

#[test]
fn a_marker_with_a_newer_epoch_fences_the_older_producer() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default(), Recovery::Clean);
    log.append(&tbatch(1, 3, 0, 0), 1).unwrap();
    // The coordinator aborts with the bumped epoch 1 (a new producer took the id over).
    assert!(log.append_marker(3, 1, false, 0, 2).unwrap().is_some());
    let late = log.append(&tbatch(1, 3, 0, 1), 3);
    assert!(
        matches!(late, Err(LogError::InvalidProducerEpoch { .. })),
        "{late:?}"
    );
    // The new epoch starts at sequence 0.
    log.append(&tbatch(1, 3, 1, 0), 4).unwrap();
    assert_eq!(log.open_transactions(), vec![(3, 2)]);
    // A marker from an older epoch than the producer's is refused.
    let stale = encode_marker(3, 0, true, 0, 5).unwrap();
    assert!(log.append(&stale, 5).is_err());
    assert!(matches!(
        log.append_marker(3, 0, true, 0, 5),
        Err(LogError::InvalidProducerEpoch { .. })
    ));
}

#[test]
fn retention_forgets_aborted_transactions_with_their_segments() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_bytes: 1,
        ..tiny_config()
    };
    let mut log = open(dir.path(), config, Recovery::Clean);
    log.append(&tbatch(20, 4, 0, 0), 1).unwrap();
    log.append_marker(4, 0, false, 0, 1).unwrap();
    for i in 0..20 {
        log.append(&batch(5, 1_000 + i), 1).unwrap();
    }
    assert_eq!(log.aborted_transactions(0, i64::MAX).len(), 1);
    log.enforce_retention(2).unwrap();
    assert!(log.log_start_offset() > 21);
    assert!(log.aborted_transactions(0, i64::MAX).is_empty());
}

#[derive(Debug, Clone)]
enum Op {
    Plain(usize),
    Txn(usize, usize),
    End(usize, bool),
    Restart { crash: bool },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1usize..4).prop_map(Op::Plain),
        (0usize..3, 1usize..4).prop_map(|(p, n)| Op::Txn(p, n)),
        (0usize..3, any::<bool>()).prop_map(|(p, c)| Op::End(p, c)),
        any::<bool>().prop_map(|crash| Op::Restart { crash }),
    ]
}

/// The model: every data record's offset and who wrote it; open transactions by producer.
#[derive(Default)]
struct Model {
    /// offset -> None (plain) or Some(transaction number).
    records: BTreeMap<i64, Option<usize>>,
    open: BTreeMap<usize, (usize, i64)>,
    committed: HashSet<usize>,
    next_txn: usize,
    log_end: i64,
}

impl Model {
    fn lso(&self) -> i64 {
        self.open
            .values()
            .map(|(_, first)| *first)
            .min()
            .unwrap_or(self.log_end)
    }
    fn read_committed(&self) -> Vec<i64> {
        let lso = self.lso();
        self.records
            .iter()
            .filter(|(o, t)| **o < lso && t.is_none_or(|t| self.committed.contains(&t)))
            .map(|(o, _)| *o)
            .collect()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn read_committed_matches_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), tiny_config(), Recovery::Clean);
        let mut model = Model::default();
        let mut seqs = [0i32; 3];
        for op in ops {
            match op {
                Op::Plain(n) => {
                    log.append(&batch(n, 1_000), 1).unwrap();
                    for i in 0..n as i64 {
                        model.records.insert(model.log_end + i, None);
                    }
                    model.log_end += n as i64;
                }
                Op::Txn(p, n) => {
                    log.append(&tbatch(n, 100 + p as i64, 0, seqs[p]), 1).unwrap();
                    seqs[p] += n as i32;
                    let first = model.log_end;
                    let next_txn = model.next_txn;
                    let (txn, _) = *model.open.entry(p).or_insert((next_txn, first));
                    if txn == next_txn {
                        model.next_txn += 1;
                    }
                    for i in 0..n as i64 {
                        model.records.insert(model.log_end + i, Some(txn));
                    }
                    model.log_end += n as i64;
                }
                Op::End(p, commit) => {
                    let written = log.append_marker(100 + p as i64, 0, commit, 0, 1).unwrap();
                    match model.open.remove(&p) {
                        Some((txn, _)) => {
                            prop_assert_eq!(written, Some(model.log_end));
                            model.log_end += 1;
                            if commit {
                                model.committed.insert(txn);
                            }
                        }
                        None => prop_assert_eq!(written, None),
                    }
                }
                Op::Restart { crash } => {
                    if crash {
                        // Only what reached the file survives; producer state comes from the
                        // snapshot of the last roll plus the batches after it.
                        drop(log);
                        log = open(dir.path(), tiny_config(), Recovery::From(0));
                    } else {
                        log.close().unwrap();
                        drop(log);
                        log = open(dir.path(), tiny_config(), Recovery::Clean);
                    }
                }
            }
            prop_assert_eq!(log.log_end_offset(), model.log_end);
            prop_assert_eq!(log.last_stable_offset(), model.lso());
            prop_assert_eq!(read_committed(&log), model.read_committed());
        }
    }
}
