//! FindCoordinator: this single node coordinates every group (key type 0) and every
//! transactional id (key type 1).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::{Reply, RequestContext};

pub(crate) fn handle(ctx: RequestContext, req: FindCoordinatorRequest) -> Reply {
    let v = ctx.version();
    let cfg = &ctx.broker.config;
    let answer = |key: &str| -> (i16, Option<&'static str>) {
        if !(0..=1).contains(&req.key_type) {
            (
                ResponseError::InvalidRequest.code(),
                Some("unknown coordinator key type"),
            )
        } else if key.is_empty() && req.key_type == 0 {
            (ResponseError::InvalidGroupId.code(), Some("empty group id"))
        } else if key.is_empty() {
            (
                ResponseError::InvalidRequest.code(),
                Some("empty transactional id"),
            )
        } else if req.key_type == 0
            && !ctx.allowed(
                crate::acl::Operation::Describe,
                crate::acl::ResourceType::Group,
                key,
            )
        {
            (
                ResponseError::GroupAuthorizationFailed.code(),
                Some("not authorized"),
            )
        } else if req.key_type == 1
            && !ctx.allowed(
                crate::acl::Operation::Describe,
                crate::acl::ResourceType::TransactionalId,
                key,
            )
        {
            (
                ResponseError::TransactionalIdAuthorizationFailed.code(),
                Some("not authorized"),
            )
        } else {
            (0, None)
        }
    };
    let mut resp = FindCoordinatorResponse::default();
    if v >= 4 {
        resp.coordinators = req
            .coordinator_keys
            .iter()
            .map(|k| {
                let (code, msg) = answer(k);
                let mut c = Coordinator::default();
                c.key = k.clone();
                c.error_code = code;
                c.error_message = msg.map(StrBytes::from_static_str);
                if code == 0 {
                    c.node_id = BrokerId(cfg.node_id);
                    c.host = StrBytes::from_string(ctx.advertised.0.clone());
                    c.port = i32::from(ctx.advertised.1);
                } else {
                    c.node_id = BrokerId(-1);
                    c.port = -1;
                }
                c
            })
            .collect();
    } else {
        let (code, msg) = answer(&req.key);
        resp.error_code = code;
        if v >= 1 {
            resp.error_message = msg.map(StrBytes::from_static_str);
        }
        if code == 0 {
            resp.node_id = BrokerId(cfg.node_id);
            resp.host = StrBytes::from_string(ctx.advertised.0.clone());
            resp.port = i32::from(ctx.advertised.1);
        } else {
            resp.node_id = BrokerId(-1);
            resp.port = -1;
        }
    }
    Reply::now(resp)
}
