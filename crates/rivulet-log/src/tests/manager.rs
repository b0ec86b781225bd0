//! The log manager's tests: topics created, deleted and recreated, overrides, clean markers,
//! orphans, producer ids, partition limits checked before any work, interrupted creations.

use super::*;

fn overrides(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn topic_names_validated() {
    for ok in ["a", "my.topic_1-x", &"x".repeat(249)] {
        validate_topic_name(ok).unwrap();
    }
    for bad in ["", ".", "..", "a/b", "é", "a b", &"x".repeat(250)] {
        assert!(matches!(
            validate_topic_name(bad),
            Err(LogError::InvalidTopic { .. })
        ));
    }
}

#[test]
fn manager_create_delete_recreate() {
    let dir = tempfile::tempdir().unwrap();
    let m = LogManager::open(dir.path(), LogConfig::default()).unwrap();
    assert!(matches!(
        m.create_topic("bad/name", 1, BTreeMap::new(), false),
        Err(LogError::InvalidTopic { .. })
    ));
    assert!(matches!(
        m.create_topic("t", 0, BTreeMap::new(), false),
        Err(LogError::InvalidPartitions(_))
    ));
    assert!(matches!(
        m.create_topic("t", 1, overrides(&[("segment.bytes", "1")]), false),
        Err(LogError::InvalidConfig { .. })
    ));
    m.create_topic("t", 2, BTreeMap::new(), true).unwrap();
    assert!(m.topic("t").is_none());
    assert!(!dir.path().join("t-0").exists());

    let t = m.create_topic("t", 2, BTreeMap::new(), false).unwrap();
    assert!(matches!(
        m.create_topic("t", 1, BTreeMap::new(), false),
        Err(LogError::TopicAlreadyExists(_))
    ));
    assert_eq!(t.partition_count(), 2);
    assert!(t.partition(2).is_none() && t.partition(-1).is_none());
    t.partition(1)
        .unwrap()
        .log
        .lock()
        .append(&batch(3, 0), 1)
        .unwrap();
    assert_eq!(m.topic_by_id(t.id).unwrap().name, "t");
    let id = m.delete_topic("t").unwrap();
    assert_eq!(id, t.id);
    assert!(m.topic("t").is_none());
    assert!(!dir.path().join("t-1").exists());
    assert!(matches!(
        m.delete_topic("t"),
        Err(LogError::UnknownTopicOrPartition(_))
    ));
    let t2 = m.create_topic("t", 1, BTreeMap::new(), false).unwrap();
    assert_ne!(t2.id, t.id);
    assert_eq!(t2.partition(0).unwrap().log.lock().log_end_offset(), 0);

    // Grow only.
    assert!(matches!(
        m.create_partitions("t", 1, false),
        Err(LogError::InvalidPartitions(_))
    ));
    m.create_partitions("t", 3, true).unwrap();
    assert_eq!(t2.partition_count(), 1);
    m.create_partitions("t", 3, false).unwrap();
    assert_eq!(t2.partition_count(), 3);
    assert_eq!(m.partitions().len(), 3);
    m.shutdown().unwrap();
    drop(m);
    let m = LogManager::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(m.topic("t").unwrap().partition_count(), 3);
    assert_eq!(m.topic("t").unwrap().id, t2.id);
}

#[test]
fn manager_overrides_persist_and_apply() {
    let dir = tempfile::tempdir().unwrap();
    let m = LogManager::open(dir.path(), LogConfig::default()).unwrap();
    m.create_topic("a", 1, overrides(&[("retention.ms", "1000")]), false)
        .unwrap();
    assert_eq!(m.topic_config("a").unwrap().retention_ms, 1000);
    assert!(matches!(
        m.set_topic_overrides("a", overrides(&[("retention.ms", "x")]), false),
        Err(LogError::InvalidConfig { .. })
    ));
    m.set_topic_overrides("a", overrides(&[("segment.bytes", "2048")]), true)
        .unwrap();
    assert_eq!(m.topic_config("a").unwrap().segment_bytes, 1 << 30);
    m.set_topic_overrides("a", overrides(&[("segment.bytes", "2048")]), false)
        .unwrap();
    let cfg = m.topic_config("a").unwrap();
    assert_eq!((cfg.segment_bytes, cfg.retention_ms), (2048, 604_800_000));
    let p = m.topic("a").unwrap().partition(0).unwrap();
    assert_eq!(p.log.lock().config().segment_bytes, 2048);
    drop(p);
    drop(m); // crash
    let m = LogManager::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(m.topic_config("a").unwrap().segment_bytes, 2048);
    let p = m.topic("a").unwrap().partition(0).unwrap();
    assert_eq!(p.log.lock().config().segment_bytes, 2048);
    assert!(matches!(
        m.topic_config("zz"),
        Err(LogError::UnknownTopicOrPartition(_))
    ));
}

#[test]
fn manager_clean_marker_and_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let m = LogManager::open(dir.path(), LogConfig::default()).unwrap();
    let cluster = m.cluster_id().to_string();
    assert_eq!(cluster.len(), 22);
    let t = m.create_topic("c", 2, BTreeMap::new(), false).unwrap();
    let p = t.partition(0).unwrap();
    p.log.lock().append(&batch(4, 0), 1).unwrap();
    m.write_recovery_checkpoint().unwrap();
    let text =
        std::fs::read_to_string(dir.path().join("recovery-point-offset-checkpoint")).unwrap();
    assert_eq!(text, "0\n2\nc 0 0\nc 1 0\n");
    let (f, upto) = p.log.lock().sync_target().unwrap().unwrap();
    f.sync_data().unwrap();
    p.log.lock().mark_flushed(upto);
    m.write_recovery_checkpoint().unwrap();
    let text =
        std::fs::read_to_string(dir.path().join("recovery-point-offset-checkpoint")).unwrap();
    assert_eq!(text, "0\n2\nc 0 4\nc 1 0\n");
    assert!(!dir.path().join(".clean-shutdown").exists());
    m.shutdown().unwrap();
    assert!(dir.path().join(".clean-shutdown").exists());
    drop((m, t, p));

    let m = LogManager::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(m.cluster_id(), cluster);
    assert!(!dir.path().join(".clean-shutdown").exists());
    let p = m.topic("c").unwrap().partition(0).unwrap();
    assert_eq!(p.log.lock().log_end_offset(), 4);
    p.log.lock().append(&batch(1, 0), 1).unwrap();
    drop(p);
    drop(m); // crash: recovered from the checkpoint
    let m = LogManager::open(dir.path(), LogConfig::default()).unwrap();
    let p = m.topic("c").unwrap().partition(0).unwrap();
    assert_eq!(p.log.lock().log_end_offset(), 5);
    assert_eq!(m.enforce_retention(0).unwrap(), 0);
}

