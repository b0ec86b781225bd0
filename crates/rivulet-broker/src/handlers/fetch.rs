//! Fetch: whole record batches up to the high watermark (read_uncommitted) or the last stable
//! offset (read_committed, with the aborted transactions of the range so the client can drop
//! their records; control batches are the client's to skip), long-polling until `min_bytes`
//! are available or `max_wait_ms` passes. No fetch sessions (session id 0 tells clients to send
//! full requests, KIP-227).
//!
//! Whatever the client asks, a response carries at most `--fetch-max-bytes` of records (Kafka's
//! `fetch.max.bytes`), except that the first partition with data may return one whole batch
//! larger than that (KIP-74; batches are at most `max.message.bytes`, checked on produce);
//! later partitions only get batches that fit. Records are not read here: each partition's are
//! a `LogSlice` that the connection reads in bounded chunks while it writes (`response.rs`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, ProducerId};
use rivulet_log::LogSlice;
use tokio::time::Instant;

use super::{Reply, RequestContext};
use crate::error::log_error_code;
use crate::response::encode_fetch_response;
use crate::state::Broker;

/// Longest long-poll we honour, whatever the client asks.
const MAX_WAIT_CAP: Duration = Duration::from_secs(60);

pub(crate) fn handle(ctx: RequestContext, req: FetchRequest) -> Reply {
    let v = ctx.version();
    let correlation_id = ctx.header.correlation_id;
    let broker = ctx.broker.clone();
    // Topics this principal may not read (ACLs): answered TOPIC_AUTHORIZATION_FAILED.
    let denied: std::collections::HashSet<String> = req
        .topics
        .iter()
        .filter(|t| {
            !ctx.allowed(
                crate::acl::Operation::Read,
                crate::acl::ResourceType::Topic,
                &t.topic.0,
            )
        })
        .map(|t| t.topic.0.to_string())
        .collect();
    let max_wait = Duration::from_millis(req.max_wait_ms.max(0) as u64).min(MAX_WAIT_CAP);
    let min_bytes = req.min_bytes.max(0) as usize;
    let deadline = Instant::now() + max_wait;
    Reply::encoded(async move {
        let mut rx = broker.durability.subscribe();
        let (resp, slices) = loop {
            rx.borrow_and_update();
            let (resp, slices, bytes, errors) = read_all(&broker, &req, v, &denied);
            if bytes >= min_bytes.max(1)
                || errors
                || max_wait.is_zero()
                || Instant::now() >= deadline
            {
                break (resp, slices);
            }
            tokio::select! {
                changed = rx.changed() => {
                    if changed.is_err() {
                        break (resp, slices);
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    let (resp, slices, _, _) = read_all(&broker, &req, v, &denied);
                    break (resp, slices);
                }
                _ = broker.shutdown.cancelled() => break (resp, slices),
            }
        };
        encode_fetch_response(v, correlation_id, &resp, &slices)
    })
}

type Slices = Vec<Vec<Option<LogSlice>>>;

/// One pass over the requested partitions: (response without records, each partition's
/// records as a slice, bytes of records, any partition error).
fn read_all(
    broker: &Arc<Broker>,
    req: &FetchRequest,
    v: i16,
    denied: &std::collections::HashSet<String>,
) -> (FetchResponse, Slices, usize, bool) {
    let mut resp = FetchResponse::default();
    let mut slices = Vec::with_capacity(req.topics.len());
    let mut total = 0usize;
    let mut errors = false;
    let read_committed = req.isolation_level == 1;
    let cap = broker.config.fetch_max_bytes;
    let budget = if req.max_bytes <= 0 {
        cap
    } else {
        (req.max_bytes as usize).min(cap)
    };
    for t in &req.topics {
        let allowed = !denied.contains(t.topic.0.as_str());
        let topic = broker.logs.topic(&t.topic.0).filter(|_| allowed);
        let mut tr = FetchableTopicResponse::default();
        tr.topic = t.topic.clone();
        let mut topic_slices = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let mut r = PartitionData::default();
            let mut slice = None;
            r.partition_index = p.partition;
            r.aborted_transactions = Some(Vec::new());
            if v >= 11 {
                r.preferred_read_replica = BrokerId(-1);
            }
            match topic.as_ref().and_then(|t| t.partition(p.partition)) {
                None => {
                    errors = true;
                    r.error_code = if allowed {
                        ResponseError::UnknownTopicOrPartition.code()
                    } else {
                        ResponseError::TopicAuthorizationFailed.code()
                    };
                    r.high_watermark = -1;
                    r.last_stable_offset = -1;
                    if v >= 5 {
                        r.log_start_offset = -1;
                    }
                }
                Some(part) => {
                    let hw = broker.durability.high_watermark(&part);
                    let log = part.log.lock();
                    let log_start = log.log_start_offset();
                    let lso = log.last_stable_offset().min(hw);
                    let visible = if read_committed { lso } else { hw };
                    r.high_watermark = hw;
                    r.last_stable_offset = lso;
                    if v >= 5 {
                        r.log_start_offset = log_start;
                    }
                    let remaining = budget.saturating_sub(total);
                    let max = (p.partition_max_bytes.max(0) as usize).min(remaining);
                    if p.fetch_offset < log_start || p.fetch_offset > log.log_end_offset() {
                        errors = true;
                        r.error_code = ResponseError::OffsetOutOfRange.code();
                    } else if max == 0 || p.fetch_offset >= visible {
                        r.records = Some(Bytes::new());
                    } else {
                        // Only the first partition with data may exceed the budget (one batch).
                        match log.read_slice(p.fetch_offset, max, visible, total == 0) {
                            Ok(Some(s)) => {
                                total += s.len() as usize;
                                slice = Some(s);
                                if read_committed {
                                    r.aborted_transactions = Some(
                                        log.aborted_transactions(p.fetch_offset, visible)
                                            .into_iter()
                                            .map(|a| {
                                                let mut t = AbortedTransaction::default();
                                                t.producer_id = ProducerId(a.producer_id);
                                                t.first_offset = a.first_offset;
                                                t
                                            })
                                            .collect(),
                                    );
                                }
                            }
                            Ok(None) => r.records = Some(Bytes::new()),
                            Err(e) => {
                                errors = true;
                                tracing::warn!(topic = %part.topic, partition = p.partition, "fetch failed: {e}");
                                r.error_code = log_error_code(&e);
                            }
                        }
                    }
                }
            }
            tr.partitions.push(r);
            topic_slices.push(slice);
        }
        resp.responses.push(tr);
        slices.push(topic_slices);
    }
    (resp, slices, total, errors)
}
