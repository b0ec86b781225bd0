//! The Parquet sink's unit tests: rolling, compaction, the bookkeeping layout.
#![allow(clippy::unwrap_used)]

use rivulet_engine::plan::Plan;

use super::*;

fn schema() -> SchemaRef {
    let ts = DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("window_start", ts.clone(), false),
        Field::new("window_end", ts, false),
        Field::new("count", DataType::Int64, false),
    ]))
}

/// Epoch `e`'s rows: ids 0..3 in window `e` (10 s windows from 10:00, all in hour 10).
fn rows(e: u64) -> RecordBatch {
    let ws = 1_795_514_400_000 + e as i64 * 10_000;
    let ts = |v: i64| -> ArrayRef {
        Arc::new(TimestampMillisecondArray::from(vec![v; 3]).with_timezone("UTC"))
    };
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from(vec![0, 1, 2])),
            ts(ws),
            ts(ws + 10_000),
            Arc::new(Int64Array::from(vec![e as i64; 3])),
        ],
    )
    .unwrap()
}

fn open(root: &Path, last: Option<u64>, compact: Option<u32>) -> Dataset {
    open_as(root, "0123abcd-query", last, compact)
}

fn open_as(root: &Path, query_id: &str, last: Option<u64>, compact: Option<u32>) -> Dataset {
    let text = rivulet_testkit::small_plan_with(&[
        ("name = \"stats\"", "name = \"t\""),
        (
            "[[sinks]]\ntype = \"console\"",
            "[output]\nmode = \"append\"",
        ),
    ]);
    let plan = Plan::from_toml(&text).unwrap();
    let spec = ParquetOptions {
        compact_min_files: compact.map(|n| n as usize),
        ..ParquetOptions::at(root)
    };
    let schema = schema();
    let writers = crate::sinks::kafka::WriterScope::local(root, "q", query_id);
    let ctx = SinkContext {
        plan: &plan,
        schema: &schema,
        checkpoint_dir: root,
        checkpoint_is_local: true,
        query_name: "q",
        query_id,
        last_committed: last,
        writers: &writers,
    };
    Dataset::open(&spec, &ctx).unwrap()
}

/// (epoch of the row = its `count`, id) of every finished file, sorted.
fn visible(root: &Path) -> Vec<(i64, i64)> {
    let dir = root.join("date=2026-11-24/hour=10");
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        assert!(p.to_str().unwrap().ends_with(".parquet"), "{}", p.display());
        let r = ParquetRecordBatchReaderBuilder::try_new(fs::File::open(&p).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for b in r {
            let b = b.unwrap();
            let id = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            let n = b.column(3).as_any().downcast_ref::<Int64Array>().unwrap();
            out.extend((0..b.num_rows()).map(|i| (n.value(i), id.value(i))));
        }
    }
    out.sort_unstable();
    out
}

/// Writes and commits epochs `epochs` (each [`rows`]) as the driver does.
fn commit_epochs(s: &mut Dataset, epochs: std::ops::Range<u64>) {
    for e in epochs {
        s.write_epoch(e, &[rows(e)]).unwrap();
        s.commit(e).unwrap();
    }
}

fn want(epochs: std::ops::Range<i64>) -> Vec<(i64, i64)> {
    epochs.flat_map(|e| (0..3).map(move |i| (e, i))).collect()
}

