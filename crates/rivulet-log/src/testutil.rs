//! Test helpers: build real v2 record batches with kafka-protocol's encoder.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use kafka_protocol::records::Compression;

use crate::batch::{validate_batches, BatchHeader};
use crate::config::LogConfig;
use crate::encode::{encode_batch, BatchSpec, NewRecord};

/// Producer identity of a batch: (producer id, epoch, base sequence).
pub type Producer = (i64, i16, i32);

/// One batch whose records carry `timestamps`, `value_len`-byte values.
pub fn batch_full(
    timestamps: &[i64],
    value_len: usize,
    producer: Option<Producer>,
    compression: Compression,
) -> Vec<u8> {
    let records = timestamps.iter().enumerate().map(|(i, ts)| NewRecord {
        key: Some(Bytes::from(format!("k{i}"))),
        value: Some(Bytes::from(vec![b'v'; value_len])),
        timestamp: *ts,
    });
    let spec = BatchSpec {
        producer,
        compression,
        ..BatchSpec::default()
    };
    let v = encode_batch(records, &spec).unwrap().to_vec();
    assert_eq!(validate_batches(&v).unwrap().len(), 1);
    v
}

/// `n` uncompressed records with timestamps `ts0, ts0+1, ...` and 16-byte values.
pub fn batch(n: usize, ts0: i64) -> Vec<u8> {
    let ts: Vec<i64> = (0..n as i64).map(|i| ts0 + i).collect();
    batch_full(&ts, 16, None, Compression::None)
}

/// `n` records from an idempotent producer.
pub fn pbatch(n: usize, producer: Producer) -> Vec<u8> {
    let ts: Vec<i64> = (0..n as i64).map(|i| 1_000 + i).collect();
    batch_full(&ts, 16, Some(producer), Compression::None)
}

/// Headers of all batches in `bytes` (asserting they are valid).
pub fn headers(bytes: &[u8]) -> Vec<BatchHeader> {
    validate_batches(bytes).unwrap()
}

/// Tiny segments and an index entry per batch, to exercise rolling and index paths.
pub fn tiny_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 1,
        ..LogConfig::default()
    }
}

/// A batch with `records` as its (already encoded, maybe compressed) records section, codec
/// `codec` in the attributes and `count` declared records; length, offset delta and CRC are
/// fixed up so only the content can be wrong (the hostile batches of issue 12).
pub fn forge(records: &[u8], codec: i16, count: i32) -> Vec<u8> {
    let mut b = batch(1, 1_000)[..BatchHeader::SIZE].to_vec();
    b.extend_from_slice(records);
    let len = (b.len() - BatchHeader::LOG_OVERHEAD) as i32;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    b[21..23].copy_from_slice(&codec.to_be_bytes());
    b[23..27].copy_from_slice(&(count - 1).to_be_bytes());
    b[57..61].copy_from_slice(&count.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// The records section (after the 61-byte header) of an uncompressed batch.
pub fn records_of(batch: &[u8]) -> Vec<u8> {
    batch[BatchHeader::SIZE..].to_vec()
}

/// Zigzag varint, as the record format encodes signed numbers.
pub fn varint(n: i64) -> Vec<u8> {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    let mut out = Vec::new();
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
    out
}

/// gzip of `data`.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}
