//! The checkpoint directory: a write-ahead log of micro-batches, laid out like Spark's.
//!
//! ```text
//! <dir>/metadata          {"id":"<query uuid>","name":"stats","createdMs":…}   written once
//! <dir>/offsets/<epoch>   {"epoch":7,"batchTimestampMs":…,"watermarkMs":…,
//!                          "ranges":[{"topic":"events","partition":0,"start":100,"end":250},…]}
//! <dir>/state/<epoch>     one JSON header line {"epoch":7,"watermarkTracker":…,
//!                          "operators":[{"name":"window_aggregate","len":1234},…]}
//!                          followed by the operators' snapshot bytes, concatenated
//! <dir>/commits/<epoch>   {"epoch":7,"committedMs":…}
//! <dir>/lock              held (flock) while a query runs on the directory
//! ```
//!
//! One running query at a time: a second run on the same directory (two `rivulet run`s of
//! one query name in one working directory, say) is refused at open with a clear error
//! instead of both writing the same epochs. The lock goes with the process, also on kill -9.
//!
//! The protocol for epoch `N` (the driver follows it in this order):
//!
//! 1. `offsets/N` — the exact input of the epoch: per topic-partition the half-open offset range
//!    `[start, end)`, the watermark the epoch runs against, and the batch timestamp used as
//!    "now" for processing-time decisions (idle partitions). Written and fsynced **before** any
//!    output of the epoch leaves the process.
//! 2. the sinks write the epoch's output (each idempotent per epoch).
//! 3. `state/N` — operator snapshots and the watermark tracker after the epoch.
//! 4. `commits/N` — the marker that epoch `N` is done; written last.
//!
//! On start, the latest `commits/N` gives the state to restore (`state/N`) and the next input
//! offsets (the `end`s of `offsets/N`). An `offsets/M` without `commits/M` ([`Checkpoint::pending`])
//! is an epoch that may have written part of its output: it is re-run with exactly its recorded
//! ranges, watermark and batch timestamp, which reproduces the same output, and the idempotent
//! sinks make the replay invisible.
//!
//! Every file is written atomically: a temporary file in the same directory, fsync, rename over
//! the final name, fsync of the directory. Only the last [`Checkpoint::retain`] committed epochs
//! are kept.

use std::fs;
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::RuntimeError;
use crate::Result;

/// Default number of committed epochs kept.
pub const DEFAULT_RETAIN: usize = 100;

/// `metadata`: identity of the query across restarts (Spark's `id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    pub id: String,
    pub name: String,
    pub created_ms: i64,
}

/// One topic-partition's input in an epoch: offsets `start..end`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OffsetRange {
    pub topic: String,
    pub partition: i32,
    pub start: i64,
    pub end: i64,
}

/// `offsets/<epoch>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EpochOffsets {
    pub epoch: u64,
    /// "Now" for this epoch's processing-time decisions; a replay uses the same value.
    pub batch_timestamp_ms: i64,
    /// Watermark in force while the epoch runs (rows older are late), if any yet.
    pub watermark_ms: Option<i64>,
    pub ranges: Vec<OffsetRange>,
}

impl EpochOffsets {
    /// Total records the ranges span (an upper bound when the log has gaps).
    pub fn num_offsets(&self) -> u64 {
        self.ranges
            .iter()
            .map(|r| u64::try_from(r.end - r.start).unwrap_or(0))
            .sum()
    }
}

/// The operators' state and the watermark tracker after an epoch (`state/<epoch>`).
#[derive(Debug, Clone, PartialEq)]
pub struct EpochState {
    pub epoch: u64,
    /// The watermark tracker, serialised by serde.
    pub watermark_tracker: serde_json::Value,
    /// `(operator name, snapshot bytes)` in pipeline order.
    pub operators: Vec<(String, Vec<u8>)>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StateHeader {
    epoch: u64,
    watermark_tracker: serde_json::Value,
    operators: Vec<BlobHeader>,
}

#[derive(Serialize, Deserialize)]
struct BlobHeader {
    name: String,
    len: u64,
}

/// `commits/<epoch>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommitRecord {
    pub epoch: u64,
    pub committed_ms: i64,
}

