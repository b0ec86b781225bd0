//! STUB written by the dispatcher so the crate compiles; the coordinator engineer replaces it.

use kafka_protocol::messages::DescribeGroupsRequest;

use super::{Reply, RequestContext};

pub(crate) fn handle(ctx: RequestContext, req: DescribeGroupsRequest) -> Reply {
    let _ = (ctx, req);
    todo!("DescribeGroups")
}
