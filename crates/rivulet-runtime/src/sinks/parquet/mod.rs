//! Parquet sink: result rows as a Hive-partitioned Parquet dataset that DuckDB, pandas /
//! pyarrow, Spark and Trino read as it is, exactly once per checkpoint epoch.
//!
//! ```text
//! <path>/date=2026-11-24/hour=10/part-<first epoch>-<last epoch>-<query tag>.parquet
//! <path>/_rivulet/<query id>/state.json       last finished roll: {"queryId", "finalizedThrough", "renames"}
//! <path>/_rivulet/<query id>/compaction.json  a compaction in progress (rolled forward on start)
//! <path>/_rivulet/<query id>/inprogress/      files being written (`*.parquet.inprogress`)
//! <path>/_rivulet/<query id>/spool/           the epochs not yet in a finished file (Arrow IPC)
//! <path>/_rivulet/<query id>/owner            the sink instance that last opened the bookkeeping
//! ```
//!
//! The bookkeeping is per query (its checkpoint id), and file names carry the query's tag, so
//! several queries (or a re-run from a fresh checkpoint) can write one dataset without touching
//! each other's spool, in-progress files or compaction inputs. (Before, `_rivulet/` itself held
//! one query's files; a dataset laid out that way is moved into the new layout on open when it
//! is this query's.)
//!
//! Readers ignore `_rivulet/`: names starting with `_` or `.` are hidden for pyarrow and Spark,
//! and nothing in it ends in `.parquet` (for globs such as DuckDB's `**/*.parquet`).
//!
//! **Files.** The files have the query's result schema (timestamps are Parquet timestamps in
//! milliseconds, UTC-adjusted) minus the partition columns, which live in the directory names
//! (Hive style; the default date/hour partitioning is derived from `window_start`, which stays
//! in the files). Update mode adds a column `_epoch` (BIGINT, the micro-batch that emitted the
//! row): the latest value of a (key, window) is its row with the largest `_epoch`.
//!
//! **Rolling.** Committed rows go into one open file per partition directory, under a hidden
//! name. All open files are finished together (footer, fsync, rename to their visible name)
//! once one of them reaches `roll_size` (checked after each commit) or the oldest has been
//! open `roll_interval` (checked after each commit and by a timer thread, so an idle query's
//! last rows become visible too), and when the query stops. A long run therefore makes one
//! file per partition per interval instead of one per micro-batch.
//!
//! **Exactly once.** `write_epoch(N)` spools the epoch's rows durably ([`super::spool`]),
//! before the checkpoint's commit marker; `commit(N)` appends them to the open files. A roll
//! first writes `state.json` (the epochs it covers and the renames it is about to do, every
//! file already complete and fsynced), then renames, then drops the covered spool files. On
//! start: the renames of `state.json` are redone where missing (roll forward), in-progress
//! files are deleted, spooled epochs up to the checkpoint's last commit and after the last
//! roll are appended again and rolled at once, and later ones are deleted (the driver replays
//! that epoch). So a crash leaves neither a partial file (only complete files are renamed)
//! nor a duplicate (every epoch is in exactly one finished file), and no committed row is lost.
//!
//! **Zombies.** With the checkpoint in Kafka a task can move to another process while the old
//! one is paused, not dead. Each open writes a fresh token to `owner` (after the checkpoint
//! fenced the old process, before recovery), in-progress files carry their writer's token, and
//! a roll or compaction re-reads `owner` before its manifest and before its renames: a zombie
//! that wakes up mid-roll stops with a "fenced" error instead of overwriting the new owner's
//! manifest or renaming its files. (Between that check and the rename a filesystem offers no
//! compare-and-swap; the window is the microseconds in between, not the zombie's pause.)
//!
//! **Compaction** (optional, `compact_min_files`): after a roll, a partition that holds at
//! least that many small files of this query (under half of `roll_size`) gets them merged
//! into one. The merged file is complete before `compaction.json` records the swap; the
//! rename of the merged file and the deletes of its inputs are then redone on start if
//! interrupted. Between that rename and the deletes (milliseconds) a reader listing the
//! directory can see the rows twice: leave compaction off when readers query the dataset
//! while it is written and cannot tolerate that.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arrow::array::{Array, ArrayRef, Int64Array, TimestampMillisecondArray, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use rivulet_engine::plan::{columns, OutputMode};

