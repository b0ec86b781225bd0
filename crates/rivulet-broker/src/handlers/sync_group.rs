//! SyncGroup (API 14, v0–5): the leader hands in assignments, every member gets its own; followers
//! arriving before the leader wait.

use kafka_protocol::messages::SyncGroupRequest;

use super::{Reply, RequestContext};

pub(crate) fn handle(ctx: RequestContext, req: SyncGroupRequest) -> Reply {
    if !ctx.allowed(
        crate::acl::Operation::Read,
        crate::acl::ResourceType::Group,
        &req.group_id,
    ) {
        let mut resp = kafka_protocol::messages::SyncGroupResponse::default();
        resp.error_code = kafka_protocol::error::ResponseError::GroupAuthorizationFailed.code();
        return Reply::now(resp);
    }
    Reply::later(ctx.broker.groups.sync_group(req, ctx.version()))
}