/// A checkpoint directory.
#[derive(Debug)]
pub struct Checkpoint {
    dir: PathBuf,
    retain: usize,
    metadata: Metadata,
    /// Holds the directory's lock while open.
    _lock: fs::File,
}

const OFFSETS: &str = "offsets";
const STATE: &str = "state";
const COMMITS: &str = "commits";

impl Checkpoint {
    /// Opens (creating when absent) the checkpoint directory of query `name`.
    pub fn open(dir: impl Into<PathBuf>, name: &str) -> Result<Checkpoint> {
        let dir = dir.into();
        for sub in [OFFSETS, STATE, COMMITS] {
            let p = dir.join(sub);
            fs::create_dir_all(&p).map_err(|e| RuntimeError::io("creating", &p, e))?;
        }
        let lock_path = dir.join("lock");
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| RuntimeError::io("opening", &lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(RuntimeError::Checkpoint(format!(
                    "{} is in use by another running query (it holds {}); give this run its \
                     own checkpoint directory or query name",
                    dir.display(),
                    lock_path.display()
                )))
            }
            Err(fs::TryLockError::Error(e)) => {
                return Err(RuntimeError::io("locking", &lock_path, e))
            }
        }
        let meta_path = dir.join("metadata");
        let metadata = if meta_path.exists() {
            let text =
                fs::read(&meta_path).map_err(|e| RuntimeError::io("reading", &meta_path, e))?;
            serde_json::from_slice(&text)
                .map_err(|e| RuntimeError::Checkpoint(format!("{}: {e}", meta_path.display())))?
        } else {
            let m = Metadata {
                id: uuid::Uuid::new_v4().to_string(),
                name: name.to_string(),
                created_ms: now_ms(),
            };
            write_atomic(&meta_path, &serde_json::to_vec(&m)?)?;
            m
        };
        Ok(Checkpoint {
            dir,
            retain: DEFAULT_RETAIN,
            metadata,
            _lock: lock,
        })
    }

    /// Keeps only the last `n` (at least 1) committed epochs when purging.
    pub fn with_retain(mut self, n: usize) -> Checkpoint {
        self.retain = n.max(1);
        self
    }

    pub fn retain(&self) -> usize {
        self.retain
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    fn path(&self, sub: &str, epoch: u64) -> PathBuf {
        self.dir.join(sub).join(epoch.to_string())
    }

    /// Writes `offsets/<epoch>` (durably, before the epoch's output).
    pub fn write_offsets(&self, offsets: &EpochOffsets) -> Result<()> {
        write_atomic(
            &self.path(OFFSETS, offsets.epoch),
            &serde_json::to_vec(offsets)?,
        )
    }

    pub fn read_offsets(&self, epoch: u64) -> Result<EpochOffsets> {
        let p = self.path(OFFSETS, epoch);
        let bytes = fs::read(&p).map_err(|e| RuntimeError::io("reading", &p, e))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| RuntimeError::Checkpoint(format!("{}: {e}", p.display())))
    }

    /// Writes `state/<epoch>`.
    pub fn write_state(&self, state: &EpochState) -> Result<()> {
        let header = StateHeader {
            epoch: state.epoch,
            watermark_tracker: state.watermark_tracker.clone(),
            operators: state
                .operators
                .iter()
                .map(|(name, b)| BlobHeader {
                    name: name.clone(),
                    len: b.len() as u64,
                })
                .collect(),
        };
        let mut buf = serde_json::to_vec(&header)?;
        buf.push(b'\n');
        for (_, b) in &state.operators {
            buf.extend_from_slice(b);
        }
        write_atomic(&self.path(STATE, state.epoch), &buf)
    }

    pub fn read_state(&self, epoch: u64) -> Result<EpochState> {
        let p = self.path(STATE, epoch);
        let corrupt = |what: String| RuntimeError::Checkpoint(format!("{}: {what}", p.display()));
        let f = fs::File::open(&p).map_err(|e| RuntimeError::io("opening", &p, e))?;
        let mut r = std::io::BufReader::new(f);
        let mut line = Vec::new();
        r.read_until(b'\n', &mut line)
            .map_err(|e| RuntimeError::io("reading", &p, e))?;
        let header: StateHeader =
            serde_json::from_slice(&line).map_err(|e| corrupt(e.to_string()))?;
        let mut operators = Vec::with_capacity(header.operators.len());
        for b in header.operators {
            let len = usize::try_from(b.len).map_err(|e| corrupt(e.to_string()))?;
            let mut blob = vec![0u8; len];
            r.read_exact(&mut blob)
                .map_err(|e| corrupt(format!("operator `{}` snapshot: {e}", b.name)))?;
            operators.push((b.name, blob));
        }
        Ok(EpochState {
            epoch: header.epoch,
            watermark_tracker: header.watermark_tracker,
            operators,
        })
    }

    /// Writes the `commits/<epoch>` marker, then purges epochs beyond the retention.
    pub fn write_commit(&self, epoch: u64) -> Result<()> {
        let c = CommitRecord {
            epoch,
            committed_ms: now_ms(),
        };
        write_atomic(&self.path(COMMITS, epoch), &serde_json::to_vec(&c)?)?;
        self.purge()
    }

    fn epochs(&self, sub: &str) -> Result<Vec<u64>> {
        let d = self.dir.join(sub);
        let rd = fs::read_dir(&d).map_err(|e| RuntimeError::io("listing", &d, e))?;
        let mut v = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| RuntimeError::io("listing", &d, e))?;
            // Temporary files (`.N.tmp`) and anything else non-numeric are ignored.
            if let Some(n) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u64>().ok())
            {
                v.push(n);
            }
        }
        v.sort_unstable();
        Ok(v)
    }

    /// The latest committed epoch.
    pub fn latest_committed(&self) -> Result<Option<u64>> {
        Ok(self.epochs(COMMITS)?.last().copied())
    }

    /// The latest epoch with an offsets file.
    pub fn latest_offsets(&self) -> Result<Option<u64>> {
        Ok(self.epochs(OFFSETS)?.last().copied())
    }

    /// The epoch whose offsets were written but which has no commit marker: it must be re-run
    /// with exactly those ranges before anything else.
    pub fn pending(&self) -> Result<Option<EpochOffsets>> {
        let committed = self.latest_committed()?;
        match self.latest_offsets()? {
            Some(e) if committed.is_none_or(|c| e > c) => {
                if let Some(c) = committed {
                    if e != c + 1 {
                        return Err(RuntimeError::Checkpoint(format!(
                            "offsets/{e} follows commits/{c}: epochs in between are missing"
                        )));
                    }
                } else if e != 0 {
                    return Err(RuntimeError::Checkpoint(format!(
                        "offsets/{e} without any committed epoch before it"
                    )));
                }
                Ok(Some(self.read_offsets(e)?))
            }
            _ => Ok(None),
        }
    }

    /// Deletes epochs older than the last `retain` committed ones (offsets, state and commits).
    pub fn purge(&self) -> Result<()> {
        let Some(latest) = self.latest_committed()? else {
            return Ok(());
        };
        let keep_from = latest.saturating_sub(self.retain as u64 - 1);
        for sub in [OFFSETS, STATE, COMMITS] {
            for e in self.epochs(sub)? {
                if e >= keep_from {
                    break;
                }
                let p = self.path(sub, e);
                match fs::remove_file(&p) {
                    Ok(()) => {}
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                    Err(err) => return Err(RuntimeError::io("removing", &p, err)),
                }
            }
        }
        Ok(())
    }
}

