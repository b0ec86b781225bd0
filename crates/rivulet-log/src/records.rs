//! Validation of the records inside a v2 batch, compressed or not: what Kafka's `LogValidator`
//! checks before it stores a client's batch.
//!
//! A batch whose header and CRC are fine can still carry garbage: the CRC is the producer's
//! own, so random bytes with the CRC fixed up pass it. Stored, such a batch stalls every
//! consumer behind it (librdkafka loops on `_BAD_COMPRESSION`, kafka-python raises, nothing
//! after it is reachable without a manual seek). So every record is walked: framing (the
//! length prefix matches the fields, keys/values/headers inside it), the declared count (no
//! more, no fewer records, nothing after the last), offset deltas `0, 1, 2, …`, timestamps
//! (`base + delta` must not overflow), keys on compacted topics. Compressed payloads are
//! decompressed as a stream, never whole, and refused once they inflate past
//! [`RecordRules::max_decompressed_bytes`] (a multiple of `max.message.bytes`), so a small
//! batch cannot make the broker inflate hundreds of MiB.
//!
//! The record format is parsed by hand, as the batch header is (`batch.rs`): the
//! `kafka-protocol` decoder materialises every key, value and header (and decompresses the
//! whole payload into memory first), which is the cost and the memory this pass must avoid;
//! here nothing is copied, and values are skipped. Decompression itself is the codecs' crates
//! (flate2, snap, lz4, zstd), the ones `kafka-protocol` uses.

use std::io::Read;

use crate::batch::BatchHeader;
use crate::config::LogConfig;
use crate::error::{LogError, Result};

/// Records of one batch may decompress to at most this many times the topic's
/// `max.message.bytes` (and at least [`MIN_DECOMPRESSED_LIMIT`]): generous for real data
/// (JSON compresses 5–10×), small next to a decompression bomb (407 KB of gzip that inflate to
/// 400 MiB were accepted before).
pub const MAX_DECOMPRESSION_RATIO: u64 = 32;
/// Floor of the decompressed-size limit, for topics with a tiny `max.message.bytes`.
pub const MIN_DECOMPRESSED_LIMIT: u64 = 1 << 20;
/// zstd frames may ask for a window of at most 2^this bytes (16 MiB); the decoder's default
/// allows 128 MiB of buffer per decompression. Producers use far smaller windows.
const ZSTD_WINDOW_LOG_MAX: u32 = 24;
/// Decompressed bytes are read in pieces of this size.
const CHUNK: usize = 64 * 1024;

/// NO_TIMESTAMP in Kafka's record format.
const NO_TIMESTAMP: i64 = -1;

/// What the records of a batch must satisfy, from the topic's config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRules {
    /// Refuse a compressed batch whose records inflate past this many bytes.
    pub max_decompressed_bytes: u64,
    /// `cleanup.policy` includes `compact`: every record needs a key (as in Kafka).
    pub require_keys: bool,
}

impl RecordRules {
    pub fn for_config(config: &LogConfig) -> RecordRules {
        let max = u64::try_from(config.max_message_bytes).unwrap_or(0);
        RecordRules {
            max_decompressed_bytes: max
                .saturating_mul(MAX_DECOMPRESSION_RATIO)
                .max(MIN_DECOMPRESSED_LIMIT),
            require_keys: config.cleanup_policy.split(',').any(|p| p == "compact"),
        }
    }
}

/// Why a record failed: framing and content problems are INVALID_RECORD; a payload that does
/// not decompress is CORRUPT_MESSAGE.
enum Fault {
    Invalid(String),
    Corrupt(String),
}

/// A source of record bytes: the batch itself, or a decompressor over it.
trait Input {
    /// The next byte; `None` at the end.
    fn byte(&mut self) -> Result<Option<u8>, Fault>;
    /// Skips `n` bytes; `false` if the input ended first.
    fn skip(&mut self, n: u64) -> Result<bool, Fault>;
}

/// Uncompressed records: a slice (the hot path, kept free of `io::Read`).
struct SliceInput<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Input for SliceInput<'_> {
    #[inline]
    fn byte(&mut self) -> Result<Option<u8>, Fault> {
        let b = self.buf.get(self.pos).copied();
        self.pos += usize::from(b.is_some());
        Ok(b)
    }
    #[inline]
    fn skip(&mut self, n: u64) -> Result<bool, Fault> {
        let left = (self.buf.len() - self.pos) as u64;
        if n > left {
            self.pos = self.buf.len();
            return Ok(false);
        }
        self.pos += n as usize;
        Ok(true)
    }
}

