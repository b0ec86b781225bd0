//! One partition's log: an ordered set of segments, the active one last.
//!
//! Appends validate the producer's batches, rewrite only the base offset and leader epoch (plus
//! timestamp fields under LogAppendTime) in a private copy, and write the whole payload with a
//! single `pwrite` to the active segment. Nothing is fsynced on append: the broker drives
//! durability through [`PartitionLog::sync_target`] / [`PartitionLog::mark_flushed`] outside the
//! partition lock. Segment rolls fsync the finished segment, so only the active one is ever
//! behind the flushed offset.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::batch::{compute_crc, control_marker, validate_batches, BatchHeader};
use crate::cleaner::{CleanOutput, CleanPlan, CleanerState, PlannedSegment};
use crate::config::LogConfig;
use crate::error::{LogError, Result};
use crate::filepool::FilePool;
use crate::fsutil::{remove_if_exists, sync_dir};
use crate::producer::{AbortedTxn, Prepared, ProducerStateManager, PRODUCER_EXPIRATION_MS};
use crate::records::{validate_records, RecordRules};
use crate::segment::{parse_log_name, segment_file, LogSlice, ScanStep, Scanner, Segment};

/// How to open a partition directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// The previous run shut down cleanly: trust index files and the producer snapshot.
    Clean,
    /// After a crash: every batch at or after this offset (the last recovery checkpoint; 0 if
    /// unknown) is re-read, its CRC checked, the log truncated at the first invalid or torn
    /// batch, and the indexes and producer state rebuilt for the re-read part.
    From(i64),
}

/// Result of a successful append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendResult {
    /// Batches stored at `base_offset..=last_offset`.
    Appended {
        base_offset: i64,
        last_offset: i64,
        /// Broker time stamped on the batch when `message.timestamp.type=LogAppendTime`, else -1.
        log_append_time: i64,
    },
    /// An idempotent producer retried a batch already stored; nothing was written.
    Duplicate { base_offset: i64, last_offset: i64 },
}

/// A partition log on disk. Not internally synchronised: the owner wraps it in a mutex.
#[derive(Debug)]
pub struct PartitionLog {
    dir: PathBuf,
    /// Where this log's segment files are opened (shared by every partition of a manager).
    pool: Arc<FilePool>,
    config: LogConfig,
    /// By base offset; never empty, the last one is the active segment.
    segments: BTreeMap<i64, Segment>,
    log_end: i64,
    flushed: i64,
    producers: ProducerStateManager,
    /// Offset of the producer snapshot on disk, when it is known to hold the current state
    /// (loaded at open, or written since): `close` then has nothing to write.
    snapshot_at: Option<i64>,
    /// Set after an I/O failure that leaves the on-disk state uncertain; appends are refused.
    offline: Option<String>,
    /// What the cleaner remembers (compacted topics).
    cleaner: CleanerState,
}

/// The cleaner's progress on one partition, for `rivulet topics describe`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CleanerStatus {
    /// Offsets below this have been cleaned.
    pub cleaned_up_to: i64,
    /// Share of the cleanable bytes not cleaned yet (0 when there is nothing to clean).
    pub dirty_ratio: f64,
    /// Bytes in segments the cleaner may clean (before the active one, below the LSO).
    pub cleanable_bytes: u64,
    /// When the last pass ran (ms since the epoch), if any.
    pub last_clean_ms: Option<i64>,
}

impl PartitionLog {
    /// Opens (or creates) the partition directory, recovering as `recovery` says, with a file
    /// pool of its own (for a log used alone; a [`crate::LogManager`] shares one pool).
    pub fn open(dir: &Path, config: LogConfig, recovery: Recovery) -> Result<PartitionLog> {
        Self::open_in(&FilePool::new(64), dir, config, recovery)
    }

    /// [`Self::open`] with segment files opened through `pool`.
    pub fn open_in(
        pool: &Arc<FilePool>,
        dir: &Path,
        config: LogConfig,
        recovery: Recovery,
    ) -> Result<PartitionLog> {
        Self::open_inner(pool, dir, config, recovery, true)
    }

