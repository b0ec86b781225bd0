//! Crate-level tests: crash recovery, producer state, retention, timestamps, durability hooks
//! and invalid records; the log manager's in `manager.rs`. The storage conformance suite lives
//! in `store.rs`.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use kafka_protocol::records::Compression;

use crate::batch::validate_batches;
use crate::config::LogConfig;
use crate::error::LogError;
use crate::manager::{validate_topic_name, LogManager};
use crate::partition::{AppendResult, PartitionLog, Recovery};
use crate::testutil::{batch, batch_full, headers, pbatch, tiny_config};

fn open(dir: &Path, config: LogConfig, recovery: Recovery) -> PartitionLog {
    PartitionLog::open(dir, config, recovery).unwrap()
}

fn range(r: AppendResult) -> (i64, i64) {
    match r {
        AppendResult::Appended {
            base_offset,
            last_offset,
            ..
        } => (base_offset, last_offset),
        AppendResult::Duplicate { .. } => panic!("unexpected duplicate"),
    }
}

/// All batches from the log start, read batch by batch, asserting dense offsets.
fn read_everything(log: &PartitionLog) -> Vec<u8> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let bytes = log.read(offset, 1 << 16, i64::MAX).unwrap();
        for h in headers(&bytes) {
            assert_eq!(h.base_offset, offset, "gap or overlap");
            offset = h.last_offset() + 1;
        }
        out.extend_from_slice(&bytes);
    }
    out
}

fn segment_logs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().len()
}

// ---------------------------------------------------------------- recovery

fn crash_recovery_truncated_tail(config: LogConfig) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config.clone(), Recovery::Clean);
    for i in 0..30 {
        log.append(&batch(3, i), 1).unwrap();
    }
    let end = log.log_end_offset();
    let good = read_everything(&log);
    drop(log); // crash: no close, index entries possibly unflushed

    // Tear the last batch in half.
    let last = segment_logs(dir.path()).pop().unwrap();
    let len = file_len(&last);
    OpenOptions::new()
        .write(true)
        .open(&last)
        .unwrap()
        .set_len(len - 20)
        .unwrap();

    let mut log = open(dir.path(), config.clone(), Recovery::From(0));
    assert_eq!(log.log_end_offset(), end - 3);
    let after = read_everything(&log);
    assert_eq!(after[..], good[..after.len()]);
    assert_eq!(after.len(), good.len() - batch(3, 0).len());
    // Every offset is readable via the rebuilt index.
    for o in 0..log.log_end_offset() {
        let h = headers(&log.read(o, 1, i64::MAX).unwrap())[0];
        assert!(h.base_offset <= o && o <= h.last_offset());
    }
    assert_eq!(
        range(log.append(&batch(2, 0), 1).unwrap()),
        (end - 3, end - 2)
    );
    read_everything(&log);
}

#[test]
fn crash_recovery_truncates_torn_batch_default_config() {
    crash_recovery_truncated_tail(LogConfig::default());
}

#[test]
fn crash_recovery_truncates_torn_batch_tiny_segments() {
    crash_recovery_truncated_tail(tiny_config());
}

#[test]
fn crash_recovery_drops_trailing_garbage() {
    for config in [LogConfig::default(), tiny_config()] {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), config.clone(), Recovery::Clean);
        for i in 0..10 {
            log.append(&batch(2, i), 1).unwrap();
        }
        let good = read_everything(&log);
        drop(log);
        let last = segment_logs(dir.path()).pop().unwrap();
        let mut f = OpenOptions::new().append(true).open(&last).unwrap();
        // A plausible-looking header followed by junk, then more junk.
        let mut junk = batch(2, 0);
        junk.truncate(40);
        junk.extend_from_slice(&[0xAB; 100]);
        f.write_all(&junk).unwrap();
        drop(f);
        let log = open(dir.path(), config, Recovery::From(0));
        assert_eq!(log.log_end_offset(), 20);
        assert_eq!(read_everything(&log), good);
    }
}