pub use crate::connectors::parquet::{
    ParquetCompression, ParquetOptions, DEFAULT_ROLL_INTERVAL, DEFAULT_ROLL_SIZE,
};
use serde::{Deserialize, Serialize};

use super::spool::Spool;
use super::{Sink, SinkContext};
use crate::checkpoint::{sync_dir, write_atomic};
use crate::error::RuntimeError;
use crate::rows::rfc3339_ms;
use crate::Result;

/// Column added in update mode: the epoch that emitted the row.
pub const EPOCH_COLUMN: &str = "_epoch";
/// Hive's directory value for NULL.
pub const NULL_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";
/// Rows per row group: bounds the memory an open file buffers.
const ROW_GROUP_ROWS: usize = 128 * 1024;

const META_DIR: &str = "_rivulet";
const STATE_FILE: &str = "state.json";
const OWNER_FILE: &str = "owner";
const COMPACTION_FILE: &str = "compaction.json";
const INPROGRESS_DIR: &str = "inprogress";
const SPOOL_DIR: &str = "spool";
const INPROGRESS_SUFFIX: &str = ".parquet.inprogress";

/// How rows map to partition directories.
#[derive(Debug, Clone)]
enum Partitioning {
    None,
    /// `date=YYYY-MM-DD/hour=HH` of this timestamp column (window_start).
    DateHour(usize),
    /// `name=value/...` of these columns.
    Columns(Vec<usize>),
}

/// `_rivulet/<query id>/state.json`: the last roll.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RollState {
    query_id: String,
    /// Every epoch up to this one is in a finished file.
    finalized_through: Option<u64>,
    /// The roll's (in-progress file, visible file) renames, relative to the root.
    renames: Vec<(String, String)>,
}

/// `_rivulet/<query id>/compaction.json`: a merge whose output is complete.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CompactionState {
    tmp: String,
    target: String,
    inputs: Vec<String>,
}

/// An open (in-progress) file of one partition directory.
struct OpenFile {
    tmp: PathBuf,
    writer: ArrowWriter<fs::File>,
}

impl OpenFile {
    fn size(&self) -> u64 {
        (self.writer.bytes_written() + self.writer.in_progress_size()) as u64
    }
}

/// The dataset's state; [`ParquetSink`] shares it with its roll timer.
struct Dataset {
    root: PathBuf,
    meta: PathBuf,
    spool: Spool,
    query_id: String,
    /// File-name suffix: the query id's first 8 characters, so files of a query restarted
    /// from scratch (new checkpoint, epochs from 0 again) never replace older ones.
    tag: String,
    in_schema: SchemaRef,
    file_schema: SchemaRef,
    /// Columns of `in_schema` the files keep, in order.
    keep: Vec<usize>,
    partitioning: Partitioning,
    partition_names: Vec<String>,
    props: WriterProperties,
    roll_size: u64,
    roll_interval: Duration,
    compact_min_files: Option<usize>,
    with_epoch: bool,
    /// The epoch written (spooled) but not committed yet.
    pending: Option<(u64, Vec<RecordBatch>)>,
    open: BTreeMap<String, OpenFile>,
    open_since: Option<Instant>,
    /// First epoch with rows in the open files.
    first_open_epoch: Option<u64>,
    finalized_through: Option<u64>,
    last_committed: Option<u64>,
    /// A roll the timer thread could not do; the next call fails with it (`true`: fenced).
    failed: Option<(String, bool)>,
    /// This instance's token in `owner` (see the module docs).
    owner: String,
    /// Tests: fail right after writing this manifest (`state.json` of a roll or
    /// `compaction.json`), as a crash would.
    #[cfg(test)]
    crash_after: Option<&'static str>,
}

/// The Parquet sink (see the module docs). A timer thread rolls the open files once they are
/// `roll_interval` old even when no epoch commits (an idle query), so rows become visible
/// within that interval in any case.
pub struct ParquetSink {
    root: PathBuf,
    partition_names: Vec<String>,
    inner: Arc<Mutex<Dataset>>,
    stop: Arc<(Mutex<bool>, Condvar)>,
    timer: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ParquetSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetSink")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

fn sink_err(root: &Path, reason: impl Into<String>) -> RuntimeError {
    RuntimeError::Sink {
        sink: format!("parquet {}", root.display()),
        reason: reason.into(),
    }
}

fn rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root)
        .unwrap_or(p)
        .to_string_lossy()
        .into_owned()
}

