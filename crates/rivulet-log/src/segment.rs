//! One log segment: the `.log` file of whole record batches plus its sparse indexes, and the
//! sequential batch scanner used by recovery and producer-state rebuilds.
//!
//! Reads and writes use positional I/O (`pread`/`pwrite` via `FileExt`) on an `Arc<File>` from
//! the segment's [`PooledFile`] (opened on demand, see `filepool.rs`), so the broker can
//! `sync_data` the active file outside the partition lock while the log keeps its own handle.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::records::{Record, RecordBatchDecoder};

use crate::batch::{compute_crc, BatchHeader};
use crate::error::{LogError, Result};
use crate::filepool::{FilePool, PooledFile};
use crate::index::{OffsetEntry, OffsetIndex, TimeEntry, TimeIndex};

/// `<20-digit base offset>.<ext>` inside `dir`.
pub(crate) fn segment_file(dir: &Path, base_offset: i64, ext: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{ext}"))
}

/// Parses a `<20 digits>.log` file name into its base offset (other names are not ours).
pub(crate) fn parse_log_name(name: &str) -> Option<i64> {
    let stem = name.strip_suffix(".log")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// A read-only, bounded window over a segment file that yields batches in order.
pub(crate) struct Scanner<'a> {
    file: &'a File,
    path: &'a Path,
    end: u64,
    pos: u64,
    buf: Vec<u8>,
    /// File position of `buf[0]`.
    buf_pos: u64,
    /// Read-ahead size: large when whole batches are CRC-checked, small for header walks.
    chunk: u64,
    verify: bool,
}

/// One step of a [`Scanner`].
pub(crate) enum ScanStep {
    /// A batch starting at `position`.
    Batch { position: u64, header: BatchHeader },
    /// Clean end of the file.
    End,
    /// An incomplete or invalid batch starts at `position`; everything from there is garbage.
    Torn { position: u64, reason: String },
}

impl<'a> Scanner<'a> {
    /// Scans `file[start..end)`; with `verify` each batch's CRC-32C is checked too.
    pub fn new(file: &'a File, path: &'a Path, start: u64, end: u64, verify: bool) -> Self {
        Scanner {
            file,
            path,
            end,
            pos: start,
            buf: Vec::new(),
            buf_pos: start,
            chunk: if verify { 1 << 20 } else { 64 << 10 },
            verify,
        }
    }

    /// Makes `[pos, pos + len)` available in the buffer and returns it.
    fn window(&mut self, pos: u64, len: usize) -> Result<&[u8]> {
        let have_end = self.buf_pos + self.buf.len() as u64;
        if pos < self.buf_pos || pos + len as u64 > have_end {
            let want = (len as u64).max(self.chunk).min(self.end - pos);
            self.buf.resize(want as usize, 0);
            self.file
                .read_exact_at(&mut self.buf, pos)
                .map_err(|e| LogError::io(self.path, e))?;
            self.buf_pos = pos;
        }
        let start = (pos - self.buf_pos) as usize;
        Ok(&self.buf[start..start + len])
    }

    pub fn next_batch(&mut self) -> Result<ScanStep> {
        let position = self.pos;
        if position >= self.end {
            return Ok(ScanStep::End);
        }
        let torn = |reason: String| Ok(ScanStep::Torn { position, reason });
        if self.end - position < BatchHeader::SIZE as u64 {
            return torn(format!("{} trailing bytes", self.end - position));
        }
        let header = BatchHeader::parse(self.window(position, BatchHeader::SIZE)?)?;
        if header.batch_length < BatchHeader::MIN_BATCH_LENGTH {
            return torn(format!("batch length {}", header.batch_length));
        }
        let size = header.total_size() as u64;
        if position + size > self.end {
            return torn(format!(
                "batch of {size} bytes runs past the end of the file"
            ));
        }
        if header.magic != 2 {
            return torn(format!("magic {}", header.magic));
        }
        if header.last_offset_delta < 0 {
            return torn(format!("last offset delta {}", header.last_offset_delta));
        }
        if self.verify {
            let crc = compute_crc(self.window(position, size as usize)?);
            if crc != header.crc {
                return torn("CRC-32C mismatch".to_string());
            }
        }
        self.pos = position + size;
        Ok(ScanStep::Batch { position, header })
    }
}

