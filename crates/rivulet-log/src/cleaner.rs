//! Log compaction (`cleanup.policy=compact`), as Kafka's log cleaner does it: the latest record
//! of every key is kept, older ones go; tombstones (a key with a null value) and the markers of
//! ended transactions go once they have been in the cleaned part for `delete.retention.ms`;
//! records of aborted transactions go. Offsets never change (gaps are normal in a compacted
//! log), so a consumer's position stays valid.
//!
//! What is cleaned: whole segments before the active one, below the last stable offset (an
//! open transaction's records are not decided yet) and older than `min.compaction.lag.ms`. A
//! pass runs when the part cleaned by no pass yet is at least `min.cleanable.dirty.ratio` of
//! that, or when its oldest record is older than `max.compaction.lag.ms`.
//!
//! A pass has three steps, so that the partition's lock is held only for the quick ones:
//! 1. [`PartitionLog::clean_plan`](crate::PartitionLog::clean_plan) (locked): which segments,
//!    what is aborted, which tombstones are past their horizon.
//! 2. [`execute`] (not locked: the segments it reads are immutable): a map of every key's
//!    latest offset (128 bits of two keyed SipHashes per key, so a collision is out of reach
//!    even for a client choosing keys), then each group of consecutive segments (at most
//!    `segment.bytes` together) rewritten into one new segment under `<partition>/.cleaner/`:
//!    a batch whose records all stay is copied as it is; one that loses some is rebuilt from
//!    its kept records, with its base offset, first timestamp and last offset delta unchanged
//!    (so record deltas stay valid and a producer's last sequence is kept), the same codec and
//!    a new CRC. Files are fsynced, indexes built.
//! 3. [`PartitionLog::commit_clean`](crate::PartitionLog::commit_clean) (locked): the swap.
//!    `swap.json` is written in `.cleaner/` first — the commit point — then the new files are
//!    renamed over the old segments and the rest of each group's old segments deleted. A
//!    start that finds `.cleaner/` finishes the swap if `swap.json` is there and discards the
//!    pass otherwise (`recover_swap`), so kill -9 at any moment loses nothing.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::hash::{BuildHasher, RandomState};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::BytesMut;
use kafka_protocol::compression::{Compressor, Gzip, Lz4, Snappy, Zstd};
use serde::{Deserialize, Serialize};

use crate::batch::{compute_crc, control_marker, BatchHeader};
use crate::error::{LogError, Result};
use crate::filepool::FilePool;
use crate::fsutil::{remove_if_exists, sync_dir, write_atomic};
use crate::producer::AbortedTxn;
use crate::records::records_section;
use crate::segment::{segment_file, Segment};

/// Where a pass writes, inside the partition directory.
pub(crate) const CLEANER_DIR: &str = ".cleaner";
/// The commit point of a pass: the groups it replaces.
const SWAP_FILE: &str = "swap.json";
/// What the cleaner remembers of its passes.
pub(crate) const STATE_FILE: &str = "cleaner.json";
/// Distinct keys one pass maps at most (about 40 bytes each): a log with more is cleaned up to
/// where they fit, the rest in the next pass (Kafka's `log.cleaner.dedupe.buffer.size`).
pub const MAX_KEYS_PER_PASS: usize = 4_000_000;

/// The cleaner's memory of a partition (`cleaner.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CleanerState {
    /// Offsets below this were cleaned by some pass (the first dirty offset).
    pub cleaned_up_to: i64,
    /// `(end offset, time)` of passes, oldest first: a tombstone below a pass's end has been in
    /// the cleaned part since that pass's time. Older passes than the horizon needs are dropped.
    pub passes: Vec<(i64, i64)>,
    /// The tombstone horizon the last pass applied: a later horizon is a reason to clean again
    /// (tombstones may have come of age), even with nothing dirty.
    #[serde(default)]
    pub horizon_applied: i64,
}