fn remove_if_exists(p: &Path) -> Result<()> {
    match fs::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(RuntimeError::io("removing", p, e)),
    }
}

/// Renames `from` to `to` (creating `to`'s directory), unless `from` is gone (done before).
fn rename_forward(from: &Path, to: &Path, dirs: &mut BTreeSet<PathBuf>) -> Result<()> {
    if !from.exists() {
        return Ok(());
    }
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).map_err(|e| RuntimeError::io("creating", parent, e))?;
        dirs.insert(parent.to_path_buf());
    }
    fs::rename(from, to).map_err(|e| RuntimeError::io("renaming to", to, e))
}

/// Hive's escaping of a partition value (as Spark and Hive write directory names).
pub fn escape_partition_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        let special = c.is_control()
            || matches!(
                c,
                '"' | '#' | '%' | '\'' | '*' | '/' | ':' | '=' | '?' | '\\' | '{' | '[' | ']' | '^'
            );
        if special {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    if out.is_empty() {
        NULL_PARTITION.to_string()
    } else {
        out
    }
}

/// The `date=…/hour=…` directory of a time in ms.
fn date_hour_dir(ms: i64) -> String {
    let s = rfc3339_ms(ms);
    format!("date={}/hour={}", &s[..10], &s[11..13])
}

/// The directory value of one cell.
fn partition_value(col: &ArrayRef, row: usize) -> Result<String> {
    if col.is_null(row) {
        return Ok(NULL_PARTITION.to_string());
    }
    if let Some(ts) = col.as_any().downcast_ref::<TimestampMillisecondArray>() {
        return Ok(escape_partition_value(&rfc3339_ms(ts.value(row))));
    }
    let s = arrow::util::display::array_value_to_string(col.as_ref(), row)?;
    Ok(escape_partition_value(&s))
}

fn writer_properties(c: ParquetCompression) -> WriterProperties {
    let compression = match c {
        ParquetCompression::Zstd => Compression::ZSTD(ZstdLevel::default()),
        ParquetCompression::Snappy => Compression::SNAPPY,
        ParquetCompression::Uncompressed => Compression::UNCOMPRESSED,
    };
    WriterProperties::builder()
        .set_compression(compression)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build()
}

/// `<root>/_rivulet/<query id>`, after moving a dataset of the old layout (this query's files
/// directly in `_rivulet/`) into it.
fn query_meta_dir(root: &Path, query_id: &str) -> Result<PathBuf> {
    let base = root.join(META_DIR);
    let safe: String = query_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    if safe.is_empty() {
        return Err(sink_err(root, "the query id is empty".to_string()));
    }
    let meta = base.join(&safe);
    let legacy_state = base.join(STATE_FILE);
    let legacy_ours = match fs::read(&legacy_state) {
        Ok(b) => serde_json::from_slice::<RollState>(&b).is_ok_and(|s| s.query_id == query_id),
        // No roll yet: the spool alone says whose it is, and only this query's checkpoint
        // could have filled it (before, one dataset served one query).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => base.join(SPOOL_DIR).is_dir(),
        Err(e) => return Err(RuntimeError::io("reading", &legacy_state, e)),
    };
    if legacy_ours && !meta.exists() {
        fs::create_dir_all(&meta).map_err(|e| RuntimeError::io("creating", &meta, e))?;
        for name in [STATE_FILE, COMPACTION_FILE, INPROGRESS_DIR, SPOOL_DIR] {
            let from = base.join(name);
            if from.exists() {
                let to = meta.join(name);
                fs::rename(&from, &to).map_err(|e| RuntimeError::io("moving to", &to, e))?;
            }
        }
        sync_dir(&base)?;
        sync_dir(&meta)?;
    }
    for d in [meta.join(INPROGRESS_DIR), meta.join(SPOOL_DIR)] {
        fs::create_dir_all(&d).map_err(|e| RuntimeError::io("creating", &d, e))?;
    }
    Ok(meta)
}

/// `part-<first>-<last>-<tag>.parquet` → (first, last, tag).
fn parse_part_name(name: &str) -> Option<(u64, u64, &str)> {
    let rest = name.strip_prefix("part-")?.strip_suffix(".parquet")?;
    let mut it = rest.splitn(3, '-');
    let first = it.next()?.parse().ok()?;
    let last = it.next()?.parse().ok()?;
    Some((first, last, it.next()?))
}