    /// Like [`Self::open_in`]; a new directory's entries are fsynced only with `sync_new`. The
    /// manager makes thousands of partitions at once and syncs their directories after all are
    /// made: on ext4 or XFS the first of those fsyncs commits every pending entry, the others
    /// find nothing left, instead of one journal commit per partition.
    pub(crate) fn open_inner(
        pool: &Arc<FilePool>,
        dir: &Path,
        config: LogConfig,
        recovery: Recovery,
        sync_new: bool,
    ) -> Result<PartitionLog> {
        std::fs::create_dir_all(dir).map_err(|e| LogError::io(dir, e))?;
        // A cleaner pass interrupted by a crash: finished or discarded before anything is read.
        crate::cleaner::recover_swap(dir)?;
        let mut bases = Vec::new();
        let mut indexes = Vec::new();
        let entries = std::fs::read_dir(dir).map_err(|e| LogError::io(dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| LogError::io(dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.ends_with(".deleted") || name.ends_with(".tmp") {
                // Leftovers of an interrupted deletion or atomic write.
                remove_if_exists(&entry.path())?;
            } else if let Some(base) = parse_log_name(name) {
                bases.push(base);
            } else if name.ends_with(".index") || name.ends_with(".timeindex") {
                indexes.push(entry.path());
            }
        }
        bases.sort_unstable();
        // Index files whose log is gone (a deletion interrupted between renames) are garbage.
        for path in indexes {
            let base = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| parse_log_name(&format!("{s}.log")));
            if base.is_none_or(|b| bases.binary_search(&b).is_err()) {
                remove_if_exists(&path)?;
            }
        }

        let mut segments = BTreeMap::new();
        if bases.is_empty() {
            segments.insert(0, Segment::create(pool, dir, 0)?);
            if sync_new {
                sync_dir(dir)?;
            }
        } else {
            // Segments before `first_recovered` are trusted like after a clean shutdown.
            let first_recovered = match recovery {
                Recovery::Clean => bases.len(),
                Recovery::From(o) => bases.partition_point(|b| *b <= o).saturating_sub(1),
            };
            for (i, &base) in bases.iter().enumerate() {
                let next_base = bases.get(i + 1).copied();
                let clean = if i < first_recovered {
                    Segment::load_clean(pool, dir, base, next_base)?
                } else {
                    None
                };
                let (seg, truncated) = match clean {
                    Some(seg) => (seg, false),
                    None => {
                        if i < first_recovered {
                            tracing::warn!(dir = %dir.display(), base, "index in doubt, rebuilding segment");
                        }
                        Segment::recover(pool, dir, base, config.index_interval_bytes)?
                    }
                };
                segments.insert(base, seg);
                if truncated {
                    // Everything after a torn batch is unreachable: drop later segments.
                    for &later in &bases[i + 1..] {
                        tracing::warn!(dir = %dir.display(), base = later, "deleting segment after truncation point");
                        for ext in ["log", "index", "timeindex"] {
                            remove_if_exists(&segment_file(dir, later, ext))?;
                        }
                    }
                    sync_dir(dir)?;
                    break;
                }
            }
        }
        let (log_start, log_end) = match (segments.values().next(), segments.values().last()) {
            (Some(first), Some(last)) => (first.base_offset, last.next_offset),
            _ => (0, 0),
        };
        let (producers, snapshot_at) = rebuild_producers(dir, &segments, log_start, log_end)?;
        Ok(PartitionLog {
            dir: dir.to_path_buf(),
            pool: Arc::clone(pool),
            config,
            segments,
            log_end,
            // Clean: flushed at close. Recovered: every re-read segment was fsynced.
            flushed: log_end,
            producers,
            snapshot_at,
            offline: None,
            cleaner: CleanerState::load(dir),
        })
    }

    fn active(&self) -> &Segment {
        // Invariant: `segments` is never empty (open creates one; retention rolls first).
        self.segments
            .values()
            .next_back()
            .unwrap_or_else(|| unreachable!("partition log without segments"))
    }

    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .values_mut()
            .next_back()
            .unwrap_or_else(|| unreachable!("partition log without segments"))
    }

    fn check_online(&self) -> Result<()> {
        match &self.offline {
            Some(reason) => Err(LogError::Offline(reason.clone())),
            None => Ok(()),
        }
    }

    /// Validates the payload ([`check_records`] with this log's config, then the producer's
    /// epoch/sequence) and appends it. All or nothing. Rolls the active segment first when it
    /// is past segment.bytes or older than segment.ms.
    pub fn append(&mut self, records: &[u8], now_ms: i64) -> Result<AppendResult> {
        self.check_online()?;
        let checked = check_records(records, &self.config)?;
        self.append_checked(checked, now_ms)
    }

    /// Appends a payload validated by [`check_records`] (outside this log's lock, since
    /// decompressing is the expensive part). Sizes are checked again against the current
    /// `max.message.bytes` in case the config changed in between.
    pub fn append_checked(
        &mut self,
        checked: CheckedRecords<'_>,
        now_ms: i64,
    ) -> Result<AppendResult> {
        self.append_inner(checked, now_ms, None)
    }