pub use rivulet_time::now_ms;

/// Writes `bytes` to `path` atomically and durably: temporary file in the same directory,
/// fsync, rename over `path`, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| RuntimeError::Checkpoint(format!("{} has no parent", path.display())))?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| RuntimeError::Checkpoint(format!("{} has no file name", path.display())))?;
    let tmp = dir.join(format!(".{name}.tmp"));
    {
        let mut f = fs::File::create(&tmp).map_err(|e| RuntimeError::io("creating", &tmp, e))?;
        f.write_all(bytes)
            .map_err(|e| RuntimeError::io("writing", &tmp, e))?;
        f.sync_all()
            .map_err(|e| RuntimeError::io("fsyncing", &tmp, e))?;
    }
    fs::rename(&tmp, path).map_err(|e| RuntimeError::io("renaming to", path, e))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let d = fs::File::open(dir).map_err(|e| RuntimeError::io("opening", dir, e))?;
        d.sync_all()
            .map_err(|e| RuntimeError::io("fsyncing", dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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

    #[test]
    fn metadata_is_stable_across_opens() {
        let d = tempfile::tempdir().unwrap();
        let a = Checkpoint::open(d.path(), "q").unwrap().metadata().clone();
        let b = Checkpoint::open(d.path(), "q").unwrap();
        assert_eq!(&a, b.metadata());
        assert!(d.path().join("metadata").is_file());
    }

    /// Regression (issue 11): two runs on one checkpoint directory would write the same
    /// epochs; the second is refused while the first holds the directory.
    #[test]
    fn one_open_at_a_time() {
        let d = tempfile::tempdir().unwrap();
        let a = Checkpoint::open(d.path(), "q").unwrap();
        let e = Checkpoint::open(d.path(), "q").unwrap_err().to_string();
        assert!(e.contains("in use by another running query"), "{e}");
        drop(a);
        Checkpoint::open(d.path(), "q").unwrap();
    }

    #[test]
    fn pending_epoch_detection() {
        let d = tempfile::tempdir().unwrap();
        let c = Checkpoint::open(d.path(), "q").unwrap();
        assert_eq!(c.pending().unwrap(), None);
        assert_eq!(c.latest_committed().unwrap(), None);
        c.write_offsets(&offsets(0, 0, 10)).unwrap();
        assert_eq!(c.pending().unwrap(), Some(offsets(0, 0, 10)));
        c.write_commit(0).unwrap();
        assert_eq!(c.pending().unwrap(), None);
        assert_eq!(c.latest_committed().unwrap(), Some(0));
        c.write_offsets(&offsets(1, 10, 20)).unwrap();
        // A crash after the state but before the commit still leaves the epoch pending.
        c.write_state(&EpochState {
            epoch: 1,
            watermark_tracker: serde_json::Value::Null,
            operators: vec![],
        })
        .unwrap();
        assert_eq!(c.pending().unwrap(), Some(offsets(1, 10, 20)));
        // A gap is corruption, not silently skipped.
        c.write_offsets(&offsets(3, 30, 40)).unwrap();
        assert!(c.pending().is_err());
    }

    #[test]
    fn state_roundtrip_with_binary_blobs() {
        let d = tempfile::tempdir().unwrap();
        let c = Checkpoint::open(d.path(), "q").unwrap();
        let s = EpochState {
            epoch: 4,
            watermark_tracker: serde_json::json!({"partitions": {"0": 12}}),
            operators: vec![
                ("filter".into(), vec![]),
                ("window".into(), vec![0, 10, 13, 255, b'\n', 0]),
            ],
        };
        c.write_state(&s).unwrap();
        assert_eq!(c.read_state(4).unwrap(), s);
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

    #[test]
    fn retention_keeps_last_n() {
        let d = tempfile::tempdir().unwrap();
        let c = Checkpoint::open(d.path(), "q").unwrap().with_retain(2);
        for e in 0..5 {
            c.write_offsets(&offsets(e, e as i64 * 10, e as i64 * 10 + 10))
                .unwrap();
            c.write_state(&EpochState {
                epoch: e,
                watermark_tracker: serde_json::Value::Null,
                operators: vec![],
            })
            .unwrap();
            c.write_commit(e).unwrap();
        }
        assert_eq!(c.epochs(OFFSETS).unwrap(), vec![3, 4]);
        assert_eq!(c.epochs(STATE).unwrap(), vec![3, 4]);
        assert_eq!(c.epochs(COMMITS).unwrap(), vec![3, 4]);
        assert_eq!(c.read_offsets(4).unwrap().ranges[0].end, 50);
    }
}