impl CleanerState {
    pub fn load(dir: &Path) -> CleanerState {
        std::fs::read(dir.join(STATE_FILE))
            .ok()
            .and_then(|raw| serde_json::from_slice(&raw).ok())
            .unwrap_or_default()
    }

    fn store(&self, dir: &Path) -> Result<()> {
        let json = serde_json::to_vec(self).map_err(|e| LogError::Encode(e.to_string()))?;
        write_atomic(&dir.join(STATE_FILE), &json)
    }

    /// Tombstones and markers below this offset have been cleaned for `delete_retention_ms`.
    pub fn removable_below(&self, now_ms: i64, delete_retention_ms: i64) -> i64 {
        let horizon = now_ms.saturating_sub(delete_retention_ms);
        self.passes
            .iter()
            .filter(|(_, t)| *t <= horizon)
            .map(|(end, _)| *end)
            .max()
            .unwrap_or(i64::MIN)
    }

    /// Records a pass that cleaned everything below `end` at `now_ms`, forgetting passes the
    /// horizon no longer needs (all but the newest one older than it).
    fn record(&mut self, end: i64, now_ms: i64, delete_retention_ms: i64, horizon: i64) {
        self.cleaned_up_to = end;
        self.horizon_applied = horizon;
        self.passes.push((end, now_ms));
        let horizon = now_ms.saturating_sub(delete_retention_ms);
        let old = self.passes.iter().filter(|(_, t)| *t <= horizon).count();
        if old > 1 {
            self.passes.drain(..old - 1);
        }
    }
}

/// One segment a pass reads.
#[derive(Debug, Clone)]
pub(crate) struct PlannedSegment {
    pub base: i64,
    pub path: PathBuf,
    /// The next segment's base offset: this one's end.
    pub next_base: i64,
    pub size: u64,
}

/// What one pass cleans, decided under the partition's lock.
#[derive(Debug, Clone)]
pub struct CleanPlan {
    pub(crate) dir: PathBuf,
    pub(crate) pool: Arc<FilePool>,
    pub(crate) segments: Vec<PlannedSegment>,
    /// Offsets from here on are not cleaned.
    pub(crate) end: i64,
    pub(crate) aborted: Vec<AbortedTxn>,
    pub(crate) removable_below: i64,
    pub(crate) segment_bytes: u64,
    pub(crate) index_interval: u32,
    pub(crate) decompressed_limit: u64,
    pub(crate) max_keys: usize,
    pub(crate) delete_retention_ms: i64,
    pub(crate) now_ms: i64,
}

/// A group of consecutive segments replaced by one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Group {
    pub base: i64,
    pub next_base: i64,
}

/// What a pass wrote, to be swapped in by `commit_clean`.
#[derive(Debug)]
pub struct CleanOutput {
    pub(crate) plan: CleanPlan,
    pub(crate) groups: Vec<Group>,
    /// ABORT markers removed, as (producer id, offset): their entries leave the partition's
    /// aborted-transaction list, or a read_committed consumer would skip the producer's later
    /// records waiting for a marker that is gone (Kafka rebuilds the cleaned segment's
    /// transaction index the same way).
    pub(crate) removed_aborts: Vec<(i64, i64)>,
    pub stats: CleanStats,
}

/// Figures of one pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanStats {
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub records_read: u64,
    pub records_removed: u64,
    /// Offsets below this were cleaned.
    pub end: i64,
}

/// One record of a records section: where it is and what the cleaner needs of it.
struct RawRecord {
    start: usize,
    end: usize,
    offset_delta: i64,
    timestamp_delta: i64,
    key: Option<(usize, usize)>,
    tombstone: bool,
}

fn zigzag(data: &[u8], pos: &mut usize) -> Option<i64> {
    let mut v: u64 = 0;
    for i in 0..10 {
        let b = *data.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some(((v >> 1) as i64) ^ -((v & 1) as i64));
        }
    }
    None
}