    /// Writes a transaction marker (a COMMIT or ABORT control batch) for `producer_id` if it
    /// has a transaction open in this partition, and returns its offset; `None` when it has
    /// none, so a coordinator that completes a transaction again (after a crash) writes nothing
    /// twice. A marker with a newer epoch fences the producer's older epoch here.
    pub fn append_marker(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
        now_ms: i64,
    ) -> Result<Option<i64>> {
        self.check_online()?;
        if !self.producers.ongoing(producer_id) {
            return Ok(None);
        }
        let bytes = crate::encode::encode_marker(
            producer_id,
            producer_epoch,
            commit,
            coordinator_epoch,
            now_ms,
        )?;
        let checked = CheckedRecords {
            records: &bytes,
            headers: validate_batches(&bytes)?,
            max_timestamps: vec![now_ms],
        };
        match self.append_inner(checked, now_ms, Some(commit))? {
            AppendResult::Appended { base_offset, .. } => Ok(Some(base_offset)),
            AppendResult::Duplicate { .. } => Ok(None),
        }
    }

    /// The last stable offset: read_committed consumers read below it only.
    pub fn last_stable_offset(&self) -> i64 {
        self.producers.last_stable_offset(self.log_end)
    }

    /// Aborted transactions overlapping `[from, to)`, for a read_committed fetch of that range.
    pub fn aborted_transactions(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        self.producers.aborted_between(from, to)
    }

    /// Open transactions here: (producer id, first offset), oldest first.
    pub fn open_transactions(&self) -> Vec<(i64, i64)> {
        self.producers.open_transactions()
    }

    /// Segments the cleaner may clean: whole segments before the active one, below the LSO and
    /// older than `min.compaction.lag.ms`.
    fn cleanable(&self, now_ms: i64) -> Vec<PlannedSegment> {
        let mut end = self.active().base_offset.min(self.last_stable_offset());
        if self.config.min_compaction_lag_ms > 0 {
            let cutoff = now_ms.saturating_sub(self.config.min_compaction_lag_ms);
            if let Some(seg) = self
                .segments
                .values()
                .find(|s| s.max_timestamp.is_some_and(|(t, _)| t > cutoff))
            {
                end = end.min(seg.base_offset);
            }
        }
        let segs: Vec<&Segment> = self.segments.values().collect();
        segs.windows(2)
            .take_while(|w| w[1].base_offset <= end)
            .map(|w| PlannedSegment {
                base: w[0].base_offset,
                path: w[0].log_path.clone(),
                next_base: w[1].base_offset,
                size: w[0].size,
            })
            .collect()
    }

    /// Step 1 of a cleaner pass (see `cleaner.rs`): what to clean now, if anything. Only for
    /// `cleanup.policy` with `compact`.
    pub fn clean_plan(&self, now_ms: i64) -> Option<CleanPlan> {
        if !self.config.compact() || self.offline.is_some() {
            return None;
        }
        let segments = self.cleanable(now_ms);
        let end = segments.last()?.next_base;
        let total: u64 = segments.iter().map(|s| s.size).sum();
        let first_dirty = segments
            .iter()
            .find(|s| s.next_base > self.cleaner.cleaned_up_to);
        let dirty: u64 = segments
            .iter()
            .filter(|s| s.next_base > self.cleaner.cleaned_up_to)
            .map(|s| s.size)
            .sum();
        let removable_below = self
            .cleaner
            .removable_below(now_ms, self.config.delete_retention_ms);
        let ratio = dirty as f64 / total.max(1) as f64;
        // max.compaction.lag.ms: the oldest dirty record (its batch's timestamp) is overdue.
        let overdue = first_dirty
            .and_then(|s| self.segments.get(&s.base))
            .filter(|s| s.size > 0)
            .and_then(|s| s.read_header_at(0).ok())
            .is_some_and(|h| {
                h.max_timestamp >= 0
                    && h.max_timestamp < now_ms.saturating_sub(self.config.max_compaction_lag_ms)
            });
        let tombstones_due = removable_below > self.cleaner.horizon_applied;
        let due = (dirty > 0 && ratio >= self.config.dirty_ratio()) || overdue || tombstones_due;
        if !due || total == 0 {
            return None;
        }
        Some(CleanPlan {
            dir: self.dir.clone(),
            pool: Arc::clone(&self.pool),
            segments,
            end,
            aborted: self.producers.aborted_between(i64::MIN, end),
            removable_below,
            segment_bytes: self.config.segment_bytes,
            index_interval: self.config.index_interval_bytes,
            decompressed_limit: RecordRules::for_config(&self.config).max_decompressed_bytes,
            max_keys: crate::cleaner::MAX_KEYS_PER_PASS,
            delete_retention_ms: self.config.delete_retention_ms,
            now_ms,
        })
    }

