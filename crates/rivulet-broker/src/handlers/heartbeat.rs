//! Heartbeat (API 12, v0–4): keeps a member's session alive and tells it when to rejoin.

use kafka_protocol::messages::HeartbeatRequest;

use super::{Reply, RequestContext};

pub(crate) fn handle(ctx: RequestContext, req: HeartbeatRequest) -> Reply {
    Reply::now(ctx.broker.groups.heartbeat(req, ctx.version()))
}
