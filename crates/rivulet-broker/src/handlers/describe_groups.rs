//! DescribeGroups (API 15, v0–5): state, protocol and members of each group.

use kafka_protocol::messages::DescribeGroupsRequest;

use super::{Reply, RequestContext};

pub(crate) fn handle(ctx: RequestContext, req: DescribeGroupsRequest) -> Reply {
    Reply::now(ctx.broker.groups.describe_groups(req, ctx.version()))
}