    /// Step 3 of a cleaner pass: swaps the cleaned segments in. `false` when the log changed
    /// under the pass (retention deleted a segment it cleaned): the pass is discarded.
    pub fn commit_clean(&mut self, out: CleanOutput) -> Result<bool> {
        self.check_online()?;
        let unchanged = out.plan.segments.iter().all(|p| {
            self.segments
                .get(&p.base)
                .is_some_and(|s| s.size == p.size && s.log_path == p.path)
        });
        if !unchanged {
            let tmp = self.dir.join(crate::cleaner::CLEANER_DIR);
            std::fs::remove_dir_all(&tmp).map_err(|e| LogError::io(&tmp, e))?;
            return Ok(false);
        }
        if let Err(e) = crate::cleaner::swap(&self.dir, &out.groups) {
            // Half swapped: a restart finishes it from the swap file; until then, no writes.
            self.offline = Some(format!("cleaner swap failed: {e}"));
            return Err(e);
        }
        for g in &out.groups {
            let old: Vec<i64> = self
                .segments
                .range(g.base..g.next_base)
                .map(|(b, _)| *b)
                .collect();
            for b in old {
                self.segments.remove(&b);
            }
            let seg = match Segment::load_clean(&self.pool, &self.dir, g.base, Some(g.next_base))? {
                Some(seg) => seg,
                None => {
                    Segment::recover(
                        &self.pool,
                        &self.dir,
                        g.base,
                        self.config.index_interval_bytes,
                    )?
                    .0
                }
            };
            self.segments.insert(g.base, seg);
        }
        if !out.removed_aborts.is_empty() {
            self.producers.forget_aborted(&out.removed_aborts);
            // The snapshot on disk still lists them; a restart must not bring them back.
            self.producers.write_snapshot(&self.dir, self.log_end)?;
            self.snapshot_at = Some(self.log_end);
        }
        crate::cleaner::record_pass(
            &self.dir,
            &mut self.cleaner,
            out.stats.end,
            out.plan.now_ms,
            out.plan.delete_retention_ms,
            out.plan.removable_below,
        )?;
        Ok(true)
    }

    /// The cleaner's progress here.
    pub fn cleaner_status(&self, now_ms: i64) -> CleanerStatus {
        let segments = self.cleanable(now_ms);
        let total: u64 = segments.iter().map(|s| s.size).sum();
        let dirty: u64 = segments
            .iter()
            .filter(|s| s.next_base > self.cleaner.cleaned_up_to)
            .map(|s| s.size)
            .sum();
        CleanerStatus {
            cleaned_up_to: self.cleaner.cleaned_up_to,
            dirty_ratio: if total == 0 {
                0.0
            } else {
                dirty as f64 / total as f64
            },
            cleanable_bytes: total,
            last_clean_ms: self.cleaner.passes.last().map(|(_, t)| *t),
        }
    }