/// Splits a records section into its records (validated on produce; a stored batch that does
/// not parse is corrupt).
fn split_records(data: &[u8], count: i32) -> Result<Vec<RawRecord>> {
    let corrupt = || LogError::CorruptBatch {
        position: 0,
        reason: "a stored batch's records do not parse".into(),
    };
    let mut out = Vec::with_capacity(count.max(0) as usize);
    let mut pos = 0usize;
    while pos < data.len() {
        let start = pos;
        let len =
            usize::try_from(zigzag(data, &mut pos).ok_or_else(corrupt)?).map_err(|_| corrupt())?;
        let end = pos
            .checked_add(len)
            .filter(|e| *e <= data.len())
            .ok_or_else(corrupt)?;
        let mut p = pos + 1; // attributes
        let timestamp_delta = zigzag(data, &mut p).ok_or_else(corrupt)?;
        let offset_delta = zigzag(data, &mut p).ok_or_else(corrupt)?;
        let key_len = zigzag(data, &mut p).ok_or_else(corrupt)?;
        let key = if key_len < 0 {
            None
        } else {
            let k_end = p + usize::try_from(key_len).map_err(|_| corrupt())?;
            if k_end > end {
                return Err(corrupt());
            }
            let k = (p, k_end);
            p = k_end;
            Some(k)
        };
        let value_len = zigzag(data, &mut p).ok_or_else(corrupt)?;
        out.push(RawRecord {
            start,
            end,
            offset_delta,
            timestamp_delta,
            key,
            tombstone: value_len < 0,
        });
        pos = end;
    }
    Ok(out)
}

/// Reads a segment file batch by batch (header, then the whole batch), holding one batch.
struct BatchReader {
    reader: BufReader<File>,
    path: PathBuf,
    left: u64,
}

impl BatchReader {
    fn open(path: &Path, size: u64) -> Result<BatchReader> {
        let file = File::open(path).map_err(|e| LogError::io(path, e))?;
        Ok(BatchReader {
            reader: BufReader::with_capacity(256 << 10, file),
            path: path.to_path_buf(),
            left: size,
        })
    }

    fn next(&mut self) -> Result<Option<(BatchHeader, Vec<u8>)>> {
        if self.left < BatchHeader::SIZE as u64 {
            return Ok(None);
        }
        let mut head = vec![0u8; BatchHeader::SIZE];
        self.reader
            .read_exact(&mut head)
            .map_err(|e| LogError::io(&self.path, e))?;
        let h = BatchHeader::parse(&head)?;
        let size = h.total_size();
        if size as u64 > self.left || size < BatchHeader::SIZE {
            return Err(LogError::CorruptBatch {
                position: 0,
                reason: format!("batch of {size} bytes in {}", self.path.display()),
            });
        }
        head.resize(size, 0);
        self.reader
            .read_exact(&mut head[BatchHeader::SIZE..])
            .map_err(|e| LogError::io(&self.path, e))?;
        self.left -= size as u64;
        Ok(Some((h, head)))
    }
}

/// 128 bits of a key: two SipHashes with random keys chosen per pass.
struct KeyHasher(RandomState, RandomState);

impl KeyHasher {
    fn hash(&self, key: &[u8]) -> u128 {
        (u128::from(self.0.hash_one(key)) << 64) | u128::from(self.1.hash_one(key))
    }
}

fn in_aborted(aborted: &[AbortedTxn], h: &BatchHeader) -> bool {
    h.is_transactional()
        && aborted.iter().any(|a| {
            a.producer_id == h.producer_id
                && a.first_offset <= h.base_offset
                && h.base_offset <= a.last_offset
        })
}

