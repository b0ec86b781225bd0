//! Responses on their way to the socket, and the streaming Fetch response encoder.
//!
//! Every response but Fetch is encoded whole by `kafka-protocol` ([`crate::codec`]). A Fetch
//! response can carry up to `--fetch-max-bytes` (55 MiB) of records, and reading them into
//! memory to hand them to that encoder made memory grow with every fetch in flight (a 300 MB
//! partition fetched four times took the broker to 1.5 GiB). So a Fetch response is
//! [`Outgoing::Pieces`]: its encoded fields, and for each partition's records a [`LogSlice`]
//! that the connection reads from the segment file in bounded chunks while it writes
//! (`connection.rs`).
//!
//! `kafka-protocol` can only encode records it holds in memory, so the Fetch fields around
//! them are written here by hand, field for field as its generated encoder writes them
//! (versions 4–12, the ones we serve); `tests::matches_kafka_protocol_for_every_version`
//! compares the two byte for byte.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{ApiKey, FetchResponse, ResponseHeader};
use kafka_protocol::protocol::Encodable;
use rivulet_log::LogSlice;

use crate::codec::CodecError;

/// One encoded response.
#[derive(Debug)]
pub enum Outgoing {
    /// A whole frame in memory.
    Frame(BytesMut),
    /// A frame of encoded bytes and log slices, in order.
    Pieces(Vec<Piece>),
}

#[derive(Debug)]
pub enum Piece {
    Bytes(Bytes),
    Log(LogSlice),
}

