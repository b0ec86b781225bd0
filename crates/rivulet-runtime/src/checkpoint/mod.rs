//! The checkpoint: a write-ahead log of micro-batches, laid out like Spark's. It lives in a
//! directory ([`DirStore`], the default) or in a compacted Kafka topic ([`KafkaStore`],
//! `checkpoint.store = "kafka"`: the same entries as records, see its docs); the protocol
//! below is [`Checkpoint`]'s, the same over both ([`CheckpointStore`]). In a directory:
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
//! In Kafka a second process *takes over* instead (the first may be on a machine that died):
//! it fences the first through the query's transactional id.
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
//! Every entry is written atomically: in a directory a temporary file, fsync, rename over the
//! final name, fsync of the directory; in Kafka one transaction.
//!
//! In Kafka the epoch is one transaction (Kafka Streams' exactly_once_v2): from `offsets/N`
//! (or, when a sink needs re-runs to read the same input, from just after it) to `commits/N`,
//! together with the output of the task's Kafka writers on the same cluster
//! ([`crate::producer`], [`CheckpointStore::begin_epoch`]). An epoch that did not commit then
//! left nothing anywhere, and with `offsets/N` inside it there is no pending epoch to re-run:
//! the next owner resumes after `commits/N-1`. Only the last [`Checkpoint::retain`] committed epochs
//! are kept.

use std::fs;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::RuntimeError;
use crate::Result;

mod dir;
pub mod kafka;

pub use dir::DirStore;
pub use kafka::KafkaStore;

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

/// Where a checkpoint's entries live: a directory ([`DirStore`], the default) or a compacted
/// Kafka topic ([`KafkaStore`], `checkpoint.store = "kafka"`). Entries are named like the
/// directory's files (`metadata`, `offsets/<epoch>`, `state/<epoch>`, `commits/<epoch>`);
/// [`Checkpoint`] holds the protocol, written once for both.
///
/// Every `put` is atomic and durable when it returns: a reader after a crash sees the whole
/// value or the one before, never a part.
pub trait CheckpointStore: Send + std::fmt::Debug {
    /// The value of `key`, if present.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    fn put(&self, key: &str, value: &[u8]) -> Result<()>;
    /// Removes the keys (absent ones are no error).
    fn delete(&self, keys: &[String]) -> Result<()>;
    /// The names present under `prefix/` (without the prefix), in no particular order.
    fn list(&self, prefix: &str) -> Result<Vec<String>>;
    /// Where the entries are, for messages (`checkpoints/q`, `kafka topic q-changelog`).
    fn location(&self) -> String;

    /// Opens the epoch's transaction: the puts and deletes until [`CheckpointStore::commit_epoch`],
    /// and the writes of the Kafka writers that joined the store's producer
    /// ([`CheckpointStore::producer`]), become visible together or not at all. False (and
    /// nothing changes: every put stays atomic on its own) for a store without transactions.
    fn begin_epoch(&self) -> Result<bool> {
        Ok(false)
    }

    /// Commits the epoch's transaction (nothing when none is open).
    fn commit_epoch(&self) -> Result<()> {
        Ok(())
    }

    /// The producer whose transactions the store writes in, for the task's Kafka writers to
    /// join ([`crate::producer`]).
    fn producer(&self) -> Option<std::sync::Arc<crate::producer::TaskProducer>> {
        None
    }
}

/// A query's checkpoint: the epoch protocol of the module docs over a [`CheckpointStore`].
#[derive(Debug)]
pub struct Checkpoint {
    store: Box<dyn CheckpointStore>,
    retain: usize,
    metadata: Metadata,
}

const OFFSETS: &str = "offsets";
const STATE: &str = "state";
const COMMITS: &str = "commits";
const METADATA: &str = "metadata";

impl Checkpoint {
    /// Opens (creating when absent) the checkpoint directory of query `name`.
    pub fn open(dir: impl Into<PathBuf>, name: &str) -> Result<Checkpoint> {
        Checkpoint::with_store(Box::new(DirStore::open(dir)?), name)
    }