/// Step 2 of a pass (see the module docs): maps keys, writes the groups under `.cleaner/`.
pub fn execute(mut plan: CleanPlan, stop: &dyn Fn() -> bool) -> Result<CleanOutput> {
    let mut stats = CleanStats::default();
    let hasher = KeyHasher(RandomState::new(), RandomState::new());
    // Key -> latest offset, over the whole range (a key's latest version may be in any part).
    let mut latest: HashMap<u128, i64> = HashMap::new();
    let mut mapped = 0;
    for seg in &plan.segments {
        if latest.len() > plan.max_keys {
            break;
        }
        let mut reader = BatchReader::open(&seg.path, seg.size)?;
        while let Some((h, batch)) = reader.next()? {
            if stop() {
                return Err(LogError::ShuttingDown);
            }
            if h.is_control() || in_aborted(&plan.aborted, &h) {
                continue;
            }
            let data = records_section(&batch, &h, plan.decompressed_limit)?;
            for r in split_records(&data, h.record_count)? {
                if let Some((a, b)) = r.key {
                    latest.insert(hasher.hash(&data[a..b]), h.base_offset + r.offset_delta);
                }
            }
        }
        mapped += 1;
    }
    if mapped < plan.segments.len() {
        // More keys than one pass holds: clean up to here, the rest next time.
        plan.segments.truncate(mapped);
        plan.end = plan.segments.last().map_or(plan.end, |s| s.next_base);
    }
    stats.end = plan.end;

    let out_dir = plan.dir.join(CLEANER_DIR);
    if out_dir.exists() {
        std::fs::remove_dir_all(&out_dir).map_err(|e| LogError::io(&out_dir, e))?;
    }
    std::fs::create_dir_all(&out_dir).map_err(|e| LogError::io(&out_dir, e))?;

    // Consecutive segments, together at most segment.bytes (and an offset range a u32 index
    // can address), become one.
    let mut groups: Vec<(usize, usize)> = Vec::new();
    for (i, seg) in plan.segments.iter().enumerate() {
        match groups.last_mut() {
            Some((first, last))
                if plan.segments[*first..=*last]
                    .iter()
                    .map(|s| s.size)
                    .sum::<u64>()
                    + seg.size
                    <= plan.segment_bytes
                    && seg.next_base - plan.segments[*first].base < i64::from(u32::MAX) =>
            {
                *last = i;
            }
            _ => groups.push((i, i)),
        }
    }

    // Producers whose current transaction kept a record: its COMMIT marker must stay.
    let mut txn_kept: HashSet<i64> = HashSet::new();
    let mut removed_aborts = Vec::new();
    let mut out_groups = Vec::with_capacity(groups.len());
    for (first, last) in groups {
        let base = plan.segments[first].base;
        let path = segment_file(&out_dir, base, "log");
        let file = File::create(&path).map_err(|e| LogError::io(&path, e))?;
        let mut w = BufWriter::with_capacity(256 << 10, file);
        for seg in &plan.segments[first..=last] {
            stats.bytes_read += seg.size;
            let mut reader = BatchReader::open(&seg.path, seg.size)?;
            while let Some((h, batch)) = reader.next()? {
                if stop() {
                    return Err(LogError::ShuttingDown);
                }
                let abort = h.is_control() && control_marker(&batch) == Some(false);
                let kept = clean_batch(
                    &plan,
                    &hasher,
                    &latest,
                    &mut txn_kept,
                    &h,
                    batch,
                    &mut stats,
                )?;
                if abort && kept.is_none() {
                    removed_aborts.push((h.producer_id, h.base_offset));
                }
                if let Some(bytes) = kept {
                    stats.bytes_written += bytes.len() as u64;
                    w.write_all(&bytes).map_err(|e| LogError::io(&path, e))?;
                }
            }
        }
        let file = w
            .into_inner()
            .map_err(|e| LogError::io(&path, e.into_error()))?;
        file.sync_all().map_err(|e| LogError::io(&path, e))?;
        drop(file);
        // Indexes from the new file (checks every batch's CRC again), fsynced.
        let (seg, truncated) = Segment::recover(&plan.pool, &out_dir, base, plan.index_interval)?;
        if truncated {
            return Err(LogError::CorruptBatch {
                position: 0,
                reason: format!("the cleaner wrote an invalid segment {}", path.display()),
            });
        }
        drop(seg);
        out_groups.push(Group {
            base,
            next_base: plan.segments[last].next_base,
        });
    }
    sync_dir(&out_dir)?;
    Ok(CleanOutput {
        plan,
        groups: out_groups,
        removed_aborts,
        stats,
    })
}

