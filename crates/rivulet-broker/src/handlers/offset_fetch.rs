//! OffsetFetch (API 9, v1–8; v8 fetches for several groups in one request). With
//! `require_stable` (v7+, read_committed consumers), a partition whose offset waits in an open
//! transaction answers UNSTABLE_OFFSET_COMMIT, so the consumer retries instead of starting
//! from an offset that the transaction is about to move.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::OffsetFetchRequest;

use super::{Reply, RequestContext};

pub(crate) fn handle(ctx: RequestContext, req: OffsetFetchRequest) -> Reply {
    let v = ctx.version();
    let stable = v >= 7 && req.require_stable;
    let single_group = req.group_id.to_string();
    let allowed = |g: &str| {
        ctx.allowed(
            crate::acl::Operation::Describe,
            crate::acl::ResourceType::Group,
            g,
        )
    };
    let single_denied = v < 8 && !allowed(&single_group);
    let mut resp = ctx.broker.groups.offset_fetch(req, v);
    let denied = ResponseError::GroupAuthorizationFailed.code();
    if single_denied {
        resp.topics.clear();
        resp.error_code = denied;
    }
    for g in &mut resp.groups {
        if !allowed(&g.group_id) {
            g.topics.clear();
            g.error_code = denied;
        }
    }
    if !stable {
        return Reply::now(resp);
    }
    let txns = &ctx.broker.txns;
    let unstable = ResponseError::UnstableOffsetCommit.code();
    for g in &mut resp.groups {
        for t in &mut g.topics {
            for p in &mut t.partitions {
                if txns.has_pending_offset(&g.group_id, &t.name, p.partition_index) {
                    p.error_code = unstable;
                    p.committed_offset = -1;
                }
            }
        }
    }
    for t in &mut resp.topics {
        for p in &mut t.partitions {
            if txns.has_pending_offset(&single_group, &t.name, p.partition_index) {
                p.error_code = unstable;
                p.committed_offset = -1;
            }
        }
    }
    Reply::now(resp)
}