    /// `marker`: this payload is one transaction marker (COMMIT: `Some(true)`).
    fn append_inner(
        &mut self,
        checked: CheckedRecords<'_>,
        now_ms: i64,
        marker: Option<bool>,
    ) -> Result<AppendResult> {
        self.check_online()?;
        let CheckedRecords {
            records,
            headers,
            max_timestamps,
        } = checked;
        check_sizes(&headers, &self.config)?;
        let mut base_offsets = Vec::with_capacity(headers.len());
        let mut next = self.log_end;
        for h in &headers {
            base_offsets.push(next);
            next += i64::from(h.last_offset_delta) + 1;
        }
        let prepared = match (marker, headers.first()) {
            (Some(commit), Some(h)) => {
                Prepared::Append(self.producers.prepare_marker(h, commit, self.log_end)?)
            }
            _ => self.producers.prepare(&headers, &base_offsets)?,
        };
        let staged = match prepared {
            Prepared::Duplicate {
                base_offset,
                last_offset,
            } => {
                return Ok(AppendResult::Duplicate {
                    base_offset,
                    last_offset,
                })
            }
            Prepared::Append(staged) => staged,
        };

        // Assign offsets in a private copy; the producer's buffer is never modified.
        let lat = self.config.log_append_time();
        let mut buf = records.to_vec();
        let mut placed = Vec::with_capacity(headers.len());
        let mut pos = 0usize;
        for ((h, &base), &records_max) in headers.iter().zip(&base_offsets).zip(&max_timestamps) {
            let size = h.total_size();
            let b = &mut buf[pos..pos + size];
            b[..8].copy_from_slice(&base.to_be_bytes());
            b[BatchHeader::LEADER_EPOCH_OFFSET..BatchHeader::LEADER_EPOCH_OFFSET + 4]
                .copy_from_slice(&0i32.to_be_bytes());
            let mut stored = *h;
            stored.base_offset = base;
            stored.partition_leader_epoch = 0;
            // The header's max timestamp is the producer's claim; the time index trusts it, so
            // it becomes the records' real maximum (as Kafka sets it), or the broker's clock.
            let max_ts = if lat { now_ms } else { records_max };
            if lat || max_ts != h.max_timestamp {
                // These fields are CRC-covered, so the CRC is recomputed.
                if lat {
                    stored.attributes |= 0x08;
                }
                stored.max_timestamp = max_ts;
                let a = BatchHeader::ATTRIBUTES_OFFSET;
                b[a..a + 2].copy_from_slice(&stored.attributes.to_be_bytes());
                let t = BatchHeader::MAX_TIMESTAMP_OFFSET;
                b[t..t + 8].copy_from_slice(&max_ts.to_be_bytes());
                stored.crc = compute_crc(b);
                let c = BatchHeader::CRC_OFFSET;
                b[c..c + 4].copy_from_slice(&stored.crc.to_be_bytes());
            }
            placed.push((pos as u64, stored));
            pos += size;
        }
        let last_offset = next - 1;

        self.maybe_roll(buf.len() as u64, last_offset, now_ms)?;
        let interval = self.config.index_interval_bytes;
        let seg = self.active_mut();
        let start = seg.size;
        // Fails only before anything is written (e.g. out of descriptors): nothing to undo.
        let file = seg.file.get_for_write()?;
        if let Err(e) = file.write_all_at(&buf, start) {
            // Cut off whatever part of the payload reached the file so no torn batch is ever
            // visible; if even that fails the on-disk state is unknown.
            let err = LogError::io(&seg.log_path, e);
            if let Err(e2) = file.set_len(start) {
                let reason = format!(
                    "cannot undo partial write to {}: {e2}",
                    seg.log_path.display()
                );
                self.offline = Some(reason);
            }
            return Err(err);
        }
        seg.roll_base_ms.get_or_insert(now_ms);
        for (p, h) in &placed {
            seg.track_batch(start + p, h, h.max_timestamp, interval);
        }
        seg.size = start + buf.len() as u64;
        seg.maybe_flush_indexes();
        self.producers.commit(staged);
        self.log_end = next;
        Ok(AppendResult::Appended {
            base_offset: base_offsets.first().copied().unwrap_or(self.log_end),
            last_offset,
            log_append_time: if lat { now_ms } else { -1 },
        })
    }

    /// Rolls before writing `len` bytes ending at `last_offset` if the active segment is full,
    /// too old, or would overflow its u32 index fields.
    fn maybe_roll(&mut self, len: u64, last_offset: i64, now_ms: i64) -> Result<()> {
        let seg = self.active();
        if seg.size == 0 {
            return Ok(());
        }
        let full = seg.size + len > self.config.segment_bytes;
        let old = seg
            .roll_base_ms
            .is_some_and(|b| now_ms.saturating_sub(b) > self.config.segment_ms);
        let overflow = last_offset - seg.base_offset > i64::from(u32::MAX)
            || seg.size + len > u64::from(u32::MAX);
        if full || old || overflow {
            self.roll()?;
        }
        Ok(())
    }