/// What stays of one batch: `None` when nothing does.
fn clean_batch(
    plan: &CleanPlan,
    hasher: &KeyHasher,
    latest: &HashMap<u128, i64>,
    txn_kept: &mut HashSet<i64>,
    h: &BatchHeader,
    batch: Vec<u8>,
    stats: &mut CleanStats,
) -> Result<Option<Vec<u8>>> {
    if h.is_control() {
        stats.records_read += 1;
        let kept_data = txn_kept.remove(&h.producer_id);
        // A marker goes once its transaction left nothing (an ABORT's records always go) and
        // it has been cleaned for delete.retention.ms.
        let commit = control_marker(&batch) == Some(true);
        let removable = (!commit || !kept_data) && h.base_offset < plan.removable_below;
        if removable {
            stats.records_removed += 1;
            return Ok(None);
        }
        return Ok(Some(batch));
    }
    stats.records_read += h.record_count.max(0) as u64;
    if in_aborted(&plan.aborted, h) {
        stats.records_removed += h.record_count.max(0) as u64;
        return Ok(None);
    }
    let data = records_section(&batch, h, plan.decompressed_limit)?;
    let records = split_records(&data, h.record_count)?;
    let keep: Vec<&RawRecord> = records
        .iter()
        .filter(|r| {
            let offset = h.base_offset + r.offset_delta;
            let Some((a, b)) = r.key else {
                // A record without a key cannot be compacted (the topic was not always
                // compacted): Kafka drops it.
                return false;
            };
            if latest.get(&hasher.hash(&data[a..b])) != Some(&offset) {
                return false;
            }
            !(r.tombstone && offset < plan.removable_below)
        })
        .collect();
    stats.records_removed += (records.len() - keep.len()) as u64;
    if keep.is_empty() {
        return Ok(None);
    }
    if h.is_transactional() {
        txn_kept.insert(h.producer_id);
    }
    if keep.len() == records.len() {
        return Ok(Some(batch));
    }
    let mut section = Vec::with_capacity(keep.iter().map(|r| r.end - r.start).sum());
    for r in &keep {
        section.extend_from_slice(&data[r.start..r.end]);
    }
    let payload = compress(h.compression(), section)?;
    let max_ts = keep
        .iter()
        .map(|r| h.base_timestamp.saturating_add(r.timestamp_delta))
        .max()
        .unwrap_or(h.max_timestamp);
    let mut out = Vec::with_capacity(BatchHeader::SIZE + payload.len());
    out.extend_from_slice(&batch[..BatchHeader::SIZE]);
    out.extend_from_slice(&payload);
    let length = (out.len() - BatchHeader::LOG_OVERHEAD) as i32;
    out[8..12].copy_from_slice(&length.to_be_bytes());
    if !h.is_log_append_time() {
        let t = BatchHeader::MAX_TIMESTAMP_OFFSET;
        out[t..t + 8].copy_from_slice(&max_ts.to_be_bytes());
    }
    out[BatchHeader::SIZE - 4..BatchHeader::SIZE]
        .copy_from_slice(&(keep.len() as i32).to_be_bytes());
    let crc = compute_crc(&out);
    let c = BatchHeader::CRC_OFFSET;
    out[c..c + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(Some(out))
}

/// Compresses a records section with the batch's codec (`kafka-protocol`'s codecs: what
/// clients decompress).
fn compress(codec: u8, section: Vec<u8>) -> Result<Vec<u8>> {
    fn with<C: Compressor<BytesMut, BufMut = BytesMut>>(section: &[u8]) -> Result<Vec<u8>> {
        let mut out = BytesMut::new();
        C::compress(&mut out, |b: &mut BytesMut| {
            b.extend_from_slice(section);
            Ok(())
        })
        .map_err(|e| LogError::Encode(format!("compressing a cleaned batch: {e}")))?;
        Ok(out.to_vec())
    }
    match codec {
        0 => Ok(section),
        1 => with::<Gzip>(&section),
        2 => with::<Snappy>(&section),
        3 => with::<Lz4>(&section),
        4 => with::<Zstd>(&section),
        other => Err(LogError::Encode(format!("unknown codec {other}"))),
    }
}

#[derive(Serialize, Deserialize)]
struct Swap {
    groups: Vec<Group>,
}

/// Step 3's durable part: the commit point, then the swap itself ([`finish_swap`]).
pub(crate) fn swap(dir: &Path, groups: &[Group]) -> Result<()> {
    commit_point(dir, groups)?;
    finish_swap(dir, groups)
}

/// Writes `swap.json`: from here on the pass is finished, at the latest by the next open.
pub(crate) fn commit_point(dir: &Path, groups: &[Group]) -> Result<()> {
    let out_dir = dir.join(CLEANER_DIR);
    let json = serde_json::to_vec(&Swap {
        groups: groups.to_vec(),
    })
    .map_err(|e| LogError::Encode(e.to_string()))?;
    write_atomic(&out_dir.join(SWAP_FILE), &json)
}

/// Moves each group's new files over its first segment's and deletes the group's other old
/// segments; then removes `.cleaner/`. Idempotent: a start after a crash in the middle runs it
/// again from the swap file.
fn finish_swap(dir: &Path, groups: &[Group]) -> Result<()> {
    let out_dir = dir.join(CLEANER_DIR);
    let bases = crate::partition::segment_bases(dir)?;
    for g in groups {
        // The log file last: while it is the old one, the old indexes beside it still match.
        for ext in ["index", "timeindex", "log"] {
            let from = segment_file(&out_dir, g.base, ext);
            if from.exists() {
                let to = segment_file(dir, g.base, ext);
                std::fs::rename(&from, &to).map_err(|e| LogError::io(&from, e))?;
            }
        }
        for &b in bases.iter().filter(|b| **b > g.base && **b < g.next_base) {
            for ext in ["log", "index", "timeindex"] {
                remove_if_exists(&segment_file(dir, b, ext))?;
            }
        }
    }
    sync_dir(dir)?;
    std::fs::remove_dir_all(&out_dir).map_err(|e| LogError::io(&out_dir, e))?;
    sync_dir(dir)
}

/// At start: finishes a pass that reached its commit point, discards one that did not.
pub(crate) fn recover_swap(dir: &Path) -> Result<()> {
    let out_dir = dir.join(CLEANER_DIR);
    if !out_dir.exists() {
        return Ok(());
    }
    let swap: Option<Swap> = std::fs::read(out_dir.join(SWAP_FILE))
        .ok()
        .and_then(|raw| serde_json::from_slice(&raw).ok());
    match swap {
        Some(s) => {
            tracing::warn!(dir = %dir.display(), "finishing an interrupted cleaner swap");
            finish_swap(dir, &s.groups)
        }
        None => {
            tracing::info!(dir = %dir.display(), "discarding an interrupted cleaner pass");
            std::fs::remove_dir_all(&out_dir).map_err(|e| LogError::io(&out_dir, e))?;
            sync_dir(dir)
        }
    }
}

/// Records a finished pass in the partition's cleaner state.
pub(crate) fn record_pass(
    dir: &Path,
    state: &mut CleanerState,
    end: i64,
    now_ms: i64,
    delete_retention_ms: i64,
    horizon: i64,
) -> Result<()> {
    state.record(end, now_ms, delete_retention_ms, horizon);
    state.store(dir)
}
