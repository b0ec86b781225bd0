//! OffsetCommit (API 8, v2–8): validates membership, then writes the offsets durably (fsynced)
//! before answering. Partitions that do not exist get UNKNOWN_TOPIC_OR_PARTITION.

use kafka_protocol::messages::OffsetCommitRequest;

use super::{Reply, RequestContext};

pub(crate) fn handle(ctx: RequestContext, req: OffsetCommitRequest) -> Reply {
    use crate::acl::{Operation, ResourceType};
    let group_ok = ctx.allowed(Operation::Read, ResourceType::Group, &req.group_id);
    let topics = req.topics.iter().map(|t| t.name.0.as_str());
    if !group_ok
        || ctx
            .authorize_each(Operation::Read, ResourceType::Topic, topics)
            .is_err()
    {
        let code = if group_ok {
            kafka_protocol::error::ResponseError::TopicAuthorizationFailed.code()
        } else {
            kafka_protocol::error::ResponseError::GroupAuthorizationFailed.code()
        };
        let mut resp = kafka_protocol::messages::OffsetCommitResponse::default();
        for t in &req.topics {
            let mut rt = kafka_protocol::messages::offset_commit_response::OffsetCommitResponseTopic::default();
            rt.name = t.name.clone();
            for p in &t.partitions {
                let mut rp = kafka_protocol::messages::offset_commit_response::OffsetCommitResponsePartition::default();
                rp.partition_index = p.partition_index;
                rp.error_code = code;
                rt.partitions.push(rp);
            }
            resp.topics.push(rt);
        }
        return Reply::now(resp);
    }
    let logs = ctx.broker.logs.clone();
    let exists = move |topic: &str, partition: i32| {
        partition >= 0
            && logs
                .topic(topic)
                .is_some_and(|t| partition < t.partition_count())
    };
    Reply::later(ctx.broker.groups.offset_commit(req, ctx.version(), &exists))
}
