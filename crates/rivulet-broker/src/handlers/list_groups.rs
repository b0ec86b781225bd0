//! ListGroups (API 16, v0–4; v4 filters by state).

use kafka_protocol::messages::ListGroupsRequest;

use super::{Reply, RequestContext};

pub(crate) fn handle(ctx: RequestContext, req: ListGroupsRequest) -> Reply {
    Reply::now(ctx.broker.groups.list_groups(req, ctx.version()))
}