#[test]
fn crash_recovery_from_checkpoint_in_the_middle() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_config();
    let mut log = open(dir.path(), config.clone(), Recovery::Clean);
    for i in 0..60 {
        log.append(&batch(2, i), 1).unwrap();
    }
    assert!(log.segment_count() > 5);
    let good = read_everything(&log);
    drop(log);
    let logs = segment_logs(dir.path());
    // Corrupt a CRC-covered byte in a segment above the checkpoint: that segment is truncated
    // there and everything after it dropped.
    let victim = &logs[logs.len() - 3];
    let victim_base: i64 = victim
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let mut bytes = std::fs::read(victim).unwrap();
    let first = headers(&bytes[..])[0].total_size();
    bytes[first + 70] ^= 0x55; // inside the second batch's records
    std::fs::write(victim, &bytes).unwrap();

    let checkpoint = victim_base - 4;
    let log = open(dir.path(), config.clone(), Recovery::From(checkpoint));
    // Only the first batch of the victim survives.
    assert_eq!(log.log_end_offset(), victim_base + 2);
    let after = read_everything(&log);
    assert_eq!(after[..], good[..after.len()]);
    assert_eq!(segment_logs(dir.path()).len(), logs.len() - 2);
    // And a clean reopen after close agrees.
    let mut log = log;
    log.close().unwrap();
    drop(log);
    let log = open(dir.path(), config, Recovery::Clean);
    assert_eq!(log.log_end_offset(), victim_base + 2);
    assert_eq!(read_everything(&log), after);
}

#[test]
fn clean_open_rebuilds_doubtful_index() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_config();
    let mut log = open(dir.path(), config.clone(), Recovery::Clean);
    for i in 0..40 {
        log.append(&batch(2, i), 1).unwrap();
    }
    log.close().unwrap();
    let good = read_everything(&log);
    drop(log);
    let logs = segment_logs(dir.path());
    // Garbage index for a middle segment and a missing time index for another.
    std::fs::write(logs[2].with_extension("index"), [1u8, 2, 3]).unwrap();
    std::fs::remove_file(logs[3].with_extension("timeindex")).unwrap();
    // Index pointing past the file.
    std::fs::write(logs[4].with_extension("index"), [0, 0, 0, 1, 0xff, 0, 0, 0]).unwrap();
    let log = open(dir.path(), config, Recovery::Clean);
    assert_eq!(read_everything(&log), good);
    // batch i holds offsets 2i, 2i+1 with timestamps i, i+1.
    assert_eq!(log.offset_for_timestamp(20).unwrap(), Some((39, 20)));
}

#[test]
fn open_ignores_and_cleans_stray_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("00000000000000000000.log.deleted"), b"x").unwrap();
    std::fs::write(dir.path().join("producer.snapshot.tmp"), b"x").unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();
    std::fs::write(dir.path().join("00000000000000000042.index"), b"x").unwrap();
    let log = open(dir.path(), LogConfig::default(), Recovery::From(0));
    assert!(!dir.path().join("00000000000000000042.index").exists());
    assert_eq!(log.log_end_offset(), 0);
    assert!(!dir.path().join("00000000000000000000.log.deleted").exists());
    assert!(!dir.path().join("producer.snapshot.tmp").exists());
    assert!(dir.path().join("notes.txt").exists());
}

#[test]
fn rolls_by_size_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = tiny_config();
    config.segment_ms = 1_000;
    let mut log = open(dir.path(), config, Recovery::Clean);
    log.append(&batch(1, 0), 10_000).unwrap();
    log.append(&batch(1, 0), 10_500).unwrap();
    assert_eq!(log.segment_count(), 1);
    log.append(&batch(1, 0), 11_001).unwrap();
    assert_eq!(log.segment_count(), 2);
    // Rolled data is flushed by the roll.
    assert_eq!(log.flushed_offset(), 2);
    let big = batch_full(&[1], 2_000, None, Compression::None);
    log.append(&big, 11_002).unwrap();
    assert_eq!(log.segment_count(), 3);
    // An oversize batch still goes into an empty active segment.
    log.append(&big, 11_003).unwrap();
    assert_eq!(log.segment_count(), 4);
    assert_eq!(
        read_everything(&log).len(),
        3 * batch(1, 0).len() + 2 * big.len()
    );
}

