//! LeaveGroup (API 13, v0–5; v3+ removes a batch of members with per-member errors).

use kafka_protocol::messages::LeaveGroupRequest;

use super::{Reply, RequestContext};

pub(crate) fn handle(ctx: RequestContext, req: LeaveGroupRequest) -> Reply {
    if !ctx.allowed(
        crate::acl::Operation::Read,
        crate::acl::ResourceType::Group,
        &req.group_id,
    ) {
        let mut resp = kafka_protocol::messages::LeaveGroupResponse::default();
        resp.error_code = kafka_protocol::error::ResponseError::GroupAuthorizationFailed.code();
        return Reply::now(resp);
    }
    Reply::now(ctx.broker.groups.leave_group(req, ctx.version()))
}