    /// Finishes the active segment (final index entries, fsync of data and indexes) and starts
    /// a new one at the log end. Everything below the new base is durable afterwards.
    fn roll(&mut self) -> Result<()> {
        self.check_online()?;
        let new_base = self.log_end;
        let seg = self.active_mut();
        // Not being able to open the file loses nothing: fail without going offline.
        let file = seg.file.get()?;
        let synced = seg.finish_indexes().and_then(|()| {
            file.sync_all()
                .map_err(|e| LogError::io(&seg.log_path, e))
                .map(|()| seg.file.mark_clean())
        });
        if let Err(e) = synced {
            // A failed fsync may have dropped dirty pages: durability can no longer be promised.
            self.offline = Some(e.to_string());
            return Err(e);
        }
        let new_seg = Segment::create(&self.pool, &self.dir, new_base)?;
        sync_dir(&self.dir)?;
        self.segments.insert(new_base, new_seg);
        self.mark_flushed(new_base);
        // The snapshot only shortens recovery; the log itself is the source of truth.
        match self.producers.write_snapshot(&self.dir, new_base) {
            Ok(()) => self.snapshot_at = Some(new_base),
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "producer snapshot failed");
            }
        }
        Ok(())
    }

    /// Whole batches from the one containing `offset`: at least one batch even past
    /// `max_bytes`, none whose base offset is `upper_bound` or more. `offset == log_end_offset`
    /// gives empty bytes; an offset below the log start or above the log end is
    /// `OffsetOutOfRange`.
    pub fn read(&self, offset: i64, max_bytes: usize, upper_bound: i64) -> Result<Bytes> {
        match self.read_slice(offset, max_bytes, upper_bound, true)? {
            Some(slice) => slice.to_bytes(),
            None => Ok(Bytes::new()),
        }
    }

    /// Like [`Self::read`], but where the bytes are instead of the bytes (`None`: nothing to
    /// read), so a caller can send them in bounded pieces. Without `min_one_batch`, a first
    /// batch larger than `max_bytes` gives `None` instead of that batch (Kafka allows the
    /// oversized first batch only to the first partition of a fetch response).
    pub fn read_slice(
        &self,
        offset: i64,
        max_bytes: usize,
        upper_bound: i64,
        min_one_batch: bool,
    ) -> Result<Option<LogSlice>> {
        let log_start = self.log_start_offset();
        if offset < log_start || offset > self.log_end {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start,
                log_end: self.log_end,
            });
        }
        if offset == self.log_end || offset >= upper_bound {
            return Ok(None);
        }
        let first_base = self
            .segments
            .range(..=offset)
            .next_back()
            .map_or(log_start, |(b, _)| *b);
        // Normally the first segment holds the offset; later ones only matter if it is empty.
        for seg in self.segments.range(first_base..).map(|(_, s)| s) {
            if let Some((pos, h)) = seg.find_batch(offset)? {
                if !min_one_batch && h.total_size() > max_bytes {
                    return Ok(None);
                }
                return seg.slice_from(pos, &h, max_bytes, upper_bound).map(Some);
            }
        }
        Ok(None)
    }

    pub fn log_start_offset(&self) -> i64 {
        self.segments.keys().next().copied().unwrap_or(self.log_end)
    }
    /// Next offset to be assigned (Kafka's log end offset).
    pub fn log_end_offset(&self) -> i64 {
        self.log_end
    }
    /// Offset below which everything is fsynced.
    pub fn flushed_offset(&self) -> i64 {
        self.flushed
    }
    /// When data above the flushed offset exists: the active segment file to `sync_data` and the
    /// offset that will be durable once it returns. The caller syncs outside any lock, then calls
    /// [`Self::mark_flushed`]. Segments that roll are fsynced by the roll itself.
    /// An error means the file could not be opened (it is normally still open: files with
    /// unsynced writes are never closed by the pool); nothing is lost, try again later.
    pub fn sync_target(&self) -> Result<Option<(Arc<File>, i64)>> {
        if self.log_end <= self.flushed {
            return Ok(None);
        }
        Ok(Some((self.active().file.get()?, self.log_end)))
    }
    /// Records that everything below `offset` is durable (monotonic: lower values are ignored).
    pub fn mark_flushed(&mut self, offset: i64) {
        self.flushed = self.flushed.max(offset.min(self.log_end));
        if self.flushed == self.log_end {
            self.active().file.mark_clean();
        }
    }
    /// Largest timestamp in the log and the offset of the record carrying it (ListOffsets -3).
    pub fn max_timestamp(&self) -> Result<Option<(i64, i64)>> {
        let mut best: Option<(i64, i64, &Segment)> = None;
        for seg in self.segments.values() {
            if let Some((t, o)) = seg.max_timestamp {
                if best.is_none_or(|(bt, _, _)| t > bt) {
                    best = Some((t, o, seg));
                }
            }
        }
        let Some((ts, batch_offset, seg)) = best else {
            return Ok(None);
        };
        let Some((pos, h)) = seg.find_batch(batch_offset)? else {
            return Ok(Some((ts, batch_offset)));
        };
        if h.is_log_append_time() {
            return Ok(Some((ts, h.base_offset)));
        }
        let records = seg.decode_batch_at(pos, &h)?;
        let offset = records
            .iter()
            .find(|r| r.timestamp == ts)
            .map_or(h.base_offset, |r| r.offset);
        Ok(Some((ts, offset)))
    }
    /// First record with timestamp >= `timestamp`: (offset, timestamp). Uses the time index to
    /// find the batch, then decodes that batch's records to find the exact record.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>> {
        for seg in self.segments.values() {
            if seg.max_timestamp.is_some_and(|(t, _)| t >= timestamp) {
                if let Some(found) = seg.offset_for_timestamp(timestamp)? {
                    return Ok(Some(found));
                }
            }
        }
        Ok(None)
    }
    /// Deletes whole segments past retention.ms / retention.bytes; returns how many.
    pub fn enforce_retention(&mut self, now_ms: i64) -> Result<usize> {
        let mut deleted = 0;
        loop {
            let total = self.size_bytes();
            let only_active = self.segments.len() == 1;
            let Some(first) = self.segments.values().next() else {
                break;
            };
            // The empty active segment stays; an empty older one (all of it compacted away)
            // goes like any other.
            if first.size == 0 && only_active {
                break;
            }
            let time_expired = self.config.retention_ms >= 0
                && first
                    .retention_timestamp()
                    .is_some_and(|t| t < now_ms.saturating_sub(self.config.retention_ms));
            // Kafka never deletes the active segment for size, only for time.
            let size_expired = !only_active
                && u64::try_from(self.config.retention_bytes)
                    .is_ok_and(|limit| total - first.size >= limit);
            // `cleanup.policy=compact` alone keeps every segment: the cleaner shrinks them.
            if !(time_expired || size_expired) || !self.config.delete() {
                break;
            }
            if only_active {
                // Keep an (empty) active segment at the log end so offsets continue.
                self.roll()?;
            }
            self.delete_oldest()?;
            deleted += 1;
        }
        let producers = self.producers.len();
        self.producers.expire(now_ms, PRODUCER_EXPIRATION_MS);
        if self.producers.len() != producers {
            self.snapshot_at = None;
        }
        Ok(deleted)
    }

    /// Removes the oldest segment: rename its files to `.deleted` (so a crash never leaves half
    /// a segment that looks valid), then unlink them.
    fn delete_oldest(&mut self) -> Result<()> {
        let Some((base, seg)) = self.segments.pop_first() else {
            return Ok(());
        };
        let paths = seg.paths();
        let mut renamed = Vec::with_capacity(paths.len());
        for (i, p) in paths.iter().enumerate() {
            let mut d = p.as_os_str().to_owned();
            d.push(".deleted");
            let d = PathBuf::from(d);
            match std::fs::rename(p, &d) {
                Ok(()) => renamed.push(d),
                Err(e) if i > 0 && e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) if i == 0 => {
                    // The log file is still in place: keep the segment.
                    self.segments.insert(base, seg);
                    return Err(LogError::io(p, e));
                }
                Err(e) => tracing::warn!(path = %p.display(), error = %e, "rename failed"),
            }
        }
        drop(seg);
        let log_start = self.log_start_offset();
        self.producers.prune_aborted(log_start);
        self.snapshot_at = None;
        sync_dir(&self.dir)?;
        for d in renamed {
            if let Err(e) = remove_if_exists(&d) {
                tracing::warn!(error = %e, "removing deleted segment file failed");
            }
        }
        tracing::info!(dir = %self.dir.display(), base, "deleted segment");
        Ok(())
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }
    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }
    /// Bytes on disk across all segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.size).sum()
    }
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
    /// Flushes data and index files and writes the producer snapshot (clean shutdown).
    pub fn close(&mut self) -> Result<()> {
        let log_end = self.log_end;
        let seg = self.active_mut();
        seg.finish_indexes()?;
        seg.sync_log()?;
        self.mark_flushed(log_end);
        // A snapshot costs two fsyncs; skip it when the one on disk is current, or when there
        // is nothing it could hold (no producers, no records: thousands of idle partitions
        // would otherwise make shutdown take minutes).
        let nothing = self.snapshot_at.is_none()
            && self.producers.len() == 0
            && self.log_start_offset() == log_end;
        if self.snapshot_at == Some(log_end) || nothing {
            return Ok(());
        }
        self.producers.write_snapshot(&self.dir, log_end)?;
        self.snapshot_at = Some(log_end);
        Ok(())
    }

    /// Number of idempotent producers with state in this partition.
    pub fn producer_count(&self) -> usize {
        self.producers.len()
    }
    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// Refuses further appends (e.g. after the broker's fsync of [`Self::sync_target`] failed).
    pub fn mark_offline(&mut self, reason: &str) {
        self.offline.get_or_insert_with(|| reason.to_string());
    }
    /// Why the log refuses appends, if it does.
    pub fn offline_reason(&self) -> Option<&str> {
        self.offline.as_deref()
    }
}