// ---------------------------------------------------------------- durability hooks

#[test]
fn sync_target_and_mark_flushed() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default(), Recovery::Clean);
    assert!(log.sync_target().unwrap().is_none());
    log.append(&batch(3, 0), 1).unwrap();
    let (file, upto) = log.sync_target().unwrap().unwrap();
    assert_eq!(upto, 3);
    file.sync_data().unwrap();
    log.mark_flushed(upto);
    assert_eq!(log.flushed_offset(), 3);
    assert!(log.sync_target().unwrap().is_none());
    log.mark_flushed(1);
    assert_eq!(log.flushed_offset(), 3);
    log.append(&batch(1, 0), 1).unwrap();
    assert_eq!(log.sync_target().unwrap().unwrap().1, 4);
}

// ---------------------------------------------------------------- producers

#[test]
fn producer_duplicates_and_sequence_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default(), Recovery::Clean);
    let pid = 7;
    assert_eq!(
        range(log.append(&pbatch(3, (pid, 0, 0)), 1).unwrap()),
        (0, 2)
    );
    assert_eq!(
        range(log.append(&pbatch(2, (pid, 0, 3)), 1).unwrap()),
        (3, 4)
    );
    // Retry of the first batch: original offsets, nothing written.
    assert_eq!(
        log.append(&pbatch(3, (pid, 0, 0)), 1).unwrap(),
        AppendResult::Duplicate {
            base_offset: 0,
            last_offset: 2
        }
    );
    assert_eq!(log.log_end_offset(), 5);
    // Gap.
    assert!(matches!(
        log.append(&pbatch(1, (pid, 0, 9)), 1),
        Err(LogError::OutOfOrderSequence {
            expected: 5,
            got: 9,
            ..
        })
    ));
    // Fenced epoch.
    assert!(matches!(
        log.append(&pbatch(1, (pid, -1, 5)), 1),
        Err(LogError::InvalidProducerEpoch { .. })
    ));
    // Epoch bump must restart at 0.
    assert!(matches!(
        log.append(&pbatch(1, (pid, 1, 5)), 1),
        Err(LogError::OutOfOrderSequence { expected: 0, .. })
    ));
    assert_eq!(
        range(log.append(&pbatch(1, (pid, 1, 0)), 1).unwrap()),
        (5, 5)
    );
    // Old epoch now fenced.
    assert!(matches!(
        log.append(&pbatch(1, (pid, 0, 5)), 1),
        Err(LogError::InvalidProducerEpoch {
            current: 1,
            got: 0,
            ..
        })
    ));
    // Unknown producer: any sequence accepted.
    assert_eq!(
        range(log.append(&pbatch(1, (99, 3, 1234)), 1).unwrap()),
        (6, 6)
    );
    // Non-idempotent batches skip checks.
    log.append(&batch(1, 0), 1).unwrap();
    log.append(&batch(1, 0), 1).unwrap();
    assert_eq!(log.producer_count(), 2);
    assert_eq!(log.log_end_offset(), 9);
}

#[test]
fn producer_only_last_five_batches_are_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default(), Recovery::Clean);
    for i in 0..7 {
        log.append(&pbatch(1, (1, 0, i)), 1).unwrap();
    }
    for i in 2..7 {
        assert!(matches!(
            log.append(&pbatch(1, (1, 0, i)), 1).unwrap(),
            AppendResult::Duplicate { base_offset, .. } if base_offset == i64::from(i)
        ));
    }
    assert!(matches!(
        log.append(&pbatch(1, (1, 0, 1)), 1),
        Err(LogError::OutOfOrderSequence { .. })
    ));
}