/// Decompressed records, read in [`CHUNK`]s and counted against the limit.
struct StreamInput<R> {
    codec: &'static str,
    reader: R,
    buf: Vec<u8>,
    pos: usize,
    len: usize,
    total: u64,
    limit: u64,
}

impl<R: Read> StreamInput<R> {
    fn new(codec: &'static str, reader: R, limit: u64) -> Self {
        StreamInput {
            codec,
            reader,
            buf: vec![0; CHUNK],
            pos: 0,
            len: 0,
            total: 0,
            limit,
        }
    }

    /// Refills the buffer; `false` at the end of the stream.
    fn fill(&mut self) -> Result<bool, Fault> {
        let n = self.reader.read(&mut self.buf).map_err(|e| {
            Fault::Corrupt(format!("{} payload does not decompress: {e}", self.codec))
        })?;
        self.total += n as u64;
        if self.total > self.limit {
            return Err(Fault::Invalid(format!(
                "records decompress to more than {} bytes ({}× max.message.bytes)",
                self.limit, MAX_DECOMPRESSION_RATIO
            )));
        }
        self.pos = 0;
        self.len = n;
        Ok(n > 0)
    }
}

impl<R: Read> Input for StreamInput<R> {
    #[inline]
    fn byte(&mut self) -> Result<Option<u8>, Fault> {
        if self.pos == self.len && !self.fill()? {
            return Ok(None);
        }
        let b = self.buf[self.pos];
        self.pos += 1;
        Ok(Some(b))
    }
    fn skip(&mut self, mut n: u64) -> Result<bool, Fault> {
        while n > 0 {
            if self.pos == self.len && !self.fill()? {
                return Ok(false);
            }
            let step = n.min((self.len - self.pos) as u64);
            self.pos += step as usize;
            n -= step;
        }
        Ok(true)
    }
}

/// The reader Kafka's snappy framing needs: snappy-java's "xerial" blocks (magic header, then
/// length-prefixed raw blocks) as the Java client writes them, or one raw block as librdkafka
/// writes it. The `snap` crate decodes raw blocks; each block's declared length is checked
/// against the remaining limit before its buffer is allocated.
struct SnappyReader<'a> {
    input: &'a [u8],
    xerial: bool,
    out: Vec<u8>,
    pos: usize,
    budget: u64,
    done: bool,
}

const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER: usize = 16;

impl<'a> SnappyReader<'a> {
    fn new(input: &'a [u8], budget: u64) -> Self {
        let xerial = input.len() >= XERIAL_HEADER && input[..8] == XERIAL_MAGIC[..];
        SnappyReader {
            input: if xerial {
                &input[XERIAL_HEADER..]
            } else {
                input
            },
            xerial,
            out: Vec::new(),
            pos: 0,
            budget,
            done: false,
        }
    }

    fn next_block(&mut self) -> std::io::Result<bool> {
        let bad = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidData, m);
        let block = if self.xerial {
            if self.input.is_empty() {
                return Ok(false);
            }
            let Some(len) = self.input.get(..4) else {
                return Err(bad("truncated xerial block length".into()));
            };
            let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
            let Some(block) = self.input.get(4..4 + len) else {
                return Err(bad(format!("xerial block of {len} bytes is truncated")));
            };
            self.input = &self.input[4 + len..];
            block
        } else {
            if self.done {
                return Ok(false);
            }
            self.done = true;
            self.input
        };
        let n = snap::raw::decompress_len(block).map_err(|e| bad(e.to_string()))?;
        if n as u64 > self.budget {
            return Err(bad(format!(
                "snappy block claims {n} bytes, more than the {} allowed",
                self.budget
            )));
        }
        self.budget -= n as u64;
        self.out.resize(n, 0);
        snap::raw::Decoder::new()
            .decompress(block, &mut self.out)
            .map_err(|e| bad(e.to_string()))?;
        self.pos = 0;
        Ok(true)
    }
}

