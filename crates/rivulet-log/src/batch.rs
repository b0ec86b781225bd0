//! Kafka record batch (magic v2) header parsing and validation.
//!
//! Batches are stored byte-for-byte as the producer sent them (compressed payloads untouched);
//! only the base offset (bytes 0..8) and partition leader epoch (bytes 12..16) are rewritten by
//! the broker, and neither is covered by the CRC, which spans bytes 21.. (attributes onwards).
//! We parse the fixed 61-byte header by hand: it is the storage format itself, and decoding full
//! batches through a codec would decompress every payload on the hot path.

use crate::error::{LogError, Result};

/// Fixed-size header of a v2 record batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    /// Bytes after the length field (so the batch occupies `12 + batch_length` bytes).
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

impl BatchHeader {
    /// Size of the fixed header in bytes.
    pub const SIZE: usize = 61;
    /// Offset of the base offset, batch length and CRC-covered region.
    pub const LENGTH_OFFSET: usize = 8;
    pub const CRC_OFFSET: usize = 17;
    pub const ATTRIBUTES_OFFSET: usize = 21;
    /// Offset of the partition leader epoch field.
    pub const LEADER_EPOCH_OFFSET: usize = 12;
    /// Offset of the max timestamp field (CRC-covered).
    pub const MAX_TIMESTAMP_OFFSET: usize = 35;
    /// Base offset + batch length: the bytes not counted by `batch_length`.
    pub const LOG_OVERHEAD: usize = 12;
    /// Smallest legal `batch_length` (a header with zero records).
    pub const MIN_BATCH_LENGTH: i32 = (Self::SIZE - Self::LOG_OVERHEAD) as i32;

    /// Parses the header at the start of `buf` (no CRC check). Errors if `buf` is shorter than
    /// [`Self::SIZE`].
    pub fn parse(buf: &[u8]) -> Result<BatchHeader> {
        let h: &[u8; Self::SIZE] = buf
            .get(..Self::SIZE)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| LogError::CorruptBatch {
                position: 0,
                reason: format!(
                    "batch header needs {} bytes, only {} available",
                    Self::SIZE,
                    buf.len()
                ),
            })?;
        Ok(BatchHeader {
            base_offset: be_i64(h, 0),
            batch_length: be_i32(h, 8),
            partition_leader_epoch: be_i32(h, 12),
            magic: h[16] as i8,
            crc: be_i32(h, 17) as u32,
            attributes: be_i16(h, 21),
            last_offset_delta: be_i32(h, 23),
            base_timestamp: be_i64(h, 27),
            max_timestamp: be_i64(h, 35),
            producer_id: be_i64(h, 43),
            producer_epoch: be_i16(h, 51),
            base_sequence: be_i32(h, 53),
            record_count: be_i32(h, 57),
        })
    }
    /// Total bytes the batch occupies: `12 + batch_length`.
    pub fn total_size(&self) -> usize {
        // A negative length never passes validation; clamp so callers cannot underflow.
        Self::LOG_OVERHEAD + usize::try_from(self.batch_length).unwrap_or(0)
    }
    /// Whether the batch carries LogAppendTime timestamps (attributes bit 3).
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & 0x08 != 0
    }
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }
    /// Compression codec id (attributes bits 0..3): 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.
    pub fn compression(&self) -> u8 {
        (self.attributes & 0x7) as u8
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes & 0x10 != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes & 0x20 != 0
    }
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }
    /// Sequence of the last record (wraps at i32::MAX as Kafka does).
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence < 0 {
            // NO_SEQUENCE stays NO_SEQUENCE.
            return self.base_sequence;
        }
        increment_sequence(self.base_sequence, self.last_offset_delta)
    }
}

/// `seq + delta` wrapping to 0 after i32::MAX (Kafka's `DefaultRecordBatch.incrementSequence`).
/// Computed in i64 so that nonsense (negative) deltas from unvalidated headers cannot overflow.
pub(crate) fn increment_sequence(seq: i32, delta: i32) -> i32 {
    let sum = i64::from(seq) + i64::from(delta);
    if sum > i64::from(i32::MAX) {
        (sum - i64::from(i32::MAX) - 1) as i32
    } else {
        sum as i32
    }
}