#[test]
fn producer_sequence_wraps_around() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default(), Recovery::Clean);
    // Unknown producer starting near the top: records MAX-1, MAX, 0.
    log.append(&pbatch(3, (5, 0, i32::MAX - 1)), 1).unwrap();
    assert_eq!(range(log.append(&pbatch(2, (5, 0, 1)), 1).unwrap()), (3, 4));
    assert!(matches!(
        log.append(&pbatch(3, (5, 0, i32::MAX - 1)), 1).unwrap(),
        AppendResult::Duplicate {
            base_offset: 0,
            last_offset: 2
        }
    ));
}

#[test]
fn multi_batch_payloads_are_checked_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default(), Recovery::Clean);
    let mut payload = pbatch(2, (3, 0, 0));
    payload.extend_from_slice(&pbatch(2, (3, 0, 2)));
    assert_eq!(range(log.append(&payload, 1).unwrap()), (0, 3));
    // Duplicate inside a multi-batch payload is refused, nothing stored.
    let mut payload = pbatch(2, (3, 0, 2));
    payload.extend_from_slice(&pbatch(2, (3, 0, 4)));
    assert!(matches!(
        log.append(&payload, 1),
        Err(LogError::InvalidRecord(_))
    ));
    // Out of order second batch: whole payload refused.
    let mut payload = pbatch(2, (3, 0, 4));
    payload.extend_from_slice(&pbatch(2, (3, 0, 9)));
    assert!(log.append(&payload, 1).is_err());
    assert_eq!(log.log_end_offset(), 4);
    assert_eq!(range(log.append(&pbatch(1, (3, 0, 4)), 1).unwrap()), (4, 4));
}

fn producer_state_survives(config: LogConfig, crash: bool, corrupt_snapshot: bool) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config.clone(), Recovery::Clean);
    for i in 0..20 {
        log.append(&pbatch(2, (1, 0, i * 2)), 1).unwrap();
        log.append(&pbatch(1, (2, 4, i)), 1).unwrap();
    }
    let end = log.log_end_offset();
    let recovery = if crash {
        drop(log);
        Recovery::From(0)
    } else {
        log.close().unwrap();
        drop(log);
        Recovery::Clean
    };
    if corrupt_snapshot {
        let p = dir.path().join("producer.snapshot");
        if p.exists() {
            let mut b = std::fs::read(&p).unwrap();
            let n = b.len();
            b[n - 3] ^= 1;
            std::fs::write(&p, b).unwrap();
        }
    }
    let mut log = open(dir.path(), config, recovery);
    assert_eq!(log.producer_count(), 2);
    assert_eq!(log.log_end_offset(), end);
    // Last batch of producer 1 (seq 38..39) is a duplicate with its original offsets.
    assert!(matches!(
        log.append(&pbatch(2, (1, 0, 38)), 1).unwrap(),
        AppendResult::Duplicate { base_offset, last_offset }
            if base_offset == end - 3 && last_offset == end - 2
    ));
    assert!(matches!(
        log.append(&pbatch(1, (2, 4, 30)), 1),
        Err(LogError::OutOfOrderSequence { expected: 20, .. })
    ));
    assert!(matches!(
        log.append(&pbatch(1, (2, 3, 20)), 1),
        Err(LogError::InvalidProducerEpoch { .. })
    ));
    assert_eq!(
        range(log.append(&pbatch(1, (2, 4, 20)), 1).unwrap()),
        (end, end)
    );
}

#[test]
fn producer_state_survives_clean_restart() {
    producer_state_survives(LogConfig::default(), false, false);
    producer_state_survives(tiny_config(), false, false);
}

#[test]
fn producer_state_survives_crash() {
    // Default: no snapshot at all, full header scan. Tiny: snapshot from the last roll plus scan.
    producer_state_survives(LogConfig::default(), true, false);
    producer_state_survives(tiny_config(), true, false);
}