fn part_name(first: u64, last: u64, tag: &str) -> String {
    format!("part-{first:020}-{last:020}-{tag}.parquet")
}

impl ParquetSink {
    /// Opens the dataset at `spec.path`, finishing what a previous run left (see the module
    /// docs), and starts the roll timer.
    pub fn open(spec: &ParquetOptions, ctx: &SinkContext<'_>) -> Result<ParquetSink> {
        let d = Dataset::open(spec, ctx)?;
        let root = d.root.clone();
        let partition_names = d.partition_names.clone();
        // Often enough that a file is at most ~a tenth of the interval late.
        let tick = (d.roll_interval / 10).clamp(Duration::from_millis(10), Duration::from_secs(1));
        let inner = Arc::new(Mutex::new(d));
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let (i2, s2) = (inner.clone(), stop.clone());
        let timer = std::thread::Builder::new()
            .name("parquet-roll".into())
            .spawn(move || roll_timer(&i2, &s2, tick))
            .map_err(|e| sink_err(&root, format!("starting the roll timer: {e}")))?;
        Ok(ParquetSink {
            root,
            partition_names,
            inner,
            stop,
            timer: Some(timer),
        })
    }

    /// The dataset's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The Hive partition directory names, outermost first.
    pub fn partition_names(&self) -> &[String] {
        &self.partition_names
    }

    fn dataset(&self) -> Result<MutexGuard<'_, Dataset>> {
        // A panic in the timer thread leaves nothing half-done that recovery cannot redo.
        let d = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match &d.failed {
            Some((m, true)) => Err(RuntimeError::Fenced(m.clone())),
            Some((m, false)) => Err(sink_err(&self.root, m.clone())),
            None => Ok(d),
        }
    }

    fn stop_timer(&mut self) {
        {
            let (flag, cv) = &*self.stop;
            *flag.lock().unwrap_or_else(|p| p.into_inner()) = true;
            cv.notify_all();
        }
        if let Some(t) = self.timer.take() {
            let _ = t.join();
        }
    }
}

/// Rolls the open files when they are old enough, between commits.
fn roll_timer(inner: &Mutex<Dataset>, stop: &(Mutex<bool>, Condvar), tick: Duration) {
    let (flag, cv) = stop;
    let mut stopped = flag.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        stopped = match cv.wait_timeout(stopped, tick) {
            Ok((g, _)) => g,
            Err(p) => p.into_inner().0,
        };
        if *stopped {
            return;
        }
        let mut d = inner.lock().unwrap_or_else(|p| p.into_inner());
        if d.failed.is_some() {
            return;
        }
        if let (true, Some(c)) = (d.should_roll(), d.last_committed) {
            // The open files hold committed epochs only (appended in `commit`).
            if let Err(e) = d.roll(c) {
                tracing::error!("parquet sink {}: {e}", d.root.display());
                let fenced = matches!(e, RuntimeError::Fenced(_));
                d.failed = Some((format!("rolling files: {e}"), fenced));
            }
        }
    }
}

impl Drop for ParquetSink {
    fn drop(&mut self) {
        // Without `close` (a failed run): stop the timer so nothing rolls behind the next
        // open of the same dataset; the spool keeps the committed rows.
        self.stop_timer();
    }
}

