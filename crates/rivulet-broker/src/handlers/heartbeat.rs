//! STUB written by the dispatcher so the crate compiles; the coordinator engineer replaces it.

use kafka_protocol::messages::HeartbeatRequest;

use super::{Reply, RequestContext};

pub(crate) fn handle(ctx: RequestContext, req: HeartbeatRequest) -> Reply {
    let _ = (ctx, req);
    todo!("Heartbeat")
}
