//! Produce: validate and append each partition's batches in request order, then (acks=1/-1)
//! answer once the data is fsynced, sharing fsyncs with concurrent producers.
//!
//! Validation is everything Kafka checks, records inside compressed batches included
//! (`rivulet_log::check_records`); it runs before the partition's lock is taken, since
//! decompressing is its expensive part. A refused payload stores nothing, is answered with the
//! reason (v8+), counted, and logged rate-limited with the client's address.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use rivulet_log::{AppendResult, LogError, Partition, Quoted};

use super::{Reply, RequestContext};
use crate::codec::CodecError;
use crate::config::FsyncPolicy;
use crate::error::log_error_code;
use crate::logging::Kind;

pub(crate) fn handle(ctx: RequestContext, req: ProduceRequest) -> Reply {
    let v = ctx.version();
    let broker = ctx.broker.clone();
    let now = rivulet_time::now_ms();
    // A request-wide refusal, if any: every partition gets this code.
    let refuse: Option<(i16, String)> = if req.transactional_id.is_some() && req.acks != -1 {
        Some((
            ResponseError::InvalidRequiredAcks.code(),
            "a transactional producer must use acks=all".into(),
        ))
    } else if req.transactional_id.as_ref().is_some_and(|id| {
        !ctx.allowed(
            crate::acl::Operation::Write,
            crate::acl::ResourceType::TransactionalId,
            id,
        )
    }) {
        Some((
            ResponseError::TransactionalIdAuthorizationFailed.code(),
            "Write on the transactional id is not allowed".into(),
        ))
    } else if !(-1..=1).contains(&req.acks) {
        Some((
            ResponseError::InvalidRequiredAcks.code(),
            format!("acks must be 0, 1 or -1, got {}", req.acks),
        ))
    } else {
        broker
            .durability
            .failure()
            .map(|e| (ResponseError::KafkaStorageError.code(), e))
    };

    let mut resp = ProduceResponse::default();
    // Partitions whose response must wait until `offset` is durable.
    let mut waits: Vec<(usize, usize, Arc<Partition>, i64)> = Vec::new();
    for (ti, t) in req.topic_data.into_iter().enumerate() {
        let topic_allowed = ctx.allowed(
            crate::acl::Operation::Write,
            crate::acl::ResourceType::Topic,
            &t.name.0,
        );
        let topic = broker.logs.topic(&t.name.0);
        let mut tr = TopicProduceResponse::default();
        tr.name = t.name.clone();
        for (pi, p) in t.partition_data.into_iter().enumerate() {
            let mut r = PartitionProduceResponse::default();
            r.index = p.index;
            r.base_offset = -1;
            r.log_append_time_ms = -1;
            let part = topic.as_ref().and_then(|t| t.partition(p.index));
            let outcome: Result<(AppendResult, i64), (i16, String)> = match (&refuse, part.as_ref())
            {
                (Some((code, msg)), _) => Err((*code, msg.clone())),
                (None, _) if !topic_allowed => Err((
                    ResponseError::TopicAuthorizationFailed.code(),
                    format!("Write on topic {} is not allowed", Quoted(&t.name.0)),
                )),
                (None, None) => Err((
                    ResponseError::UnknownTopicOrPartition.code(),
                    format!(
                        "unknown topic or partition {}-{}",
                        Quoted(&t.name.0),
                        p.index
                    ),
                )),
                (None, Some(part)) => match p.records.as_deref() {
                    None | Some([]) => Err((
                        ResponseError::InvalidRecord.code(),
                        "produce request without records".into(),
                    )),
                    Some(records) => {
                        let config = part.log.lock().config().clone();
                        match rivulet_log::check_records(records, &config) {
                            Err(e) => {
                                refused(&ctx, part, &e);
                                Err((log_error_code(&e), e.to_string()))
                            }
                            Ok(checked) => match check_transactional(&ctx, part, &checked) {
                                Err(refusal) => Err(refusal),
                                Ok(()) => {
                                    let mut log = part.log.lock();
                                    match log.append_checked(checked, now) {
                                        Ok(a) => {
                                            broker.storage_recovered(|| {
                                                format!("{}-{}", part.topic, part.index)
                                            });
                                            Ok((a, log.log_start_offset()))
                                        }
                                        Err(e) => {
                                            drop(log);
                                            refused(&ctx, part, &e);
                                            Err((log_error_code(&e), e.to_string()))
                                        }
                                    }
                                }
                            },
                        }
                    }
                },
            };
            match outcome {
                Ok((appended, log_start)) => {
                    let (base, last, append_time) = match appended {
                        AppendResult::Appended {
                            base_offset,
                            last_offset,
                            log_append_time,
                        } => {
                            broker.stats.records_in.fetch_add(
                                (last_offset - base_offset + 1) as u64,
                                Ordering::Relaxed,
                            );
                            (base_offset, last_offset, log_append_time)
                        }
                        AppendResult::Duplicate {
                            base_offset,
                            last_offset,
                        } => (base_offset, last_offset, -1),
                    };
                    r.base_offset = base;
                    r.log_append_time_ms = append_time;
                    if v >= 5 {
                        r.log_start_offset = log_start;
                    }
                    if let Some(part) = part {
                        broker.durability.mark_dirty(&part);
                        waits.push((ti, pi, part, last + 1));
                    }
                }
                Err((code, msg)) => {
                    broker.stats.produce_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(topic = %Quoted(&t.name.0), partition = p.index, client = %Quoted(&ctx.client_id()), "produce refused: {msg}");
                    r.error_code = code;
                    if v >= 8 {
                        r.error_message = Some(StrBytes::from_string(msg));
                    }
                }
            }
            tr.partition_responses.push(r);
        }
        resp.responses.push(tr);
    }
    if req.acks == 0 {
        return Reply::NoResponse;
    }
    if waits.is_empty() || !matches!(broker.durability.policy(), FsyncPolicy::Always) {
        return Reply::now(resp);
    }
    Reply::later(async move {
        for (ti, pi, part, offset) in waits {
            if let Err(e) = broker.durability.wait_flushed(&part, offset).await {
                let r = &mut resp.responses[ti].partition_responses[pi];
                r.error_code = ResponseError::KafkaStorageError.code();
                r.base_offset = -1;
                if v >= 8 {
                    r.error_message = Some(StrBytes::from_string(e));
                }
            }
        }
        resp
    })
}