#[test]
fn producer_state_survives_corrupt_snapshot() {
    producer_state_survives(LogConfig::default(), false, true);
    producer_state_survives(tiny_config(), true, true);
}

#[test]
fn control_batches_from_clients_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default(), Recovery::Clean);
    let marker = crate::encode::encode_marker(1, 0, true, 0, 1_000).unwrap();
    assert!(matches!(
        log.append(&marker, 1),
        Err(LogError::InvalidRecord(_))
    ));
    // Transactional without a producer id.
    let mut b = batch(1, 1_000);
    let attrs = i16::from_be_bytes([b[21], b[22]]) | 0x10;
    b[21..23].copy_from_slice(&attrs.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    assert!(matches!(log.append(&b, 1), Err(LogError::InvalidRecord(_))));
    assert_eq!(log.log_end_offset(), 0);
}

// ---------------------------------------------------------------- timestamps

#[test]
fn log_append_time_rewrites_timestamps_with_valid_crc() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        message_timestamp_type: "LogAppendTime".into(),
        ..LogConfig::default()
    };
    let mut log = open(dir.path(), config, Recovery::Clean);
    let r = log
        .append(&batch_full(&[5, 6, 7], 8, None, Compression::Gzip), 42_000)
        .unwrap();
    assert_eq!(
        r,
        AppendResult::Appended {
            base_offset: 0,
            last_offset: 2,
            log_append_time: 42_000
        }
    );
    log.append(&batch(2, 1), 43_000).unwrap();
    let bytes = log.read(0, 1 << 20, i64::MAX).unwrap();
    let hs = validate_batches(&bytes).unwrap();
    assert_eq!(hs.len(), 2);
    assert!(hs[0].is_log_append_time());
    assert_eq!(hs[0].max_timestamp, 42_000);
    assert_eq!(hs[1].max_timestamp, 43_000);
    assert_eq!(log.offset_for_timestamp(10).unwrap(), Some((0, 42_000)));
    assert_eq!(log.offset_for_timestamp(42_001).unwrap(), Some((3, 43_000)));
    assert_eq!(log.max_timestamp().unwrap(), Some((43_000, 3)));
    // Records decode fine after the rewrite.
    let mut b = bytes.clone();
    kafka_protocol::records::RecordBatchDecoder::decode_all(&mut b).unwrap();
}

#[test]
fn max_timestamp_points_at_the_record() {
    for config in [LogConfig::default(), tiny_config()] {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), config.clone(), Recovery::Clean);
        assert_eq!(log.max_timestamp().unwrap(), None);
        log.append(&batch_full(&[10, 50, 20], 8, None, Compression::None), 1)
            .unwrap();
        log.append(&batch_full(&[30, 90, 40], 8, None, Compression::Zstd), 1)
            .unwrap();
        log.append(&batch_full(&[60, 70], 8, None, Compression::Lz4), 1)
            .unwrap();
        assert_eq!(log.max_timestamp().unwrap(), Some((90, 4)));
        log.close().unwrap();
        drop(log);
        let log = open(dir.path(), config, Recovery::Clean);
        assert_eq!(log.max_timestamp().unwrap(), Some((90, 4)));
        assert_eq!(log.offset_for_timestamp(55).unwrap(), Some((4, 90)));
        assert_eq!(log.offset_for_timestamp(21).unwrap(), Some((1, 50)));
    }
}

// ---------------------------------------------------------------- retention

