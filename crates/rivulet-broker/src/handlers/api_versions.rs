//! ApiVersions: what we implement. Unsupported versions are answered in `codec` (KIP-511).

use kafka_protocol::messages::ApiVersionsRequest;

use super::{Reply, RequestContext};
use crate::codec;

pub(crate) fn handle(_ctx: RequestContext, _req: ApiVersionsRequest) -> Reply {
    Reply::now(codec::api_versions_body())
}