/// A transactional batch is accepted only from the current producer of its transactional id,
/// for a partition added to its ongoing transaction: anything else would open a transaction
/// here that no marker ever closes, and hold the partition's last stable offset forever.
fn check_transactional(
    ctx: &RequestContext,
    part: &Partition,
    checked: &rivulet_log::CheckedRecords<'_>,
) -> Result<(), (i16, String)> {
    let Some(h) = checked.headers().iter().find(|h| h.is_transactional()) else {
        return Ok(());
    };
    ctx.broker
        .txns
        .check_produce(h.producer_id, h.producer_epoch, &part.topic, part.index)
        .map_err(|(error, msg)| (error.code(), msg))
}

/// Counts and logs a refused append: storage errors once per cause, refused content
/// rate-limited (a client can send any amount of it).
fn refused(ctx: &RequestContext, part: &Partition, e: &LogError) {
    let broker = &ctx.broker;
    match e {
        LogError::Io { .. } | LogError::Offline(_) => {
            broker.note_storage_error(&format!("{}-{}", part.topic, part.index), e);
        }
        LogError::CorruptBatch { .. }
        | LogError::InvalidRecord(_)
        | LogError::InvalidTimestamp(_)
        | LogError::MessageTooLarge { .. } => {
            broker
                .stats
                .records_rejected
                .fetch_add(1, Ordering::Relaxed);
            match broker.warnings.allow(Kind::RefusedRecords) {
                Some(suppressed) => tracing::warn!(
                    peer = %ctx.peer,
                    client = %Quoted(&ctx.client_id()),
                    topic = %part.topic,
                    partition = part.index,
                    suppressed,
                    "produce refused, nothing stored: {e}"
                ),
                None => {
                    broker
                        .stats
                        .log_lines_suppressed
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        _ => {}
    }
}

/// Produce v0-2 (message format v0/v1, pre-0.11 clients). We advertise them only because older
/// librdkafka disables compression when Produce's minimum version is above 0, and the
/// `kafka-protocol` crate no longer includes their schemas, so this small hand-written reader
/// extracts the topic/partition names and answers each with UNSUPPORTED_VERSION.
pub(crate) fn unsupported_legacy(
    version: i16,
    correlation_id: i32,
    mut frame: Bytes,
) -> Result<BytesMut, CodecError> {
    let malformed = |what: &str| CodecError::Malformed {
        api: ApiKey::Produce,
        version,
        reason: format!("legacy produce: truncated at {what}"),
    };
    fn take(frame: &mut Bytes, n: usize) -> Option<Bytes> {
        (frame.remaining() >= n).then(|| frame.split_to(n))
    }
    fn string(frame: &mut Bytes) -> Option<Bytes> {
        let len = (frame.remaining() >= 2).then(|| frame.get_i16())?;
        if len < 0 {
            return Some(Bytes::new());
        }
        take(frame, len as usize)
    }
    // Header v1: api key, version, correlation id, client id.
    take(&mut frame, 8).ok_or_else(|| malformed("header"))?;
    string(&mut frame).ok_or_else(|| malformed("client id"))?;
    take(&mut frame, 6).ok_or_else(|| malformed("acks/timeout"))?;
    let topics = take(&mut frame, 4)
        .ok_or_else(|| malformed("topic count"))?
        .get_i32();
    let mut out = BytesMut::new();
    out.put_i32(0);
    out.put_i32(correlation_id);
    out.put_i32(topics.max(0));
    for _ in 0..topics.max(0) {
        let name = string(&mut frame).ok_or_else(|| malformed("topic name"))?;
        let parts = take(&mut frame, 4)
            .ok_or_else(|| malformed("partition count"))?
            .get_i32();
        out.put_i16(name.len() as i16);
        out.put_slice(&name);
        out.put_i32(parts.max(0));
        for _ in 0..parts.max(0) {
            let index = take(&mut frame, 4)
                .ok_or_else(|| malformed("partition"))?
                .get_i32();
            let size = take(&mut frame, 4)
                .ok_or_else(|| malformed("message set size"))?
                .get_i32();
            take(&mut frame, size.max(0) as usize).ok_or_else(|| malformed("message set"))?;
            out.put_i32(index);
            out.put_i16(ResponseError::UnsupportedVersion.code());
            out.put_i64(-1);
            if version >= 2 {
                out.put_i64(-1);
            }
        }
    }
    if version >= 1 {
        out.put_i32(0);
    }
    let len = (out.len() - 4) as i32;
    out[..4].copy_from_slice(&len.to_be_bytes());
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn legacy_produce_gets_unsupported_version_per_partition() {
        let mut f = BytesMut::new();
        f.put_i16(0); // api key Produce
        f.put_i16(2);
        f.put_i32(77);
        f.put_i16(3);
        f.put_slice(b"cli");
        f.put_i16(1); // acks
        f.put_i32(1000);
        f.put_i32(1); // topics
        f.put_i16(1);
        f.put_slice(b"t");
        f.put_i32(2); // partitions
        for p in [0, 1] {
            f.put_i32(p);
            f.put_i32(3);
            f.put_slice(b"abc");
        }
        let mut out = unsupported_legacy(2, 77, f.freeze()).unwrap().freeze();
        assert_eq!(out.get_i32() as usize, out.len());
        assert_eq!(out.get_i32(), 77);
        assert_eq!(out.get_i32(), 1);
        assert_eq!(out.get_i16(), 1);
        assert_eq!(out.split_to(1).as_ref(), b"t");
        assert_eq!(out.get_i32(), 2);
        for p in [0, 1] {
            assert_eq!(out.get_i32(), p);
            assert_eq!(out.get_i16(), 35);
            assert_eq!(out.get_i64(), -1);
            assert_eq!(out.get_i64(), -1);
        }
        assert_eq!(out.get_i32(), 0);
        assert!(out.is_empty());
    }

    #[test]
    fn truncated_legacy_produce_is_an_error_not_a_panic() {
        let mut f = BytesMut::new();
        f.put_i16(0);
        f.put_i16(1);
        f.put_i32(1);
        f.put_i16(-1);
        f.put_i16(1);
        f.put_i32(1000);
        f.put_i32(5);
        assert!(unsupported_legacy(1, 1, f.freeze()).is_err());
    }
}