#[test]
fn retention_by_time_deletes_whole_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = tiny_config();
    config.retention_ms = 1_000;
    let mut log = open(dir.path(), config.clone(), Recovery::Clean);
    // Old data then new data; each batch is large enough to get its own segment.
    for i in 0..5 {
        log.append(&batch_full(&[i], 600, None, Compression::None), 1)
            .unwrap();
    }
    for i in 0..3 {
        log.append(&batch_full(&[10_000 + i], 600, None, Compression::None), 1)
            .unwrap();
    }
    assert_eq!(log.segment_count(), 8);
    assert_eq!(log.enforce_retention(10_500).unwrap(), 5);
    assert_eq!(log.log_start_offset(), 5);
    assert_eq!(log.segment_count(), 3);
    assert!(matches!(
        log.read(4, 100, i64::MAX),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_eq!(
        headers(&log.read(5, 1, i64::MAX).unwrap())[0].base_offset,
        5
    );
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((5, 10_000)));
    // Everything expired, including the active segment: roll, then delete.
    assert_eq!(log.enforce_retention(100_000).unwrap(), 3);
    assert_eq!(log.segment_count(), 1);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (8, 8));
    assert!(log.read(8, 100, i64::MAX).unwrap().is_empty());
    assert_eq!(range(log.append(&batch(1, 0), 1).unwrap()), (8, 8));
    assert!(std::fs::read_dir(dir.path()).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".deleted")));
    log.close().unwrap();
    drop(log);
    let log = open(dir.path(), config, Recovery::From(0));
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (8, 9));
}

#[test]
fn retention_by_size_keeps_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = tiny_config();
    config.retention_ms = -1;
    let b = batch_full(&[1], 600, None, Compression::None);
    config.retention_bytes = 3 * b.len() as i64;
    let mut log = open(dir.path(), config, Recovery::Clean);
    for _ in 0..10 {
        log.append(&b, 1).unwrap();
    }
    assert_eq!(log.segment_count(), 10);
    assert_eq!(log.enforce_retention(i64::MAX).unwrap(), 7);
    assert_eq!(log.segment_count(), 3);
    assert_eq!(log.size_bytes(), 3 * b.len() as u64);
    assert_eq!(log.log_start_offset(), 7);
    // Never the active segment for size.
    let mut c = log.config().clone();
    c.retention_bytes = 0;
    log.set_config(c);
    assert_eq!(log.enforce_retention(i64::MAX).unwrap(), 2);
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.log_start_offset(), 9);
}

// ---------------------------------------------------------------- config

#[test]
fn config_defaults_and_overrides() {
    let d = LogConfig::default();
    assert_eq!(d.get("segment.bytes").unwrap(), "1073741824");
    assert_eq!(d.get("max.message.bytes").unwrap(), "1048588");
    assert_eq!(d.get("retention.bytes").unwrap(), "-1");
    assert_eq!(d.get("nope"), None);
    assert_eq!(d.entries().len(), crate::config::TOPIC_CONFIGS.len());
    // Every documented topic config has a default that its own validation accepts.
    for (k, _, default, _) in crate::config::TOPIC_CONFIGS {
        let o = BTreeMap::from([(k.to_string(), default.to_string())]);
        let c = d
            .with_overrides(&o)
            .unwrap_or_else(|e| panic!("{k}={default}: {e}"));
        assert_eq!(c.get(k).unwrap(), *default, "{k}");
    }
    let mut o = BTreeMap::new();
    o.insert("retention.ms".to_string(), "-1".to_string());
    o.insert("cleanup.policy".to_string(), "delete, compact".to_string());
    o.insert(
        "message.timestamp.type".to_string(),
        "LogAppendTime".to_string(),
    );
    o.insert("delete.retention.ms".to_string(), "100".to_string());
    o.insert("min.cleanable.dirty.ratio".to_string(), "0.25".to_string());
    o.insert("compression.type".to_string(), "zstd".to_string());
    let c = d.with_overrides(&o).unwrap();
    assert_eq!(c.retention_ms, -1);
    assert_eq!(c.delete_retention_ms, 100);
    assert!((c.dirty_ratio() - 0.25).abs() < 1e-9);
    assert_eq!(c.get("compression.type").unwrap(), "zstd");
    assert!(crate::config::not_acted_on().any(|k| k == "compression.type"));
    assert!(!crate::config::not_acted_on().any(|k| k == "delete.retention.ms"));
    assert!(c.compact() && c.delete());
    assert_eq!(c.cleanup_policy, "compact,delete");
    assert!(c.log_append_time());
    for (k, v) in [
        ("segment.bytes", "13"),
        ("segment.bytes", "abc"),
        ("retention.ms", "-2"),
        ("cleanup.policy", "keep"),
        ("message.timestamp.type", "Now"),
        ("unknown.key", "1"),
        ("index.interval.bytes", "-1"),
        ("min.cleanable.dirty.ratio", "1.5"),
        ("min.cleanable.dirty.ratio", "NaN"),
        ("delete.retention.ms", "-1"),
        ("preallocate", "yes"),
        ("compression.type", "brotli"),
    ] {
        let mut o = BTreeMap::new();
        o.insert(k.to_string(), v.to_string());
        match d.with_overrides(&o) {
            Err(LogError::InvalidConfig { key, .. }) => assert_eq!(key, k),
            other => panic!("{k}={v}: {other:?}"),
        }
    }
}