impl Dataset {
    fn open(spec: &ParquetOptions, ctx: &SinkContext<'_>) -> Result<Dataset> {
        let root = spec.path.clone();
        let meta = query_meta_dir(&root, ctx.query_id)?;
        let in_schema = ctx.schema.clone();
        let index = |name: &str| {
            in_schema.index_of(name).map_err(|_| {
                sink_err(
                    &root,
                    format!("partition column `{name}` is not a result column"),
                )
            })
        };
        let (partitioning, partition_names) = match &spec.partition_by {
            None => {
                let i = index(columns::WINDOW_START)?;
                for clash in ["date", "hour"] {
                    if in_schema.index_of(clash).is_ok() {
                        return Err(sink_err(
                            &root,
                            format!(
                                "result column `{clash}` clashes with the default date/hour \
                                 partition directories; set partition_by"
                            ),
                        ));
                    }
                }
                (
                    Partitioning::DateHour(i),
                    vec!["date".to_string(), "hour".to_string()],
                )
            }
            Some(cols) if cols.is_empty() => (Partitioning::None, Vec::new()),
            Some(cols) => (
                Partitioning::Columns(cols.iter().map(|c| index(c)).collect::<Result<_>>()?),
                cols.clone(),
            ),
        };
        let with_epoch = ctx.plan.output.mode == OutputMode::Update;
        if with_epoch && in_schema.index_of(EPOCH_COLUMN).is_ok() {
            return Err(sink_err(
                &root,
                format!("result column `{EPOCH_COLUMN}` clashes with the update-mode epoch column"),
            ));
        }
        let dropped: Vec<usize> = match &partitioning {
            Partitioning::Columns(c) => c.clone(),
            _ => Vec::new(),
        };
        let keep: Vec<usize> = (0..in_schema.fields().len())
            .filter(|i| !dropped.contains(i))
            .collect();
        let mut fields: Vec<Field> = keep.iter().map(|&i| in_schema.field(i).clone()).collect();
        if with_epoch {
            fields.push(Field::new(EPOCH_COLUMN, DataType::Int64, false));
        }
        let file_schema = Arc::new(Schema::new(fields));
        // Taken before recovery touches anything: from here on an earlier instance's rolls
        // and compactions refuse to publish.
        let owner = uuid::Uuid::new_v4().simple().to_string();
        fs::create_dir_all(&meta).map_err(|e| RuntimeError::io("creating", &meta, e))?;
        write_atomic(&meta.join(OWNER_FILE), owner.as_bytes())?;
        let mut sink = Dataset {
            failed: None,
            owner,
            #[cfg(test)]
            crash_after: None,
            spool: Spool::open(meta.join(SPOOL_DIR))?,
            root,
            meta,
            query_id: ctx.query_id.to_string(),
            tag: super::file::file_tag(ctx.query_id),
            in_schema,
            file_schema,
            keep,
            partitioning,
            partition_names,
            props: writer_properties(spec.compression),
            roll_size: spec.roll_size,
            roll_interval: spec.roll_interval,
            compact_min_files: spec.compact_min_files,
            with_epoch,
            pending: None,
            open: BTreeMap::new(),
            open_since: None,
            first_open_epoch: None,
            finalized_through: None,
            last_committed: ctx.last_committed,
        };
        sink.recover(ctx.last_committed)?;
        Ok(sink)
    }

    fn state_path(&self) -> PathBuf {
        self.meta.join(STATE_FILE)
    }

    /// Fails with [`RuntimeError::Fenced`] when another instance opened the bookkeeping since
    /// this one did (the task moved while this process was paused).
    fn check_owner(&self) -> Result<()> {
        let path = self.meta.join(OWNER_FILE);
        let now = fs::read(&path).map_err(|e| RuntimeError::io("reading", &path, e))?;
        if now == self.owner.as_bytes() {
            return Ok(());
        }
        Err(RuntimeError::Fenced(format!(
            "parquet sink {}: another process took over `{}`; this one publishes nothing more",
            self.root.display(),
            rel(&self.root, &self.meta)
        )))
    }