fn be_i64(b: &[u8; BatchHeader::SIZE], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

fn be_i32(b: &[u8; BatchHeader::SIZE], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(a)
}

fn be_i16(b: &[u8; BatchHeader::SIZE], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

/// Checks the structure of the batch starting at `buf[0]` (header present, length sane and
/// within `buf`, magic 2) without the CRC. Returns the header; `position` is only used for error
/// messages. Shared by produce validation and log recovery.
pub(crate) fn check_structure(buf: &[u8], position: usize) -> Result<BatchHeader> {
    let corrupt = |reason: String| LogError::CorruptBatch { position, reason };
    if buf.len() < BatchHeader::SIZE {
        return Err(corrupt(format!(
            "truncated batch: {} bytes left, header needs {}",
            buf.len(),
            BatchHeader::SIZE
        )));
    }
    let h = BatchHeader::parse(buf).map_err(|_| corrupt("unreadable header".into()))?;
    if h.batch_length < BatchHeader::MIN_BATCH_LENGTH {
        return Err(corrupt(format!(
            "batch length {} is below the minimum {}",
            h.batch_length,
            BatchHeader::MIN_BATCH_LENGTH
        )));
    }
    if h.total_size() > buf.len() {
        return Err(corrupt(format!(
            "batch of {} bytes extends past the end of the buffer ({} bytes left)",
            h.total_size(),
            buf.len()
        )));
    }
    if h.magic != 2 {
        return Err(corrupt(format!("unsupported magic {} (only v2)", h.magic)));
    }
    Ok(h)
}

/// CRC-32C of the batch's CRC-covered region (attributes to end). `batch` is exactly one batch.
pub(crate) fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[BatchHeader::ATTRIBUTES_OFFSET..])
}

/// Splits a produce payload into its batches and validates each one completely: length within
/// bounds and consistent with the buffer, magic == 2, record count > 0 and consistent with
/// last_offset_delta, CRC-32C over bytes 21..end. Any failure rejects the whole payload with
/// [`LogError::CorruptBatch`] (position = byte offset in `records`) or
/// [`LogError::InvalidRecord`]; a trailing partial batch is corrupt, not ignored.
pub fn validate_batches(records: &[u8]) -> Result<Vec<BatchHeader>> {
    let mut headers = Vec::new();
    let mut pos = 0usize;
    while pos < records.len() {
        let rest = &records[pos..];
        let h = check_structure(rest, pos)?;
        let size = h.total_size();
        let actual = compute_crc(&rest[..size]);
        if actual != h.crc {
            return Err(LogError::CorruptBatch {
                position: pos,
                reason: format!(
                    "CRC-32C mismatch: header says {:#010x}, content gives {actual:#010x}",
                    h.crc
                ),
            });
        }
        if h.record_count < 1 {
            return Err(LogError::InvalidRecord(format!(
                "batch at byte {pos} has record count {}",
                h.record_count
            )));
        }
        if i64::from(h.last_offset_delta) != i64::from(h.record_count) - 1 {
            return Err(LogError::InvalidRecord(format!(
                "batch at byte {pos}: last offset delta {} does not match record count {}",
                h.last_offset_delta, h.record_count
            )));
        }
        if h.compression() > 4 {
            return Err(LogError::InvalidRecord(format!(
                "batch at byte {pos} uses unknown compression codec {}",
                h.compression()
            )));
        }
        headers.push(h);
        pos += size;
    }
    Ok(headers)
}

/// What the first record of a control batch says (`batch` starts at its header): `Some(true)`
/// for a COMMIT marker, `Some(false)` for ABORT, `None` for anything else. Control batches are
/// written by the broker only, uncompressed, one record each.
pub fn control_marker(batch: &[u8]) -> Option<bool> {
    let mut p = BatchHeader::SIZE;
    let skip = |p: &mut usize| -> Option<i64> {
        let (v, n) = zigzag(batch.get(*p..)?)?;
        *p += n;
        Some(v)
    };
    skip(&mut p)?; // record length
    p += 1; // attributes
    skip(&mut p)?; // timestamp delta
    skip(&mut p)?; // offset delta
    if skip(&mut p)? < 4 {
        return None;
    }
    let key = batch.get(p..p + 4)?;
    let version = i16::from_be_bytes([key[0], key[1]]);
    match (version, i16::from_be_bytes([key[2], key[3]])) {
        (0, 0) => Some(false),
        (0, 1) => Some(true),
        _ => None,
    }
}