/// Whole batches of one segment file: where they are, not the bytes. They are read when sent,
/// in bounded pieces, so a fetch's size costs no memory up front (the slice keeps the file
/// open until dropped, even if the pool closes it or retention deletes the segment).
#[derive(Debug, Clone)]
pub struct LogSlice {
    file: Arc<File>,
    path: PathBuf,
    position: u64,
    len: u64,
}

impl LogSlice {
    /// Bytes in the slice.
    pub fn len(&self) -> u64 {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Fills `buf` from `offset` bytes into the slice (which must hold that many).
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        if offset + buf.len() as u64 > self.len {
            return Err(LogError::io(
                &self.path,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "read past the end of a log slice",
                ),
            ));
        }
        self.file
            .read_exact_at(buf, self.position + offset)
            .map_err(|e| LogError::io(&self.path, e))
    }
    /// The whole slice in memory.
    pub fn to_bytes(&self) -> Result<Bytes> {
        let mut buf = vec![0u8; self.len as usize];
        self.read_at(0, &mut buf)?;
        Ok(Bytes::from(buf))
    }
}

/// One segment of a partition log.
#[derive(Debug)]
pub(crate) struct Segment {
    pub base_offset: i64,
    pub log_path: PathBuf,
    pub file: PooledFile,
    /// Bytes of whole batches in the file (the write position).
    pub size: u64,
    /// Offset after the last batch (== base_offset when empty).
    pub next_offset: i64,
    pub offset_index: OffsetIndex,
    pub time_index: TimeIndex,
    /// Largest batch max timestamp and the base offset of the batch carrying it.
    pub max_timestamp: Option<(i64, i64)>,
    bytes_since_index: u64,
    /// Clock reading that `segment.ms` is measured from (first append, or after a restart the
    /// first batch's max timestamp, as Kafka does).
    pub roll_base_ms: Option<i64>,
}

impl Segment {
    fn with_file(
        dir: &Path,
        base_offset: i64,
        file: PooledFile,
        oi: OffsetIndex,
        ti: TimeIndex,
    ) -> Self {
        Segment {
            base_offset,
            log_path: segment_file(dir, base_offset, "log"),
            file,
            size: 0,
            next_offset: base_offset,
            offset_index: oi,
            time_index: ti,
            max_timestamp: None,
            bytes_since_index: 0,
            roll_base_ms: None,
        }
    }

    /// Creates an empty segment (truncating leftovers with the same name: a new segment's base
    /// is the log end, so any such file can only hold garbage beyond it).
    pub fn create(pool: &Arc<FilePool>, dir: &Path, base_offset: i64) -> Result<Segment> {
        let file = PooledFile::open(pool, &segment_file(dir, base_offset, "log"), true)?;
        let oi = OffsetIndex::create(&segment_file(dir, base_offset, "index"))?;
        let ti = TimeIndex::create(&segment_file(dir, base_offset, "timeindex"))?;
        Ok(Segment::with_file(dir, base_offset, file, oi, ti))
    }

