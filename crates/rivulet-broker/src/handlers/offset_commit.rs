//! OffsetCommit (API 8, v2–8): validates membership, then writes the offsets durably (fsynced)
//! before answering. Partitions that do not exist get UNKNOWN_TOPIC_OR_PARTITION.

use kafka_protocol::messages::OffsetCommitRequest;

use super::{Reply, RequestContext};

pub(crate) fn handle(ctx: RequestContext, req: OffsetCommitRequest) -> Reply {
    let logs = ctx.broker.logs.clone();
    let exists = move |topic: &str, partition: i32| {
        partition >= 0
            && logs
                .topic(topic)
                .is_some_and(|t| partition < t.partition_count())
    };
    Reply::later(ctx.broker.groups.offset_commit(req, ctx.version(), &exists))
}