impl Read for SnappyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.out.len() {
            if !self.next_block()? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.out.len() - self.pos);
        buf[..n].copy_from_slice(&self.out[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// A zigzag varint (at most 5 bytes) whose first byte, if already read, is `first`.
#[inline]
fn varint_from<I: Input>(first: Option<u8>, input: &mut I, what: &str) -> Result<i32, Fault> {
    let mut raw: u32 = 0;
    let mut next = first;
    for i in 0..5 {
        let b = match next.take() {
            Some(b) => b,
            None => match input.byte()? {
                Some(b) => b,
                None => return Err(Fault::Invalid(format!("{what} is cut off"))),
            },
        };
        raw |= u32::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32));
        }
    }
    Err(Fault::Invalid(format!("{what} is not a valid varint")))
}

#[inline]
fn varint<I: Input>(input: &mut I, what: &str) -> Result<i32, Fault> {
    varint_from(None, input, what)
}

#[inline]
fn varlong<I: Input>(input: &mut I, what: &str) -> Result<i64, Fault> {
    let mut raw: u64 = 0;
    for i in 0..10 {
        let Some(b) = input.byte()? else {
            return Err(Fault::Invalid(format!("{what} is cut off")));
        };
        raw |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64));
        }
    }
    Err(Fault::Invalid(format!("{what} is not a valid varlong")))
}

/// Bytes a varint-encoded value took (for the record length check).
struct Counting<'a, I> {
    inner: &'a mut I,
    used: u64,
}

impl<I: Input> Input for Counting<'_, I> {
    #[inline]
    fn byte(&mut self) -> Result<Option<u8>, Fault> {
        let b = self.inner.byte()?;
        self.used += u64::from(b.is_some());
        Ok(b)
    }
    #[inline]
    fn skip(&mut self, n: u64) -> Result<bool, Fault> {
        let ok = self.inner.skip(n)?;
        if ok {
            self.used += n;
        }
        Ok(ok)
    }
}

/// A length-prefixed byte field inside a record: -1 is null when `nullable`.
#[inline]
fn skip_bytes<I: Input>(
    r: &mut Counting<'_, I>,
    len_limit: u64,
    nullable: bool,
    what: &str,
) -> Result<bool, Fault> {
    let len = varint(r, what)?;
    if len == -1 && nullable {
        return Ok(false);
    }
    let Ok(n) = u64::try_from(len) else {
        return Err(Fault::Invalid(format!("{what} is {len}")));
    };
    if r.used + n > len_limit || !r.skip(n)? {
        return Err(Fault::Invalid(format!(
            "{what} of {n} bytes runs past the end of its record"
        )));
    }
    Ok(true)
}

/// Walks `count` records; returns the largest record timestamp (NO_TIMESTAMP if none).
fn walk<I: Input>(input: &mut I, h: &BatchHeader, rules: &RecordRules) -> Result<i64, Fault> {
    let mut max_ts = NO_TIMESTAMP;
    let count = h.record_count;
    for i in 0..count {
        let at = |m: String| Fault::Invalid(format!("record {i} of {count}: {m}"));
        let Some(first) = input.byte()? else {
            return Err(at("the batch ends before it".into()));
        };
        let len = varint_from(Some(first), input, "record length").map_err(|e| prefix(e, &at))?;
        let Ok(len) = u64::try_from(len) else {
            return Err(at(format!("length {len}")));
        };
        let mut r = Counting {
            inner: &mut *input,
            used: 0,
        };
        // Attributes (unused in v2), then the deltas.
        if r.byte()?.is_none() {
            return Err(at(format!("length {len} but the batch ends first")));
        }
        let ts_delta = varlong(&mut r, "timestamp delta").map_err(|e| prefix(e, &at))?;
        let offset_delta = varint(&mut r, "offset delta").map_err(|e| prefix(e, &at))?;
        if offset_delta != i {
            return Err(at(format!(
                "offset delta {offset_delta}, expected {i} (deltas count 0, 1, 2, …)"
            )));
        }
        let ts = h.base_timestamp.checked_add(ts_delta).ok_or_else(|| {
            at(format!(
                "timestamp {} + {ts_delta} overflows",
                h.base_timestamp
            ))
        })?;
        max_ts = max_ts.max(ts);
        let has_key = skip_bytes(&mut r, len, true, "key").map_err(|e| prefix(e, &at))?;
        if rules.require_keys && !has_key {
            return Err(at(
                "a compacted topic (cleanup.policy=compact) cannot take a record without key"
                    .into(),
            ));
        }
        skip_bytes(&mut r, len, true, "value").map_err(|e| prefix(e, &at))?;
        let headers = varint(&mut r, "header count").map_err(|e| prefix(e, &at))?;
        if headers < 0 {
            return Err(at(format!("header count {headers}")));
        }
        for _ in 0..headers {
            skip_bytes(&mut r, len, false, "header key").map_err(|e| prefix(e, &at))?;
            skip_bytes(&mut r, len, true, "header value").map_err(|e| prefix(e, &at))?;
        }
        if r.used != len {
            return Err(at(format!(
                "length says {len} bytes but its fields take {}",
                r.used
            )));
        }
    }
    if input.byte()?.is_some() {
        return Err(Fault::Invalid(format!(
            "bytes follow the last of the {count} declared records"
        )));
    }
    Ok(max_ts)
}

