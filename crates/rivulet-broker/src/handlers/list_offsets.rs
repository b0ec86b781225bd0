//! ListOffsets: earliest (-2), latest (-1), max timestamp (-3, v7) and by timestamp through the
//! time index. Only offsets below the high watermark are ever reported; under read_committed
//! (isolation level 1) only offsets below the last stable offset, and latest is the LSO.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::{Reply, RequestContext};
use crate::error::log_error_code;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

pub(crate) fn handle(ctx: RequestContext, req: ListOffsetsRequest) -> Reply {
    let v = ctx.version();
    let broker = &ctx.broker;
    let mut resp = ListOffsetsResponse::default();
    let read_committed = req.isolation_level == 1;
    for t in req.topics {
        let allowed = ctx.allowed(
            crate::acl::Operation::Describe,
            crate::acl::ResourceType::Topic,
            &t.name.0,
        );
        let topic = broker.logs.topic(&t.name.0).filter(|_| allowed);
        let mut tr = ListOffsetsTopicResponse::default();
        tr.name = t.name.clone();
        for p in t.partitions {
            let mut r = ListOffsetsPartitionResponse::default();
            r.partition_index = p.partition_index;
            r.timestamp = -1;
            r.offset = -1;
            let Some(part) = topic.as_ref().and_then(|t| t.partition(p.partition_index)) else {
                r.error_code = if allowed {
                    ResponseError::UnknownTopicOrPartition.code()
                } else {
                    ResponseError::TopicAuthorizationFailed.code()
                };
                tr.partitions.push(r);
                continue;
            };
            let hw = broker.durability.high_watermark(&part);
            let log = part.log.lock();
            let hw = if read_committed {
                log.last_stable_offset().min(hw)
            } else {
                hw
            };
            let found: Result<Option<(i64, i64)>, i16> = match p.timestamp {
                LATEST => Ok(Some((hw, -1))),
                EARLIEST => Ok(Some((log.log_start_offset(), -1))),
                MAX_TIMESTAMP => log
                    .max_timestamp()
                    .map(|m| m.map(|(ts, off)| (off, ts)))
                    .map_err(|e| log_error_code(&e)),
                ts if ts >= 0 => log.offset_for_timestamp(ts).map_err(|e| log_error_code(&e)),
                other => {
                    tracing::debug!(timestamp = other, "unsupported ListOffsets timestamp");
                    Err(ResponseError::UnsupportedVersion.code())
                }
            };
            match found {
                // A record not yet visible to consumers is not reported either.
                Ok(Some((offset, ts))) if offset <= hw && (p.timestamp < 0 || offset < hw) => {
                    r.offset = offset;
                    r.timestamp = ts;
                    if v >= 4 {
                        r.leader_epoch = 0;
                    }
                }
                Ok(_) => {}
                Err(code) => r.error_code = code,
            }
            tr.partitions.push(r);
        }
        resp.topics.push(tr);
    }
    Reply::now(resp)
}
