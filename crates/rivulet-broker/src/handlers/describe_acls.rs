//! DescribeAcls v0–3: the ACL bindings a filter matches, grouped by resource. Needs Describe on
//! the cluster from an authenticated principal (also on listeners whose other requests are
//! not checked).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{DescribeAclsRequest, DescribeAclsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{Reply, RequestContext};
use crate::acl::{AclFilter, Operation, ResourceType, CLUSTER_NAME};

/// A filter from a request's fields; `Err` names the field whose code is unknown. Code 1 (ANY)
/// and, for patterns, 2 (MATCH) match anything.
pub(crate) fn filter(
    resource_type: i8,
    resource_name: Option<&str>,
    pattern_type: i8,
    principal: Option<&str>,
    host: Option<&str>,
    operation: i8,
    permission: i8,
) -> Result<AclFilter, String> {
    use crate::acl::{PatternType, Permission};
    fn code<T>(
        c: i8,
        any: &[i8],
        f: impl Fn(i8) -> Option<T>,
        what: &str,
    ) -> Result<Option<T>, String> {
        if any.contains(&c) {
            return Ok(None);
        }
        f(c).map(Some).ok_or_else(|| format!("unknown {what} {c}"))
    }
    Ok(AclFilter {
        resource_type: code(
            resource_type,
            &[1],
            ResourceType::from_code,
            "resource type",
        )?,
        resource_name: resource_name.map(str::to_string),
        pattern_type: code(
            pattern_type,
            &[1, 2],
            PatternType::from_code,
            "pattern type",
        )?,
        principal: principal.map(str::to_string),
        host: host.map(str::to_string),
        operation: code(operation, &[1], Operation::from_code, "operation")?,
        permission: code(permission, &[1], Permission::from_code, "permission")?,
    })
}

pub(crate) fn handle(ctx: RequestContext, req: DescribeAclsRequest) -> Reply {
    let mut resp = DescribeAclsResponse::default();
    if !ctx.allowed_authenticated(Operation::Describe, ResourceType::Cluster, CLUSTER_NAME) {
        resp.error_code = ResponseError::ClusterAuthorizationFailed.code();
        return Reply::now(resp);
    }
    let f = filter(
        req.resource_type_filter,
        req.resource_name_filter.as_deref(),
        if ctx.version() == 0 {
            3
        } else {
            req.pattern_type_filter
        },
        req.principal_filter.as_deref(),
        req.host_filter.as_deref(),
        req.operation,
        req.permission_type,
    );
    let f = match f {
        Ok(f) => f,
        Err(e) => {
            resp.error_code = ResponseError::InvalidRequest.code();
            resp.error_message = Some(StrBytes::from_string(e));
            return Reply::now(resp);
        }
    };
    for b in ctx.broker.authorizer.describe(&f) {
        let same = resp
            .resources
            .last()
            .is_some_and(|r: &DescribeAclsResource| {
                r.resource_type == b.resource_type.code()
                    && r.resource_name.as_str() == b.resource_name
                    && r.pattern_type == b.pattern_type.code()
            });
        if !same {
            let mut r = DescribeAclsResource::default();
            r.resource_type = b.resource_type.code();
            r.resource_name = StrBytes::from_string(b.resource_name.clone());
            r.pattern_type = b.pattern_type.code();
            resp.resources.push(r);
        }
        let mut d = AclDescription::default();
        d.principal = StrBytes::from_string(b.principal);
        d.host = StrBytes::from_string(b.host);
        d.operation = b.operation.code();
        d.permission_type = b.permission.code();
        if let Some(r) = resp.resources.last_mut() {
            r.acls.push(d);
        }
    }
    Reply::now(resp)
}