    fn recover(&mut self, last_committed: Option<u64>) -> Result<()> {
        let sp = self.state_path();
        let state: Option<RollState> = match fs::read(&sp) {
            Ok(b) => Some(
                serde_json::from_slice(&b)
                    .map_err(|e| sink_err(&self.root, format!("{}: {e}", sp.display())))?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(RuntimeError::io("reading", &sp, e)),
        };
        let mut dirs = BTreeSet::new();
        if let Some(s) = &state {
            for (tmp, fin) in &s.renames {
                rename_forward(&self.root.join(tmp), &self.root.join(fin), &mut dirs)?;
            }
        }
        self.recover_compaction(&mut dirs)?;
        for d in dirs {
            sync_dir(&d)?;
        }
        // Whatever is still in progress was never committed to the dataset.
        let ip = self.meta.join(INPROGRESS_DIR);
        for entry in fs::read_dir(&ip).map_err(|e| RuntimeError::io("listing", &ip, e))? {
            let p = entry
                .map_err(|e| RuntimeError::io("listing", &ip, e))?
                .path();
            remove_if_exists(&p)?;
        }
        match state {
            Some(s) if s.query_id == self.query_id => self.finalized_through = s.finalized_through,
            Some(s) => {
                // A different query (its checkpoint was reset) wrote here before: its files
                // stay, its spool is not ours to deliver.
                tracing::warn!(
                    "parquet sink {}: the dataset was written by query {} before; keeping its \
                     files and starting anew for query {}",
                    self.root.display(),
                    s.query_id,
                    self.query_id
                );
                for e in self.spool.epochs()? {
                    self.spool.remove(e)?;
                }
            }
            None => {}
        }
        let mut refed = false;
        for e in self.spool.recover(last_committed)? {
            if self.finalized_through.is_some_and(|f| e <= f) {
                self.spool.remove(e)?;
                continue;
            }
            let batches = self.spool.read(e)?;
            self.append(e, &batches)?;
            refed = true;
        }
        if let (true, Some(c)) = (refed, last_committed) {
            tracing::info!(
                "parquet sink {}: finishing the committed epochs a previous run left in its spool",
                self.root.display()
            );
            self.roll(c)?;
        }
        Ok(())
    }

    fn recover_compaction(&self, dirs: &mut BTreeSet<PathBuf>) -> Result<()> {
        let cp = self.meta.join(COMPACTION_FILE);
        let c: CompactionState = match fs::read(&cp) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| sink_err(&self.root, format!("{}: {e}", cp.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(RuntimeError::io("reading", &cp, e)),
        };
        rename_forward(&self.root.join(&c.tmp), &self.root.join(&c.target), dirs)?;
        for i in &c.inputs {
            remove_if_exists(&self.root.join(i))?;
        }
        remove_if_exists(&cp)
    }

    /// The partition directory of each row of `b` (relative to the root, `""` unpartitioned).
    fn row_dirs(&self, b: &RecordBatch) -> Result<Vec<String>> {
        let n = b.num_rows();
        match &self.partitioning {
            Partitioning::None => Ok(vec![String::new(); n]),
            Partitioning::DateHour(i) => {
                let col = b.column(*i);
                let ts = col
                    .as_any()
                    .downcast_ref::<TimestampMillisecondArray>()
                    .ok_or_else(|| {
                        sink_err(&self.root, "window_start is not a millisecond timestamp")
                    })?;
                let mut out = Vec::with_capacity(n);
                let mut last: Option<(i64, String)> = None;
                for r in 0..n {
                    if ts.is_null(r) {
                        out.push(format!("date={NULL_PARTITION}/hour={NULL_PARTITION}"));
                        continue;
                    }
                    let hour = ts.value(r).div_euclid(3_600_000);
                    match &last {
                        Some((h, d)) if *h == hour => out.push(d.clone()),
                        _ => {
                            let d = date_hour_dir(hour * 3_600_000);
                            out.push(d.clone());
                            last = Some((hour, d));
                        }
                    }
                }
                Ok(out)
            }
            Partitioning::Columns(cols) => {
                let mut out = Vec::with_capacity(n);
                for r in 0..n {
                    let mut parts = Vec::with_capacity(cols.len());
                    for (k, &c) in cols.iter().enumerate() {
                        parts.push(format!(
                            "{}={}",
                            escape_partition_value(&self.partition_names[k]),
                            partition_value(b.column(c), r)?
                        ));
                    }
                    out.push(parts.join("/"));
                }
                Ok(out)
            }
        }
    }

    /// The file columns of `b`'s rows (partition columns dropped, `_epoch` added).
    fn file_batch(&self, b: &RecordBatch, epoch: u64) -> Result<RecordBatch> {
        let mut cols: Vec<ArrayRef> = self.keep.iter().map(|&i| b.column(i).clone()).collect();
        if self.with_epoch {
            let e = i64::try_from(epoch).unwrap_or(i64::MAX);
            cols.push(Arc::new(Int64Array::from(vec![e; b.num_rows()])));
        }
        Ok(RecordBatch::try_new(self.file_schema.clone(), cols)?)
    }

    /// Appends a committed epoch's rows to the open files.
    fn append(&mut self, epoch: u64, batches: &[RecordBatch]) -> Result<()> {
        for b in batches {
            if b.num_rows() == 0 {
                continue;
            }
            let dirs = self.row_dirs(b)?;
            let mut groups: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
            for (r, d) in dirs.iter().enumerate() {
                groups.entry(d.as_str()).or_default().push(r as u32);
            }
            for (dir, rows) in groups {
                let part = if rows.len() == b.num_rows() {
                    b.clone()
                } else {
                    take_record_batch(b, &UInt32Array::from(rows))?
                };
                let fb = self.file_batch(&part, epoch)?;
                self.first_open_epoch.get_or_insert(epoch);
                self.open_since.get_or_insert_with(Instant::now);
                let f = self.open_file(dir, epoch)?;
                f.writer.write(&fb)?;
            }
        }
        Ok(())
    }

    fn open_file(&mut self, dir: &str, epoch: u64) -> Result<&mut OpenFile> {
        if !self.open.contains_key(dir) {
            let n = self.open.len();
            let tmp = self.meta.join(INPROGRESS_DIR).join(format!(
                "{epoch:020}-{n}-{}{INPROGRESS_SUFFIX}",
                &self.owner[..8]
            ));
            let file = fs::File::create(&tmp).map_err(|e| RuntimeError::io("creating", &tmp, e))?;
            let writer =
                ArrowWriter::try_new(file, self.file_schema.clone(), Some(self.props.clone()))?;
            self.open.insert(dir.to_string(), OpenFile { tmp, writer });
        }
        self.open
            .get_mut(dir)
            .ok_or_else(|| sink_err(&self.root, "open file vanished"))
    }

    fn should_roll(&self) -> bool {
        !self.open.is_empty()
            && (self
                .open_since
                .is_some_and(|t| t.elapsed() >= self.roll_interval)
                || self.open.values().any(|f| f.size() >= self.roll_size))
    }

    /// Finishes every open file and makes it visible; all epochs up to `through` (committed)
    /// are then in finished files.
    fn roll(&mut self, through: u64) -> Result<()> {
        if self.open.is_empty() {
            return Ok(());
        }
        let first = self.first_open_epoch.unwrap_or(through);
        let name = part_name(first, through, &self.tag);
        let mut renames = Vec::with_capacity(self.open.len());
        let mut touched = Vec::new();
        for (dir, mut f) in std::mem::take(&mut self.open) {
            f.writer.finish()?;
            f.writer
                .inner()
                .sync_all()
                .map_err(|e| RuntimeError::io("fsyncing", &f.tmp, e))?;
            let target = if dir.is_empty() {
                self.root.join(&name)
            } else {
                self.root.join(&dir).join(&name)
            };
            renames.push((rel(&self.root, &f.tmp), rel(&self.root, &target)));
            touched.push(dir);
        }
        sync_dir(&self.meta.join(INPROGRESS_DIR))?;
        self.check_owner()?;
        let state = RollState {
            query_id: self.query_id.clone(),
            finalized_through: Some(through),
            renames,
        };
        write_atomic(&self.state_path(), &serde_json::to_vec(&state)?)?;
        #[cfg(test)]
        if self.crash_after == Some(STATE_FILE) {
            return Err(sink_err(&self.root, "test crash after state.json"));
        }
        let mut dirs = BTreeSet::new();
        self.check_owner()?;
        for (tmp, fin) in &state.renames {
            rename_forward(&self.root.join(tmp), &self.root.join(fin), &mut dirs)?;
        }
        for d in &dirs {
            sync_dir(d)?;
        }
        for e in self.spool.epochs()? {
            if e <= through {
                self.spool.remove(e)?;
            }
        }
        self.finalized_through = Some(through);
        self.first_open_epoch = None;
        self.open_since = None;
        if let Some(min) = self.compact_min_files {
            for dir in touched {
                self.compact(&dir, min, through)?;
            }
        }
        Ok(())
    }

    /// Merges the small files of this query in partition `dir` when there are `min` or more.
    fn compact(&self, dir: &str, min: usize, through: u64) -> Result<()> {
        let pdir = if dir.is_empty() {
            self.root.clone()
        } else {
            self.root.join(dir)
        };
        let small = self.roll_size / 2;
        let mut inputs: Vec<(u64, u64, PathBuf)> = Vec::new();
        for entry in fs::read_dir(&pdir).map_err(|e| RuntimeError::io("listing", &pdir, e))? {
            let entry = entry.map_err(|e| RuntimeError::io("listing", &pdir, e))?;
            let name = entry.file_name();
            let Some((first, last, tag)) = name.to_str().and_then(parse_part_name) else {
                continue;
            };
            let len = entry
                .metadata()
                .map_err(|e| RuntimeError::io("reading metadata of", entry.path(), e))?
                .len();
            if tag == self.tag && len < small {
                inputs.push((first, last, entry.path()));
            }
        }
        if inputs.len() < min {
            return Ok(());
        }
        inputs.sort();
        let tmp = self.meta.join(INPROGRESS_DIR).join(format!(
            "compact-{through:020}-{}{INPROGRESS_SUFFIX}",
            &self.owner[..8]
        ));
        let file = fs::File::create(&tmp).map_err(|e| RuntimeError::io("creating", &tmp, e))?;
        let mut w = ArrowWriter::try_new(file, self.file_schema.clone(), Some(self.props.clone()))?;
        for (_, _, p) in &inputs {
            let f = fs::File::open(p).map_err(|e| RuntimeError::io("opening", p, e))?;
            let reader = ParquetRecordBatchReaderBuilder::try_new(f)?
                .with_batch_size(64 * 1024)
                .build()?;
            for b in reader {
                let b = b?;
                if b.schema().fields() != self.file_schema.fields() {
                    // Written by an older plan of this query: leave the partition alone.
                    tracing::warn!(
                        "parquet sink: not compacting {}: {} has another schema",
                        pdir.display(),
                        p.display()
                    );
                    drop(w);
                    return remove_if_exists(&tmp);
                }
                w.write(&b)?;
            }
        }
        w.finish()?;
        w.inner()
            .sync_all()
            .map_err(|e| RuntimeError::io("fsyncing", &tmp, e))?;
        let first = inputs.iter().map(|i| i.0).min().unwrap_or(0);
        let last = inputs.iter().map(|i| i.1).max().unwrap_or(through);
        let state = CompactionState {
            tmp: rel(&self.root, &tmp),
            target: rel(&self.root, &pdir.join(part_name(first, last, &self.tag))),
            inputs: inputs.iter().map(|i| rel(&self.root, &i.2)).collect(),
        };
        let cp = self.meta.join(COMPACTION_FILE);
        self.check_owner()?;
        write_atomic(&cp, &serde_json::to_vec(&state)?)?;
        #[cfg(test)]
        if self.crash_after == Some(COMPACTION_FILE) {
            return Err(sink_err(&self.root, "test crash after compaction.json"));
        }
        let mut dirs = BTreeSet::new();
        self.check_owner()?;
        self.recover_compaction(&mut dirs)?;
        sync_dir(&pdir)?;
        sync_dir(&self.meta)?;
        tracing::info!(
            "parquet sink: merged {} small files in {}",
            inputs.len(),
            pdir.display()
        );
        Ok(())
    }
}

impl Dataset {
    fn write_epoch(&mut self, epoch: u64, batches: &[RecordBatch]) -> Result<()> {
        if self.finalized_through.is_some_and(|f| epoch <= f) {
            // Already in a finished file (cannot happen with the driver's replay rules).
            return Ok(());
        }
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        if rows > 0 {
            self.spool.write(epoch, &self.in_schema, batches)?;
        } else {
            self.spool.remove(epoch)?;
        }
        self.pending = Some((epoch, batches.to_vec()));
        Ok(())
    }

    fn commit(&mut self, epoch: u64) -> Result<()> {
        match self.pending.take() {
            Some((e, batches)) if e == epoch => self.append(epoch, &batches)?,
            Some((e, _)) => {
                return Err(sink_err(
                    &self.root,
                    format!("commit of epoch {epoch} while epoch {e} is pending"),
                ))
            }
            None => {}
        }
        self.last_committed = Some(epoch);
        if self.should_roll() {
            self.roll(epoch)?;
        }
        Ok(())
    }

    fn close(&mut self) -> Result<()> {
        // Only committed rows are in the open files; an uncommitted pending epoch stays in
        // the spool for the replay.
        if let Some(c) = self.last_committed {
            self.roll(c)?;
        }
        Ok(())
    }
}

impl Sink for ParquetSink {
    fn description(&self) -> String {
        format!("ParquetSink[{}]", self.root.display())
    }

    fn write_epoch(&mut self, epoch: u64, batches: &[RecordBatch]) -> Result<()> {
        self.dataset()?.write_epoch(epoch, batches)
    }

    fn commit(&mut self, epoch: u64) -> Result<()> {
        self.dataset()?.commit(epoch)
    }

    fn close(&mut self) -> Result<()> {
        self.stop_timer();
        self.dataset()?.close()
    }
}

#[cfg(test)]
mod tests;
