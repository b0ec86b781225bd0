//! SyncGroup (API 14, v0–5): the leader hands in assignments, every member gets its own; followers
//! arriving before the leader wait.

use kafka_protocol::messages::SyncGroupRequest;

use super::{Reply, RequestContext};

pub(crate) fn handle(ctx: RequestContext, req: SyncGroupRequest) -> Reply {
    Reply::later(ctx.broker.groups.sync_group(req, ctx.version()))
}
