//! OffsetForLeaderEpoch: a single node never changes leader, so there is one epoch (0) and its
//! end offset is the high watermark. Clients use this to detect log truncation.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use super::{Reply, RequestContext};

pub(crate) fn handle(ctx: RequestContext, req: OffsetForLeaderEpochRequest) -> Reply {
    let broker = &ctx.broker;
    let mut resp = OffsetForLeaderEpochResponse::default();
    for t in req.topics {
        let allowed = ctx.allowed(
            crate::acl::Operation::Describe,
            crate::acl::ResourceType::Topic,
            &t.topic.0,
        );
        let topic = broker.logs.topic(&t.topic.0).filter(|_| allowed);
        let mut tr = OffsetForLeaderTopicResult::default();
        tr.topic = t.topic.clone();
        for p in t.partitions {
            let mut r = EpochEndOffset::default();
            r.partition = p.partition;
            match topic.as_ref().and_then(|t| t.partition(p.partition)) {
                None => {
                    r.error_code = if allowed {
                        ResponseError::UnknownTopicOrPartition.code()
                    } else {
                        ResponseError::TopicAuthorizationFailed.code()
                    };
                    r.leader_epoch = -1;
                    r.end_offset = -1;
                }
                Some(_) if p.current_leader_epoch > 0 => {
                    r.error_code = ResponseError::UnknownLeaderEpoch.code();
                    r.leader_epoch = -1;
                    r.end_offset = -1;
                }
                Some(part) => {
                    // Epoch 0 covers the whole log; a later requested epoch does not exist.
                    if p.leader_epoch > 0 {
                        r.leader_epoch = -1;
                        r.end_offset = -1;
                    } else {
                        r.leader_epoch = 0;
                        r.end_offset = broker.durability.high_watermark(&part);
                    }
                }
            }
            tr.partitions.push(r);
        }
        resp.topics.push(tr);
    }
    Reply::now(resp)
}