/// Regression (issue 11): a second query opening the same dataset deleted the first one's
/// in-progress files and spool (they shared `_rivulet/`). Now each keeps its own, and a
/// crash of either loses nothing; compaction merges only the query's own files.
#[test]
fn two_queries_share_a_dataset() {
    let d = tempfile::tempdir().unwrap();
    let mut a = open_as(d.path(), "aaaa1111-query", None, Some(2));
    commit_epochs(&mut a, 0..2);
    a.roll(1).unwrap();
    a.write_epoch(2, &[rows(2)]).unwrap();
    a.commit(2).unwrap();
    // b opens while a has an open file and a spooled epoch, writes and rolls.
    let mut b = open_as(d.path(), "bbbb2222-query", None, Some(2));
    for e in 0..3 {
        b.write_epoch(e, &[rows(e)]).unwrap();
        b.commit(e).unwrap();
        b.roll(e).unwrap();
    }
    b.close().unwrap();
    // a crashes and comes back: its committed epoch 2 is still in its spool.
    drop(a);
    let mut a = open_as(d.path(), "aaaa1111-query", Some(2), Some(2));
    a.close().unwrap();
    let mut both = want(0..3);
    both.extend(want(0..3));
    both.sort_unstable();
    assert_eq!(visible(d.path()), both);
    assert!(inprogress_files_of(d.path(), "aaaa1111-query").is_empty());
}

/// A dataset written before the bookkeeping moved to `_rivulet/<query id>/` (this query's
/// files directly in `_rivulet/`) is moved on open and its spooled epochs still delivered.
#[test]
fn legacy_layout_is_moved_into_the_query_dir() {
    let d = tempfile::tempdir().unwrap();
    let mut s = open(d.path(), None, None);
    commit_epochs(&mut s, 0..2);
    s.roll(1).unwrap();
    s.write_epoch(2, &[rows(2)]).unwrap();
    s.commit(2).unwrap();
    drop(s);
    let base = d.path().join("_rivulet");
    let mine = base.join("0123abcd-query");
    for e in fs::read_dir(&mine).unwrap() {
        let p = e.unwrap().path();
        fs::rename(&p, base.join(p.file_name().unwrap())).unwrap();
    }
    fs::remove_dir(&mine).unwrap();
    assert!(base.join(STATE_FILE).exists());
    let mut s = open(d.path(), Some(2), None);
    s.close().unwrap();
    assert_eq!(visible(d.path()), want(0..3));
    assert!(!base.join(STATE_FILE).exists());
    assert!(mine.join(STATE_FILE).exists());
}

/// A zombie: the task's old owner (paused, not dead) holds open files of committed epochs
/// when the new owner opens the same bookkeeping and finishes those epochs itself. When the
/// old one wakes up, its roll is refused as fenced — it neither overwrites the new owner's
/// manifest nor renames anything — and every row is in the dataset once.
#[test]
fn a_zombie_roll_is_fenced() {
    let d = tempfile::tempdir().unwrap();
    let mut old = open(d.path(), None, None);
    commit_epochs(&mut old, 0..3);
    // The task moves: the new owner finishes epochs 0..=2 from the spool, then goes on.
    let mut new = open(d.path(), Some(2), None);
    assert_eq!(visible(d.path()), want(0..3));
    let manifest = fs::read(new.state_path()).unwrap();
    new.write_epoch(3, &[rows(3)]).unwrap();
    new.commit(3).unwrap();
    // The old owner wakes up and rolls what it had open (as its timer would).
    let err = old.roll(2).unwrap_err();
    assert!(matches!(err, RuntimeError::Fenced(_)), "{err}");
    assert_eq!(
        fs::read(new.state_path()).unwrap(),
        manifest,
        "manifest overwritten"
    );
    // Its compaction is refused too.
    assert!(matches!(
        old.compact("date=2026-11-24/hour=10", 1, 2),
        Err(RuntimeError::Fenced(_))
    ));
    new.close().unwrap();
    assert_eq!(visible(d.path()), want(0..4));
}