/// A zigzag varint (at most 10 bytes) and its length.
fn zigzag(b: &[u8]) -> Option<(i64, usize)> {
    let mut v: u64 = 0;
    for (i, byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((((v >> 1) as i64) ^ -((v & 1) as i64), i + 1));
        }
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::testutil::batch;

    #[test]
    fn parses_and_validates_an_encoded_batch() {
        let b = batch(3, 100);
        let hs = validate_batches(&b).unwrap();
        assert_eq!(hs.len(), 1);
        let h = hs[0];
        assert_eq!(h, BatchHeader::parse(&b).unwrap());
        assert_eq!((h.magic, h.record_count, h.last_offset_delta), (2, 3, 2));
        assert_eq!(h.total_size(), b.len());
        assert_eq!((h.base_timestamp, h.max_timestamp), (100, 102));
        assert!(!h.has_producer_id());
        assert_eq!(h.compression(), 0);
        assert!(BatchHeader::parse(&b[..60]).is_err());
    }

    #[test]
    fn rejects_bad_structure() {
        let b = batch(2, 0);
        let mut bad_magic = b.clone();
        bad_magic[16] = 1;
        assert!(matches!(
            validate_batches(&bad_magic),
            Err(LogError::CorruptBatch { position: 0, .. })
        ));
        let mut short_len = b.clone();
        short_len[8..12].copy_from_slice(&10i32.to_be_bytes());
        assert!(validate_batches(&short_len).is_err());
        let mut long_len = b.clone();
        long_len[8..12].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(validate_batches(&long_len).is_err());
        // Record count inconsistent with the offset delta (CRC fixed up so only that is wrong).
        let mut count = b.clone();
        count[57..61].copy_from_slice(&5i32.to_be_bytes());
        let crc = crc32c::crc32c(&count[21..]);
        count[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            validate_batches(&count),
            Err(LogError::InvalidRecord(_))
        ));
        let mut zero = b.clone();
        zero[57..61].copy_from_slice(&0i32.to_be_bytes());
        let crc = crc32c::crc32c(&zero[21..]);
        zero[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            validate_batches(&zero),
            Err(LogError::InvalidRecord(_))
        ));
        // Base offset and leader epoch are not CRC-covered.
        let mut moved = b.clone();
        moved[0..8].copy_from_slice(&77i64.to_be_bytes());
        moved[12..16].copy_from_slice(&9i32.to_be_bytes());
        assert_eq!(validate_batches(&moved).unwrap()[0].base_offset, 77);
    }

    #[test]
    fn sequences_wrap() {
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
        assert_eq!(increment_sequence(5, 2), 7);
        let mut h = BatchHeader::parse(&batch(3, 0)).unwrap();
        h.base_sequence = i32::MAX;
        assert_eq!(h.last_sequence(), 1);
        h.base_sequence = -1;
        assert_eq!(h.last_sequence(), -1);
        h.base_sequence = 0;
        h.last_offset_delta = -7;
        let _ = h.last_sequence(); // nonsense input must not panic
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = validate_batches(&bytes);
            if let Ok(h) = BatchHeader::parse(&bytes) {
                let _ = (h.total_size(), h.last_offset(), h.last_sequence());
            }
        }

        #[test]
        fn mutated_batches_never_panic(
            flips in proptest::collection::vec((0usize..200, any::<u8>()), 1..6),
            cut in 0usize..300,
        ) {
            let mut b = batch(3, 0);
            b.extend_from_slice(&batch(2, 5));
            for (i, v) in flips {
                let n = b.len();
                b[i % n] = v;
            }
            b.truncate(cut.min(b.len()));
            let _ = validate_batches(&b);
        }
    }
}