#[test]
fn manager_removes_orphan_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let m = LogManager::open(dir.path(), LogConfig::default()).unwrap();
    m.create_topic("keep", 1, BTreeMap::new(), false).unwrap();
    m.shutdown().unwrap();
    drop(m);
    // An interrupted delete (topic file gone) and a partition beyond the count.
    std::fs::create_dir(dir.path().join("gone-0")).unwrap();
    std::fs::create_dir(dir.path().join("keep-1")).unwrap();
    std::fs::create_dir(dir.path().join("keep-0.abc-delete")).unwrap();
    std::fs::create_dir(dir.path().join("unrelated")).unwrap();
    let m = LogManager::open(dir.path(), LogConfig::default()).unwrap();
    assert!(!dir.path().join("gone-0").exists());
    assert!(!dir.path().join("keep-1").exists());
    assert!(!dir.path().join("keep-0.abc-delete").exists());
    assert!(dir.path().join("keep-0").exists());
    assert!(dir.path().join("unrelated").exists());
    assert_eq!(m.topics().len(), 1);
}

#[test]
fn producer_ids_never_repeat() {
    let dir = tempfile::tempdir().unwrap();
    let mut seen = std::collections::HashSet::new();
    for round in 0..4 {
        let m = LogManager::open(dir.path(), LogConfig::default()).unwrap();
        for _ in 0..1500 {
            assert!(seen.insert(m.allocate_producer_id().unwrap()));
        }
        if round % 2 == 0 {
            m.shutdown().unwrap();
        } // else crash
    }
    let m = std::sync::Arc::new(LogManager::open(dir.path(), LogConfig::default()).unwrap());
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let m = std::sync::Arc::clone(&m);
            std::thread::spawn(move || {
                (0..500)
                    .map(|_| m.allocate_producer_id().unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for h in handles {
        for id in h.join().unwrap() {
            assert!(seen.insert(id));
        }
    }
}

/// Throughput smoke check: `cargo test -p rivulet-log --release -- --ignored --nocapture`.
#[test]
#[ignore = "benchmark"]
fn bench_append_and_read_throughput() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default(), Recovery::Clean);
    // ~1 MB batches of 100-byte records.
    let ts: Vec<i64> = (0..9_000).map(|i| 1_000 + i).collect();
    let b = batch_full(&ts, 100, None, Compression::None);
    let per_batch = ts.len();
    let rounds = 300;
    let start = std::time::Instant::now();
    for _ in 0..rounds {
        log.append(&b, 1).unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let records = (rounds * per_batch) as f64;
    println!(
        "append: {:.1} M records/s, {:.0} MB/s ({} bytes/batch)",
        records / secs / 1e6,
        (rounds * b.len()) as f64 / secs / 1e6,
        b.len()
    );
    let start = std::time::Instant::now();
    let mut offset = 0;
    let mut n = 0usize;
    while offset < log.log_end_offset() {
        let bytes = log.read(offset, 1 << 20, i64::MAX).unwrap();
        let mut pos = 0;
        while pos < bytes.len() {
            let h = crate::batch::BatchHeader::parse(&bytes[pos..]).unwrap();
            offset = h.last_offset() + 1;
            n += h.record_count as usize;
            pos += h.total_size();
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!("read: {:.1} M records/s", n as f64 / secs / 1e6);
}

/// Regression: a 249-character topic (the longest Kafka allows) must be creatable, writable
/// across its metadata file's atomic rewrite, and deletable; temp and delete-marker file names
/// used to exceed the 255-byte file name limit.
#[test]
fn longest_legal_topic_name_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let name = "t".repeat(249);
    validate_topic_name(&name).unwrap();
    let mgr = LogManager::open(dir.path(), LogConfig::default()).unwrap();
    let topic = mgr.create_topic(&name, 2, BTreeMap::new(), false).unwrap();
    let mut overrides = BTreeMap::new();
    overrides.insert("retention.ms".to_string(), "1000".to_string());
    mgr.set_topic_overrides(&name, overrides, false).unwrap();
    let part = topic.partition(0).unwrap();
    part.log.lock().append(&batch(1, 0), 0).unwrap();
    mgr.delete_topic(&name).unwrap();
    assert!(mgr.topic(&name).is_none());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("ttt"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "partition dirs left behind: {leftovers:?}"
    );
}

fn options(max_open_files: usize, limits: crate::TopicLimits) -> crate::StorageOptions {
    crate::StorageOptions {
        max_open_files,
        limits,
    }
}

/// Names of entries in `dir` starting with `prefix`.
fn entries_starting(dir: &Path, prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix))
        .collect();
    v.sort();
    v
}

/// Issue 12, item 1: 2147483647 partitions made the manager probe that many directories while
/// holding the admin lock. Over-limit counts are refused before any work.
#[test]
fn partition_limits_are_checked_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let limits = crate::TopicLimits {
        max_partitions_per_topic: 100,
        max_topics: 3,
        max_partitions: 150,
    };
    let m = LogManager::open_with(dir.path(), LogConfig::default(), options(64, limits)).unwrap();
    let started = std::time::Instant::now();
    for name in ["h1", "h2"] {
        assert!(matches!(
            m.create_topic(name, i32::MAX, BTreeMap::new(), false),
            Err(LogError::InvalidPartitions(ref msg)) if msg.contains("at most 100")
        ));
    }
    m.create_topic("a", 100, BTreeMap::new(), false).unwrap();
    assert!(matches!(
        m.create_partitions("a", i32::MAX, false),
        Err(LogError::InvalidPartitions(_))
    ));
    // Totals: 100 + 60 partitions would pass 150.
    assert!(matches!(
        m.create_topic("b", 60, BTreeMap::new(), false),
        Err(LogError::PolicyViolation(ref msg)) if msg.contains("--max-partitions")
    ));
    m.create_topic("b", 50, BTreeMap::new(), false).unwrap();
    assert!(matches!(
        m.create_partitions("b", 51, false),
        Err(LogError::PolicyViolation(_))
    ));
    assert!(matches!(
        m.create_topic("c", 1, BTreeMap::new(), false),
        Err(LogError::PolicyViolation(_))
    ));
    // The topic total, in a second data directory.
    let dir2 = tempfile::tempdir().unwrap();
    let two_topics = crate::TopicLimits {
        max_topics: 2,
        ..limits
    };
    let m2 =
        LogManager::open_with(dir2.path(), LogConfig::default(), options(64, two_topics)).unwrap();
    m2.create_topic("x", 1, BTreeMap::new(), false).unwrap();
    m2.create_topic("y", 1, BTreeMap::new(), false).unwrap();
    assert!(matches!(
        m2.create_topic("z", 1, BTreeMap::new(), true),
        Err(LogError::PolicyViolation(ref msg)) if msg.contains("--max-topics")
    ));
    // Refusals are immediate (generous bound for a loaded machine) and touch no directory.
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(entries_starting(dir.path(), "h").is_empty());
    assert!(entries_starting(dir.path(), "c-").is_empty());
    assert_eq!(m.partitions().len(), 150);
}