/// A produce payload that passed [`check_records`]; append it with
/// [`PartitionLog::append_checked`].
#[derive(Debug)]
pub struct CheckedRecords<'a> {
    records: &'a [u8],
    headers: Vec<BatchHeader>,
    /// Each batch's largest record timestamp.
    max_timestamps: Vec<i64>,
}

impl CheckedRecords<'_> {
    pub fn headers(&self) -> &[BatchHeader] {
        &self.headers
    }
}

fn check_sizes(headers: &[BatchHeader], config: &LogConfig) -> Result<()> {
    let max = usize::try_from(config.max_message_bytes).unwrap_or(0);
    for h in headers {
        if h.total_size() > max {
            return Err(LogError::MessageTooLarge {
                size: h.total_size(),
                max,
            });
        }
    }
    Ok(())
}

/// Everything Kafka validates in a client's produce payload for a topic with `config`, cheap
/// checks first: batch structure and CRC ([`validate_batches`]), size against
/// `max.message.bytes`, no transactional or control batches, a sequence with every producer
/// id, no LogAppendTime set by the producer, then every record of every batch
/// ([`crate::records::validate_records`], decompressing compressed ones). Nothing is written;
/// any failure refuses the whole payload.
pub fn check_records<'a>(records: &'a [u8], config: &LogConfig) -> Result<CheckedRecords<'a>> {
    if records.is_empty() {
        return Err(LogError::InvalidRecord("empty record set".into()));
    }
    let headers = validate_batches(records)?;
    check_sizes(&headers, config)?;
    let mut pos = 0usize;
    for h in &headers {
        if h.is_control() {
            return Err(LogError::InvalidRecord(format!(
                "batch at byte {pos}: control batches are written by the broker only"
            )));
        }
        if h.is_transactional() && !h.has_producer_id() {
            return Err(LogError::InvalidRecord(format!(
                "batch at byte {pos}: a transactional batch needs a producer id"
            )));
        }
        if h.has_producer_id() && h.base_sequence < 0 {
            return Err(LogError::InvalidRecord(format!(
                "batch at byte {pos}: producer id {} with base sequence {}",
                h.producer_id, h.base_sequence
            )));
        }
        if h.is_log_append_time() {
            return Err(LogError::InvalidTimestamp(format!(
                "batch at byte {pos}: producers must not set the LogAppendTime timestamp type"
            )));
        }
        pos += h.total_size();
    }
    let rules = RecordRules::for_config(config);
    let mut max_timestamps = Vec::with_capacity(headers.len());
    let mut pos = 0usize;
    for h in &headers {
        let size = h.total_size();
        max_timestamps.push(validate_records(&records[pos..pos + size], h, pos, &rules)?);
        pos += size;
    }
    Ok(CheckedRecords {
        records,
        headers,
        max_timestamps,
    })
}

