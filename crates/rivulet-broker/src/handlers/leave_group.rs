//! LeaveGroup (API 13, v0–5; v3+ removes a batch of members with per-member errors).

use kafka_protocol::messages::LeaveGroupRequest;

use super::{Reply, RequestContext};

pub(crate) fn handle(ctx: RequestContext, req: LeaveGroupRequest) -> Reply {
    Reply::now(ctx.broker.groups.leave_group(req, ctx.version()))
}
