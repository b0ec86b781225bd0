//! ListGroups (API 16, v0–4; v4 filters by state).

use kafka_protocol::messages::ListGroupsRequest;

use super::{Reply, RequestContext};

pub(crate) fn handle(ctx: RequestContext, req: ListGroupsRequest) -> Reply {
    let mut resp = ctx.broker.groups.list_groups(req, ctx.version());
    resp.groups.retain(|g| {
        ctx.allowed(
            crate::acl::Operation::Describe,
            crate::acl::ResourceType::Group,
            &g.group_id,
        )
    });
    Reply::now(resp)
}