    /// Opens a segment written before a clean shutdown (or below the recovery point), trusting
    /// its index files after sanity checks. `next_base` is the following segment's base offset
    /// (segments are dense, so that is this one's end); for the last segment the tail after the
    /// last index entry is walked. `None` means "in doubt: rebuild it".
    pub fn load_clean(
        pool: &Arc<FilePool>,
        dir: &Path,
        base_offset: i64,
        next_base: Option<i64>,
    ) -> Result<Option<Self>> {
        let log_path = segment_file(dir, base_offset, "log");
        let file = PooledFile::open(pool, &log_path, false)?;
        let size = file
            .get()?
            .metadata()
            .map_err(|e| LogError::io(&log_path, e))?
            .len();
        if size == 0 && next_base.is_none() {
            // An empty active segment has no index entries, and maybe no index files yet.
            let oi = OffsetIndex::create(&segment_file(dir, base_offset, "index"))?;
            let ti = TimeIndex::create(&segment_file(dir, base_offset, "timeindex"))?;
            return Ok(Some(Segment::with_file(dir, base_offset, file, oi, ti)));
        }
        let (Some(oi), Some(ti)) = (
            OffsetIndex::load(&segment_file(dir, base_offset, "index"))?,
            TimeIndex::load(&segment_file(dir, base_offset, "timeindex"))?,
        ) else {
            return Ok(None);
        };
        if !oi.is_consistent(size) || (size > 0 && ti.entries().is_empty()) {
            return Ok(None);
        }
        let mut seg = Segment::with_file(dir, base_offset, file, oi, ti);
        seg.size = size;
        if size == 0 {
            // Empty: the active segment, or an older one the cleaner emptied.
            seg.next_offset = next_base.unwrap_or(base_offset);
            return Ok(Some(seg));
        }
        let (start_pos, start_offset) = match seg.offset_index.last() {
            Some(e) => (u64::from(e.position), base_offset + i64::from(e.rel_offset)),
            None => (0, base_offset),
        };
        // The last index entry must point at the batch it names.
        let h = match seg.read_header_at(start_pos) {
            Ok(h) => h,
            Err(_) => return Ok(None),
        };
        if h.base_offset != start_offset {
            return Ok(None);
        }
        seg.bytes_since_index = size - start_pos;
        match next_base {
            Some(n) => seg.next_offset = n,
            None => {
                let file = seg.file.get()?;
                let mut scanner = Scanner::new(&file, &seg.log_path, start_pos, size, false);
                let mut expected = start_offset;
                loop {
                    match scanner.next_batch()? {
                        ScanStep::Batch { header, .. } if header.base_offset >= expected => {
                            expected = header.last_offset() + 1;
                        }
                        ScanStep::End => break,
                        _ => return Ok(None),
                    }
                }
                seg.next_offset = expected;
                seg.roll_base_ms = seg.first_timestamp()?;
            }
        }
        let max_rel = u32::try_from(seg.next_offset - 1 - base_offset).unwrap_or(u32::MAX);
        if !seg.time_index.is_consistent(max_rel) {
            return Ok(None);
        }
        seg.max_timestamp = seg
            .time_index
            .last()
            .map(|e| (e.timestamp, base_offset + i64::from(e.rel_offset)));
        Ok(Some(seg))
    }

    /// Re-reads every batch (length, magic, CRC, offsets increasing from `base_offset`), truncates
    /// the file at the first invalid or incomplete batch, rebuilds and writes both indexes and
    /// fsyncs. Returns the segment and whether anything was truncated.
    pub fn recover(
        pool: &Arc<FilePool>,
        dir: &Path,
        base_offset: i64,
        index_interval: u32,
    ) -> Result<(Segment, bool)> {
        let log_path = segment_file(dir, base_offset, "log");
        let pooled = PooledFile::open(pool, &log_path, false)?;
        let file = pooled.get()?;
        let file_len = file
            .metadata()
            .map_err(|e| LogError::io(&log_path, e))?
            .len();
        let oi = OffsetIndex::create(&segment_file(dir, base_offset, "index"))?;
        let ti = TimeIndex::create(&segment_file(dir, base_offset, "timeindex"))?;
        let mut seg = Segment::with_file(dir, base_offset, pooled, oi, ti);
        let mut scanner = Scanner::new(&file, &log_path, 0, file_len, true);
        let mut truncated = false;
        loop {
            match scanner.next_batch()? {
                // Offsets increase; gaps are normal once a compacted log was cleaned.
                ScanStep::Batch { position, header } if header.base_offset >= seg.next_offset => {
                    seg.track_batch(position, &header, header.max_timestamp, index_interval);
                    seg.size = position + header.total_size() as u64;
                }
                ScanStep::Batch { position, header } => {
                    tracing::warn!(
                        path = %log_path.display(), position,
                        expected = seg.next_offset, found = header.base_offset,
                        "offset gap in segment, truncating"
                    );
                    truncated = true;
                    break;
                }
                ScanStep::Torn { position, reason } => {
                    tracing::warn!(
                        path = %log_path.display(), position, %reason,
                        "invalid batch in segment, truncating"
                    );
                    truncated = true;
                    break;
                }
                ScanStep::End => break,
            }
        }
        if seg.size != file_len {
            file.set_len(seg.size)
                .map_err(|e| LogError::io(&log_path, e))?;
            truncated = true;
        }
        file.sync_all().map_err(|e| LogError::io(&log_path, e))?;
        if seg.size > 0 {
            seg.roll_base_ms = seg.first_timestamp()?;
        }
        seg.finish_indexes()?;
        Ok((seg, truncated))
    }

