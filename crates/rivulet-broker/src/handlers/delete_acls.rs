//! DeleteAcls v0–3: removes the bindings each filter matches, stored before the answer, and
//! returns them. Needs Alter on the cluster from an authenticated principal (also on listeners
//! whose other requests are not checked).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::{DeleteAclsRequest, DeleteAclsResponse};
use kafka_protocol::protocol::StrBytes;

use super::admin::blocking;
use super::describe_acls::filter;
use super::{Reply, RequestContext};
use crate::acl::{Operation, ResourceType, CLUSTER_NAME};

pub(crate) fn handle(ctx: RequestContext, req: DeleteAclsRequest) -> Reply {
    let mut resp = DeleteAclsResponse::default();
    let error = |code: i16, msg: Option<String>| {
        let mut r = DeleteAclsFilterResult::default();
        r.error_code = code;
        r.error_message = msg.map(StrBytes::from_string);
        r
    };
    if !ctx.allowed_authenticated(Operation::Alter, ResourceType::Cluster, CLUSTER_NAME) {
        resp.filter_results = req
            .filters
            .iter()
            .map(|_| error(ResponseError::ClusterAuthorizationFailed.code(), None))
            .collect();
        return Reply::now(resp);
    }
    let v0 = ctx.version() == 0;
    let filters: Vec<Result<_, String>> = req
        .filters
        .iter()
        .map(|f| {
            filter(
                f.resource_type_filter,
                f.resource_name_filter.as_deref(),
                if v0 { 3 } else { f.pattern_type_filter },
                f.principal_filter.as_deref(),
                f.host_filter.as_deref(),
                f.operation,
                f.permission_type,
            )
        })
        .collect();
    Reply::later(async move {
        let valid: Vec<_> = filters
            .iter()
            .filter_map(|f| f.as_ref().ok().cloned())
            .collect();
        let auth = ctx.broker.authorizer.clone();
        let removed = blocking(move || auth.delete(&valid)).await.and_then(|r| r);
        let mut removed = match removed {
            Ok(r) => r.into_iter(),
            Err(e) => {
                resp.filter_results = filters
                    .iter()
                    .map(|_| error(ResponseError::UnknownServerError.code(), Some(e.clone())))
                    .collect();
                return resp;
            }
        };
        resp.filter_results = filters
            .iter()
            .map(|f| match f {
                Err(e) => error(ResponseError::InvalidRequest.code(), Some(e.clone())),
                Ok(_) => {
                    let mut r = error(0, None);
                    r.matching_acls = removed
                        .next()
                        .unwrap_or_default()
                        .into_iter()
                        .map(|b| {
                            let mut m = DeleteAclsMatchingAcl::default();
                            m.resource_type = b.resource_type.code();
                            m.resource_name = StrBytes::from_string(b.resource_name);
                            m.pattern_type = b.pattern_type.code();
                            m.principal = StrBytes::from_string(b.principal);
                            m.host = StrBytes::from_string(b.host);
                            m.operation = b.operation.code();
                            m.permission_type = b.permission.code();
                            m
                        })
                        .collect();
                    r
                }
            })
            .collect();
        resp
    })
}
