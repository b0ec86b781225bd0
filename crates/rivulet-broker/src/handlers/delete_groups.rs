//! DeleteGroups (API 42, v0–2): deletes Empty groups and, durably, their committed offsets.

use kafka_protocol::messages::DeleteGroupsRequest;

use super::{Reply, RequestContext};

pub(crate) fn handle(ctx: RequestContext, req: DeleteGroupsRequest) -> Reply {
    let names = req.groups_names.iter().map(|g| g.0.as_str());
    if let Err((code, _)) = ctx.authorize_each(
        crate::acl::Operation::Delete,
        crate::acl::ResourceType::Group,
        names,
    ) {
        let mut resp = kafka_protocol::messages::DeleteGroupsResponse::default();
        resp.results = req
            .groups_names
            .iter()
            .map(|g| {
                let mut r =
                    kafka_protocol::messages::delete_groups_response::DeletableGroupResult::default(
                    );
                r.group_id = g.clone();
                r.error_code = code;
                r
            })
            .collect();
        return Reply::now(resp);
    }
    Reply::later(ctx.broker.groups.delete_groups(req, ctx.version()))
}