fn inprogress_files_of(root: &Path, query_id: &str) -> Vec<PathBuf> {
    fs::read_dir(root.join("_rivulet").join(query_id).join(INPROGRESS_DIR))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

#[test]
fn crash_between_roll_manifest_and_renames_rolls_forward() {
    let d = tempfile::tempdir().unwrap();
    let mut s = open(d.path(), None, None);
    commit_epochs(&mut s, 0..3);
    s.crash_after = Some(STATE_FILE);
    assert!(s.roll(2).is_err());
    // Epoch 3 was spooled but never committed: the replay writes it again.
    s.write_epoch(3, &[rows(3)]).unwrap();
    drop(s);
    assert!(!d.path().join("date=2026-11-24").exists());
    let mut s = open(d.path(), Some(2), None);
    assert_eq!(visible(d.path()), want(0..3));
    assert!(inprogress(d.path()).is_empty());
    s.write_epoch(3, &[rows(3)]).unwrap();
    s.commit(3).unwrap();
    s.close().unwrap();
    assert_eq!(visible(d.path()), want(0..4));
    assert_eq!(s.spool.epochs().unwrap(), Vec::<u64>::new());
}

#[test]
fn committed_epochs_in_the_spool_are_finished_at_open_once() {
    let d = tempfile::tempdir().unwrap();
    let mut s = open(d.path(), None, None);
    for e in 0..4 {
        s.write_epoch(e, &[rows(e)]).unwrap();
        s.commit(e).unwrap();
        if e == 1 {
            s.roll(1).unwrap();
        }
    }
    // A crash (no close): 2 and 3 only in the spool and an in-progress file.
    s.write_epoch(4, &[rows(4)]).unwrap();
    drop(s);
    assert_eq!(visible(d.path()), want(0..2));
    let mut s = open(d.path(), Some(3), None);
    assert_eq!(visible(d.path()), want(0..4));
    assert!(inprogress(d.path()).is_empty());
    // Opening again changes nothing.
    drop(s);
    s = open(d.path(), Some(3), None);
    assert_eq!(visible(d.path()), want(0..4));
    s.close().unwrap();
}

#[test]
fn compaction_merges_and_survives_a_crash_mid_swap() {
    let d = tempfile::tempdir().unwrap();
    let mut s = open(d.path(), None, Some(3));
    for e in 0..2 {
        s.write_epoch(e, &[rows(e)]).unwrap();
        s.commit(e).unwrap();
        s.roll(e).unwrap();
    }
    let dir = d.path().join("date=2026-11-24/hour=10");
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 2);
    s.write_epoch(2, &[rows(2)]).unwrap();
    s.commit(2).unwrap();
    s.crash_after = Some(STATE_FILE);
    // The roll itself crashes after its manifest; the restart rolls it forward...
    assert!(s.roll(2).is_err());
    drop(s);
    let mut s = open(d.path(), Some(2), Some(3));
    assert_eq!(visible(d.path()), want(0..3));
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 3);
    // ...then a compaction crashes between its manifest and the swap.
    s.write_epoch(3, &[rows(3)]).unwrap();
    s.commit(3).unwrap();
    s.crash_after = Some(COMPACTION_FILE);
    assert!(s.roll(3).is_err());
    assert!(d
        .path()
        .join("_rivulet/0123abcd-query/compaction.json")
        .exists());
    drop(s);
    let s = open(d.path(), Some(3), Some(3));
    assert_eq!(visible(d.path()), want(0..4));
    let files: Vec<_> = fs::read_dir(&dir).unwrap().collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(!d
        .path()
        .join("_rivulet/0123abcd-query/compaction.json")
        .exists());
    drop(s);
}

fn inprogress(root: &Path) -> Vec<PathBuf> {
    inprogress_files_of(root, "0123abcd-query")
}

#[test]
fn hive_escaping_and_names() {
    assert_eq!(escape_partition_value("a/b:c"), "a%2Fb%3Ac");
    assert_eq!(escape_partition_value("plain-1.5 x"), "plain-1.5 x");
    assert_eq!(escape_partition_value(""), NULL_PARTITION);
    assert_eq!(
        date_hour_dir(1_795_514_400_000 + 59 * 60_000),
        "date=2026-11-24/hour=10"
    );
    let n = part_name(3, 17, "abcd1234");
    assert_eq!(
        n,
        "part-00000000000000000003-00000000000000000017-abcd1234.parquet"
    );
    assert_eq!(parse_part_name(&n), Some((3, 17, "abcd1234")));
    assert_eq!(parse_part_name("part-1.parquet"), None);
}
