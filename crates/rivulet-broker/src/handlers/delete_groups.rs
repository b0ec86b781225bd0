//! DeleteGroups (API 42, v0–2): deletes Empty groups and, durably, their committed offsets.

use kafka_protocol::messages::DeleteGroupsRequest;

use super::{Reply, RequestContext};

pub(crate) fn handle(ctx: RequestContext, req: DeleteGroupsRequest) -> Reply {
    Reply::later(ctx.broker.groups.delete_groups(req, ctx.version()))
}