/// Issue 12, item 2: a creation failing part-way (here its commit point, the topic file, cannot
/// be written) leaves no topic file and no partition directory, and the data directory opens
/// with the same topics as before. Growth fails the same way.
#[test]
fn failed_creation_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let m = LogManager::open(dir.path(), LogConfig::default()).unwrap();
    m.create_topic("keep", 2, BTreeMap::new(), false).unwrap();
    // A non-empty directory where the topic file goes: its rename fails.
    std::fs::create_dir_all(dir.path().join("topics/big.json/x")).unwrap();
    assert!(matches!(
        m.create_topic("big", 300, BTreeMap::new(), false),
        Err(LogError::Io { .. })
    ));
    assert!(m.topic("big").is_none());
    assert!(entries_starting(dir.path(), "big-").is_empty());
    std::fs::remove_dir_all(dir.path().join("topics/big.json")).unwrap();

    let keep_file = dir.path().join("topics/keep.json");
    let saved = std::fs::read(&keep_file).unwrap();
    std::fs::remove_file(&keep_file).unwrap();
    std::fs::create_dir_all(keep_file.join("x")).unwrap();
    assert!(m.create_partitions("keep", 40, false).is_err());
    assert_eq!(m.topic("keep").unwrap().partition_count(), 2);
    assert!(!dir.path().join("keep-2").exists());
    assert!(!dir.path().join("keep-39").exists());
    std::fs::remove_dir_all(&keep_file).unwrap();
    std::fs::write(&keep_file, saved).unwrap();
    drop(m); // as after a crash
    let m = LogManager::open(dir.path(), LogConfig::default()).unwrap();
    let names: Vec<String> = m.topics().iter().map(|t| t.name.clone()).collect();
    assert_eq!(names, vec!["keep".to_string()]);
    assert_eq!(m.topic("keep").unwrap().partition_count(), 2);
    assert!(entries_starting(dir.path(), "big").is_empty());
}

