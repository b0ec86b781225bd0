//! Sparse offset and time indexes of one segment.
//!
//! Both are kept entirely in memory (they are sparse: one entry per `index.interval.bytes`, so a
//! 1 GiB segment holds at most ~260k entries) and appended to their files in Kafka's layout:
//! `.index` = (relative offset u32, position u32), `.timeindex` = (timestamp i64, relative
//! offset u32), big-endian. New entries are buffered and written at flush points (roll, close,
//! or when the buffer grows), so the hot append path does no index I/O; after a crash the
//! indexes of re-read segments are rebuilt from the log, so a stale index file is never trusted.
//! The file is opened only for those writes and closed after them: flushes are rare, and a
//! descriptor held per index would multiply the broker's open files by three (see
//! `filepool.rs`).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{LogError, Result};

/// One fixed-size index entry.
pub(crate) trait IndexEntry: Copy + std::fmt::Debug {
    const SIZE: usize;
    fn encode(&self, out: &mut Vec<u8>);
    fn decode(b: &[u8]) -> Self;
}

/// Offset index entry: batch base offset relative to the segment, and its file position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub rel_offset: u32,
    pub position: u32,
}

/// Time index entry: the segment's max timestamp so far and the relative offset of the batch
/// where that maximum first appeared (every earlier batch has a smaller max timestamp).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub timestamp: i64,
    pub rel_offset: u32,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(a)
}

impl IndexEntry for OffsetEntry {
    const SIZE: usize = 8;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.rel_offset.to_be_bytes());
        out.extend_from_slice(&self.position.to_be_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        OffsetEntry {
            rel_offset: u32_at(b, 0),
            position: u32_at(b, 4),
        }
    }
}

impl IndexEntry for TimeEntry {
    const SIZE: usize = 12;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.rel_offset.to_be_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[..8]);
        TimeEntry {
            timestamp: i64::from_be_bytes(a),
            rel_offset: u32_at(b, 8),
        }
    }
}

/// Pending entries are written once this many are buffered, bounding memory between rolls
/// without adding a syscall per append.
const FLUSH_EVERY: usize = 512;

/// An in-memory sparse index mirrored to an append-only file.
#[derive(Debug)]
pub(crate) struct SparseIndex<E: IndexEntry> {
    path: PathBuf,
    entries: Vec<E>,
    /// Entries `[..persisted]` are already in the file.
    persisted: usize,
    /// Written since the last fsync.
    unsynced: bool,
    /// A write failed part-way: the file content is unknown, rewrite it whole next time.
    rewrite: bool,
}

impl<E: IndexEntry> SparseIndex<E> {
    /// A new, empty index. The file is not touched until the first write, which truncates it,
    /// so stale entries cannot survive (and an empty segment costs no index files: thousands of
    /// new partitions are thousands of inodes fewer).
    pub fn create(path: &Path) -> Result<Self> {
        Ok(SparseIndex {
            path: path.to_path_buf(),
            entries: Vec::new(),
            persisted: 0,
            unsynced: false,
            rewrite: true,
        })
    }

    /// Reads the file's entries; `None` if missing or not a whole number of entries (the caller
    /// then rebuilds). Semantic checks are up to the caller.
    pub fn load(path: &Path) -> Result<Option<Self>> {
        let mut raw = Vec::new();
        match File::open(path) {
            Ok(mut f) => {
                f.read_to_end(&mut raw).map_err(|e| LogError::io(path, e))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(LogError::io(path, e)),
        }
        if raw.len() % E::SIZE != 0 {
            return Ok(None);
        }
        let entries: Vec<E> = raw.chunks_exact(E::SIZE).map(E::decode).collect();
        Ok(Some(SparseIndex {
            path: path.to_path_buf(),
            persisted: entries.len(),
            entries,
            unsynced: false,
            rewrite: false,
        }))
    }

    pub fn entries(&self) -> &[E] {
        &self.entries
    }

    pub fn last(&self) -> Option<E> {
        self.entries.last().copied()
    }

    pub fn push(&mut self, e: E) {
        self.entries.push(e);
    }

    /// Whether enough entries are pending that they should be written out.
    pub fn wants_flush(&self) -> bool {
        self.entries.len() - self.persisted >= FLUSH_EVERY
    }

    /// Writes pending entries to the file (no fsync).
    pub fn flush(&mut self) -> Result<()> {
        self.write_pending(false)
    }

    /// Flushes pending entries and fsyncs the file.
    pub fn sync(&mut self) -> Result<()> {
        self.write_pending(true)
    }

    fn write_pending(&mut self, fsync: bool) -> Result<()> {
        let pending = self.rewrite || self.persisted < self.entries.len();
        if !(pending || fsync && self.unsynced) {
            return Ok(());
        }
        let from = if self.rewrite { 0 } else { self.persisted };
        let mut buf = Vec::with_capacity((self.entries.len() - from) * E::SIZE);
        for e in &self.entries[from..] {
            e.encode(&mut buf);
        }
        let path = &self.path;
        let mut opts = OpenOptions::new();
        opts.create(true);
        if self.rewrite {
            opts.write(true).truncate(true);
        } else {
            opts.append(true);
        }
        let written = opts.open(path).and_then(|mut f| {
            f.write_all(&buf)?;
            if fsync {
                f.sync_data()?;
            }
            Ok(())
        });
        if let Err(e) = written {
            self.rewrite = true;
            return Err(LogError::io(path, e));
        }
        self.rewrite = false;
        self.unsynced = !fsync;
        self.persisted = self.entries.len();
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Index of the last entry for which `le(entry)` holds, assuming `le` is monotone
    /// (true for a prefix of the entries).
    pub fn last_matching(&self, le: impl Fn(&E) -> bool) -> Option<E> {
        let n = self.entries.partition_point(le);
        n.checked_sub(1).map(|i| self.entries[i])
    }

    /// The first entry for which `le` is false (the entry after [`Self::last_matching`]).
    pub fn first_not_matching(&self, le: impl Fn(&E) -> bool) -> Option<E> {
        let n = self.entries.partition_point(le);
        self.entries.get(n).copied()
    }
}

/// Offset index of a segment.
pub(crate) type OffsetIndex = SparseIndex<OffsetEntry>;
/// Time index of a segment.
pub(crate) type TimeIndex = SparseIndex<TimeEntry>;

impl OffsetIndex {
    /// Entries strictly increasing in both fields and positions inside the log file.
    pub fn is_consistent(&self, log_size: u64) -> bool {
        self.entries
            .windows(2)
            .all(|w| w[0].rel_offset < w[1].rel_offset && w[0].position < w[1].position)
            && self
                .entries
                .last()
                .is_none_or(|e| u64::from(e.position) < log_size)
    }
}

impl TimeIndex {
    /// Timestamps strictly increasing, offsets non-decreasing and not past `max_rel_offset`.
    pub fn is_consistent(&self, max_rel_offset: u32) -> bool {
        self.entries
            .windows(2)
            .all(|w| w[0].timestamp < w[1].timestamp && w[0].rel_offset <= w[1].rel_offset)
            && self
                .entries
                .last()
                .is_none_or(|e| e.rel_offset <= max_rel_offset)
    }
}
