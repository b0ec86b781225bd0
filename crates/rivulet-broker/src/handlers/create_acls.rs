//! CreateAcls v0–3: adds ACL bindings (`acl.rs`), stored before the answer. Needs Alter on the
//! cluster from an authenticated principal (also on listeners whose other requests are not
//! checked: anyone reaching a plaintext port must not grant itself access); each creation is
//! validated on its own, the valid ones stored together.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::{CreateAclsRequest, CreateAclsResponse};
use kafka_protocol::protocol::StrBytes;

use super::admin::blocking;
use super::{Reply, RequestContext};
use crate::acl::{AclBinding, Operation, PatternType, Permission, ResourceType, CLUSTER_NAME};

fn binding(
    c: &kafka_protocol::messages::create_acls_request::AclCreation,
    v: i16,
) -> Result<AclBinding, String> {
    let b = AclBinding {
        resource_type: ResourceType::from_code(c.resource_type).ok_or_else(|| {
            format!(
                "resource type {} is not Topic, Group, Cluster or TransactionalId",
                c.resource_type
            )
        })?,
        resource_name: c.resource_name.to_string(),
        // v0 has no pattern type: literal.
        pattern_type: if v == 0 {
            PatternType::Literal
        } else {
            PatternType::from_code(c.resource_pattern_type).ok_or_else(|| {
                format!(
                    "pattern type {} is not Literal or Prefixed",
                    c.resource_pattern_type
                )
            })?
        },
        principal: c.principal.to_string(),
        host: c.host.to_string(),
        operation: Operation::from_code(c.operation)
            .ok_or_else(|| format!("operation {} is not one ACLs can name", c.operation))?,
        permission: Permission::from_code(c.permission_type)
            .ok_or_else(|| format!("permission {} is not Allow or Deny", c.permission_type))?,
    };
    b.validate()?;
    Ok(b)
}

pub(crate) fn handle(ctx: RequestContext, req: CreateAclsRequest) -> Reply {
    let mut resp = CreateAclsResponse::default();
    if !ctx.allowed_authenticated(Operation::Alter, ResourceType::Cluster, CLUSTER_NAME) {
        resp.results = req
            .creations
            .iter()
            .map(|_| {
                let mut r = AclCreationResult::default();
                r.error_code = ResponseError::ClusterAuthorizationFailed.code();
                r
            })
            .collect();
        return Reply::now(resp);
    }
    let v = ctx.version();
    let parsed: Vec<Result<AclBinding, String>> =
        req.creations.iter().map(|c| binding(c, v)).collect();
    Reply::later(async move {
        let valid: Vec<AclBinding> = parsed
            .iter()
            .filter_map(|p| p.as_ref().ok().cloned())
            .collect();
        let auth = ctx.broker.authorizer.clone();
        let stored = blocking(move || auth.create(&valid)).await.and_then(|r| r);
        resp.results = parsed
            .iter()
            .map(|p| {
                let mut r = AclCreationResult::default();
                match (p, &stored) {
                    (Err(e), _) => {
                        r.error_code = ResponseError::InvalidRequest.code();
                        r.error_message = Some(StrBytes::from_string(e.clone()));
                    }
                    (Ok(_), Err(e)) => {
                        r.error_code = ResponseError::PolicyViolation.code();
                        r.error_message = Some(StrBytes::from_string(e.clone()));
                    }
                    (Ok(_), Ok(())) => {}
                }
                r
            })
            .collect();
        resp
    })
}