/// A crash between the partition directories and the topic file (kill -9 during a create):
/// the directories are orphans, removed on the next start; the topic never existed.
#[test]
fn interrupted_creation_is_undone_on_start() {
    let dir = tempfile::tempdir().unwrap();
    let m = LogManager::open(dir.path(), LogConfig::default()).unwrap();
    m.create_topic("keep", 1, BTreeMap::new(), false).unwrap();
    m.shutdown().unwrap();
    drop(m);
    for i in 0..50 {
        let p = PartitionLog::open(
            &dir.path().join(format!("half-{i}")),
            LogConfig::default(),
            Recovery::Clean,
        )
        .unwrap();
        drop(p);
    }
    // And a temp file of an interrupted metadata write.
    std::fs::write(dir.path().join(".0123abcd.tmp"), b"").unwrap();
    std::fs::write(dir.path().join("topics/.89abcdef.tmp"), b"{").unwrap();
    let m = LogManager::open(dir.path(), LogConfig::default()).unwrap();
    assert!(m.topic("half").is_none());
    assert!(entries_starting(dir.path(), "half").is_empty());
    assert!(entries_starting(dir.path(), ".").is_empty());
    assert!(entries_starting(&dir.path().join("topics"), ".").is_empty());
    assert_eq!(m.topics().len(), 1);
}