    /// Opens the checkpoint of query `name` in `store`, writing its metadata when absent.
    pub fn with_store(store: Box<dyn CheckpointStore>, name: &str) -> Result<Checkpoint> {
        let metadata = match store.get(METADATA)? {
            Some(text) => serde_json::from_slice(&text).map_err(|e| {
                RuntimeError::Checkpoint(format!("{} metadata: {e}", store.location()))
            })?,
            None => {
                let m = Metadata {
                    id: uuid::Uuid::new_v4().to_string(),
                    name: name.to_string(),
                    created_ms: now_ms(),
                };
                store.put(METADATA, &serde_json::to_vec(&m)?)?;
                m
            }
        };
        Ok(Checkpoint {
            store,
            retain: DEFAULT_RETAIN,
            metadata,
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

    /// Where the checkpoint lives, for messages.
    pub fn location(&self) -> String {
        self.store.location()
    }

    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// See [`CheckpointStore::begin_epoch`]: whether the writes until
    /// [`Checkpoint::commit_epoch`] now share one transaction.
    pub fn begin_epoch(&self) -> Result<bool> {
        self.store.begin_epoch()
    }

    /// See [`CheckpointStore::commit_epoch`].
    pub fn commit_epoch(&self) -> Result<()> {
        self.store.commit_epoch()
    }

    /// See [`CheckpointStore::producer`].
    pub fn producer(&self) -> Option<std::sync::Arc<crate::producer::TaskProducer>> {
        self.store.producer()
    }

    fn key(sub: &str, epoch: u64) -> String {
        format!("{sub}/{epoch}")
    }

    fn read(&self, sub: &str, epoch: u64) -> Result<Vec<u8>> {
        let key = Checkpoint::key(sub, epoch);
        self.store.get(&key)?.ok_or_else(|| {
            RuntimeError::Checkpoint(format!("{}: {key} is missing", self.store.location()))
        })
    }

    fn corrupt(&self, sub: &str, epoch: u64, what: impl std::fmt::Display) -> RuntimeError {
        RuntimeError::Checkpoint(format!("{}: {sub}/{epoch}: {what}", self.store.location()))
    }

    /// Writes `offsets/<epoch>` (durably, before the epoch's output).
    pub fn write_offsets(&self, offsets: &EpochOffsets) -> Result<()> {
        self.store.put(
            &Checkpoint::key(OFFSETS, offsets.epoch),
            &serde_json::to_vec(offsets)?,
        )
    }

    pub fn read_offsets(&self, epoch: u64) -> Result<EpochOffsets> {
        let bytes = self.read(OFFSETS, epoch)?;
        serde_json::from_slice(&bytes).map_err(|e| self.corrupt(OFFSETS, epoch, e))
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
        self.store.put(&Checkpoint::key(STATE, state.epoch), &buf)
    }

    pub fn read_state(&self, epoch: u64) -> Result<EpochState> {
        let bytes = self.read(STATE, epoch)?;
        let mut r = bytes.as_slice();
        let mut line = Vec::new();
        r.read_until(b'\n', &mut line)
            .map_err(|e| self.corrupt(STATE, epoch, e))?;
        let header: StateHeader =
            serde_json::from_slice(&line).map_err(|e| self.corrupt(STATE, epoch, e))?;
        let mut operators = Vec::with_capacity(header.operators.len());
        for b in header.operators {
            let len = usize::try_from(b.len).map_err(|e| self.corrupt(STATE, epoch, e))?;
            if len > r.len() {
                return Err(self.corrupt(
                    STATE,
                    epoch,
                    format!(
                        "operator `{}` snapshot: {len} bytes, {} left",
                        b.name,
                        r.len()
                    ),
                ));
            }
            let (blob, rest) = r.split_at(len);
            operators.push((b.name, blob.to_vec()));
            r = rest;
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
        self.store
            .put(&Checkpoint::key(COMMITS, epoch), &serde_json::to_vec(&c)?)?;
        self.purge()
    }

    fn epochs(&self, sub: &str) -> Result<Vec<u64>> {
        // Temporary files (`.N.tmp`) and anything else non-numeric are ignored.
        let mut v: Vec<u64> = self
            .store
            .list(sub)?
            .iter()
            .filter_map(|s| s.parse::<u64>().ok())
            .collect();
        v.sort_unstable();
        Ok(v)
    }

    /// The latest committed epoch.
    pub fn latest_committed(&self) -> Result<Option<u64>> {
        Ok(self.epochs(COMMITS)?.last().copied())
    }

    /// The latest epoch with an offsets entry.
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
        let mut old = Vec::new();
        for sub in [OFFSETS, STATE, COMMITS] {
            old.extend(
                self.epochs(sub)?
                    .into_iter()
                    .take_while(|&e| e < keep_from)
                    .map(|e| Checkpoint::key(sub, e)),
            );
        }
        if old.is_empty() {
            return Ok(());
        }
        self.store.delete(&old)
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

/// fsyncs directory `dir` (so a rename or removal in it is durable).
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
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
mod tests;
