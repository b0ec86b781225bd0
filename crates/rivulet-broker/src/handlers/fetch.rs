//! Fetch: whole record batches up to the high watermark, long-polling until `min_bytes` are
//! available or `max_wait_ms` passes. No fetch sessions (session id 0 tells clients to send full
//! requests, KIP-227); no transactions, so the last stable offset is the high watermark and the
//! aborted-transaction list is empty (librdkafka reads read_committed by default).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse};
use tokio::time::Instant;

use super::{Reply, RequestContext};
use crate::error::log_error_code;
use crate::state::Broker;

/// Longest long-poll we honour, whatever the client asks.
const MAX_WAIT_CAP: Duration = Duration::from_secs(60);

pub(crate) fn handle(ctx: RequestContext, req: FetchRequest) -> Reply {
    let v = ctx.version();
    let broker = ctx.broker.clone();
    let max_wait = Duration::from_millis(req.max_wait_ms.max(0) as u64).min(MAX_WAIT_CAP);
    let min_bytes = req.min_bytes.max(0) as usize;
    let deadline = Instant::now() + max_wait;
    Reply::later(async move {
        let mut rx = broker.durability.subscribe();
        loop {
            rx.borrow_and_update();
            let (resp, bytes, errors) = read_all(&broker, &req, v);
            if bytes >= min_bytes.max(1)
                || errors
                || max_wait.is_zero()
                || Instant::now() >= deadline
            {
                return resp;
            }
            tokio::select! {
                changed = rx.changed() => {
                    if changed.is_err() {
                        return resp;
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    return read_all(&broker, &req, v).0;
                }
                _ = broker.shutdown.cancelled() => return resp,
            }
        }
    })
}

/// One pass over the requested partitions: (response, bytes of records, any partition error).
fn read_all(broker: &Arc<Broker>, req: &FetchRequest, v: i16) -> (FetchResponse, usize, bool) {
    let mut resp = FetchResponse::default();
    let mut total = 0usize;
    let mut errors = false;
    let budget = if req.max_bytes <= 0 {
        usize::MAX
    } else {
        req.max_bytes as usize
    };
    for t in &req.topics {
        let topic = broker.logs.topic(&t.topic.0);
        let mut tr = FetchableTopicResponse::default();
        tr.topic = t.topic.clone();
        for p in &t.partitions {
            let mut r = PartitionData::default();
            r.partition_index = p.partition;
            r.aborted_transactions = Some(Vec::new());
            if v >= 11 {
                r.preferred_read_replica = BrokerId(-1);
            }
            match topic.as_ref().and_then(|t| t.partition(p.partition)) {
                None => {
                    errors = true;
                    r.error_code = ResponseError::UnknownTopicOrPartition.code();
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
                    r.high_watermark = hw;
                    r.last_stable_offset = hw;
                    if v >= 5 {
                        r.log_start_offset = log_start;
                    }
                    let remaining = budget.saturating_sub(total);
                    let max = (p.partition_max_bytes.max(0) as usize).min(remaining);
                    if p.fetch_offset < log_start || p.fetch_offset > log.log_end_offset() {
                        errors = true;
                        r.error_code = ResponseError::OffsetOutOfRange.code();
                    } else if max == 0 || p.fetch_offset >= hw {
                        r.records = Some(Bytes::new());
                    } else {
                        match log.read(p.fetch_offset, max, hw) {
                            Ok(bytes) => {
                                total += bytes.len();
                                r.records = Some(bytes);
                            }
                            Err(e) => {
                                errors = true;
                                tracing::warn!(topic = %t.topic.0, partition = p.partition, "fetch failed: {e}");
                                r.error_code = log_error_code(&e);
                            }
                        }
                    }
                }
            }
            tr.partitions.push(r);
        }
        resp.responses.push(tr);
    }
    (resp, total, errors)
}
