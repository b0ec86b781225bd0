//! DescribeGroups (API 15, v0–5): state, protocol and members of each group.

use kafka_protocol::messages::DescribeGroupsRequest;

use super::{Reply, RequestContext};

pub(crate) fn handle(ctx: RequestContext, req: DescribeGroupsRequest) -> Reply {
    let mut resp = ctx.broker.groups.describe_groups(req, ctx.version());
    for g in &mut resp.groups {
        if !ctx.allowed(
            crate::acl::Operation::Describe,
            crate::acl::ResourceType::Group,
            &g.group_id,
        ) {
            let id = g.group_id.clone();
            *g = Default::default();
            g.group_id = id;
            g.error_code = kafka_protocol::error::ResponseError::GroupAuthorizationFailed.code();
        }
    }
    Reply::now(resp)
}
