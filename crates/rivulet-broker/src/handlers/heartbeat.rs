//! Heartbeat (API 12, v0–4): keeps a member's session alive and tells it when to rejoin.

use kafka_protocol::messages::HeartbeatRequest;

use super::{Reply, RequestContext};

pub(crate) fn handle(ctx: RequestContext, req: HeartbeatRequest) -> Reply {
    if !ctx.allowed(
        crate::acl::Operation::Read,
        crate::acl::ResourceType::Group,
        &req.group_id,
    ) {
        let mut resp = kafka_protocol::messages::HeartbeatResponse::default();
        resp.error_code = kafka_protocol::error::ResponseError::GroupAuthorizationFailed.code();
        return Reply::now(resp);
    }
    Reply::now(ctx.broker.groups.heartbeat(req, ctx.version()))
}