fn prefix(e: Fault, at: &impl Fn(String) -> Fault) -> Fault {
    match e {
        Fault::Invalid(m) => at(m),
        corrupt => corrupt,
    }
}

/// Validates the records of the batch `batch` (exactly its bytes; header and CRC already
/// checked, `position` is its byte offset in the request for messages). Returns the largest
/// record timestamp, which the stored header's max timestamp must equal.
pub fn validate_records(
    batch: &[u8],
    h: &BatchHeader,
    position: usize,
    rules: &RecordRules,
) -> Result<i64> {
    let payload = &batch[BatchHeader::SIZE..];
    let limit = rules.max_decompressed_bytes;
    let result = match h.compression() {
        0 => walk(
            &mut SliceInput {
                buf: payload,
                pos: 0,
            },
            h,
            rules,
        ),
        1 => walk(
            &mut StreamInput::new("gzip", flate2::read::MultiGzDecoder::new(payload), limit),
            h,
            rules,
        ),
        2 => walk(
            &mut StreamInput::new("snappy", SnappyReader::new(payload, limit), limit),
            h,
            rules,
        ),
        3 => match lz4::Decoder::new(payload) {
            Ok(d) => walk(&mut StreamInput::new("lz4", d, limit), h, rules),
            Err(e) => Err(Fault::Corrupt(format!("lz4 decoder: {e}"))),
        },
        4 => match zstd::stream::read::Decoder::with_buffer(payload)
            .and_then(|mut d| d.window_log_max(ZSTD_WINDOW_LOG_MAX).map(|()| d))
        {
            Ok(d) => walk(&mut StreamInput::new("zstd", d, limit), h, rules),
            Err(e) => Err(Fault::Corrupt(format!("zstd decoder: {e}"))),
        },
        other => Err(Fault::Invalid(format!("unknown compression codec {other}"))),
    };
    match result {
        Ok(max_ts) => Ok(max_ts),
        Err(Fault::Invalid(reason)) => Err(LogError::InvalidRecord(format!(
            "batch at byte {position}: {reason}"
        ))),
        Err(Fault::Corrupt(reason)) => Err(LogError::CorruptBatch { position, reason }),
    }
}

