//! Writing v2 record batches: the raw producer of the benches and the tests' batches, and the
//! place for the broker's own batches. The encoding is `kafka-protocol`'s
//! `RecordBatchEncoder`; this module only fills in what a batch of plain records needs
//! (offsets, sequences, producer identity), so every caller writes the same thing.

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use crate::error::{LogError, Result};

/// One record to encode: key, value (`None` is a tombstone) and timestamp (ms).
#[derive(Clone, Debug)]
pub struct NewRecord {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub timestamp: i64,
}

impl NewRecord {
    pub fn new(key: Option<Bytes>, value: impl Into<Bytes>, timestamp: i64) -> Self {
        NewRecord {
            key,
            value: Some(value.into()),
            timestamp,
        }
    }
}

/// How a batch is written: its base offset, the producer that sends it (id, epoch, base
/// sequence; `None` for a plain producer) and its codec.
#[derive(Clone, Copy, Debug)]
pub struct BatchSpec {
    pub base_offset: i64,
    pub producer: Option<(i64, i16, i32)>,
    pub compression: Compression,
    /// Part of a transaction (needs a producer).
    pub transactional: bool,
}

impl Default for BatchSpec {
    fn default() -> Self {
        BatchSpec {
            base_offset: 0,
            producer: None,
            compression: Compression::None,
            transactional: false,
        }
    }
}

impl BatchSpec {
    pub fn compressed(compression: Compression) -> Self {
        BatchSpec {
            compression,
            ..BatchSpec::default()
        }
    }
}

/// Appends one batch of `records` to `buf`.
pub fn encode_batch_into(
    buf: &mut BytesMut,
    records: impl IntoIterator<Item = NewRecord>,
    spec: &BatchSpec,
) -> Result<()> {
    let (producer_id, producer_epoch, base_sequence) = spec.producer.unwrap_or((-1, -1, -1));
    let records: Vec<Record> = records
        .into_iter()
        .enumerate()
        .map(|(i, r)| Record {
            transactional: spec.transactional,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: spec.base_offset + i as i64,
            // The encoder starts a new batch where `offset - sequence` changes: keeping it
            // constant keeps the records in one batch (base sequence -1 without a producer).
            sequence: base_sequence.wrapping_add(i as i32),
            timestamp: r.timestamp,
            key: r.key,
            value: r.value,
            headers: IndexMap::new(),
        })
        .collect();
    RecordBatchEncoder::encode(
        buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: spec.compression,
        },
    )
    .map_err(|e| LogError::Encode(e.to_string()))
}

/// One batch of `records`.
pub fn encode_batch(
    records: impl IntoIterator<Item = NewRecord>,
    spec: &BatchSpec,
) -> Result<Bytes> {
    let mut buf = BytesMut::new();
    encode_batch_into(&mut buf, records, spec)?;
    Ok(buf.freeze())
}

/// A transaction marker: the control batch that ends `producer_id`'s transaction in one
/// partition, COMMIT or ABORT, as Kafka's coordinator writes it (key: version 0 and the type;
/// value: version 0 and the coordinator epoch).
pub fn encode_marker(
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
    timestamp: i64,
) -> Result<Bytes> {
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&i16::from(commit).to_be_bytes());
    let mut value = Vec::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&coordinator_epoch.to_be_bytes());
    let record = Record {
        transactional: true,
        control: true,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id,
        producer_epoch,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp,
        key: Some(Bytes::from(key)),
        value: Some(Bytes::from(value)),
        headers: IndexMap::new(),
    };
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        [record].iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|e| LogError::Encode(e.to_string()))?;
    Ok(buf.freeze())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::batch::validate_batches;

    #[test]
    fn one_batch_with_offsets_sequences_and_producer() {
        for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let records = (0..5).map(|i| NewRecord::new(None, format!("v{i}"), 100 + i));
            let spec = BatchSpec {
                base_offset: 40,
                producer: Some((7, 2, 11)),
                compression,
                transactional: true,
            };
            let bytes = encode_batch(records, &spec).unwrap();
            let headers = validate_batches(&bytes).unwrap();
            assert_eq!(headers.len(), 1);
            let h = &headers[0];
            assert_eq!((h.base_offset, h.last_offset_delta), (40, 4));
            assert_eq!(
                (h.producer_id, h.producer_epoch, h.base_sequence),
                (7, 2, 11)
            );
            assert_eq!((h.base_timestamp, h.max_timestamp), (100, 104));
            assert!(h.is_transactional() && !h.is_control());
        }
        let plain = encode_batch([NewRecord::new(None, "x", 1)], &BatchSpec::default()).unwrap();
        let h = validate_batches(&plain).unwrap()[0];
        assert_eq!((h.producer_id, h.base_sequence), (-1, -1));
    }

    #[test]
    fn markers_say_commit_or_abort() {
        for commit in [true, false] {
            let bytes = encode_marker(9, 3, commit, 0, 1_000).unwrap();
            let h = validate_batches(&bytes).unwrap()[0];
            assert!(h.is_control() && h.is_transactional());
            assert_eq!((h.producer_id, h.producer_epoch, h.record_count), (9, 3, 1));
            assert_eq!(crate::batch::control_marker(&bytes), Some(commit));
        }
        let data = encode_batch([NewRecord::new(None, "x", 1)], &BatchSpec::default()).unwrap();
        assert_eq!(crate::batch::control_marker(&data), None);
    }
}