mod compaction;
mod manager;
mod transactions;

/// Issue 12, item 3 at the storage level: hostile records are refused by `append` and
/// nothing is stored; the log stays readable and writable.
#[test]
fn invalid_records_store_nothing() {
    use crate::testutil::{forge, gzip, records_of, varint};
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default(), Recovery::Clean);
    log.append(&batch(2, 0), 1).unwrap();
    let mut huge_len = varint(0x3fff_ffff);
    huge_len.extend_from_slice(&[0; 8]);
    let two = records_of(&batch(2, 0));
    let gz = gzip(&two);
    let hostile = [
        forge(&[0x55; 64], 1, 3),
        forge(&gz[..gz.len() - 9], 1, 2),
        forge(&huge_len, 0, 1),
        forge(&[], 0, 3),
        forge(&two, 0, 3),
    ];
    for b in &hostile {
        assert!(log.append(b, 1).is_err());
    }
    assert_eq!(log.log_end_offset(), 2);
    log.append(&batch(1, 0), 1).unwrap();
    assert_eq!(headers(&read_everything(&log)).len(), 2);
}

/// A producer's wrong max timestamp is replaced by the records' (the time index trusts it), and
/// LogAppendTime set by a producer is refused, as in Kafka.
#[test]
fn max_timestamp_is_the_records_and_producers_cannot_claim_log_append_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default(), Recovery::Clean);
    let mut b = batch_full(&[10, 50, 20], 8, None, Compression::None);
    b[35..43].copy_from_slice(&5i64.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    log.append(&b, 1).unwrap();
    let stored = headers(&log.read(0, 1 << 20, i64::MAX).unwrap())[0];
    assert_eq!(stored.max_timestamp, 50);
    assert_eq!(log.offset_for_timestamp(40).unwrap(), Some((1, 50)));
    let mut lat = batch(1, 0);
    lat[22] |= 0x08;
    let crc = crc32c::crc32c(&lat[21..]);
    lat[17..21].copy_from_slice(&crc.to_be_bytes());
    assert!(matches!(
        log.append(&lat, 1),
        Err(LogError::InvalidTimestamp(_))
    ));
    assert_eq!(log.log_end_offset(), 3);
}

#[test]
fn slices_skip_an_oversized_first_batch_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), tiny_config(), Recovery::Clean);
    let big = batch_full(&[1; 10], 100, None, Compression::None);
    log.append(&big, 1).unwrap();
    log.append(&batch(1, 0), 1).unwrap();
    assert!(log.read_slice(0, 100, i64::MAX, false).unwrap().is_none());
    let s = log.read_slice(0, 100, i64::MAX, true).unwrap().unwrap();
    assert_eq!(s.len() as usize, big.len());
    // Exactly the bytes `read` gives, for every offset and size.
    for offset in 0..log.log_end_offset() {
        for max in [1, 200, 1_000, 5_000] {
            let s = log
                .read_slice(offset, max, i64::MAX, true)
                .unwrap()
                .unwrap();
            assert_eq!(
                s.to_bytes().unwrap(),
                log.read(offset, max, i64::MAX).unwrap()
            );
        }
    }
}
