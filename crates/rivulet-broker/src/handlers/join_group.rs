//! JoinGroup (API 11, v0–9): joins or rejoins a consumer group; the response is held until the
//! rebalance's join phase completes (see `crate::group`).

use kafka_protocol::messages::JoinGroupRequest;

use super::{Reply, RequestContext};
use crate::group::ClientInfo;

pub(crate) fn handle(ctx: RequestContext, req: JoinGroupRequest) -> Reply {
    if !ctx.allowed(
        crate::acl::Operation::Read,
        crate::acl::ResourceType::Group,
        &req.group_id,
    ) {
        let mut resp = kafka_protocol::messages::JoinGroupResponse::default();
        resp.error_code = kafka_protocol::error::ResponseError::GroupAuthorizationFailed.code();
        return Reply::now(resp);
    }
    let client = ClientInfo {
        version: ctx.version(),
        client_id: ctx.client_id(),
        client_host: ctx.client_host(),
    };
    Reply::later(ctx.broker.groups.join_group(req, client))
}