/// The records section of a stored batch, decompressed (at most `limit` bytes): for the
/// cleaner, which rewrites what it keeps. Uncompressed batches are returned as they are.
pub(crate) fn records_section(batch: &[u8], h: &BatchHeader, limit: u64) -> Result<Vec<u8>> {
    let payload = &batch[BatchHeader::SIZE..];
    let corrupt = |reason: String| LogError::CorruptBatch {
        position: 0,
        reason,
    };
    let mut out = Vec::new();
    let read = |r: &mut dyn Read, out: &mut Vec<u8>| -> std::io::Result<usize> {
        r.take(limit + 1).read_to_end(out)
    };
    let n = match h.compression() {
        0 => return Ok(payload.to_vec()),
        1 => read(&mut flate2::read::MultiGzDecoder::new(payload), &mut out),
        2 => read(&mut SnappyReader::new(payload, limit), &mut out),
        3 => lz4::Decoder::new(payload).and_then(|mut d| read(&mut d, &mut out)),
        4 => zstd::stream::read::Decoder::with_buffer(payload)
            .and_then(|mut d| d.window_log_max(ZSTD_WINDOW_LOG_MAX).map(|()| d))
            .and_then(|mut d| read(&mut d, &mut out)),
        other => return Err(corrupt(format!("unknown compression codec {other}"))),
    }
    .map_err(|e| corrupt(format!("decompressing a stored batch: {e}")))?;
    if n as u64 > limit {
        return Err(corrupt(format!(
            "a stored batch decompresses past {limit} bytes"
        )));
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use kafka_protocol::records::Compression;
    use proptest::prelude::*;

    use super::*;
    use crate::batch::validate_batches;
    use crate::testutil::{batch, batch_full, forge, gzip, records_of, varint};

    fn rules() -> RecordRules {
        RecordRules::for_config(&LogConfig::default())
    }

    fn check(b: &[u8]) -> Result<i64> {
        check_with(b, &rules())
    }

    fn check_with(b: &[u8], rules: &RecordRules) -> Result<i64> {
        let h = validate_batches(b)?[0];
        validate_records(b, &h, 0, rules)
    }

    const CODECS: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    #[test]
    fn real_batches_of_every_codec_pass_and_give_their_max_timestamp() {
        for c in CODECS {
            let b = batch_full(&[500, 300, 900, 100], 50, None, c);
            assert_eq!(check(&b).unwrap(), 900, "{c:?}");
        }
    }

    #[test]
    fn raw_snappy_as_librdkafka_writes_it_passes() {
        let plain = batch_full(&[7, 8], 20, None, Compression::None);
        let raw = snap::raw::Encoder::new()
            .compress_vec(&records_of(&plain))
            .unwrap();
        assert_eq!(check(&forge(&raw, 2, 2)).unwrap(), 1_001);
    }

    /// Issue 12, item 3: random bytes behind the compression bits (length and CRC fixed up)
    /// were acknowledged with error 0.
    #[test]
    fn garbage_in_compressed_batches_is_refused() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for codec in 1..=4i16 {
            for len in [1usize, 16, 300, 5000] {
                let junk: Vec<u8> = (0..len)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        seed as u8
                    })
                    .collect();
                let b = forge(&junk, codec, 3);
                assert!(
                    matches!(
                        check(&b),
                        Err(LogError::CorruptBatch { .. } | LogError::InvalidRecord(_))
                    ),
                    "codec {codec}, {len} bytes"
                );
            }
        }
    }

    #[test]
    fn truncated_gzip_is_corrupt() {
        let plain = batch_full(&[1, 2, 3], 200, None, Compression::None);
        let gz = gzip(&records_of(&plain));
        let err = check(&forge(&gz[..gz.len() / 2], 1, 3)).unwrap_err();
        assert!(
            matches!(
                err,
                LogError::CorruptBatch { .. } | LogError::InvalidRecord(_)
            ),
            "{err}"
        );
    }

    #[test]
    fn record_length_of_0x3fffffff_is_refused() {
        let mut recs = varint(0x3fff_ffff);
        recs.extend_from_slice(&[0; 20]);
        let err = check(&forge(&recs, 0, 1)).unwrap_err();
        assert!(
            matches!(err, LogError::InvalidRecord(ref m) if m.contains("record 0 of 1")),
            "{err}"
        );
    }

    #[test]
    fn record_longer_than_the_data_left_is_refused() {
        let plain = batch(1, 0);
        let mut recs = records_of(&plain);
        // The first byte is the record length varint (small records: one byte); claim 10 more.
        let len = i64::from(recs[0] >> 1);
        let mut grown = varint(len + 10);
        grown.extend_from_slice(&recs[1..]);
        recs = grown;
        assert!(matches!(
            check(&forge(&recs, 0, 1)),
            Err(LogError::InvalidRecord(_))
        ));
    }

    #[test]
    fn declared_count_must_match_the_records() {
        // count=3 with no records at all (issue 12).
        let err = check(&forge(&[], 0, 3)).unwrap_err();
        assert!(
            matches!(err, LogError::InvalidRecord(ref m) if m.contains("record 0 of 3")),
            "{err}"
        );
        // count=3 with two records, and count=1 with two.
        let two = records_of(&batch(2, 0));
        assert!(check(&forge(&two, 0, 3)).is_err());
        let err = check(&forge(&two, 0, 1)).unwrap_err();
        assert!(err.to_string().contains("bytes follow the last"), "{err}");
        // The same with gzip.
        assert!(check(&forge(&gzip(&two), 1, 3)).is_err());
        assert!(check(&forge(&gzip(&two), 1, 2)).is_ok());
    }

    /// 407 KB of gzip that inflate to a 400 MiB record were stored; now decompression stops at
    /// 32 × max.message.bytes.
    #[test]
    fn decompression_bomb_is_refused_at_the_limit() {
        use std::io::Write;
        let value_len: i64 = 400 << 20;
        let mut head = Vec::new();
        head.push(0u8); // attributes
        head.extend(varint(0)); // timestamp delta
        head.extend(varint(0)); // offset delta
        head.extend(varint(-1)); // null key
        head.extend(varint(value_len));
        let body_len = head.len() as i64 + value_len + 1;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&varint(body_len)).unwrap();
        e.write_all(&head).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..400 {
            e.write_all(&zeros).unwrap();
        }
        e.write_all(&[0]).unwrap(); // no headers
        let gz = e.finish().unwrap();
        assert!(gz.len() < 1 << 20, "the bomb is small: {} bytes", gz.len());
        let err = check(&forge(&gz, 1, 1)).unwrap_err();
        assert!(err.to_string().contains("decompress to more than"), "{err}");
        // A topic allowing larger batches allows proportionally more.
        let roomy = RecordRules {
            max_decompressed_bytes: 401 << 20,
            require_keys: false,
        };
        assert_eq!(check_with(&forge(&gz, 1, 1), &roomy).unwrap(), 1_000);
    }

    #[test]
    fn offset_deltas_must_count_from_zero() {
        let mut r = vec![0u8];
        r.extend(varint(0)); // timestamp delta
        r.extend(varint(5)); // offset delta 5, expected 0
        r.extend(varint(-1));
        r.extend(varint(-1));
        r.extend(varint(0));
        let mut recs = varint(r.len() as i64);
        recs.extend(r);
        let err = check(&forge(&recs, 0, 1)).unwrap_err();
        assert!(err.to_string().contains("offset delta 5"), "{err}");
    }

    #[test]
    fn timestamp_overflow_and_bad_fields_are_refused() {
        let record = |ts_delta: i64, key: i64, headers: i64| {
            let mut r = vec![0u8];
            r.extend(varint(ts_delta));
            r.extend(varint(0));
            r.extend(varint(key));
            r.extend(varint(-1));
            r.extend(varint(headers));
            let mut out = varint(r.len() as i64);
            out.extend(r);
            out
        };
        assert!(check(&forge(&record(i64::MAX - 10, -1, 0), 0, 1))
            .unwrap_err()
            .to_string()
            .contains("overflows"));
        assert!(check(&forge(&record(0, -2, 0), 0, 1)).is_err());
        assert!(check(&forge(&record(0, -1, -1), 0, 1))
            .unwrap_err()
            .to_string()
            .contains("header count -1"));
        assert!(check(&forge(&record(0, -1, 0), 0, 1)).is_ok());
        // Compacted topics need keys.
        let compacted = RecordRules {
            require_keys: true,
            ..rules()
        };
        assert!(check_with(&forge(&record(0, -1, 0), 0, 1), &compacted)
            .unwrap_err()
            .to_string()
            .contains("without key"));
        assert!(check_with(&batch(2, 0), &compacted).is_ok());
    }

    #[test]
    fn limit_follows_max_message_bytes() {
        let c = LogConfig {
            max_message_bytes: 4 << 20,
            cleanup_policy: "compact,delete".into(),
            ..LogConfig::default()
        };
        let r = RecordRules::for_config(&c);
        assert_eq!(r.max_decompressed_bytes, 128 << 20);
        assert!(r.require_keys);
        let tiny = LogConfig {
            max_message_bytes: 10,
            ..LogConfig::default()
        };
        assert_eq!(
            RecordRules::for_config(&tiny).max_decompressed_bytes,
            MIN_DECOMPRESSED_LIMIT
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Real batches pass whatever their content and codec.
        #[test]
        fn real_batches_always_pass(
            ts in proptest::collection::vec(0i64..1_000_000, 1..20),
            value_len in 0usize..300,
            codec in 0usize..5,
        ) {
            let b = batch_full(&ts, value_len, None, CODECS[codec]);
            prop_assert_eq!(check(&b).unwrap(), *ts.iter().max().unwrap());
        }

        /// Mutated records sections (CRC fixed up, so only validation stands in the way) never
        /// panic, and are either refused or still well-formed.
        #[test]
        fn mutated_records_never_panic(
            flips in proptest::collection::vec((0usize..400, any::<u8>()), 1..4),
            cut in 0usize..400,
            codec in 0usize..5,
            count in 1i32..6,
        ) {
            let b = batch_full(&[1, 2, 3], 40, None, CODECS[codec]);
            let mut recs = b[BatchHeader::SIZE..].to_vec();
            for (i, v) in flips {
                let n = recs.len();
                recs[i % n] = v;
            }
            recs.truncate(cut.max(1).min(recs.len()));
            let _ = check(&forge(&recs, codec as i16, count));
        }
    }
}
