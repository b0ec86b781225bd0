//! STUB written by the dispatcher so the crate compiles; the coordinator engineer replaces it.

use kafka_protocol::messages::JoinGroupRequest;

use super::{Reply, RequestContext};

pub(crate) fn handle(ctx: RequestContext, req: JoinGroupRequest) -> Reply {
    let _ = (ctx, req);
    todo!("JoinGroup")
}
