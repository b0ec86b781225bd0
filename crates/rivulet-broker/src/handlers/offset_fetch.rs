//! OffsetFetch (API 9, v1–8; v8 fetches for several groups in one request).

use kafka_protocol::messages::OffsetFetchRequest;

use super::{Reply, RequestContext};

pub(crate) fn handle(ctx: RequestContext, req: OffsetFetchRequest) -> Reply {
    Reply::now(ctx.broker.groups.offset_fetch(req, ctx.version()))
}