impl Outgoing {
    /// Bytes on the wire, length prefix included.
    pub fn len(&self) -> u64 {
        match self {
            Outgoing::Frame(b) => b.len() as u64,
            Outgoing::Pieces(p) => p
                .iter()
                .map(|p| match p {
                    Piece::Bytes(b) => b.len() as u64,
                    Piece::Log(s) => s.len(),
                })
                .sum(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Builds a frame of bytes and slices.
struct Pieces {
    done: Vec<BytesMut>,
    slices: Vec<(usize, LogSlice)>,
    cur: BytesMut,
}

impl Pieces {
    fn log(&mut self, slice: LogSlice) {
        self.done.push(self.cur.split());
        self.slices.push((self.done.len(), slice));
    }

    /// Patches the length prefix (the first four bytes) and returns the pieces in order.
    fn finish(mut self) -> Result<Outgoing, CodecError> {
        self.done.push(self.cur.split());
        let total: u64 = self.done.iter().map(|b| b.len() as u64).sum::<u64>()
            + self.slices.iter().map(|(_, s)| s.len()).sum::<u64>();
        let len = i32::try_from(total - 4).map_err(|_| CodecError::Encode {
            api: ApiKey::Fetch,
            version: 0,
            reason: "response larger than 2 GiB".into(),
        })?;
        self.done[0][..4].copy_from_slice(&len.to_be_bytes());
        let mut out = Vec::with_capacity(self.done.len() + self.slices.len());
        let mut slices = self.slices.into_iter().peekable();
        for (i, b) in self.done.into_iter().enumerate() {
            while let Some((_, s)) = slices.next_if(|(at, _)| *at == i) {
                out.push(Piece::Log(s));
            }
            if !b.is_empty() {
                out.push(Piece::Bytes(b.freeze()));
            }
        }
        Ok(Outgoing::Pieces(out))
    }
}

fn put_uvarint(buf: &mut BytesMut, mut v: u32) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

/// An array length: compact (n + 1, unsigned varint) in flexible versions, else i32.
fn put_len(buf: &mut BytesMut, flexible: bool, n: usize) -> Result<(), String> {
    let n = u32::try_from(n).map_err(|_| format!("array of {n} elements"))?;
    if flexible {
        put_uvarint(buf, n.checked_add(1).ok_or("array too long")?);
    } else {
        buf.put_i32(i32::try_from(n).map_err(|_| "array too long")?);
    }
    Ok(())
}

fn put_string(buf: &mut BytesMut, flexible: bool, s: &str) -> Result<(), String> {
    if flexible {
        put_len(buf, true, s.len())?;
    } else {
        buf.put_i16(i16::try_from(s.len()).map_err(|_| "string too long")?);
    }
    buf.put_slice(s.as_bytes());
    Ok(())
}

/// Nullable bytes: compact (0 = null, n + 1) in flexible versions, else i32 (-1 = null).
fn put_bytes_len(buf: &mut BytesMut, flexible: bool, len: Option<u64>) -> Result<(), String> {
    match (len, flexible) {
        (None, true) => put_uvarint(buf, 0),
        (None, false) => buf.put_i32(-1),
        (Some(n), true) => put_uvarint(
            buf,
            u32::try_from(n + 1).map_err(|_| format!("{n} bytes of records"))?,
        ),
        (Some(n), false) => {
            buf.put_i32(i32::try_from(n).map_err(|_| format!("{n} bytes of records"))?)
        }
    }
    Ok(())
}

/// The fields this encoder writes as "no tagged fields": set, they would need the generic one.
fn check_no_tagged(p: &PartitionData) -> Result<(), String> {
    if p.diverging_epoch != Default::default()
        || p.current_leader != Default::default()
        || p.snapshot_id != Default::default()
        || !p.unknown_tagged_fields.is_empty()
    {
        return Err("tagged partition fields are not supported".into());
    }
    Ok(())
}

/// Encodes a Fetch response frame (length prefix, header, body). Partition `(t, p)` carries
/// `slices[t][p]` as its records when that is `Some`, its own `records` otherwise.
pub fn encode_fetch_response(
    version: i16,
    correlation_id: i32,
    resp: &FetchResponse,
    slices: &[Vec<Option<LogSlice>>],
) -> Result<Outgoing, CodecError> {
    encode_fetch(version, correlation_id, resp, slices).map_err(|reason| CodecError::Encode {
        api: ApiKey::Fetch,
        version,
        reason,
    })
}

fn encode_fetch(
    version: i16,
    correlation_id: i32,
    resp: &FetchResponse,
    slices: &[Vec<Option<LogSlice>>],
) -> Result<Outgoing, String> {
    if !(4..=12).contains(&version) {
        return Err("only versions 4 to 12 are streamed".into());
    }
    let flexible = version >= 12;
    let mut w = Pieces {
        done: Vec::new(),
        slices: Vec::new(),
        cur: BytesMut::with_capacity(256),
    };
    w.cur.put_i32(0); // length, patched in `finish`
    let mut header = ResponseHeader::default();
    header.correlation_id = correlation_id;
    header
        .encode(&mut w.cur, ApiKey::Fetch.response_header_version(version))
        .map_err(|e| format!("{e:#}"))?;
    w.cur.put_i32(resp.throttle_time_ms);
    if version >= 7 {
        w.cur.put_i16(resp.error_code);
        w.cur.put_i32(resp.session_id);
    }
    put_len(&mut w.cur, flexible, resp.responses.len())?;
    for (ti, topic) in resp.responses.iter().enumerate() {
        put_string(&mut w.cur, flexible, topic.topic.0.as_str())?;
        put_len(&mut w.cur, flexible, topic.partitions.len())?;
        for (pi, p) in topic.partitions.iter().enumerate() {
            w.cur.put_i32(p.partition_index);
            w.cur.put_i16(p.error_code);
            w.cur.put_i64(p.high_watermark);
            w.cur.put_i64(p.last_stable_offset);
            if version >= 5 {
                w.cur.put_i64(p.log_start_offset);
            }
            match &p.aborted_transactions {
                None if flexible => put_uvarint(&mut w.cur, 0),
                None => w.cur.put_i32(-1),
                Some(list) => {
                    put_len(&mut w.cur, flexible, list.len())?;
                    for a in list {
                        a.encode(&mut w.cur, version)
                            .map_err(|e| format!("{e:#}"))?;
                    }
                }
            }
            if version >= 11 {
                w.cur.put_i32(p.preferred_read_replica.0);
            } else if p.preferred_read_replica.0 != -1 {
                return Err("preferred read replica needs version 11".into());
            }
            match slices
                .get(ti)
                .and_then(|t| t.get(pi))
                .and_then(Option::as_ref)
            {
                Some(slice) => {
                    put_bytes_len(&mut w.cur, flexible, Some(slice.len()))?;
                    if !slice.is_empty() {
                        w.log(slice.clone());
                    }
                }
                None => {
                    put_bytes_len(
                        &mut w.cur,
                        flexible,
                        p.records.as_ref().map(|r| r.len() as u64),
                    )?;
                    if let Some(r) = &p.records {
                        w.cur.put_slice(r);
                    }
                }
            }
            if flexible {
                check_no_tagged(p)?;
                put_uvarint(&mut w.cur, 0);
            }
        }
        if flexible {
            if !topic.unknown_tagged_fields.is_empty() {
                return Err("tagged topic fields are not supported".into());
            }
            put_uvarint(&mut w.cur, 0);
        }
    }
    if flexible {
        if !resp.unknown_tagged_fields.is_empty() {
            return Err("tagged response fields are not supported".into());
        }
        put_uvarint(&mut w.cur, 0);
    }
    w.finish().map_err(|e| e.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use kafka_protocol::messages::fetch_response::{AbortedTransaction, FetchableTopicResponse};
    use kafka_protocol::messages::{BrokerId, ProducerId, ResponseKind, TopicName};
    use kafka_protocol::protocol::StrBytes;
    use proptest::prelude::*;

    use super::*;
    use crate::codec::encode_response;

    fn flatten(out: Outgoing) -> Vec<u8> {
        match out {
            Outgoing::Frame(b) => b.to_vec(),
            Outgoing::Pieces(ps) => {
                let mut v = Vec::new();
                for p in ps {
                    match p {
                        Piece::Bytes(b) => v.extend_from_slice(&b),
                        Piece::Log(s) => v.extend_from_slice(&s.to_bytes().unwrap()),
                    }
                }
                v
            }
        }
    }

    /// A log with one batch per partition, read back as slices.
    fn slices_for(
        dir: &std::path::Path,
        records: &[Vec<Option<Vec<u8>>>],
    ) -> Vec<Vec<Option<LogSlice>>> {
        let mut log = rivulet_log::PartitionLog::open(
            dir,
            rivulet_log::LogConfig::default(),
            rivulet_log::Recovery::Clean,
        )
        .unwrap();
        records
            .iter()
            .map(|t| {
                t.iter()
                    .map(|r| {
                        r.as_ref().map(|batch| {
                            let start = log.log_end_offset();
                            log.append(batch, 0).unwrap();
                            log.read_slice(start, usize::MAX, i64::MAX, true)
                                .unwrap()
                                .unwrap()
                        })
                    })
                    .collect()
            })
            .collect()
    }

    fn batch(n: usize) -> Vec<u8> {
        let records =
            (0..n).map(|i| rivulet_log::NewRecord::new(None, vec![b'x'; 10 + i], 1_000 + i as i64));
        rivulet_log::encode_batch(records, &rivulet_log::BatchSpec::default())
            .unwrap()
            .to_vec()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// The hand-written encoder gives the same bytes as kafka-protocol's for the same
        /// response, with every partition's records as a slice or in memory.
        #[test]
        fn matches_kafka_protocol_for_every_version(
            version in 4i16..=12,
            throttle in any::<i32>(),
            session in any::<i32>(),
            error in any::<i16>(),
            topics in proptest::collection::vec(
                ("[a-z]{1,12}", proptest::collection::vec(
                    (any::<i32>(), any::<i16>(), any::<i64>(), 0usize..4, proptest::option::of(1usize..5), any::<bool>()),
                    0..4)),
                0..4),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut resp = FetchResponse::default();
            resp.throttle_time_ms = throttle;
            if version >= 7 {
                resp.session_id = session;
                resp.error_code = error;
            }
            let mut on_disk: Vec<Vec<Option<Vec<u8>>>> = Vec::new();
            for (name, parts) in &topics {
                let mut t = FetchableTopicResponse::default();
                t.topic = TopicName(StrBytes::from_string(name.clone()));
                let mut disk = Vec::new();
                for (index, err, hw, aborted, records, as_slice) in parts {
                    let mut p = PartitionData::default();
                    p.partition_index = *index;
                    p.error_code = *err;
                    p.high_watermark = *hw;
                    p.last_stable_offset = hw.wrapping_sub(1);
                    if version >= 5 {
                        p.log_start_offset = 3;
                    }
                    p.aborted_transactions = (*aborted > 0).then(|| {
                        (0..*aborted)
                            .map(|i| {
                                let mut a = AbortedTransaction::default();
                                a.producer_id = ProducerId(i as i64);
                                a.first_offset = 7 * i as i64;
                                a
                            })
                            .collect()
                    });
                    if version >= 11 {
                        p.preferred_read_replica = BrokerId(-1);
                    }
                    let bytes = records.map(batch);
                    p.records = bytes.clone().map(Bytes::from);
                    disk.push(if *as_slice { bytes } else { None });
                    t.partitions.push(p);
                }
                on_disk.push(disk);
                resp.responses.push(t);
            }
            let slices = slices_for(dir.path(), &on_disk);
            // The expected bytes hold the stored batches (the log rewrites offsets and epochs).
            for (t, st) in resp.responses.iter_mut().zip(&slices) {
                for (p, s) in t.partitions.iter_mut().zip(st) {
                    if let Some(s) = s {
                        p.records = Some(s.to_bytes().unwrap());
                    }
                }
            }
            let expected = encode_response(ApiKey::Fetch, version, 42, &ResponseKind::Fetch(resp.clone())).unwrap();
            // Partitions sent as slices carry no records of their own.
            for (t, st) in resp.responses.iter_mut().zip(&slices) {
                for (p, s) in t.partitions.iter_mut().zip(st) {
                    if s.is_some() {
                        p.records = None;
                    }
                }
            }
            let got = encode_fetch_response(version, 42, &resp, &slices).unwrap();
            prop_assert_eq!(got.len() as usize, expected.len());
            prop_assert_eq!(flatten(got), expected.to_vec());
        }
    }
}