/// Producer state as of `log_end`: the snapshot if usable, plus a header walk over the batches
/// after it (the whole log when there is no usable snapshot).
/// Also returns the snapshot's offset when it was used and is current (at `log_end`).
fn rebuild_producers(
    dir: &Path,
    segments: &BTreeMap<i64, Segment>,
    log_start: i64,
    log_end: i64,
) -> Result<(ProducerStateManager, Option<i64>)> {
    let (from, mut state, current) = match ProducerStateManager::load_snapshot(dir) {
        Some((offset, state)) if (0..=log_end).contains(&offset) => (
            offset.max(log_start),
            state,
            (offset == log_end).then_some(offset),
        ),
        _ => (log_start, ProducerStateManager::default(), None),
    };
    for seg in segments.values() {
        if seg.next_offset <= from {
            continue;
        }
        let start = if from > seg.base_offset {
            seg.find_batch(from)?.map_or(seg.size, |(p, _)| p)
        } else {
            0
        };
        let file = seg.file.get()?;
        let mut scanner = Scanner::new(&file, &seg.log_path, start, seg.size, false);
        loop {
            match scanner.next_batch()? {
                ScanStep::Batch { header, position } => {
                    if header.base_offset >= from {
                        let marker = if header.is_control() {
                            read_marker(&file, &seg.log_path, position, &header)?
                        } else {
                            None
                        };
                        state.replay(&header, marker);
                    }
                }
                ScanStep::End => break,
                ScanStep::Torn { position, reason } => {
                    tracing::warn!(path = %seg.log_path.display(), position, %reason, "unexpected bad batch while rebuilding producer state");
                    break;
                }
            }
        }
    }
    Ok((state, current))
}

/// What the control batch at `position` says (COMMIT: `Some(true)`); its first record is a few
/// bytes after the header.
fn read_marker(
    file: &File,
    path: &Path,
    position: u64,
    header: &BatchHeader,
) -> Result<Option<bool>> {
    let len = header.total_size().min(BatchHeader::SIZE + 64);
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, position)
        .map_err(|e| LogError::io(path, e))?;
    Ok(control_marker(&buf))
}

/// Base offsets of the segment files in `dir`, sorted.
pub(crate) fn segment_bases(dir: &Path) -> Result<Vec<i64>> {
    let mut bases = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| LogError::io(dir, e))? {
        let entry = entry.map_err(|e| LogError::io(dir, e))?;
        if let Some(base) = entry.file_name().to_str().and_then(parse_log_name) {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    Ok(bases)
}
