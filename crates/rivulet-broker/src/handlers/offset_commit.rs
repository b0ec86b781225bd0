//! STUB written by the dispatcher so the crate compiles; the coordinator engineer replaces it.

use kafka_protocol::messages::OffsetCommitRequest;

use super::{Reply, RequestContext};

pub(crate) fn handle(ctx: RequestContext, req: OffsetCommitRequest) -> Reply {
    let _ = (ctx, req);
    todo!("OffsetCommit")
}