/// Shutdown interrupts a long creation and undoes it, instead of waiting for it.
#[test]
fn shutdown_interrupts_a_long_creation() {
    let dir = tempfile::tempdir().unwrap();
    let m = std::sync::Arc::new(LogManager::open(dir.path(), LogConfig::default()).unwrap());
    let creating = {
        let m = std::sync::Arc::clone(&m);
        std::thread::spawn(move || m.create_topic("slow", 10_000, BTreeMap::new(), false))
    };
    // Wait until it has made some directories (bounded).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while entries_starting(dir.path(), "slow-").len() < 10 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let started = std::time::Instant::now();
    m.shutdown().unwrap();
    let result = creating.join().unwrap();
    // Either it finished just before shutdown, or it was stopped and undone.
    match result {
        Err(LogError::ShuttingDown) => {
            assert!(entries_starting(dir.path(), "slow-").is_empty());
            assert!(m.topic("slow").is_none());
        }
        Ok(t) => assert_eq!(t.partition_count(), 10_000),
        Err(e) => panic!("unexpected {e}"),
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert!(matches!(
        m.create_topic("late", 1, BTreeMap::new(), false),
        Err(LogError::ShuttingDown)
    ));
}

/// Thousands of partitions work with a handful of open files: segment files are opened through
/// a bounded pool (the 100,000-partition creation of issue 12 died of EMFILE at 6,660). The
/// broker test `hostile.rs` does 10,000 with the machine's default limit.
#[test]
fn thousands_of_partitions_with_a_small_file_budget() {
    let dir = tempfile::tempdir().unwrap();
    let limits = crate::TopicLimits::default();
    let m = LogManager::open_with(dir.path(), LogConfig::default(), options(32, limits)).unwrap();
    let t = m
        .create_topic("wide", 2_000, BTreeMap::new(), false)
        .unwrap();
    assert!(m.file_stats().open <= 32, "{:?}", m.file_stats());
    for i in (0..2_000).step_by(7) {
        let p = t.partition(i).unwrap();
        let mut log = p.log.lock();
        log.append(&batch(1, i64::from(i)), 1).unwrap();
        // As the broker's group commit does: the file may be closed again once fsynced.
        let (f, upto) = log.sync_target().unwrap().unwrap();
        f.sync_data().unwrap();
        log.mark_flushed(upto);
    }
    let stats = m.file_stats();
    assert!(stats.open <= 32, "{stats:?}");
    assert!(stats.evictions > 1_900, "{stats:?}");
    // Every written partition reads back.
    for i in (0..2_000).step_by(7) {
        let bytes = t
            .partition(i)
            .unwrap()
            .log
            .lock()
            .read(0, 1 << 20, i64::MAX)
            .unwrap();
        assert_eq!(headers(&bytes)[0].base_timestamp, i64::from(i));
    }
    m.shutdown().unwrap();
    drop((m, t));
    let m = LogManager::open_with(dir.path(), LogConfig::default(), options(32, limits)).unwrap();
    assert_eq!(m.topic("wide").unwrap().partition_count(), 2_000);
    assert!(m.file_stats().open <= 32);
    let p = m.topic("wide").unwrap().partition(1_995).unwrap();
    assert_eq!(p.log.lock().log_end_offset(), 1);
}