    /// Max timestamp of the first batch: after a restart `segment.ms` is measured from it, as
    /// Kafka does. Negative (missing) timestamps give `None`, so the next append's clock is
    /// used; a timestamp ahead of the clock never triggers a roll (see `maybe_roll`).
    fn first_timestamp(&self) -> Result<Option<i64>> {
        Ok(Some(self.read_header_at(0)?.max_timestamp).filter(|t| *t >= 0))
    }

    /// Updates indexes, max timestamp and counters for a batch written at `position`.
    /// `max_ts` is the batch's effective max timestamp.
    pub fn track_batch(&mut self, position: u64, h: &BatchHeader, max_ts: i64, interval: u32) {
        if self.max_timestamp.is_none_or(|(t, _)| max_ts > t) {
            self.max_timestamp = Some((max_ts, h.base_offset));
        }
        if self.bytes_since_index >= u64::from(interval) {
            // Roll rules keep both within u32; skip the entry rather than store a wrong one.
            if let (Ok(rel_offset), Ok(pos)) = (
                u32::try_from(h.base_offset - self.base_offset),
                u32::try_from(position),
            ) {
                self.offset_index.push(OffsetEntry {
                    rel_offset,
                    position: pos,
                });
                self.maybe_time_entry();
                self.bytes_since_index = 0;
            }
        }
        self.bytes_since_index += h.total_size() as u64;
        self.next_offset = h.last_offset() + 1;
    }

    /// Appends (max timestamp so far, its batch) to the time index if it grew.
    fn maybe_time_entry(&mut self) {
        if let Some((ts, off)) = self.max_timestamp {
            if self.time_index.last().is_none_or(|e| ts > e.timestamp) {
                if let Ok(rel_offset) = u32::try_from(off - self.base_offset) {
                    self.time_index.push(TimeEntry {
                        timestamp: ts,
                        rel_offset,
                    });
                }
            }
        }
    }

    /// Adds the final time index entry (so the file ends with the segment's max timestamp,
    /// which a clean open relies on) and writes + fsyncs both indexes. An empty segment needs
    /// no index files (see `load_clean`).
    pub fn finish_indexes(&mut self) -> Result<()> {
        if self.size == 0 {
            return Ok(());
        }
        self.maybe_time_entry();
        self.offset_index.sync()?;
        self.time_index.sync()
    }

    /// Writes pending index entries if many have accumulated (no fsync). Index I/O failures here
    /// are logged, not returned: the data is already written, and the indexes rewrite
    /// themselves on the next flush or are rebuilt on recovery.
    pub fn maybe_flush_indexes(&mut self) {
        for r in [
            self.offset_index
                .wants_flush()
                .then(|| self.offset_index.flush()),
            self.time_index
                .wants_flush()
                .then(|| self.time_index.flush()),
        ]
        .into_iter()
        .flatten()
        {
            if let Err(e) = r {
                tracing::warn!(error = %e, "index flush failed; will retry");
            }
        }
    }

    pub fn read_header_at(&self, position: u64) -> Result<BatchHeader> {
        let mut b = [0u8; BatchHeader::SIZE];
        self.file
            .get()?
            .read_exact_at(&mut b, position)
            .map_err(|e| LogError::io(&self.log_path, e))?;
        let h = BatchHeader::parse(&b)?;
        if h.batch_length < BatchHeader::MIN_BATCH_LENGTH {
            // Would make the header walk loop forever; the file is damaged.
            return Err(LogError::CorruptBatch {
                position: position as usize,
                reason: format!(
                    "stored batch in {} has length {}",
                    self.log_path.display(),
                    h.batch_length
                ),
            });
        }
        Ok(h)
    }

    /// File position of a batch at or before the one containing `offset` (index lookup).
    fn index_position(&self, offset: i64) -> u64 {
        let rel = offset - self.base_offset;
        self.offset_index
            .last_matching(|e| i64::from(e.rel_offset) <= rel)
            .map_or(0, |e| u64::from(e.position))
    }

    /// The batch containing `offset` (its last offset >= `offset`): position and header.
    pub fn find_batch(&self, offset: i64) -> Result<Option<(u64, BatchHeader)>> {
        if offset >= self.next_offset {
            return Ok(None);
        }
        let mut pos = self.index_position(offset);
        while pos < self.size {
            let h = self.read_header_at(pos)?;
            if h.last_offset() >= offset {
                return Ok(Some((pos, h)));
            }
            pos += h.total_size() as u64;
        }
        Ok(None)
    }

    /// The byte range of whole batches from `position` (where `first` starts): the first
    /// always, then more while the total stays within `max_bytes` and base offsets stay below
    /// `upper_bound`. Nothing is read but batch headers near the end of the range (the offset
    /// index skips to the last batch start before it), so the size of a read costs no memory:
    /// the bytes are read later, in pieces, as they are sent (see [`LogSlice`]).
    pub fn slice_from(
        &self,
        position: u64,
        first: &BatchHeader,
        max_bytes: usize,
        upper_bound: i64,
    ) -> Result<LogSlice> {
        let file = self.file.get()?;
        let first_size = first.total_size() as u64;
        let mut limit = self.size;
        if upper_bound < self.next_offset {
            // The first indexed batch at/after upper_bound bounds the read from above.
            if let Some(e) = self
                .offset_index
                .first_not_matching(|e| self.base_offset + i64::from(e.rel_offset) < upper_bound)
            {
                limit = limit.min(u64::from(e.position));
            }
        }
        let avail = limit.saturating_sub(position);
        let end_max = position + first_size.max(avail.min(max_bytes as u64));
        let mut end = position + first_size;
        // Every batch before an index entry inside the range is whole, inside it, and below
        // upper_bound if the entry is: jump there, then walk the few headers after it.
        if let Some(e) = self
            .offset_index
            .last_matching(|e| u64::from(e.position) <= end_max)
        {
            let pos = u64::from(e.position);
            if pos > end && self.base_offset + i64::from(e.rel_offset) < upper_bound {
                end = pos;
            }
        }
        let end = self.walk_headers(&file, end, end_max, upper_bound)?;
        Ok(LogSlice {
            file,
            path: self.log_path.clone(),
            position,
            len: end - position,
        })
    }

    /// From the batch starting at `pos`, the end of the last whole batch that ends by
    /// `end_max` with a base offset below `upper_bound`. Reads headers through a small window.
    fn walk_headers(
        &self,
        file: &File,
        mut pos: u64,
        end_max: u64,
        upper_bound: i64,
    ) -> Result<u64> {
        const WINDOW: u64 = 8 * 1024;
        let overhead = BatchHeader::LOG_OVERHEAD as u64;
        let mut window: Vec<u8> = Vec::new();
        let mut window_pos = 0u64;
        while pos + overhead <= end_max {
            let have = pos >= window_pos && pos + overhead <= window_pos + window.len() as u64;
            if !have {
                window.resize(WINDOW.min(end_max - pos) as usize, 0);
                file.read_exact_at(&mut window, pos)
                    .map_err(|e| LogError::io(&self.log_path, e))?;
                window_pos = pos;
            }
            let i = (pos - window_pos) as usize;
            let mut a = [0u8; 8];
            a.copy_from_slice(&window[i..i + 8]);
            let base = i64::from_be_bytes(a);
            let mut l = [0u8; 4];
            l.copy_from_slice(&window[i + 8..i + 12]);
            let Ok(len) = u64::try_from(i32::from_be_bytes(l)) else {
                break;
            };
            let next = pos + overhead + len;
            if base >= upper_bound || next > end_max || len < BatchHeader::MIN_BATCH_LENGTH as u64 {
                break;
            }
            pos = next;
        }
        Ok(pos)
    }

    /// Reads the whole batch at `position` and decodes its records.
    pub fn decode_batch_at(&self, position: u64, h: &BatchHeader) -> Result<Vec<Record>> {
        let mut buf = vec![0u8; h.total_size()];
        self.file
            .get()?
            .read_exact_at(&mut buf, position)
            .map_err(|e| LogError::io(&self.log_path, e))?;
        let mut bytes = Bytes::from(buf);
        RecordBatchDecoder::decode(&mut bytes)
            .map(|set| set.records)
            .map_err(|e| LogError::CorruptBatch {
                position: position as usize,
                reason: format!("cannot decode stored batch: {e}"),
            })
    }

    /// First record with timestamp >= `target`, scanning from the time index's hint.
    pub fn offset_for_timestamp(&self, target: i64) -> Result<Option<(i64, i64)>> {
        let start_offset = self
            .time_index
            .last_matching(|e| e.timestamp <= target)
            .map_or(self.base_offset, |e| {
                self.base_offset + i64::from(e.rel_offset)
            });
        let mut pos = self.index_position(start_offset);
        while pos < self.size {
            let h = self.read_header_at(pos)?;
            if h.max_timestamp >= target {
                if h.is_log_append_time() {
                    // Every record of the batch carries the batch's max timestamp.
                    return Ok(Some((h.base_offset, h.max_timestamp)));
                }
                let records = self.decode_batch_at(pos, &h)?;
                if let Some(r) = records.iter().find(|r| r.timestamp >= target) {
                    return Ok(Some((r.offset, r.timestamp)));
                }
            }
            pos += h.total_size() as u64;
        }
        Ok(None)
    }

    /// Timestamp used for time retention: the max timestamp, or the file's mtime when the
    /// segment has no usable timestamps (as Kafka does). `None` when unknown.
    pub fn retention_timestamp(&self) -> Option<i64> {
        match self.max_timestamp {
            Some((t, _)) if t >= 0 => Some(t),
            _ => {
                // By path: no descriptor needed for a metadata lookup.
                let modified = std::fs::metadata(&self.log_path).ok()?.modified().ok()?;
                let d = modified.duration_since(std::time::UNIX_EPOCH).ok()?;
                i64::try_from(d.as_millis()).ok()
            }
        }
    }

    /// Fsyncs the log file; afterwards the pool may close it again.
    pub fn sync_log(&self) -> Result<()> {
        self.file
            .get()?
            .sync_all()
            .map_err(|e| LogError::io(&self.log_path, e))?;
        self.file.mark_clean();
        Ok(())
    }

    /// Paths of the three files of this segment.
    pub fn paths(&self) -> [PathBuf; 3] {
        [
            self.log_path.clone(),
            self.offset_index.path().to_path_buf(),
            self.time_index.path().to_path_buf(),
        ]
    }
}
